package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/radgate/radgate/phantom"
)

func TestPhantomCmd(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new", "folder")
	var out, errOut bytes.Buffer
	code := phantomCmd(context.Background(), []string{"--kind", "ct-head", "--finding", "hemorrhage", "--seed", "8", "--slices", "6", "--out", dir}, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	spec := phantom.Spec{Kind: phantom.KindCTHead, Finding: phantom.Hemorrhage, Seed: 8, Slices: 6}
	insts, err := phantom.Generate(spec)
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.dcm"))
	if err != nil || len(files) != len(insts) {
		t.Fatalf("%d files (%v), want %d", len(files), err, len(insts))
	}
	var positive []string
	for i, inst := range insts {
		data, err := os.ReadFile(files[i]) // Glob sorts: 0001_… first
		if err != nil || !bytes.Equal(data, inst.Data) || !strings.Contains(files[i], inst.SOPInstanceUID) {
			t.Errorf("%s: not instance %d (%v)", files[i], i+1, err)
		}
		if inst.Positive {
			positive = append(positive, files[i]+" positive")
		}
	}
	for _, want := range append(positive, spec.StudyInstanceUID(), "6 files") {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output %q lacks %q", out.String(), want)
		}
	}
}

func TestPhantomCmdUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "usage: radgate phantom"},
		{[]string{"--kind", "cxr"}, "usage: radgate phantom"},
		{[]string{"--kind", "cxr", "--out", "x", "extra"}, "usage: radgate phantom"},
		{[]string{"--bogus"}, "flag provided but not defined"},
		{[]string{"--kind", "cxr", "--finding", "hemorrhage", "--out", "x"}, "finding does not fit"},
		{[]string{"--kind", "mr", "--out", "x"}, "unknown kind"},
		{[]string{"--kind", "ct-head", "--slices", "100000", "--out", "x"}, "slice count"},
		{[]string{"--kind", "cxr", "--seed", "-1", "--out", "x"}, "invalid value"},
	} {
		var out, errOut bytes.Buffer
		if code := phantomCmd(context.Background(), tc.args, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), tc.want) {
			t.Errorf("radgate phantom %v: exit %d, stderr %q; want 2 and %q", tc.args, code, errOut.String(), tc.want)
		}
	}
}
