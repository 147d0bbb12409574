package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/radgate/radgate/deident"
)

func TestDeidentifyCmd(t *testing.T) {
	root := t.TempDir()
	in := filepath.Join(root, "in")
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"phantom", "--kind", "ct-head", "--slices", "3", "--out", filepath.Join(in, "ct")}, &out, &errOut); code != 0 {
		t.Fatalf("phantom: exit %d: %s", code, errOut.String())
	}
	junk := filepath.Join(in, "notes.txt")
	if err := os.WriteFile(junk, []byte("not DICOM"), 0o600); err != nil {
		t.Fatal(err)
	}
	dest, data := filepath.Join(root, "out"), filepath.Join(root, "data")
	out.Reset()
	errOut.Reset()
	code := run(context.Background(), []string{"deidentify", "--out", dest, "--data-dir", data, "--retain-dates", "modified", in}, &out, &errOut)
	if code != 1 {
		t.Fatalf("exit %d, want 1 for the file that is not DICOM: %s%s", code, out.String(), errOut.String())
	}
	for _, want := range []string{"4/4 files", junk + ": "} {
		if !strings.Contains(errOut.String(), want) {
			t.Errorf("stderr %q lacks %q", errOut.String(), want)
		}
	}
	if !strings.Contains(out.String(), "de-identified 3 of 4 files") {
		t.Errorf("summary %q", out.String())
	}
	if strings.Contains(errOut.String()+out.String(), "PHANTOM^") {
		t.Error("a patient name reached the output")
	}
	files, err := filepath.Glob(filepath.Join(dest, "2.25.*.dcm"))
	if err != nil || len(files) != 3 {
		t.Fatalf("%d de-identified files (%v), want 3", len(files), err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil || bytes.Contains(b, []byte("PHANTOM^")) {
			t.Errorf("%s: %v, or the patient's name is still in it", f, err)
		}
	}
	m, err := deident.OpenMap(filepath.Join(data, "deident"))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	uid := strings.TrimSuffix(filepath.Base(files[0]), ".dcm")
	if orig, ok := m.Lookup(uid); !ok || orig == uid {
		t.Errorf("the map does not re-identify %s: %q, %v", uid, orig, ok)
	}
}

func TestDeidentifyUsage(t *testing.T) {
	tests := []struct {
		args []string
		code int
		out  string
	}{
		{[]string{"deidentify"}, 2, "usage: radgate deidentify"},
		{[]string{"deidentify", "--out", "x"}, 2, "usage: radgate deidentify"},
		{[]string{"deidentify", "--out", "x", "--retain-dates", "sometimes", "p"}, 2, "want full or modified"},
	}
	for _, tc := range tests {
		var out, errOut bytes.Buffer
		code := run(context.Background(), tc.args, &out, &errOut)
		if code != tc.code || !strings.Contains(errOut.String(), tc.out) {
			t.Errorf("radgate %v: exit %d, %q; want %d containing %q", tc.args, code, errOut.String(), tc.code, tc.out)
		}
	}
}
