package store

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestSQLiteIndexSchema(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), indexName)
	x, err := OpenSQLiteIndex(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	var v int
	var mode, fk string
	if err := x.w.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		t.Fatal(err)
	}
	x.w.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode)
	x.w.QueryRowContext(ctx, "PRAGMA foreign_keys").Scan(&fk)
	var sync int
	x.w.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&sync)
	if diff := cmp.Diff([]any{SchemaVersion(), "wal", "1", 2}, []any{v, mode, fk, sync}); diff != "" {
		t.Errorf("user_version, journal_mode, foreign_keys, synchronous (-want +got):\n%s", diff)
	}
	// Readers cannot write.
	if _, err := x.r.ExecContext(ctx, "DELETE FROM instance"); err == nil {
		t.Error("the read pool accepted a write")
	}
	// Reopening runs no migration twice.
	x.Close()
	if x, err = OpenSQLiteIndex(ctx, path); err != nil {
		t.Fatalf("reopen: %v", err)
	}
	// A newer schema is refused.
	if _, err := x.w.ExecContext(ctx, "PRAGMA user_version = 99"); err != nil {
		t.Fatal(err)
	}
	x.Close()
	if _, err := OpenSQLiteIndex(ctx, path); !errors.Is(err, ErrSchemaTooNew) {
		t.Errorf("open of a newer schema: %v, want ErrSchemaTooNew", err)
	}
}

func TestSQLiteIndexUpsert(t *testing.T) {
	ctx := context.Background()
	x, err := OpenSQLiteIndex(ctx, filepath.Join(t.TempDir(), indexName))
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	key := func(c byte) string { return strings.Repeat(string(c), 64) }
	a := ds{sop: "1.2.3.1"}.want()
	a.ReceivedAt = time.Date(2024, 1, 31, 10, 15, 0, 123456789, time.UTC)
	a.Size, a.SHA256, a.BlobKey, a.DatasetOffset = 1000, key('a'), key('a'), 200
	a.SeriesNumber, a.InstanceNumber = "2", "" // INTEGER columns keep text they cannot convert

	steps := []struct {
		name        string
		inst        Instance
		expect      string
		wantErr     error
		wantOrphans []string
	}{
		{"insert", a, "", nil, nil},
		{"insert again", a, "", ErrConflict, nil},
		{"replace with stale expectation", with(a, key('b')), key('c'), ErrConflict, nil},
		{"replace", with(a, key('b')), key('a'), nil, []string{key('a')}},
		{"back to the first content", a, key('b'), nil, []string{key('b')}},
	}
	for _, st := range steps {
		orphans, err := x.Upsert(ctx, st.inst, st.expect)
		if !errors.Is(err, st.wantErr) {
			t.Fatalf("%s: %v, want %v", st.name, err, st.wantErr)
		}
		if diff := cmp.Diff(st.wantOrphans, orphans); diff != "" {
			t.Errorf("%s: orphans (-want +got):\n%s", st.name, diff)
		}
	}
	got, err := x.Lookup(ctx, a.SOPInstanceUID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(a, got); diff != "" {
		t.Errorf("Lookup (-want +got):\n%s", diff)
	}
	// key('a') is referenced again: only key('b') is an orphan.
	orphans, err := x.Orphans(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{key('b')}, orphans); diff != "" {
		t.Errorf("Orphans (-want +got):\n%s", diff)
	}
	if err := x.ForgetOrphans(ctx, orphans); err != nil {
		t.Fatal(err)
	}
	if orphans, _ := x.Orphans(ctx); len(orphans) != 0 {
		t.Errorf("orphans after ForgetOrphans: %v", orphans)
	}

	// Normalization: a second instance of the same series shares the
	// patient, study and series rows, whose values follow the latest.
	b := ds{sop: "1.2.3.2", patientName: "Doe^Janet"}.want()
	b.ReceivedAt, b.Size, b.SHA256, b.BlobKey = a.ReceivedAt, 1, key('d'), key('d')
	if _, err := x.Upsert(ctx, b, ""); err != nil {
		t.Fatal(err)
	}
	var patients, studies, series int
	x.r.QueryRowContext(ctx, "SELECT (SELECT COUNT(*) FROM patient), (SELECT COUNT(*) FROM study), (SELECT COUNT(*) FROM series)").
		Scan(&patients, &studies, &series)
	if patients != 1 || studies != 1 || series != 1 {
		t.Errorf("patients %d studies %d series %d, want 1 each", patients, studies, series)
	}
	if got, _ := x.Lookup(ctx, a.SOPInstanceUID); got.PatientName != "Doe^Janet" {
		t.Errorf("patient name %q, want the latest", got.PatientName)
	}
	if n, err := x.Count(ctx); err != nil || n != 2 {
		t.Errorf("Count = %d, %v", n, err)
	}
	if _, err := x.Lookup(ctx, "9.9"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Lookup(unknown) = %v", err)
	}
	if err := x.Ping(ctx); err != nil {
		t.Error(err)
	}
	// Instance rows are readable with the column names tools rely on
	// (internal/peertest reads sop_instance_uid, blob_key, sha256).
	var uid, blobKey, sum string
	err = x.r.QueryRowContext(ctx, "SELECT sop_instance_uid, blob_key, sha256 FROM instance WHERE sop_instance_uid = ?", a.SOPInstanceUID).
		Scan(&uid, &blobKey, &sum)
	if err != nil || blobKey != key('a') || sum != key('a') {
		t.Errorf("instance row: %q %q %q %v", uid, blobKey, sum, err)
	}
}

func with(in Instance, key string) Instance {
	in.SHA256, in.BlobKey = key, key
	return in
}
