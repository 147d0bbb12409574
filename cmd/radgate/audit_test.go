package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/radgate/radgate/audit"
)

// auditTrail writes n records into DATA/audit, as the gateway does.
func auditTrail(t *testing.T, n int) string {
	t.Helper()
	data := t.TempDir()
	tr, err := audit.Open(filepath.Join(data, "audit"), audit.Options{SourceID: "test"}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		m := audit.AuditLogUsed(audit.LogUseEvent{User: audit.Node{ID: "admin"}, Log: "file:///x"})
		if err := tr.Record(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	return data
}

func TestAuditVerifyCLI(t *testing.T) {
	ctx := context.Background()
	intact := auditTrail(t, 3)
	tampered := auditTrail(t, 3)
	files, _ := filepath.Glob(filepath.Join(tampered, "audit", "audit-*.jsonl"))
	b, _ := os.ReadFile(files[0])
	os.WriteFile(files[0], bytes.Replace(b, []byte("admin"), []byte("admiN"), 1), 0o600)

	cases := []struct {
		name     string
		args     []string
		env      string
		code     int
		out, err string
	}{
		{"intact", []string{"audit", "verify", "--data-dir", intact}, "", 0, "audit trail intact: 3 records, files 1, from ", ""},
		{"env", []string{"audit", "verify"}, intact, 0, "audit trail intact: 3 records", ""},
		{"tampered", []string{"audit", "verify", "--data-dir", tampered}, "", 1, "", "audit trail BROKEN after 0 good records: audit-"},
		{"no trail", []string{"audit", "verify", "--data-dir", t.TempDir()}, "", 1, "", "cannot verify"},
		{"help", []string{"audit", "verify", "-h"}, "", 0, "", "It only reads"},
		{"usage", []string{"audit"}, "", 2, "", "usage: radgate audit verify"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("RADGATE_DATA_DIR", c.env)
			if c.env == "" {
				os.Unsetenv("RADGATE_DATA_DIR")
			}
			var out, errb bytes.Buffer
			if code := run(ctx, c.args, &out, &errb); code != c.code {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", code, c.code, &out, &errb)
			}
			if !strings.Contains(out.String(), c.out) || !strings.Contains(errb.String(), c.err) {
				t.Errorf("stdout %q (want %q), stderr %q (want %q)", &out, c.out, &errb, c.err)
			}
		})
	}
}
