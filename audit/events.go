package audit

import (
	"maps"
	"net"
	"net/url"
	"slices"
	"time"
)

// Event IDs (PS3.16 CID 400, Audit Event ID) and type codes (CID 403 Security
// Alert Type, CID 404 Audit Event Type Code) used by the constructors below.
var (
	eventApplicationActivity = dcm("110100", "Application Activity")
	eventAuditLogUsed        = dcm("110101", "Audit Log Used")
	eventInstancesTransfer   = dcm("110104", "DICOM Instances Transferred")
	eventStudyDeleted        = dcm("110105", "DICOM Study Deleted")
	eventExport              = dcm("110106", "Export")
	eventProcedureRecord     = dcm("110111", "Procedure Record")
	eventQuery               = dcm("110112", "Query")
	eventSecurityAlert       = dcm("110113", "Security Alert")
	eventUserAuthentication  = dcm("110114", "User Authentication")

	typeApplicationStart      = dcm("110120", "Application Start")
	typeApplicationStop       = dcm("110121", "Application Stop")
	typeLogin                 = dcm("110122", "Login")
	typeNodeAuthentication    = dcm("110126", "Node Authentication")
	typeSoftwareConfiguration = dcm("110131", "Software Configuration")

	// Active participant roles (CID 402, Audit Active Participant Role ID).
	roleApplication         = dcm("110150", "Application")
	roleApplicationLauncher = dcm("110151", "Application Launcher")
	roleDestination         = dcm("110152", "Destination Role ID")
	roleSource              = dcm("110153", "Source Role ID")
	roleDestinationMedia    = dcm("110154", "Destination Media")

	// Participant object ID types (RFC 3881 5.5.4 and CID 404).
	idPatientNumber   = rfc3881("2", "Patient Number")
	idURI             = rfc3881("12", "URI")
	idStudyInstance   = dcm("110180", "Study Instance UID")
	idSOPClass        = dcm("110181", "SOP Class UID")
	idNode            = dcm("110182", "Node ID")
	detailAlert       = "Alert Description"
	detailFingerprint = "ConfigurationFingerprint"
)

// SOP classes a Query message names as the thing queried (PS3.15 A.5.3.10
// asks for the SOP Class UID; QIDO-RS is the web form of a Study Root
// C-FIND, UPS search the web form of a UPS Pull C-FIND).
const (
	SOPClassStudyRootFind = "1.2.840.10008.5.1.4.1.2.2.1"
	SOPClassUPSPull       = "1.2.840.10008.5.1.4.34.6.3"
)

// Header is what every event has: who reports it, when, and how it ended.
// A zero Time is filled in by Trail.Record; an empty Source with
// Options.SourceID.
type Header struct {
	Source      string // AuditSourceID: the reporting system (radgate's host or AE title)
	Time        time.Time
	Outcome     Outcome
	Description string // EventOutcomeDescription: why it failed; never PHI
}

// Node is an application, user or network peer taking part in an event.
type Node struct {
	ID   string // UserID: AE title, token subject, process name or URL
	Alt  string // AlternativeUserID, e.g. a process ID
	Name string // UserName, e.g. a person's display name
	Addr string // network address, "host", "ip" or "host:port"; the port is dropped
}

// Patient is the patient an event is about. The audit trail is the one
// place the identifiers belong: PS3.15 A.5.3 requires them here.
type Patient struct {
	ID   string
	Name string
}

// Study is one study an event is about; SOPClasses counts its instances
// per SOP Class UID (only those the event touched).
type Study struct {
	UID        string
	Accession  string
	SOPClasses map[string]int
}

// Transfer is a set of instances moving from one node to another.
type Transfer struct {
	Header
	From    Node // the process sending the data (Source Role ID)
	To      Node // the process receiving it (Destination Role ID)
	User    Node // a person or client on whose behalf it happened, if known and not From or To
	Patient Patient
	Studies []Study
}

// InstancesReceived is PS3.15 A.5.3.7 DICOM Instances Transferred, action
// C: a peer (C-STORE SCU or STOW-RS client) created instances on radgate;
// the sending peer is the requestor.
func InstancesReceived(t Transfer) Message {
	return transferred(t, ActionCreate, true)
}

