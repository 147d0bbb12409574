package peertest

import (
	"fmt"
	"testing"
)

// recorder is a testing.TB that keeps what Errorf reports.
type recorder struct {
	testing.TB
	errs []string
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

func TestNoPHIFindsThePatients(t *testing.T) {
	for _, c := range []struct {
		line string
		phi  bool
	}{
		{`level=WARN msg="ingest: refused" patient=PHANTOM^CXR^7`, true},
		{`msg="lookup failed" id=PH-CTHEAD-3`, true},
		{`err="no Patient with identifier PHANTOM-7"`, true},
		{`name=Phantom^Seven`, true},
		{`patient=CompressedSamples^CT1`, true},
		{`pid=1CT1`, true},
		{`pid=RADGATE-BENCH`, true},
		{`msg="study complete" study=8f3a9c2d instances=12`, false},
		{`msg="model loaded" model=cxr-triage phantoms=true`, false},
		{`sop_class=1.2.840.10008.5.1.4.1.1.1 uid=2.25.1234`, false},
	} {
		r := &recorder{TB: t}
		NoPHI(r, "log", "first line\n"+c.line+"\n")
		if got := len(r.errs) > 0; got != c.phi {
			t.Errorf("%q: flagged %v, want %v", c.line, got, c.phi)
		}
	}
}
