package dimse

import "time"

// Limits. Every length a peer declares is checked against one of these
// before anything is allocated for it.
const (
	// DefaultMaxPDULength is the largest P-DATA-TF PDU we advertise in the
	// User Information item (PS3.8 D.1). Large PDUs mean fewer system calls
	// per data set; peers cap what they send at their own limit anyway.
	DefaultMaxPDULength = 4 << 20

	// maxAssociatePDULength bounds A-ASSOCIATE-RQ/AC PDUs. 128 presentation
	// contexts with a dozen transfer syntaxes each fit in well under 256 KiB.
	maxAssociatePDULength = 1 << 20

	// minPeerPDULength is the smallest maximum length we agree to fragment
	// for; anything smaller would turn a data set into millions of PDUs.
	minPeerPDULength = 64

	// maxCommandLength bounds a DIMSE command set, which is a few hundred
	// bytes in practice (PS3.7 E.1).
	maxCommandLength = 64 << 10

	// maxPresentationContexts is the most a single association can carry:
	// context IDs are odd numbers 1–255 (PS3.8 9.3.2.2).
	maxPresentationContexts = 128

	// DefaultARTIM is the Association Request/Reject/Release timer (PS3.8
	// 9.1.5): how long we wait for an A-ASSOCIATE-RQ after a connection
	// opens, and for the peer to close after a reject, release or abort.
	DefaultARTIM = 30 * time.Second

	// DefaultIdleTimeout ends an established association on which the peer
	// sends nothing for this long.
	DefaultIdleTimeout = 5 * time.Minute

	// DefaultMaxAssociations is the number of concurrent associations an SCP
	// serves before it rejects with "local-limit-exceeded".
	DefaultMaxAssociations = 64

	// applicationContextName is the DICOM Application Context (PS3.7 A.2.1).
	applicationContextName = "1.2.840.10008.3.1.1.1"

	// protocolVersion is the only upper-layer protocol version (PS3.8 9.3.2).
	protocolVersion = 0x0001
)
