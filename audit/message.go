package audit

import (
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"time"
)

// ActionCode is EventIdentification/@EventActionCode (PS3.15 A.5.1.1).
type ActionCode string

// Action codes, RFC 3881 5.1.2.
const (
	ActionCreate  ActionCode = "C"
	ActionRead    ActionCode = "R"
	ActionUpdate  ActionCode = "U"
	ActionDelete  ActionCode = "D"
	ActionExecute ActionCode = "E"
)

// Outcome is EventIdentification/@EventOutcomeIndicator (PS3.15 A.5.1.1).
type Outcome int

// Outcome indicators, RFC 3881 5.1.4.
const (
	OutcomeSuccess      Outcome = 0
	OutcomeMinorFailure Outcome = 4
	OutcomeSerious      Outcome = 8
	OutcomeMajorFailure Outcome = 12
)

// NAPType is ActiveParticipant/@NetworkAccessPointTypeCode (RFC 3881 5.3.5).
type NAPType int

// Network access point types radgate writes.
const (
	NAPMachineName NAPType = 1
	NAPIPAddress   NAPType = 2
	NAPURI         NAPType = 5
)

// ObjectType is ParticipantObjectIdentification/@ParticipantObjectTypeCode.
type ObjectType int

// Participant object types (PS3.15 A.5.1.1).
const (
	ObjectPerson ObjectType = 1
	ObjectSystem ObjectType = 2
)

// ObjectRole is @ParticipantObjectTypeCodeRole (PS3.15 A.5.1.2.2).
type ObjectRole int

// Participant object roles radgate writes.
const (
	RolePatient          ObjectRole = 1
	RoleReport           ObjectRole = 3
	RoleSecurityResource ObjectRole = 13
	RoleQuery            ObjectRole = 24
)

// Code is the schema's CodedValueType: csd-code, codeSystemName and
// originalText are all required by PS3.15 A.5.1.1 (originalText carries
// the Code Meaning).
type Code struct {
	Code           string `xml:"csd-code,attr"`
	CodeSystemName string `xml:"codeSystemName,attr"`
	OriginalText   string `xml:"originalText,attr"`
}

// dcm is a code from the DICOM Controlled Terminology (PS3.16 Annex D).
func dcm(code, meaning string) Code {
	return Code{Code: code, CodeSystemName: "DCM", OriginalText: meaning}
}

// rfc3881 is a code from RFC 3881's own value sets (e.g. 5.5.4 ID types).
func rfc3881(code, meaning string) Code {
	return Code{Code: code, CodeSystemName: "RFC-3881", OriginalText: meaning}
}

// Message is one PS3.15 A.5 audit message. Field order is element order:
// the schema's groups are ordered sequences, so the struct layout is part
// of conformance.
type Message struct {
	XMLName      xml.Name            `xml:"AuditMessage"`
	Event        EventIdentification `xml:"EventIdentification"`
	Participants []ActiveParticipant `xml:"ActiveParticipant"`
	Source       AuditSource         `xml:"AuditSourceIdentification"`
	Objects      []ParticipantObject `xml:"ParticipantObjectIdentification"`
}

// EventIdentification is what happened, when and how it ended.
type EventIdentification struct {
	ActionCode         ActionCode `xml:"EventActionCode,attr,omitempty"`
	DateTime           time.Time  `xml:"EventDateTime,attr"`
	Outcome            Outcome    `xml:"EventOutcomeIndicator,attr"`
	EventID            Code       `xml:"EventID"`
	TypeCodes          []Code     `xml:"EventTypeCode"`
	OutcomeDescription string     `xml:"EventOutcomeDescription,omitempty"`
}

// ActiveParticipant is a user, process or node taking part.
type ActiveParticipant struct {
	UserID               string  `xml:"UserID,attr"`
	AlternativeUserID    string  `xml:"AlternativeUserID,attr,omitempty"`
	UserName             string  `xml:"UserName,attr,omitempty"`
	UserIsRequestor      bool    `xml:"UserIsRequestor,attr"`
	NetworkAccessPointID string  `xml:"NetworkAccessPointID,attr,omitempty"`
	NetworkAccessPointTy NAPType `xml:"NetworkAccessPointTypeCode,attr,omitempty"`
	RoleIDCodes          []Code  `xml:"RoleIDCode"`
}

// AuditSource is the system that detected the event and wrote the message.
type AuditSource struct {
	EnterpriseSiteID string       `xml:"AuditEnterpriseSiteID,attr,omitempty"`
	SourceID         string       `xml:"AuditSourceID,attr"`
	TypeCodes        []SourceType `xml:"AuditSourceTypeCode"`
}

