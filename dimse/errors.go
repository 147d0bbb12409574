package dimse

import (
	"errors"
	"fmt"
)

// Sentinel errors. Callers test them with errors.Is.
var (
	ErrMalformedPDU     = errors.New("dimse: malformed PDU")
	ErrPDUTooLarge      = errors.New("dimse: PDU exceeds the negotiated maximum length")
	ErrUnknownPDU       = errors.New("dimse: unrecognized PDU type")
	ErrMalformedCommand = errors.New("dimse: malformed DIMSE command set")
	ErrAborted          = errors.New("dimse: association aborted")
	ErrRejected         = errors.New("dimse: association rejected")
	ErrNoContext        = errors.New("dimse: no accepted presentation context")
	ErrProtocol         = errors.New("dimse: protocol error")
	ErrServerClosed     = errors.New("dimse: server closed")
	ErrTimeout          = errors.New("dimse: timed out")
	// ErrInterrupted is what a Handler reads when the association ends
	// before the data set is complete.
	ErrInterrupted = errors.New("dimse: data set transfer interrupted")
)

// RejectError reports an A-ASSOCIATE-RJ received by a requestor.
type RejectError struct {
	Result, Source, Reason byte
}

func (e *RejectError) Error() string {
	return fmt.Sprintf("dimse: association rejected: %s", describeReject(e.Result, e.Source, e.Reason))
}

func (e *RejectError) Unwrap() error { return ErrRejected }

// AbortError reports an A-ABORT received from the peer.
type AbortError struct {
	Source, Reason byte
}

func (e *AbortError) Error() string {
	return fmt.Sprintf("dimse: association aborted by peer (source %d, reason %d: %s)", e.Source, e.Reason, abortReasonName(e.Source, e.Reason))
}

func (e *AbortError) Unwrap() error { return ErrAborted }
