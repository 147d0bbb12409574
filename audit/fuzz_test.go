package audit

import (
	"bytes"
	"testing"
)

// FuzzParseRecord feeds arbitrary lines to the record parser: it must
// never panic, and whatever it accepts must re-encode to the same bytes.
func FuzzParseRecord(f *testing.F) {
	good := record{Seq: 1, Time: "2026-12-02T17:00:00.5Z", Prev: zeroHash, Msg: `<AuditMessage a="&amp;"/>`, Hash: zeroHash}.encode()
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add([]byte("{}\n"))
	f.Add([]byte(`{"seq":1,"time":"x","prev":"","msg":"","hash":"","extra":1}` + "\n"))
	f.Add([]byte("\n"))
	f.Fuzz(func(t *testing.T, line []byte) {
		r, err := parseRecord(line)
		if err != nil {
			return
		}
		if !bytes.Equal(r.encode(), line) {
			t.Fatalf("accepted a non-canonical line %q", line)
		}
	})
}
