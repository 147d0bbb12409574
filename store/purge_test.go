package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/radgate/radgate/dcm"
)

// purgeFixture is a store with three studies: A (patient PID-A, "Erase^Me",
// four 300 KB instances: more than one 1 MiB segment), B (PID-B, two small
// instances, one before A's and one after) and C (PID-B too).
type purgeFixture struct {
	dir     string
	s       *Store
	a, b, c []Instance
}

const (
	purgeStudyA = "1.2.826.0.1.3680043.10.999.20"
	purgeStudyB = "1.2.826.0.1.3680043.10.999.21"
	purgeStudyC = "1.2.826.0.1.3680043.10.999.22"
)

func newPurgeFixture(t *testing.T, cfg Config) *purgeFixture {
	t.Helper()
	cfg.DataDir = t.TempDir()
	f := &purgeFixture{dir: cfg.DataDir, s: openTest(t, cfg)}
	add := func(study, pid, name string, n, pixels, from int) []Instance {
		var out []Instance
		for i := from; i < from+n; i++ {
			out = append(out, ingestTest(t, f.s, ds{
				sop: fmt.Sprintf("%s.1.%d", study, i), study: study, series: study + ".1",
				patientID: pid, patientName: name, instanceNumber: fmt.Sprint(i + 1), pixels: pixels, fill: 0xA5,
			}))
		}
		return out
	}
	// Interleaved, so that A's records share segments with the others'.
	f.b = add(purgeStudyB, "PID-B", "Keep^Me", 1, 1<<10, 0)
	f.a = add(purgeStudyA, "PID-A", "Erase^Me", 4, 300<<10, 0)
	f.b = append(f.b, add(purgeStudyB, "PID-B", "Keep^Me", 1, 1<<10, 1)...)
	f.c = add(purgeStudyC, "PID-B", "Keep^Me", 1, 1<<10, 0)
	if _, err := f.s.CountInstances(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, ins := range [][]Instance{f.a, f.b, f.c} {
		for i := range ins {
			in, err := f.s.Instance(context.Background(), ins[i].SOPInstanceUID)
			if err != nil {
				t.Fatal(err)
			}
			ins[i] = in // with its SHA-256
		}
	}
	return f
}

// settle evaluates a study with one job and completes the job with one
// delivery; delivered says whether that delivery succeeds (else it is
// pending).
func (f *purgeFixture) settle(t *testing.T, ins []Instance, delivered bool) Delivery {
	t.Helper()
	ctx := context.Background()
	w := f.s.Work()
	study := ins[0].StudyInstanceUID
	jobs, err := w.Evaluate(ctx, study, ins[len(ins)-1].Seq, "routed",
		[]NewJob{{Model: "m", Route: "r", Destinations: []string{"dimse://PACS@h:1"}, Digest: "d", ReadyAt: time.Now()}}, Effects{})
	if err != nil || len(jobs) != 1 {
		t.Fatalf("Evaluate: %v, %v", jobs, err)
	}
	if _, err := f.s.Purge(ctx, study); !errors.Is(err, ErrInFlight) {
		t.Fatalf("purge with a job queued: %v, want ErrInFlight", err)
	}
	if _, _, err := w.ClaimJob(ctx, time.Now()); err != nil {
		t.Fatal(err)
	}
	sr := NewDelivery{Destination: "dimse://PACS@h:1", Kind: "sr", ObjectUID: "2.25." + fmt.Sprint(ins[0].Seq), Payload: []byte("sr"), ReadyAt: time.Now()}
	if err := w.CompleteJob(ctx, jobs[0].ID, "1", nil, Effects{Deliveries: []NewDelivery{sr}}); err != nil {
		t.Fatal(err)
	}
	ds, err := w.Deliveries(ctx, jobs[0].ID)
	if err != nil || len(ds) != 1 || ds[0].StudyInstanceUID != study {
		t.Fatalf("the job's delivery names its study: %+v, %v", ds, err)
	}
	if delivered {
		if _, err := f.s.Purge(ctx, study); !errors.Is(err, ErrInFlight) {
			t.Fatalf("purge with a delivery pending: %v, want ErrInFlight", err)
		}
		if err := w.Delivered(ctx, ds[0].ID, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	return ds[0]
}

func (f *purgeFixture) patients(t *testing.T, pid string) int {
	t.Helper()
	var n int
	if err := f.s.index.(*SQLiteIndex).r.QueryRow(`SELECT count(*) FROM patient WHERE patient_id = ?`, pid).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func segmentsOf(ins []Instance) map[uint64]bool {
	out := map[uint64]bool{}
	for _, in := range ins {
		id, _, _, _ := parseKey(in.BlobKey)
		out[id] = true
	}
	return out
}

// TestPurge: a study is purged only once settled; the purge takes its
// rows (the patient's too, once no study names them), erases its log
// records so that not even a rebuild of a lost index brings them back,
// deletes the segments left empty, and leaves every other study whole.
func TestPurge(t *testing.T) {
	for _, sealed := range []bool{false, true} {
		t.Run(map[bool]string{false: "plaintext", true: "sealed"}[sealed], func(t *testing.T) {
			var cfg Config
			if sealed {
				cfg.Keys = newTestKeys(t)
			}
			testPurge(t, cfg)
		})
	}
}

func testPurge(t *testing.T, cfg Config) {
	ctx := context.Background()
	f := newPurgeFixture(t, cfg)
	s := f.s
	if _, err := s.Purge(ctx, purgeStudyA); !errors.Is(err, ErrInFlight) {
		t.Fatalf("purge before evaluation: %v, want ErrInFlight", err)
	}
	f.settle(t, f.a, true)
	// B's delivery gives up: settled, but held by retention.
	dead := f.settle(t, f.b, false)
	if err := s.Work().DeadDelivery(ctx, dead.ID, "refused"); err != nil {
		t.Fatal(err)
	}
	if due, held, err := s.Expired(ctx, time.Now().Add(-time.Hour), 10); err != nil || len(due) != 0 || held != 0 {
		t.Fatalf("Expired an hour ago = %v, %d, %v; want nothing settled that long", due, held, err)
	}
	due, held, err := s.Expired(ctx, time.Now().Add(time.Second), 10)
	if err != nil || !slices.Equal(due, []string{purgeStudyA}) || held != 1 {
		t.Fatalf("Expired = %v, held %d, %v; want A due (C is not evaluated), B held", due, held, err)
	}

	purged, err := s.Purge(ctx, purgeStudyA)
	if err != nil {
		t.Fatal(err)
	}
	if len(purged) != len(f.a) || purged[0].PatientID != "PID-A" || purged[0].SOPClassUID != ctImageStorage {
		t.Fatalf("Purge returned %d records (%+v), want A's %d", len(purged), purged, len(f.a))
	}
	if _, err := s.Purge(ctx, purgeStudyA); !errors.Is(err, ErrNotFound) {
		t.Errorf("second purge: %v, want ErrNotFound", err)
	}
	// check: A is gone for good, B and C (those not purged yet) whole.
	check := func(when string, indexKnowsSegments bool) {
		t.Helper()
		kept := append(slices.Clone(f.b), f.c...)
		for _, in := range f.a {
			if _, err := s.Instance(ctx, in.SOPInstanceUID); !errors.Is(err, ErrNotFound) {
				t.Errorf("%s: purged instance still indexed: %v", when, err)
			}
		}
		for _, in := range kept {
			got, err := s.Instance(ctx, in.SOPInstanceUID)
			if err != nil {
				t.Fatalf("%s: instance of another study lost: %v", when, err)
			}
			if b := readBlob(t, s, got.BlobKey); sha256Hex(b) != in.SHA256 {
				t.Errorf("%s: instance of another study changed", when)
			}
		}
		if n, _ := s.CountInstances(ctx); n != int64(len(kept)) {
			t.Errorf("%s: %d instances, want %d", when, n, len(kept))
		}
		if got, want := f.patients(t, "PID-A")+f.patients(t, "PID-B"), min(len(kept), 1); got != want {
			t.Errorf("%s: %d patient rows, want %d", when, got, want)
		}
		keys, err := LogRecords(f.dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, in := range f.a {
			if slices.Contains(keys, in.BlobKey) {
				t.Errorf("%s: purged record %s still in the log", when, in.BlobKey)
			}
		}
		if len(keys) != len(kept) {
			t.Errorf("%s: %d records in the log, want %d", when, len(keys), len(kept))
		}
		if cfg.Keys == nil {
			committed(t, f.dir) // what is left parses
			if bytes.Contains(segmentBytes(t, f.dir), []byte("Erase^Me")) {
				t.Errorf("%s: the purged patient's name is still on disk", when)
			}
		}
		if !indexKnowsSegments {
			return // a new log may reuse the ids of deleted segments
		}
		others := segmentsOf(kept)
		for id := range segmentsOf(f.a) {
			_, err := os.Stat(filepath.Join(f.dir, segmentsDirName, fmt.Sprintf("%016x%s", id, segmentExt)))
			if !others[id] && err == nil {
				t.Errorf("%s: segment %d held only purged records and was not deleted", when, id)
			}
		}
	}
	check("after purge", true)
	if jobs, _ := s.Work().Jobs(ctx, purgeStudyA); len(jobs) != 0 {
		t.Errorf("purged study's jobs kept: %+v", jobs)
	}
	if ms, err := s.Search(ctx, Query{Level: StudyLevel, Keys: []Key{{Tag: dcm.PatientID, Value: "PID-A"}}}); err != nil || len(ms) != 0 {
		t.Errorf("search finds the purged study: %v, %v", ms, err)
	}

	// B, held by retention, can be purged on request; C's workitem in
	// progress keeps it until the workitem is completed.
	if _, err := s.Purge(ctx, purgeStudyB); err != nil {
		t.Fatalf("purge of a study whose delivery gave up: %v", err)
	}
	f.b = nil
	if _, err := s.Work().Evaluate(ctx, purgeStudyC, f.c[0].Seq, "unmatched", nil, Effects{}); err != nil {
		t.Fatal(err)
	}
	wi, err := s.Worklist().CreateWorkitem(ctx, Workitem{UID: "2.25.77", StudyInstanceUID: purgeStudyC, State: "IN PROGRESS", Dataset: []byte("{}")}, "test")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Purge(ctx, purgeStudyC); !errors.Is(err, ErrInFlight) {
		t.Fatalf("purge with a workitem in progress: %v, want ErrInFlight", err)
	}
	if _, err := s.Worklist().UpdateWorkitem(ctx, wi.UID, func(w *Workitem) ([]WorklistEvent, []NewDelivery, error) {
		w.State = "COMPLETED"
		return []WorklistEvent{{Kind: "state", Actor: "test", From: "IN PROGRESS", To: "COMPLETED"}}, nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	if due, _, _ := s.Expired(ctx, time.Now().Add(time.Second), 10); !slices.Equal(due, []string{purgeStudyC}) {
		t.Errorf("Expired after the workitem completed = %v, want C", due)
	}
	// The index's rows go, the records are left: a crash between the two.
	if _, err := s.index.PurgeStudy(ctx, purgeStudyC); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Worklist().Workitem(ctx, wi.UID); !errors.Is(err, ErrNotFound) {
		t.Errorf("purged study's workitem kept: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	f.c = nil
	// Open erases what the crash left.
	s = openTest(t, Config{DataDir: f.dir, Keys: cfg.Keys})
	f.s = s
	if keys, _ := s.index.Erasures(ctx); len(keys) != 0 {
		t.Errorf("erasures left after Open: %v", keys)
	}
	check("after reopen", true)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{indexName, indexName + "-wal", indexName + "-shm"} {
		os.Remove(filepath.Join(f.dir, name))
	}
	s = openTest(t, Config{DataDir: f.dir, Keys: cfg.Keys})
	f.s = s
	check("after rebuilding a lost index from the log", false)
}

// TestPurgeWaitsForIndexing: an instance acknowledged and not yet indexed
// keeps its study from being purged.
func TestPurgeWaitsForIndexing(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, Config{})
	in := ingestTest(t, s, ds{sop: testSeriesUID + ".1"})
	s.ix.mu.Lock()
	s.ix.pending[in.SOPInstanceUID] = in // as if still queued
	s.ix.mu.Unlock()
	if _, err := s.Purge(ctx, testStudyUID); !errors.Is(err, ErrInFlight) {
		t.Fatalf("purge while an instance waits for the index: %v, want ErrInFlight", err)
	}
}

// TestPurgeWaitsForReaders: a blob being read when its study is purged
// reads to its end unchanged; it is erased when the reader closes it.
func TestPurgeWaitsForReaders(t *testing.T) {
	ctx := context.Background()
	f := newPurgeFixture(t, Config{})
	s := f.s
	in := f.a[1]
	want := readBlob(t, s, in.BlobKey)
	rc, err := s.OpenBlob(ctx, in.BlobKey)
	if err != nil {
		t.Fatal(err)
	}
	head := make([]byte, 1000)
	if _, err := io.ReadFull(rc, head); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Work().Evaluate(ctx, purgeStudyA, f.a[len(f.a)-1].Seq, "unmatched", nil, Effects{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Purge(ctx, purgeStudyA); err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(rc)
	if err != nil || !bytes.Equal(append(head, rest...), want) {
		t.Fatalf("the blob read across the purge changed (%v)", err)
	}
	if keys, _ := LogRecords(f.dir); !slices.Contains(keys, in.BlobKey) {
		t.Error("the record was erased under its reader")
	}
	if err := rc.Close(); err != nil {
		t.Fatal(err)
	}
	keys, _ := LogRecords(f.dir)
	for _, a := range f.a {
		if slices.Contains(keys, a.BlobKey) {
			t.Errorf("record %s not erased after its reader closed", a.BlobKey)
		}
	}
	if left, _ := s.index.Erasures(ctx); len(left) != 0 {
		t.Errorf("erasures left: %v", left)
	}
}
