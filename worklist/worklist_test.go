package worklist

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/radgate/radgate/inference"
	"github.com/radgate/radgate/internal/dicomjson"
	"github.com/radgate/radgate/models"
	"github.com/radgate/radgate/store"
)

const testStudy = "1.2.826.0.1.3680043.10.999.7"

type fixture struct {
	st  *store.Store
	wl  *Service
	reg *prometheus.Registry
}

// newFixture is the worklist, with sinks, over a fresh store, running.
func newFixture(t *testing.T, sinks ...Sink) *fixture {
	t.Helper()
	st, err := store.Open(context.Background(), store.Config{DataDir: t.TempDir(), SegmentSize: 4 << 20}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	reg := prometheus.NewRegistry()
	wl, err := New(st.Worklist(), sinks, nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { wl.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return &fixture{st: st, wl: wl, reg: reg}
}

// instances are a head CT's index records as the store gives them.
func instances(n int) []store.Instance {
	var out []store.Instance
	for i := range n {
		out = append(out, store.Instance{
			SOPInstanceUID: testStudy + ".1." + string(rune('1'+i)), SOPClassUID: "1.2.840.10008.5.1.4.1.1.2",
			SeriesInstanceUID: testStudy + ".1", StudyInstanceUID: testStudy,
			PatientID: "PHANTOM-7", PatientName: "Phantom^Seven", PatientBirthDate: "19600101", PatientSex: "O",
			AccessionNumber: "ACC7", StudyDescription: "CT HEAD", Modality: "CT", BodyPartExamined: "HEAD",
			ReceivedAt: time.Date(2026, 12, 2, 8, 0, i, 0, time.UTC), SpecificCharacterSet: "ISO_IR 100",
		})
	}
	return out
}

// complete evaluates the study as the assembler does and returns its job.
func (f *fixture) complete(t *testing.T, pri inference.Priority) store.Job {
	t.Helper()
	ins := instances(3)
	jobs, err := f.st.Work().Evaluate(context.Background(), testStudy, 1, "routed", []store.NewJob{{
		Model: "ct-ich", Route: "head-ct", Priority: int(pri), Series: []string{testStudy + ".1"}, Digest: "d1", ReadyAt: time.Now(),
	}}, store.Effects{Workitem: f.wl.StudyComplete(testStudy, ins, pri, []string{"head-ct"})})
	if err != nil || len(jobs) != 1 {
		t.Fatalf("Evaluate: %v, %v", jobs, err)
	}
	return jobs[0]
}

func result(p float64) *inference.Result {
	pos := p >= 0.5
	pri := "ROUTINE"
	if pos {
		pri = "STAT"
	}
	return &inference.Result{Model: "ct-ich", Version: "1.0.0", Priority: pri, Findings: []inference.Finding{{
		Label: "hemorrhage", Concept: models.Concept{Scheme: "SCT", Code: "50960005", Meaning: "Hemorrhage"},
		Probability: p, Threshold: 0.5, Positive: pos,
	}}}
}

// done completes the job as the runner does, with a result of p.
func (f *fixture) done(t *testing.T, j store.Job, p float64) {
	t.Helper()
	fx := store.Effects{Workitem: f.wl.JobDone(Result{Model: "ct-ich", Version: "1.0.0", Job: j, Result: result(p), SRUID: "1.2.3.4", Instances: instances(3)})}
	if err := f.st.Work().CompleteJob(context.Background(), j.ID, "1.0.0", []byte("{}"), fx); err != nil {
		t.Fatal(err)
	}
}

func TestPositiveFindingRaises(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	events := f.wl.Subscribe(t.Context(), 0)
	j := f.complete(t, inference.Routine)
	w, err := f.wl.OfStudy(ctx, testStudy)
	if err != nil {
		t.Fatal(err)
	}
	if w.UID != UID(testStudy) || w.State != Scheduled || w.Priority != int(inference.Routine) || w.Modality != "CT" ||
		!w.ScheduledAt.Equal(instances(1)[0].ReceivedAt) {
		t.Fatalf("new workitem: %+v", w)
	}
	d, err := Dataset(w)
	if err != nil {
		t.Fatal(err)
	}
	if value(d, tagPatientID) != "PHANTOM-7" || value(d, tagSPSPriority) != "MEDIUM" || value(d, tagProcedureStepState) != Scheduled ||
		value(d, tagSOPClassUID) != UPSPushSOPClass || value(d, tagProcedureStepLabel) != "CT HEAD" {
		t.Errorf("dataset: %v", d)
	}
	if in := d[dicomjson.Key(tagInputInformationSequence)]; in == nil || len(in.Value) != 1 {
		t.Errorf("input information: %v", in)
	}

	// A positive: STAT, with the reason and the findings.
	f.done(t, j, 0.93)
	w, _ = f.wl.Get(ctx, w.UID)
	if w.Priority != int(inference.Stat) || !strings.Contains(w.Reason, "Hemorrhage 0.93") || len(w.Findings) != 1 || !w.Findings[0].Positive {
		t.Fatalf("after a positive: priority %d, reason %q, findings %v", w.Priority, w.Reason, w.Findings)
	}
	if c := Comment(w); !strings.Contains(c, "Priority STAT") || !strings.Contains(c, "POSITIVE") || !strings.Contains(c, "radiologist") {
		t.Errorf("comment %q", c)
	}
	if n := testutil.CollectAndCount(f.reg, "radgate_worklist_priority_raise_seconds"); n != 1 {
		t.Errorf("raise latency: %d series", n)
	}
	// The feed had: created, findings, priority.
	var kinds []string
	for len(kinds) < 3 {
		select {
		case e := <-events:
			kinds = append(kinds, e.Kind)
			if e.StudyInstanceUID != testStudy {
				t.Errorf("event %+v: no study", e)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("events: %v", kinds)
		}
	}
	if strings.Join(kinds, ",") != "created,findings,priority" {
		t.Errorf("events %v", kinds)
	}

	// A radiologist sets it back; a later positive no longer raises it.
	if w, err = f.wl.SetPriority(ctx, w.UID, inference.Routine, "page:dr-a", "not a bleed on review"); err != nil || w.Priority != int(inference.Routine) || !w.Override {
		t.Fatalf("SetPriority: %+v, %v", w, err)
	}
	f.done(t, j, 0.97) // a re-run of the job, say

	if w, _ = f.wl.Get(ctx, w.UID); w.Priority != int(inference.Routine) || w.Findings[0].Probability != 0.97 {
		t.Errorf("after an override and a positive: %+v", w)
	}
	evs, _ := f.wl.Events(ctx, w.UID)
	last := evs[len(evs)-1]
	if last.Kind != "findings" || !strings.Contains(last.Reason, "a person set the priority") {
		t.Errorf("last event %+v", last)
	}
}

func TestNegativeStaysRoutine(t *testing.T) {
	f := newFixture(t)
	f.done(t, f.complete(t, inference.Routine), 0.1)
	w, _ := f.wl.OfStudy(context.Background(), testStudy)
	if w.Priority != int(inference.Routine) || len(w.Findings) != 1 || w.Findings[0].Positive {
		t.Errorf("negative: %+v", w)
	}
	// The request's priority is the start: a study sent HIGH reads HIGH.
	g := newFixture(t)
	g.complete(t, inference.High)
	if w, _ := g.wl.OfStudy(context.Background(), testStudy); w.Priority != int(inference.High) || w.BasePriority != int(inference.High) {
		t.Errorf("sent HIGH: %+v", w)
	}
}

func TestUPSStates(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.complete(t, inference.Routine)
	uid := UID(testStudy)
	label := dicomjson.Dataset{}
	label.Set(tagProcedureStepLabel, "LO", "Read CT head, AI triaged")
	if _, err := f.wl.Update(ctx, uid, "", label, "ups-rs"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.wl.ChangeState(ctx, uid, Completed, "1.2.3", "ups-rs"); !errors.Is(err, ErrState) {
		t.Errorf("SCHEDULED to COMPLETED: %v", err)
	}
	if _, err := f.wl.ChangeState(ctx, uid, InProgress, "", "ups-rs"); !errors.Is(err, ErrTransaction) {
		t.Errorf("no transaction UID: %v", err)
	}
	w, err := f.wl.ChangeState(ctx, uid, InProgress, "2.25.1", "ups-rs")
	if err != nil || w.State != InProgress {
		t.Fatalf("to IN PROGRESS: %+v, %v", w, err)
	}
	if _, err := f.wl.Update(ctx, uid, "", label, "ups-rs"); !errors.Is(err, ErrTransaction) {
		t.Errorf("update in progress without the transaction: %v", err)
	}
	if _, err := f.wl.ChangeState(ctx, uid, Completed, "2.25.2", "ups-rs"); !errors.Is(err, ErrTransaction) {
		t.Errorf("completed by another: %v", err)
	}
	pri := dicomjson.Dataset{}
	pri.Set(tagSPSPriority, "CS", "HIGH")
	if w, err = f.wl.Update(ctx, uid, "2.25.1", pri, "ups-rs"); err != nil || w.Priority != int(inference.High) || !w.Override {
		t.Errorf("priority over UPS-RS: %+v, %v", w, err)
	}
	if w, err = f.wl.ChangeState(ctx, uid, Completed, "2.25.1", "ups-rs"); err != nil || w.State != Completed {
		t.Fatalf("to COMPLETED: %v", err)
	}
	if _, err := f.wl.Update(ctx, uid, "2.25.1", label, "ups-rs"); !errors.Is(err, ErrState) {
		t.Errorf("update after completion: %v", err)
	}
	if _, err := f.wl.SetPriority(ctx, uid, inference.Stat, "page:dr-a", ""); !errors.Is(err, ErrState) {
		t.Errorf("priority after completion: %v", err)
	}
	d, _ := Dataset(w)
	if _, ok := d[dicomjson.Key(tagTransactionUID)]; ok {
		t.Error("the Transaction UID is returned")
	}
	if value(d, tagProcedureStepLabel) != "Read CT head, AI triaged" || value(d, tagSPSPriority) != "HIGH" {
		t.Errorf("dataset after updates: %v", d)
	}
	if _, err := f.wl.Get(ctx, "1.2.3.4.5"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown workitem: %v", err)
	}
}

func TestUPSCreate(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	body := `[{"00741000":{"vr":"CS","Value":["SCHEDULED"]},"00741200":{"vr":"CS","Value":["HIGH"]},
		"00741204":{"vr":"LO","Value":["Read chest"]},"00404005":{"vr":"DT","Value":["20261202080000+0000"]},
		"00100020":{"vr":"LO","Value":["P1"]},"00100010":{"vr":"PN","Value":[{"Alphabetic":"Doe^Jo"}]}}]`
	d, err := ParseDataset([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	w, err := f.wl.Create(ctx, "2.25.77", d, "ups-rs")
	if err != nil || w.Priority != int(inference.High) || w.State != Scheduled {
		t.Fatalf("create: %+v, %v", w, err)
	}
	if _, err := f.wl.Create(ctx, "2.25.77", d, "ups-rs"); !errors.Is(err, ErrExists) {
		t.Errorf("second create: %v", err)
	}
	got, _ := f.wl.Get(ctx, "2.25.77")
	out, _ := Dataset(got)
	b, _ := json.Marshal(out)
	if !strings.Contains(string(b), `"Alphabetic":"Doe^Jo"`) || value(out, tagSOPInstanceUID) != "2.25.77" {
		t.Errorf("retrieved %s", b)
	}
	for name, body := range map[string]string{
		"not json":     `{`,
		"two":          `[{},{}]`,
		"no vr":        `{"00741204":{"Value":["x"]}}`,
		"in progress":  `{"00741000":{"vr":"CS","Value":["IN PROGRESS"]},"00741204":{"vr":"LO","Value":["x"]}}`,
		"no label":     `{"00741000":{"vr":"CS","Value":["SCHEDULED"]}}`,
		"bad priority": `{"00741000":{"vr":"CS","Value":["SCHEDULED"]},"00741204":{"vr":"LO","Value":["x"]},"00741200":{"vr":"CS","Value":["URGENT"]}}`,
		"transaction":  `{"00741000":{"vr":"CS","Value":["SCHEDULED"]},"00741204":{"vr":"LO","Value":["x"]},"00081195":{"vr":"UI","Value":["1.2"]}}`,
	} {
		d, err := ParseDataset([]byte(body))
		if err == nil {
			_, err = f.wl.Create(ctx, "2.25.78", d, "ups-rs")
		}
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
}

// FuzzParseDataset: a UPS-RS body never crashes the parser, and what it
// accepts a create either takes or refuses as invalid.
func FuzzParseDataset(f *testing.F) {
	f.Add([]byte(`[{"00741000":{"vr":"CS","Value":["SCHEDULED"]},"00741204":{"vr":"LO","Value":["x"]}}]`))
	f.Add([]byte(`{"00741200":{"vr":"CS","Value":["HIGH"]}}`))
	f.Add([]byte(`[{},{}]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := ParseDataset(b)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v is not ErrInvalid", err)
			}
			return
		}
		if _, err := fromDataset("2.25.1", d); err != nil && !errors.Is(err, ErrInvalid) {
			t.Fatalf("create: %v", err)
		}
	})
}
