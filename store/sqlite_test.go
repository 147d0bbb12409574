package store

import (
	"context"
	"errors"
	"fmt"
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
	if diff := cmp.Diff([]any{SchemaVersion(), "wal", "1", 1}, []any{v, mode, fk, sync}); diff != "" {
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

func TestSQLiteIndexApply(t *testing.T) {
	ctx := context.Background()
	x, err := OpenSQLiteIndex(ctx, filepath.Join(t.TempDir(), indexName))
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	a := ds{sop: "1.2.3.1"}.want()
	a.ReceivedAt = time.Date(2024, 1, 31, 10, 15, 0, 123456789, time.UTC)
	a.SeriesNumber, a.InstanceNumber = "2", "" // INTEGER columns keep text they cannot convert
	rec := func(in Instance, seq uint64, seg uint64, end int64) IndexOp {
		in.Seq, in.BlobKey, in.SHA256 = seq, blobKey(seg, end-100, 100), strings.Repeat(fmt.Sprint(seq%10), 64)
		in.Size, in.DatasetOffset = 100, 20
		return IndexOp{Instance: in, End: Mark{seg, end}}
	}
	steps := []struct {
		name        string
		ops         []IndexOp
		wantEmptied []uint64
		wantSeq     uint64 // of a's row afterwards
	}{
		{"insert", []IndexOp{rec(a, 1, 1, 200)}, nil, 1},
		{"replay of the same record", []IndexOp{rec(a, 1, 1, 200)}, nil, 1},
		{"a superseded record", []IndexOp{rec(a, 0, 1, 150)}, nil, 1},
		{"replace in another segment", []IndexOp{rec(a, 5, 2, 300)}, []uint64{1}, 5},
		{"replace twice in one batch", []IndexOp{rec(a, 6, 3, 400), rec(a, 7, 3, 500)}, []uint64{2}, 7},
	}
	for _, st := range steps {
		emptied, err := x.Apply(ctx, st.ops)
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if diff := cmp.Diff(st.wantEmptied, emptied); diff != "" {
			t.Errorf("%s: emptied segments (-want +got):\n%s", st.name, diff)
		}
		got, err := x.Lookup(ctx, a.SOPInstanceUID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Seq != st.wantSeq {
			t.Errorf("%s: current record seq %d, want %d", st.name, got.Seq, st.wantSeq)
		}
	}
	want := rec(a, 7, 3, 500).Instance
	got, err := x.Lookup(ctx, a.SOPInstanceUID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Lookup (-want +got):\n%s", diff)
	}
	states, err := x.Segments(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantStates := []SegmentState{{1, 0, 200}, {2, 0, 300}, {3, 1, 500}}
	if diff := cmp.Diff(wantStates, states); diff != "" {
		t.Errorf("Segments (-want +got):\n%s", diff)
	}
	if err := x.ForgetSegment(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if states, _ := x.Segments(ctx); len(states) != 2 {
		t.Errorf("after ForgetSegment: %v", states)
	}
	if n, err := x.MaxSeq(ctx); err != nil || n != 7 {
		t.Errorf("MaxSeq = %d, %v", n, err)
	}

	// Normalization: a second instance of the same series shares the
	// patient, study and series rows, whose values follow the latest.
	b := ds{sop: "1.2.3.2", patientName: "Doe^Janet"}.want()
	b.ReceivedAt = a.ReceivedAt
	if _, err := x.Apply(ctx, []IndexOp{rec(b, 8, 3, 600)}); err != nil {
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
	var uid, key, sum string
	err = x.r.QueryRowContext(ctx, "SELECT sop_instance_uid, blob_key, sha256 FROM instance WHERE sop_instance_uid = ?", a.SOPInstanceUID).
		Scan(&uid, &key, &sum)
	if err != nil || key != want.BlobKey || sum != want.SHA256 {
		t.Errorf("instance row: %q %q %q %v", uid, key, sum, err)
	}
}

// TestMigrationNamesDeliveriesStudies: version 5 gives the deliveries
// queued before it their study: a job's, a FHIR key's, a UPS key's
// workitem's.
func TestMigrationNamesDeliveriesStudies(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), indexName)
	x, err := OpenSQLiteIndex(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	// Back to version 4, with rows as version 4 wrote them.
	for _, q := range []string{
		`DROP TABLE erasure`, `DROP INDEX outbox_study_idx`, `ALTER TABLE outbox DROP COLUMN study_instance_uid`,
		`INSERT INTO job (id, study_instance_uid, model, revision, route, priority, series, destinations, digest, state,
			not_before, ready_at, created_at, updated_at) VALUES (7, '1.2.3', 'm', 1, 'r', 1, '[]', '[]', 'd', 'done', 0, 0, 0, 0)`,
		`INSERT INTO workitem (uid, study_instance_uid, state, priority, base_priority, dataset, scheduled_at, created_at, updated_at)
			VALUES ('2.25.9', '1.2.5', 'SCHEDULED', 1, 1, '{}', 0, 0, 0)`,
		`INSERT INTO outbox (job_id, destination, kind, object_uid, sop_class_uid, payload, state, next_at, ready_at, created_at, updated_at)
			VALUES (7, 'd', 'sr', '2.25.1', '', '', 'pending', 0, 0, 0, 0),
			(0, 'f', 'fhir', 'imagingstudy/1.2.4/2', '', '', 'pending', 0, 0, 0, 0),
			(0, 'u', 'ups', '2.25.9@1700000000', '', '', 'pending', 0, 0, 0, 0),
			(0, 'h', 'hl7', 'R0123456789abcdef012', '', '', 'pending', 0, 0, 0, 0)`,
		`PRAGMA user_version = 4`,
	} {
		if _, err := x.w.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	x.Close()
	if x, err = OpenSQLiteIndex(ctx, path); err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	got := map[string]string{}
	for _, job := range []int64{7, 0} {
		ds, err := x.Deliveries(ctx, job)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range ds {
			got[d.Kind] = d.StudyInstanceUID
		}
	}
	if diff := cmp.Diff(map[string]string{"sr": "1.2.3", "fhir": "1.2.4", "ups": "1.2.5", "hl7": ""}, got); diff != "" {
		t.Errorf("deliveries' studies after migration (-want +got):\n%s", diff)
	}
}
