package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestExitStatuses(t *testing.T) {
	tests := []struct {
		args []string
		code int
		out  string
	}{
		{nil, 2, "Usage:"},
		{[]string{"bogus"}, 2, `unknown command "bogus"`},
		{[]string{"version"}, 0, "radgate "},
		{[]string{"echo"}, 2, "usage: radgate echo"},
		{[]string{"echo", "A@127.0.0.1:1", "B@127.0.0.1:2"}, 2, "usage: radgate echo"},
		{[]string{"echo", "NOPORT@127.0.0.1"}, 2, "want HOST:PORT"},
		{[]string{"echo", "TOOLONGAETITLE_XYZ@127.0.0.1:104"}, 2, "AE title of 1 to 16"},
		{[]string{"send", "A@127.0.0.1:104"}, 2, "usage: radgate send"},
		{[]string{"send", "A@127.0.0.1:104", "x", "--priority", "urgent"}, 2, "--priority"},
		{[]string{"serve", "--dimse-max-associations", "0"}, 2, "dimse_max_associations"},
		// Nothing listens on port 1: a connection failure is exit 1.
		{[]string{"echo", "ANY@127.0.0.1:1", "--timeout", "2s"}, 1, "connect"},
	}
	for _, tc := range tests {
		var out, errOut bytes.Buffer
		code := run(context.Background(), tc.args, &out, &errOut)
		if code != tc.code || !strings.Contains(out.String()+errOut.String(), tc.out) {
			t.Errorf("radgate %v: exit %d, output %q; want exit %d containing %q", tc.args, code, out.String()+errOut.String(), tc.code, tc.out)
		}
	}
}

func TestParseInterleaved(t *testing.T) {
	fs, cf := newClientFlags("send", "", &bytes.Buffer{})
	pos, err := parseInterleaved(fs, []string{"--calling", "ME", "AE@h:1", "a", "--timeout", "3s", "b"})
	if err != nil || strings.Join(pos, " ") != "AE@h:1 a b" || cf.calling != "ME" || cf.timeout.String() != "3s" {
		t.Fatalf("pos %v calling %q timeout %s err %v", pos, cf.calling, cf.timeout, err)
	}
}