// SourceType is AuditSourceTypeCode in its single-digit form
// (PS3.15 A.5.1.2.1), which needs no code system.
type SourceType struct {
	Code string `xml:"csd-code,attr"`
}

// sourceApplicationServer is Audit Source Type 4, "Application server
// process tier in a multi-tier system" — what the gateway is.
const sourceApplicationServer = "4"

// ParticipantObject is a patient, study, query or other thing acted on.
type ParticipantObject struct {
	ID           string              `xml:"ParticipantObjectID,attr"`
	TypeCode     ObjectType          `xml:"ParticipantObjectTypeCode,attr,omitempty"`
	TypeCodeRole ObjectRole          `xml:"ParticipantObjectTypeCodeRole,attr,omitempty"`
	IDTypeCode   Code                `xml:"ParticipantObjectIDTypeCode"`
	Name         string              `xml:"ParticipantObjectName,omitempty"`
	Query        Base64              `xml:"ParticipantObjectQuery,omitempty"`
	Details      []Detail            `xml:"ParticipantObjectDetail"`
	Descriptions []ObjectDescription `xml:"ParticipantObjectDescription"`
}

// Detail is a ParticipantObjectDetail type/value pair; the value is
// base64 in the document so any bytes survive (PS3.15 A.5.1.1 ValuePair).
type Detail struct {
	Type  string `xml:"type,attr"`
	Value Base64 `xml:"value,attr"`
}

// ObjectDescription is ParticipantObjectDescription (DICOM extension).
type ObjectDescription struct {
	Accessions []Accession `xml:"Accession"`
	SOPClasses []SOPClass  `xml:"SOPClass"`
}

// Accession is an Accession Number of a study.
type Accession struct {
	Number string `xml:"Number,attr"`
}

// SOPClass counts a study's instances of one SOP class.
type SOPClass struct {
	UID               string `xml:"UID,attr,omitempty"`
	NumberOfInstances int    `xml:"NumberOfInstances,attr"`
}

// Base64 is bytes written as xsd:base64Binary, in an element or attribute.
type Base64 []byte

// MarshalText implements encoding.TextMarshaler.
func (b Base64) MarshalText() ([]byte, error) {
	out := make([]byte, base64.StdEncoding.EncodedLen(len(b)))
	base64.StdEncoding.Encode(out, b)
	return out, nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (b *Base64) UnmarshalText(text []byte) error {
	out := make([]byte, base64.StdEncoding.DecodedLen(len(text)))
	n, err := base64.StdEncoding.Decode(out, text)
	if err != nil {
		return fmt.Errorf("%w: base64: %v", ErrInvalid, err)
	}
	*b = out[:n]
	return nil
}

// Validate checks what the schema requires and encoding/xml cannot
// express: mandatory attributes present, and exactly one of
// ParticipantObjectName and ParticipantObjectQuery (PS3.15 A.5.1.1 makes
// the pair a required choice).
func (m *Message) Validate() error {
	switch {
	case m.Event.EventID.Code == "":
		return fmt.Errorf("%w: no EventID", ErrInvalid)
	case m.Event.DateTime.IsZero():
		return fmt.Errorf("%w: no EventDateTime", ErrInvalid)
	case len(m.Participants) == 0:
		return fmt.Errorf("%w: no ActiveParticipant", ErrInvalid)
	case m.Source.SourceID == "":
		return fmt.Errorf("%w: no AuditSourceID", ErrInvalid)
	}
	for i, p := range m.Participants {
		if p.UserID == "" {
			return fmt.Errorf("%w: ActiveParticipant %d has no UserID", ErrInvalid, i)
		}
	}
	for i, o := range m.Objects {
		if o.ID == "" || o.IDTypeCode.Code == "" {
			return fmt.Errorf("%w: ParticipantObject %d has no ID or ID type", ErrInvalid, i)
		}
		if (o.Name == "") == (len(o.Query) == 0) {
			return fmt.Errorf("%w: ParticipantObject %d needs exactly one of Name and Query", ErrInvalid, i)
		}
	}
	return nil
}

// Marshal validates m and encodes it as an XML document (UTF-8, with an
// XML declaration). The timestamp is written in UTC.
func (m Message) Marshal() ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	m.Event.DateTime = m.Event.DateTime.UTC()
	body, err := xml.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return append([]byte(xml.Header[:len(xml.Header)-1]), body...), nil
}

// Unmarshal decodes an XML audit message (the inverse of Marshal).
func Unmarshal(doc []byte) (Message, error) {
	var m Message
	if err := xml.Unmarshal(doc, &m); err != nil {
		return Message{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return m, nil
}