// StudyRetrieved is DICOM Instances Transferred, action R: a client read a
// study from radgate (WADO-RS); the receiving client is the requestor.
func StudyRetrieved(t Transfer) Message {
	return transferred(t, ActionRead, false)
}

// InstancesSent is DICOM Instances Transferred, action R: radgate sent
// instances it made (SR, KOS) to a PACS; radgate (From) is the requestor.
func InstancesSent(t Transfer) Message {
	return transferred(t, ActionRead, true)
}

func transferred(t Transfer, action ActionCode, sourceRequests bool) Message {
	m := newMessage(t.Header, eventInstancesTransfer, action)
	m.Participants = []ActiveParticipant{
		participant(t.From, sourceRequests, roleSource),
		participant(t.To, !sourceRequests, roleDestination),
	}
	m.addUser(t.User)
	m.Objects = append(studyObjects(t.Studies), patientObject(t.Patient))
	return m
}

// QueryEvent is a search: QIDO-RS or UPS-RS search.
type QueryEvent struct {
	Header
	Client      Node   // the process issuing the query (Source Role ID)
	Server      Node   // radgate, responding (Destination Role ID)
	User        Node   // the authenticated user, if not the client itself
	SOPClassUID string // SOPClassStudyRootFind, SOPClassUPSPull, …
	Query       []byte // the query as received (URL query string); stored base64
}

// Query is PS3.15 A.5.3.10 Query, action E. The query may name a patient:
// it is kept, base64, as the standard asks.
func Query(q QueryEvent) Message {
	m := newMessage(q.Header, eventQuery, ActionExecute)
	m.Participants = []ActiveParticipant{
		participant(q.Client, true, roleSource),
		participant(q.Server, false, roleDestination),
	}
	m.addUser(q.User)
	m.Objects = []ParticipantObject{{
		ID:           q.SOPClassUID,
		TypeCode:     ObjectSystem,
		TypeCodeRole: RoleReport,
		IDTypeCode:   idSOPClass,
		Query:        Base64(q.Query),
	}}
	return m
}

// PriorityEvent is a change of a study's priority on the reading worklist.
type PriorityEvent struct {
	Header
	User     Node // who changed it: a radiologist, or radgate for a model finding
	Patient  Patient
	Study    Study
	From, To string // old and new priority
}

// PriorityChanged is PS3.15 A.5.3.15 Procedure Record, action U: the
// worklist entry is the procedure record that changed.
func PriorityChanged(p PriorityEvent) Message {
	m := newMessage(p.Header, eventProcedureRecord, ActionUpdate)
	m.Participants = []ActiveParticipant{participant(p.User, true)}
	study := studyObjects([]Study{p.Study})
	study[0].Details = []Detail{
		{Type: "PriorityFrom", Value: Base64(p.From)},
		{Type: "PriorityTo", Value: Base64(p.To)},
	}
	m.Objects = append(study, patientObject(p.Patient))
	return m
}

// ExportEvent is a notification (FHIR ImagingStudy, DiagnosticReport) sent
// to an EHR.
type ExportEvent struct {
	Header
	Exporter    Node   // radgate
	Destination string // the EHR's FHIR base URL
	Patient     Patient
	Studies     []Study
}

// DataExport is PS3.15 A.5.3.4 Export, action R. The standard names the
// destination "Media"; for a network export it is the EHR, identified by
// its base URL.
func DataExport(e ExportEvent) Message {
	m := newMessage(e.Header, eventExport, ActionRead)
	dest := participant(Node{ID: e.Destination, Addr: urlHost(e.Destination)}, false, roleDestinationMedia)
	m.Participants = []ActiveParticipant{participant(e.Exporter, true, roleSource), dest}
	m.Objects = append(studyObjects(e.Studies), patientObject(e.Patient))
	return m
}

// AuthEvent is a refused credential.
type AuthEvent struct {
	Header
	User Node // the claimed identity: token subject or certificate subject ("" if none) and the peer address
	Node Node // radgate, which refused it
}

