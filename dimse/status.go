package dimse

import "fmt"

// Status is a DIMSE status (PS3.7 Annex C) with an optional Error Comment.
type Status struct {
	Code    uint16
	Comment string
}

// Status codes used by the C-ECHO and C-STORE services (PS3.7 C, PS3.4 B.2.3).
const (
	StatusSuccess                  uint16 = 0x0000
	StatusSOPClassNotSupported     uint16 = 0x0122
	StatusUnrecognizedOperation    uint16 = 0x0211
	StatusProcessingFailure        uint16 = 0x0110
	StatusOutOfResources           uint16 = 0xA700
	StatusDataSetMismatch          uint16 = 0xA900
	StatusCannotUnderstand         uint16 = 0xC000
	StatusWarningCoercion          uint16 = 0xB000
	StatusWarningElementsDiscarded uint16 = 0xB006
	StatusWarningDataSetMismatch   uint16 = 0xB007
)

// Class is the status class a code belongs to (PS3.7 C.1).
func (s Status) Class() string {
	c := s.Code
	switch {
	case c == StatusSuccess:
		return "success"
	case c == 0xFF00 || c == 0xFF01:
		return "pending"
	case c == 0xFE00:
		return "cancel"
	case c == 0x0001 || c == 0x0107 || c == 0x0116 || c&0xF000 == 0xB000:
		return "warning"
	}
	return "failure"
}

// OK reports whether the operation completed, with or without a warning.
func (s Status) OK() bool { c := s.Class(); return c == "success" || c == "warning" }

func (s Status) String() string {
	if s.Comment != "" {
		return fmt.Sprintf("0x%04X %s (%s)", s.Code, s.Class(), s.Comment)
	}
	return fmt.Sprintf("0x%04X %s", s.Code, s.Class())
}
