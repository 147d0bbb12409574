package ingest

import (
	"log/slog"
	"net/http"

	"github.com/radgate/radgate/dimse"
	"github.com/radgate/radgate/store"
)

// The one table that maps what the store did to the DIMSE status (PS3.4
// B.2.3, PS3.7 C) and the HTTP status (PS3.18 10.5.3) a sender sees.

var successes = map[store.Outcome]outcome{
	store.Stored:        {name: "stored", dimse: dimse.StatusSuccess, http: http.StatusOK},
	store.DuplicateSame: {name: "duplicate_same", dimse: dimse.StatusSuccess, http: http.StatusOK},
	store.Replaced:      {name: "replaced", dimse: dimse.StatusSuccess, http: http.StatusOK},
	// Different content under a known SOP Instance UID: the first copy is
	// kept and the sender is told its data set was discarded.
	store.DuplicateKept: {name: "duplicate_kept", dimse: dimse.StatusWarningElementsDiscarded, http: http.StatusAccepted,
		comment: "duplicate SOP Instance UID with other content; first copy kept"},
}

var failures = []struct {
	err error
	outcome
}{
	{store.ErrOutOfResources, outcome{name: "out_of_resources", dimse: dimse.StatusOutOfResources, http: http.StatusServiceUnavailable,
		comment: "out of resources: free disk below threshold", logLevel: slog.LevelWarn}},
	{store.ErrTooLarge, outcome{name: "too_large", dimse: dimse.StatusOutOfResources, http: http.StatusRequestEntityTooLarge,
		comment: "instance exceeds the configured size limit", logLevel: slog.LevelWarn}},
	// PS3.18 10.5.3: an instance of another study than the request's
	// target is not stored; its failure reason is A900 (the data set does
	// not match what was asked).
	{store.ErrStudyMismatch, outcome{name: "study_mismatch", dimse: dimse.StatusDataSetMismatch, http: http.StatusConflict,
		comment: "instance belongs to another study than the one addressed", logLevel: slog.LevelWarn}},
	{store.ErrInvalidDataset, outcome{name: "invalid_dataset", dimse: dimse.StatusCannotUnderstand, http: http.StatusBadRequest,
		comment: "data set cannot be parsed or does not match the request", logLevel: slog.LevelWarn}},
	{store.ErrUnknownTransferSyntax, outcome{name: "unknown_transfer_syntax", dimse: dimse.StatusCannotUnderstand, http: http.StatusUnsupportedMediaType,
		comment: "transfer syntax not supported", logLevel: slog.LevelWarn}},
	{store.ErrDuplicateRejected, outcome{name: "duplicate_rejected", dimse: statusDuplicateSOPInstance, http: http.StatusConflict,
		comment: "duplicate SOP Instance UID with other content rejected by policy", logLevel: slog.LevelWarn}},
}

// statusDuplicateSOPInstance is the general DIMSE failure "Duplicate SOP
// Instance" (PS3.7 C.5.7).
const statusDuplicateSOPInstance uint16 = 0x0111

// interrupted is the sender going away mid-data set: nothing is kept and
// no response can be sent; the protocol layer logs the abort.
var interrupted = outcome{name: "interrupted", dimse: dimse.StatusProcessingFailure, http: http.StatusBadRequest,
	comment: "transfer interrupted", logLevel: slog.LevelDebug}

// internalFailure answers anything else: an I/O error on our side.
var internalFailure = outcome{name: "internal_error", dimse: dimse.StatusProcessingFailure, http: http.StatusInternalServerError,
	comment: "internal error storing the instance", logLevel: slog.LevelError}