// AuthenticationFailed is PS3.15 A.5.3.12 User Authentication, type Login,
// outcome minor failure: a bad, expired, wrong-audience or wrong-scope
// bearer token. Header.Description says which (never the token).
func AuthenticationFailed(a AuthEvent) Message {
	a.Outcome = OutcomeMinorFailure
	m := newMessage(a.Header, eventUserAuthentication, ActionExecute, typeLogin)
	m.Participants = []ActiveParticipant{
		participant(claimed(a.User), true),
		participant(a.Node, false),
	}
	return m
}

// NodeAuthenticationFailed is PS3.15 A.5.3.11 Security Alert, type Node
// Authentication, outcome minor failure: a TLS client certificate was
// refused. The alert subject is the peer node.
func NodeAuthenticationFailed(a AuthEvent) Message {
	a.Outcome = OutcomeMinorFailure
	m := newMessage(a.Header, eventSecurityAlert, ActionExecute, typeNodeAuthentication)
	peer := claimed(a.User)
	m.Participants = []ActiveParticipant{participant(a.Node, false), participant(peer, true)}
	subject := ParticipantObject{
		ID:         nonEmpty(hostOnly(peer.Addr), peer.ID),
		TypeCode:   ObjectSystem,
		IDTypeCode: idNode,
		Name:       peer.ID,
	}
	if a.Description != "" {
		subject.Details = []Detail{{Type: detailAlert, Value: Base64(a.Description)}}
	}
	m.Objects = []ParticipantObject{subject}
	return m
}

// AppEvent is the gateway starting or stopping.
type AppEvent struct {
	Header
	App      Node   // radgate: ID the application name, Alt the process ID
	Launcher Node   // the OS user or service manager that started it, if known
	Config   string // where the configuration came from (a file path, or "defaults")
}

// ApplicationStart is PS3.15 A.5.3.1 Application Activity, type
// Application Start.
func ApplicationStart(a AppEvent) Message { return appActivity(a, typeApplicationStart) }

// ApplicationStop is Application Activity, type Application Stop.
func ApplicationStop(a AppEvent) Message { return appActivity(a, typeApplicationStop) }

func appActivity(a AppEvent, typ Code) Message {
	m := newMessage(a.Header, eventApplicationActivity, ActionExecute, typ)
	m.Participants = []ActiveParticipant{participant(a.App, false, roleApplication)}
	if a.Launcher.ID != "" {
		m.Participants = append(m.Participants, participant(a.Launcher, true, roleApplicationLauncher))
	}
	return m
}

// ConfigurationChanged is PS3.15 A.5.3.11 Security Alert, type Software
// Configuration: the configuration differs from the one at the last
// start. The alert subject is the configuration, by location, with its
// new fingerprint (a digest chosen by the caller; never secrets).
func ConfigurationChanged(a AppEvent, fingerprint string) Message {
	m := newMessage(a.Header, eventSecurityAlert, ActionExecute, typeSoftwareConfiguration)
	m.Participants = []ActiveParticipant{participant(a.App, true, roleApplication)}
	m.Objects = []ParticipantObject{{
		ID:           nonEmpty(a.Config, "defaults"),
		TypeCode:     ObjectSystem,
		TypeCodeRole: RoleSecurityResource,
		IDTypeCode:   idURI,
		Name:         "radgate configuration",
		Details:      []Detail{{Type: detailFingerprint, Value: Base64(fingerprint)}},
	}}
	return m
}

// DeleteEvent is a study purged: by the retention policy, or on request.
type DeleteEvent struct {
	Header
	By      Node // who deleted it: radgate's retention, or the client that asked
	User    Node // the person behind that client, if known
	Patient Patient
	Study   Study
}

// StudyDeleted is PS3.15 A.5.3.8 DICOM Study Deleted, action D.
func StudyDeleted(d DeleteEvent) Message {
	m := newMessage(d.Header, eventStudyDeleted, ActionDelete)
	m.Participants = []ActiveParticipant{participant(d.By, true)}
	m.addUser(d.User)
	m.Objects = append(studyObjects([]Study{d.Study}), patientObject(d.Patient))
	return m
}

// LogUseEvent is someone reading or verifying the audit trail.
type LogUseEvent struct {
	Header
	User Node   // the person or process reading it
	Log  string // the trail's location as a URI (file:///var/radgate/audit)
}

// AuditLogUsed is PS3.15 A.5.3.2 Audit Log Used, action R.
func AuditLogUsed(u LogUseEvent) Message { return auditLog(u, ActionRead) }

