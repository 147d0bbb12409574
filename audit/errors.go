package audit

import "errors"

// Sentinel errors; BreakError wraps ErrTampered, ErrTruncated or ErrMalformed.
var (
	ErrInvalid   = errors.New("audit: invalid audit message")
	ErrMalformed = errors.New("audit: malformed trail record")
	ErrTampered  = errors.New("audit: trail chain broken")
	ErrTruncated = errors.New("audit: trail truncated")
	ErrNoKey     = errors.New("audit: chain key missing or unreadable")
	ErrClosed    = errors.New("audit: trail closed")
	ErrFailed    = errors.New("audit: trail write failed")
	ErrConfig    = errors.New("audit: invalid option")
)
