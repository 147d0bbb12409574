package dimse

import "fmt"

// A-ASSOCIATE-RJ fields (PS3.8 Table 9-21).
const (
	RejectPermanent byte = 1
	RejectTransient byte = 2

	RejectSourceUser         byte = 1 // DICOM UL service-user
	RejectSourceACSE         byte = 2 // DICOM UL service-provider (ACSE related function)
	RejectSourcePresentation byte = 3 // DICOM UL service-provider (presentation related function)

	// Reasons when the source is the service-user.
	RejectNoReason                  byte = 1
	RejectApplicationContextUnknown byte = 2
	RejectCallingAENotRecognized    byte = 3
	RejectCalledAENotRecognized     byte = 7
	// Reason when the source is ACSE.
	RejectProtocolVersionUnsupported byte = 2
	// Reasons when the source is the presentation layer.
	RejectTemporaryCongestion byte = 1
	RejectLocalLimitExceeded  byte = 2
)

// A-ABORT fields (PS3.8 Table 9-26).
const (
	AbortSourceUser     byte = 0
	AbortSourceProvider byte = 2

	AbortReasonNotSpecified      byte = 0
	AbortReasonUnrecognizedPDU   byte = 1
	AbortReasonUnexpectedPDU     byte = 2
	AbortReasonUnrecognizedParam byte = 4
	AbortReasonUnexpectedParam   byte = 5
	AbortReasonInvalidParamValue byte = 6
)

func describeReject(result, source, reason byte) string {
	r := "rejected-permanent"
	if result == RejectTransient {
		r = "rejected-transient"
	}
	var why string
	switch source {
	case RejectSourceUser:
		switch reason {
		case RejectNoReason:
			why = "no-reason-given"
		case RejectApplicationContextUnknown:
			why = "application-context-name-not-supported"
		case RejectCallingAENotRecognized:
			why = "calling-AE-title-not-recognized"
		case RejectCalledAENotRecognized:
			why = "called-AE-title-not-recognized"
		}
	case RejectSourceACSE:
		switch reason {
		case RejectNoReason:
			why = "no-reason-given"
		case RejectProtocolVersionUnsupported:
			why = "protocol-version-not-supported"
		}
	case RejectSourcePresentation:
		switch reason {
		case RejectTemporaryCongestion:
			why = "temporary-congestion"
		case RejectLocalLimitExceeded:
			why = "local-limit-exceeded"
		}
	}
	if why == "" {
		why = fmt.Sprintf("source %d reason %d", source, reason)
	}
	return r + ", " + why
}

func abortReasonName(source, reason byte) string {
	if source != AbortSourceProvider {
		return "service-user"
	}
	switch reason {
	case AbortReasonUnrecognizedPDU:
		return "unrecognized-PDU"
	case AbortReasonUnexpectedPDU:
		return "unexpected-PDU"
	case AbortReasonUnrecognizedParam:
		return "unrecognized-PDU-parameter"
	case AbortReasonUnexpectedParam:
		return "unexpected-PDU-parameter"
	case AbortReasonInvalidParamValue:
		return "invalid-PDU-parameter-value"
	}
	return "reason-not-specified"
}

// EndReason says how an association ended. Each value is a metric label
// and a log field (after nats-server's ClosedState).
type EndReason uint8

const (
	EndReleased      EndReason = iota // orderly A-RELEASE
	EndRejected                       // we sent or received A-ASSOCIATE-RJ
	EndPeerAborted                    // the peer sent A-ABORT
	EndPeerClosed                     // transport closed without release
	EndMalformedPDU                   // a PDU we could not decode
	EndUnknownPDU                     // an unrecognized PDU type
	EndPDUTooLarge                    // a declared length beyond our limit
	EndUnexpectedPDU                  // a PDU the state machine does not allow
	EndProtocolError                  // DIMSE-level violation (bad command, unknown context)
	EndARTIMExpired                   // peer silent while ARTIM ran
	EndIdleTimeout                    // established association silent too long
	EndShutdown                       // aborted by server shutdown
	EndHandlerPanic                   // a service handler panicked
	EndLocalError                     // an I/O or internal error on our side
	EndTLSRefused                     // the TLS handshake failed (no TLS, untrusted or expired certificate)
)

var endReasonNames = [...]string{
	EndReleased:      "released",
	EndRejected:      "rejected",
	EndPeerAborted:   "peer_aborted",
	EndPeerClosed:    "peer_closed",
	EndMalformedPDU:  "malformed_pdu",
	EndUnknownPDU:    "unknown_pdu",
	EndPDUTooLarge:   "pdu_too_large",
	EndUnexpectedPDU: "unexpected_pdu",
	EndProtocolError: "protocol_error",
	EndARTIMExpired:  "artim_expired",
	EndIdleTimeout:   "idle_timeout",
	EndShutdown:      "shutdown",
	EndHandlerPanic:  "handler_panic",
	EndLocalError:    "local_error",
	EndTLSRefused:    "tls_refused",
}

func (r EndReason) String() string {
	if int(r) < len(endReasonNames) {
		return endReasonNames[r]
	}
	return fmt.Sprintf("end_reason_%d", r)
}

// abortReasonFor maps why we abort to the A-ABORT reason we send.
func (r EndReason) abortReason() byte {
	switch r {
	case EndUnknownPDU:
		return AbortReasonUnrecognizedPDU
	case EndUnexpectedPDU:
		return AbortReasonUnexpectedPDU
	case EndMalformedPDU, EndPDUTooLarge, EndProtocolError:
		return AbortReasonInvalidParamValue
	}
	return AbortReasonNotSpecified
}