// auditLogPruned is Audit Log Used with action D: PS3.15 has no message
// for deleting audit records, and A.5.3.2 (the audit log as participant
// object) is the closest; action D is radgate's documented extension.
func auditLogPruned(u LogUseEvent, pruned string) Message {
	m := auditLog(u, ActionDelete)
	m.Objects[0].Details = []Detail{{Type: "Pruned", Value: Base64(pruned)}}
	return m
}

func auditLog(u LogUseEvent, action ActionCode) Message {
	m := newMessage(u.Header, eventAuditLogUsed, action)
	m.Participants = []ActiveParticipant{participant(u.User, true)}
	m.Objects = []ParticipantObject{{
		ID:           u.Log,
		TypeCode:     ObjectSystem,
		TypeCodeRole: RoleSecurityResource,
		IDTypeCode:   idURI,
		Name:         "Security Audit Log",
	}}
	return m
}

func newMessage(h Header, id Code, action ActionCode, types ...Code) Message {
	return Message{
		Event: EventIdentification{
			ActionCode:         action,
			DateTime:           h.Time,
			Outcome:            h.Outcome,
			EventID:            id,
			TypeCodes:          types,
			OutcomeDescription: h.Description,
		},
		Source: AuditSource{SourceID: h.Source, TypeCodes: []SourceType{{Code: sourceApplicationServer}}},
	}
}

// addUser adds a further requesting participant (a person behind a client).
func (m *Message) addUser(u Node) {
	if u.ID != "" {
		m.Participants = append(m.Participants, participant(u, true))
	}
}

func participant(n Node, requestor bool, roles ...Code) ActiveParticipant {
	p := ActiveParticipant{
		UserID:            n.ID,
		AlternativeUserID: n.Alt,
		UserName:          n.Name,
		UserIsRequestor:   requestor,
		RoleIDCodes:       roles,
	}
	if h := hostOnly(n.Addr); h != "" {
		p.NetworkAccessPointID = h
		p.NetworkAccessPointTy = NAPMachineName
		if net.ParseIP(h) != nil {
			p.NetworkAccessPointTy = NAPIPAddress
		}
	}
	return p
}

// claimed stands in for an identity the peer did not give: UserID is
// mandatory (A.5.3.12), and "unknown" says what radgate knows.
func claimed(n Node) Node {
	n.ID = nonEmpty(n.ID, "unknown")
	return n
}

// patientObject is the Patient participant object (A.5.3, "Patient (1)").
// ParticipantObjectName is mandatory in the schema; an unknown name
// repeats the ID rather than invent one.
func patientObject(p Patient) ParticipantObject {
	return ParticipantObject{
		ID:           p.ID,
		TypeCode:     ObjectPerson,
		TypeCodeRole: RolePatient,
		IDTypeCode:   idPatientNumber,
		Name:         nonEmpty(p.Name, p.ID),
	}
}

// studyObjects are the Study participant objects with their SOP class
// counts (sorted, so equal events encode to equal bytes). The schema needs
// a name; radgate has no better one at audit time than the UID.
func studyObjects(studies []Study) []ParticipantObject {
	out := make([]ParticipantObject, 0, len(studies)+1)
	for _, s := range studies {
		var d ObjectDescription
		if s.Accession != "" {
			d.Accessions = []Accession{{Number: s.Accession}}
		}
		for _, uid := range slices.Sorted(maps.Keys(s.SOPClasses)) {
			d.SOPClasses = append(d.SOPClasses, SOPClass{UID: uid, NumberOfInstances: s.SOPClasses[uid]})
		}
		o := ParticipantObject{
			ID:           s.UID,
			TypeCode:     ObjectSystem,
			TypeCodeRole: RoleReport,
			IDTypeCode:   idStudyInstance,
			Name:         s.UID,
		}
		if len(d.Accessions)+len(d.SOPClasses) > 0 {
			o.Descriptions = []ObjectDescription{d}
		}
		out = append(out, o)
	}
	return out
}

// hostOnly drops a port, so NetworkAccessPointID is a host or an IP.
func hostOnly(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

func urlHost(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Hostname()
}

func nonEmpty(v, otherwise string) string {
	if v == "" {
		return otherwise
	}
	return v
}
