package store

import (
	"fmt"
	"time"
)

// DuplicatePolicy says what Ingest does with an instance whose SOP Instance
// UID is already stored with other content. The same content is always
// accepted as DuplicateSame, whatever the policy: a sender retrying after a
// lost response must succeed (PS3.4 B.2.3 leaves duplicates to the SCP).
type DuplicatePolicy int

const (
	// KeepFirst keeps what is stored and reports DuplicateKept (the SCP
	// answers the warning B006 "elements discarded").
	KeepFirst DuplicatePolicy = iota
	// Replace stores the new content and makes it current (Replaced).
	Replace
	// Reject fails with ErrDuplicateRejected.
	Reject
)

var policyNames = [...]string{KeepFirst: "keep-first", Replace: "replace", Reject: "reject"}

func (p DuplicatePolicy) String() string {
	if p >= 0 && int(p) < len(policyNames) {
		return policyNames[p]
	}
	return fmt.Sprintf("DuplicatePolicy(%d)", int(p))
}

// ParseDuplicatePolicy parses the configuration spelling: "keep-first"
// (or ""), "replace", "reject".
func ParseDuplicatePolicy(s string) (DuplicatePolicy, error) {
	if s == "" {
		return KeepFirst, nil
	}
	for p, name := range policyNames {
		if s == name {
			return DuplicatePolicy(p), nil
		}
	}
	return 0, fmt.Errorf("store: unknown duplicate policy %q (want keep-first, replace or reject)", s)
}

// Outcome is what a successful Ingest did.
type Outcome int

const (
	// Stored: a new instance, now durable and indexed.
	Stored Outcome = iota
	// DuplicateSame: the instance was already stored with identical content
	// (the same data set bytes in the same transfer syntax); nothing new
	// was written.
	DuplicateSame
	// DuplicateKept: the SOP Instance UID was already stored with other
	// content; the first copy was kept (KeepFirst) and the new one dropped.
	DuplicateKept
	// Replaced: the SOP Instance UID was already stored with other content;
	// the new content is now current (Replace).
	Replaced
)

var outcomeNames = [...]string{Stored: "stored", DuplicateSame: "duplicate_same", DuplicateKept: "duplicate_kept", Replaced: "replaced"}

// String is the outcome's metric label and log value.
func (o Outcome) String() string {
	if o >= 0 && int(o) < len(outcomeNames) {
		return outcomeNames[o]
	}
	return fmt.Sprintf("Outcome(%d)", int(o))
}

// Incoming describes an instance as its sender declared it: in the DIMSE
// C-STORE request (PS3.7 9.1.1) and the presentation context, or in the
// STOW-RS part's file meta (PS3.18 10.5).
type Incoming struct {
	SOPClassUID       string
	SOPInstanceUID    string
	TransferSyntaxUID string // the encoding of the data set bytes

	CallingAE  string // the peer's AE title; "" for STOW-RS
	CalledAE   string // the AE title it addressed
	RemoteAddr string // the peer's network address
	Source     string // "dimse" or "stow"
	// RequestPriority is the C-STORE request's Priority (PS3.7 9.1.1):
	// "HIGH", "MEDIUM" or "LOW"; "" when the protocol has none (STOW-RS).
	RequestPriority string

	// StudyInstanceUID, when set, is the study the sender addressed
	// (STOW-RS to /studies/{study}): a data set of another study fails
	// with ErrStudyMismatch, before anything is kept.
	StudyInstanceUID string
}

// Result is what a successful Ingest returns.
type Result struct {
	Outcome  Outcome
	Instance Instance // the index record now current for the SOP Instance UID
}

// Instance is an instance's index record. Patient-, study- and series-level
// attributes (PS3.3 C.7.1.1, C.7.2.1, C.7.3.1) live in their own index rows
// and hold the values of the most recently stored instance of that
// patient, study or series: a correction sent later wins, as in a PACS.
// Strings are the attribute values as encoded in the data set (character
// set not decoded, trailing padding removed).
type Instance struct {
	SOPInstanceUID    string
	SOPClassUID       string
	SeriesInstanceUID string
	StudyInstanceUID  string

	// Patient level.
	PatientID        string
	PatientName      string
	PatientBirthDate string
	PatientSex       string

	// Study level.
	StudyDate              string
	StudyTime              string
	AccessionNumber        string
	StudyDescription       string
	ReferringPhysicianName string
	StudyID                string

	// Series level.
	Modality          string
	SeriesNumber      string // IS, as sent
	SeriesDescription string
	BodyPartExamined  string

	// Instance level.
	InstanceNumber       string // IS, as sent
	Rows                 int    // 0: absent
	Columns              int    // 0: absent
	NumberOfFrames       int    // 0: absent (a single frame)
	SpecificCharacterSet string
	TransferSyntaxUID    string

	// Reception.
	CallingAE       string
	CalledAE        string
	RemoteAddr      string
	Source          string
	RequestPriority string // Incoming.RequestPriority
	ReceivedAt      time.Time

	// Storage.
	Size          int64  // bytes of the Part 10 blob
	SHA256        string // hex SHA-256 of the Part 10 blob; "" until the instance is indexed
	BlobKey       string // where Blobs keeps it
	DatasetOffset int64  // where the data set starts in the blob (the file meta's length)
	Seq           uint64 // the log record's sequence number: later writes of a SOP Instance UID have higher ones
}
