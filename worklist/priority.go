package worklist

import (
	"fmt"
	"strings"

	"github.com/radgate/radgate/inference"
)

// A workitem's priority is kept on the inference scale (LOW, ROUTINE,
// HIGH, STAT), the one clinical priority travels on end to end: the
// request's, the route's, a finding's. The worklist shows it in two
// vocabularies:
//
//   - the clinical priority radiologists read: STAT, HIGH, ROUTINE (LOW
//     reads ROUTINE: nothing on a reading list is less than routine);
//   - UPS Scheduled Procedure Step Priority (0074,1200), PS3.3 C.30.2:
//     HIGH, MEDIUM, LOW — STAT and HIGH are both HIGH, ROUTINE is MEDIUM.

// Clinical is p as the worklist page and HL7 orders show it.
func Clinical(p inference.Priority) string {
	switch {
	case p >= inference.Stat:
		return "STAT"
	case p == inference.High:
		return "HIGH"
	}
	return "ROUTINE"
}

// UPSPriority is p as Scheduled Procedure Step Priority.
func UPSPriority(p inference.Priority) string {
	switch {
	case p >= inference.High:
		return "HIGH"
	case p == inference.Low:
		return "LOW"
	}
	return "MEDIUM"
}

// ParseUPSPriority reads a Scheduled Procedure Step Priority (or a
// C-STORE request priority, which has the same three words): HIGH is
// HIGH, MEDIUM is ROUTINE, LOW is LOW.
func ParseUPSPriority(s string) (inference.Priority, error) {
	switch strings.ToUpper(strings.TrimSpace(s)) {
	case "HIGH":
		return inference.High, nil
	case "MEDIUM":
		return inference.Routine, nil
	case "LOW":
		return inference.Low, nil
	}
	return 0, fmt.Errorf("%w: priority %q (want HIGH, MEDIUM or LOW)", ErrInvalid, s)
}

// ParseClinical reads a clinical priority as a person sets it: STAT,
// HIGH, ROUTINE (or LOW), any case.
func ParseClinical(s string) (inference.Priority, error) {
	p, err := inference.ParsePriority(s)
	if err != nil {
		return 0, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return p, nil
}
