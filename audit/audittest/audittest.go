// Package audittest checks audit trails in tests: the DICOM audit message
// schema (PS3.15 A.5.1, audit/testdata/audit-message.rnc) through a real
// RELAX NG validator, and the messages a trail holds.
package audittest

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
)

// Schema converts audit-message.rnc (PS3.15 A.5.1.1 verbatim) to RELAX NG
// XML with trang and returns its path; it skips t without trang or
// xmllint (Debian trang, libxml2-utils). The "##" documentation
// annotations become plain comments first: trang rejects the standard's
// trailing ones (before "}"), and comments carry no schema meaning.
func Schema(t testing.TB) string {
	t.Helper()
	for _, tool := range []string{"trang", "xmllint"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("RADGATE_REQUIRE_PEERS") == "1" {
				t.Fatalf("%s not installed (Debian packages trang and libxml2-utils)", tool)
			}
			t.Skipf("%s not installed (Debian packages trang and libxml2-utils): schema validation skipped", tool)
		}
	}
	_, here, _, _ := runtime.Caller(0)
	src, err := os.ReadFile(filepath.Join(filepath.Dir(here), "..", "testdata", "audit-message.rnc"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	rnc := filepath.Join(dir, "audit.rnc")
	if err := os.WriteFile(rnc, []byte(strings.ReplaceAll(string(src), "##", "#")), 0o600); err != nil {
		t.Fatal(err)
	}
	rng := filepath.Join(dir, "audit.rng")
	if out, err := exec.Command("trang", "-I", "rnc", "-O", "rng", rnc, rng).CombinedOutput(); err != nil {
		t.Fatalf("trang: %v\n%s", err, out)
	}
	return rng
}

// Validate checks one message against the schema Schema made; the error
// is xmllint's report.
func Validate(t testing.TB, rng, name string, doc []byte) error {
	t.Helper()
	path := filepath.Join(t.TempDir(), name+".xml")
	if err := os.WriteFile(path, doc, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("xmllint", "--noout", "--relaxng", rng, path).CombinedOutput()
	if err != nil {
		return errors.New(string(out))
	}
	return nil
}

// Messages returns the XML messages of the trail in dir, oldest first
// (of a running trail: those whose line is complete).
func Messages(t testing.TB, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "audit-*.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(files)
	var out []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		// A live trail may be mid-line: only complete lines count.
		lines := strings.Split(string(b), "\n")
		for _, line := range lines[:len(lines)-1] {
			var rec struct {
				Msg string `json:"msg"`
			}
			if err := json.Unmarshal([]byte(line), &rec); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			out = append(out, rec.Msg)
		}
	}
	return out
}
