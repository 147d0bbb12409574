package store

import "errors"

// Sentinel errors. Store methods wrap them with %w and context; callers
// test with errors.Is (ingest maps each to a DIMSE and an HTTP status).
var (
	// ErrOutOfResources: free disk space is below Config.MinFreeBytes (the
	// check runs before anything is written), or the disk filled up while
	// writing. The C-STORE SCP answers A700 (PS3.4 B.2.3).
	ErrOutOfResources = errors.New("store: out of resources")
	// ErrTooLarge: the data set is larger than Config.MaxInstanceBytes.
	ErrTooLarge = errors.New("store: instance too large")
	// ErrInvalidDataset: the data set does not parse (dcm.ErrMalformed), a
	// required UID is missing or invalid, or its SOP Instance / SOP Class
	// UID differs from the one the sender declared. Nothing is kept.
	ErrInvalidDataset = errors.New("store: invalid data set")
	// ErrStudyMismatch: the data set belongs to another study than the one
	// the sender addressed (Incoming.StudyInstanceUID). Nothing is kept.
	ErrStudyMismatch = errors.New("store: instance of another study than the one addressed")
	// ErrDuplicateRejected: the SOP Instance UID is already stored with
	// other content and the policy is Reject.
	ErrDuplicateRejected = errors.New("store: duplicate SOP instance rejected")
	// ErrUnknownTransferSyntax: the declared transfer syntax is not one
	// dcm.LookupTransferSyntax knows.
	ErrUnknownTransferSyntax = errors.New("store: unknown transfer syntax")
	// ErrInvalidQuery: a search key is not one the index holds at the
	// level, or its value is not valid matching for its VR (PS3.4
	// C.2.2.2). The message names the attribute, never the value.
	ErrInvalidQuery = errors.New("store: invalid query")
	// ErrNotFound: no instance with that SOP Instance UID, or no blob with
	// that key.
	ErrNotFound = errors.New("store: not found")
	// ErrInFlight: a study cannot be purged now, because radgate has work
	// for it in progress: instances not yet evaluated (or not yet
	// indexed), a job queued or running, a delivery pending, or its
	// workitem IN PROGRESS (a radiologist is reading it).
	ErrInFlight = errors.New("store: study has work in progress")
	// ErrClosed: the Store (or one of its backends) has been closed.
	ErrClosed = errors.New("store: closed")
	// ErrDataDirInUse: another process holds the data directory's lock.
	ErrDataDirInUse = errors.New("store: data directory in use by another process")
	// ErrSchemaTooNew: the index was written by a newer radgate whose
	// schema this one does not know.
	ErrSchemaTooNew = errors.New("store: index schema newer than this program")
)
