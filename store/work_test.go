package store

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func ingestTest(t *testing.T, s *Store, d ds) Instance {
	t.Helper()
	res, err := s.Ingest(context.Background(), d.incoming(), bytes.NewReader(d.bytes()))
	if err != nil {
		t.Fatalf("Ingest %s: %v", d.sop, err)
	}
	return res.Instance
}

// TestStudyActivity: indexing an instance marks its study pending until an
// evaluation covers it; a later instance makes it pending again; the
// activity survives a reopen (it lives in the index transaction).
func TestStudyActivity(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openTest(t, Config{DataDir: dir})
	w := s.Work()
	a := ingestTest(t, s, ds{sop: testSeriesUID + ".1", instanceNumber: "2"})
	b := ingestTest(t, s, ds{sop: testSeriesUID + ".2", instanceNumber: "1"})
	other := ingestTest(t, s, ds{sop: "1.2.826.0.1.3680043.10.999.2.1.1", study: "1.2.826.0.1.3680043.10.999.2", series: "1.2.826.0.1.3680043.10.999.2.1"})
	if _, err := s.CountInstances(ctx); err != nil { // waits for the indexer
		t.Fatal(err)
	}
	pending, err := w.PendingStudies(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(pending) != 2 || pending[0].StudyInstanceUID != testStudyUID || pending[0].LastSeq != b.Seq || pending[0].EvaluatedSeq != 0 {
		t.Fatalf("pending = %+v; want %s at seq %d first, then %s", pending, testStudyUID, b.Seq, other.StudyInstanceUID)
	}
	if !pending[0].LastReceivedAt.Equal(b.ReceivedAt) {
		t.Errorf("last received %v, want %v", pending[0].LastReceivedAt, b.ReceivedAt)
	}
	ins, err := w.StudyInstances(ctx, testStudyUID)
	if err != nil {
		t.Fatal(err)
	}
	if len(ins) != 2 || ins[0].SOPInstanceUID != b.SOPInstanceUID || ins[1].SOPInstanceUID != a.SOPInstanceUID {
		t.Fatalf("StudyInstances: got %d, want b then a (instance number order)", len(ins))
	}
	if ins[0].SHA256 == "" || ins[0].BlobKey == "" {
		t.Errorf("StudyInstances record lacks storage fields: %+v", ins[0])
	}

	note := NewDelivery{Destination: "fhir:http://ehr/fhir", Kind: "fhir-imagingstudy", ObjectUID: "is/" + testStudyUID + "/2", Payload: []byte("{}")}
	if _, err := w.Evaluate(ctx, testStudyUID, b.Seq, "unmatched", nil, Effects{Deliveries: []NewDelivery{note}}); err != nil {
		t.Fatal(err)
	}
	if ds, err := w.Deliveries(ctx, 0); err != nil || len(ds) != 1 || ds[0].ObjectUID != note.ObjectUID || ds[0].JobID != 0 {
		t.Fatalf("a study's notification queued with its evaluation: %+v, %v", ds, err)
	}
	if pending, _ = w.PendingStudies(ctx); len(pending) != 1 || pending[0].StudyInstanceUID != other.StudyInstanceUID {
		t.Fatalf("after evaluation pending = %+v", pending)
	}
	late := ingestTest(t, s, ds{sop: testSeriesUID + ".3", instanceNumber: "3"})
	s.Close()
	s = openTest(t, Config{DataDir: dir})
	pending, err = s.Work().PendingStudies(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(pending) != 2 || pending[1].StudyInstanceUID != testStudyUID || pending[1].LastSeq != late.Seq || pending[1].EvaluatedSeq != b.Seq {
		t.Fatalf("after a late instance and a reopen pending = %+v", pending)
	}
}

// TestJobsAndOutbox walks a job through its life: created once per
// digest, claimed by priority, completed with its deliveries in the same
// transaction, a redelivered object not queued twice, retries, death.
func TestJobsAndOutbox(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, Config{})
	w := s.Work()
	ready := time.Now().Add(-time.Minute).UTC()
	cxr := NewJob{Model: "cxr-triage", Route: "chest", Priority: 1, Series: []string{"1.2.3"}, Destinations: []string{"dimse://PACS@h:1"}, Digest: "d1", ReadyAt: ready}
	ct := NewJob{Model: "ct-ich", Route: "head", Priority: 3, Series: []string{"1.2.4"}, Destinations: []string{"dimse://PACS@h:1"}, Digest: "d2", ReadyAt: ready}
	jobs, err := w.Evaluate(ctx, "1.2", 5, "routed", []NewJob{cxr, ct}, Effects{})
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != 2 || jobs[0].Revision != 1 || jobs[1].Revision != 1 {
		t.Fatalf("first evaluation jobs = %+v", jobs)
	}
	// Same inputs again: nothing new. A changed input: revision 2.
	if again, err := w.Evaluate(ctx, "1.2", 6, "routed", []NewJob{cxr, ct}, Effects{}); err != nil || len(again) != 0 {
		t.Fatalf("re-evaluation with unchanged digests created %+v, %v", again, err)
	}
	ct.Digest = "d3"
	rev2, err := w.Evaluate(ctx, "1.2", 7, "routed", []NewJob{cxr, ct}, Effects{})
	if err != nil || len(rev2) != 1 || rev2[0].Revision != 2 || rev2[0].Model != "ct-ich" {
		t.Fatalf("evaluation after a late instance = %+v, %v; want ct-ich revision 2", rev2, err)
	}

	// The STAT CT jobs come first, oldest first, then the chest job.
	now := time.Now()
	var order []int64
	for {
		j, ok, err := w.ClaimJob(ctx, now)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		if j.State != JobRunning || j.Attempts != 1 {
			t.Errorf("claimed job %+v: want running, attempt 1", j)
		}
		order = append(order, j.ID)
	}
	if want := []int64{jobs[1].ID, rev2[0].ID, jobs[0].ID}; !cmp.Equal(order, want) {
		t.Fatalf("claim order %v, want %v", order, want)
	}
	if n, err := w.RequeueRunning(ctx); err != nil || n != 3 {
		t.Fatalf("RequeueRunning = %d, %v; want 3", n, err)
	}
	j, _, _ := w.ClaimJob(ctx, now)
	if j.ID != jobs[1].ID || j.Attempts != 2 {
		t.Fatalf("after requeue claimed %d attempt %d", j.ID, j.Attempts)
	}
	if err := w.RetryJob(ctx, j.ID, now.Add(time.Hour), "model not loaded"); err != nil {
		t.Fatal(err)
	}
	if k, _, _ := w.ClaimJob(ctx, now); k.ID != rev2[0].ID {
		t.Fatalf("a job retried later must wait: claimed %d", k.ID)
	}

	sr := NewDelivery{Destination: "dimse://PACS@h:1", Kind: "sr", ObjectUID: "2.25.1", SOPClassUID: "1.2.840.10008.5.1.4.1.1.88.33", Payload: []byte("sr"), ReadyAt: ready}
	if err := w.CompleteJob(ctx, rev2[0].ID, "1.0.0", []byte(`{"ok":true}`), Effects{Deliveries: []NewDelivery{sr}}); err != nil {
		t.Fatal(err)
	}
	// The same object again (a job re-run after a crash): not queued twice.
	if err := w.CompleteJob(ctx, rev2[0].ID, "1.0.0", []byte(`{"ok":true}`), Effects{Deliveries: []NewDelivery{sr}}); err != nil {
		t.Fatal(err)
	}
	done, err := w.Job(ctx, rev2[0].ID)
	if err != nil || done.State != JobDone || done.ModelVersion != "1.0.0" || string(done.Result) != `{"ok":true}` {
		t.Fatalf("completed job = %+v, %v", done, err)
	}
	due, err := w.DueDeliveries(ctx, sr.Destination, time.Now(), 10)
	if err != nil || len(due) != 1 || string(due[0].Payload) != "sr" || due[0].JobID != rev2[0].ID || !due[0].ReadyAt.Equal(ready) {
		t.Fatalf("due deliveries = %+v, %v", due, err)
	}
	if dests, _ := w.PendingDestinations(ctx); !cmp.Equal(dests, []string{sr.Destination}) {
		t.Errorf("pending destinations %v", dests)
	}
	next := time.Now().Add(time.Hour)
	if err := w.RetryDelivery(ctx, due[0].ID, next, "connection refused"); err != nil {
		t.Fatal(err)
	}
	if due, _ = w.DueDeliveries(ctx, sr.Destination, time.Now(), 10); len(due) != 0 {
		t.Fatalf("a delivery retried later is not due: %+v", due)
	}
	if at, ok, err := w.NextDelivery(ctx, sr.Destination); err != nil || !ok || at.UnixNano() != next.UnixNano() {
		t.Errorf("NextDelivery = %v, %v, %v; want %v", at, ok, err, next)
	}
	ds, _ := w.Deliveries(ctx, rev2[0].ID)
	if len(ds) != 1 || ds[0].Attempts != 1 || ds[0].LastError != "connection refused" {
		t.Fatalf("deliveries after a retry = %+v", ds)
	}
	if err := w.Delivered(ctx, ds[0].ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := w.FailJob(ctx, jobs[0].ID, "no instance could be run"); err != nil {
		t.Fatal(err)
	}
	c, err := w.WorkCounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := WorkCounts{
		Jobs:       map[JobState]int64{JobQueued: 1, JobDone: 1, JobFailed: 1},
		Deliveries: map[DeliveryState]int64{DeliveryDelivered: 1},
	}
	if diff := cmp.Diff(want, c); diff != "" {
		t.Errorf("WorkCounts (-want +got):\n%s", diff)
	}
	if _, ok, _ := w.NextDelivery(ctx, sr.Destination); ok {
		t.Error("NextDelivery reports a delivery after it was delivered")
	}
}
