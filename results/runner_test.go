package results

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/radgate/radgate/dcm"
	"github.com/radgate/radgate/inference"
	"github.com/radgate/radgate/internal/peertest"
	"github.com/radgate/radgate/internal/refengine"
	"github.com/radgate/radgate/phantom"
	"github.com/radgate/radgate/sr"
	"github.com/radgate/radgate/store"
)

// fixture: a store holding a positive head CT phantom, the reference
// models loaded, and a Runner over both.
type fixture struct {
	st    *store.Store
	r     *Runner
	study string
	serie string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	eng := refengine.Open(t)
	st, err := store.Open(context.Background(), store.Config{DataDir: t.TempDir(), SegmentSize: 8 << 20}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	spec := phantom.Spec{Kind: phantom.KindCTHead, Finding: phantom.Hemorrhage, Seed: 5, Slices: 8}
	ins, err := phantom.Generate(spec)
	if err != nil {
		t.Fatal(err)
	}
	var series string
	for _, in := range ins {
		series = peertest.Ingest(t, st, in.Data, store.Incoming{Source: "dimse"}).SeriesInstanceUID
	}
	if _, err := st.CountInstances(context.Background()); err != nil {
		t.Fatal(err)
	}
	r, err := New(st, eng, Config{Workers: 1, Equipment: sr.Equipment{Manufacturer: "radgate", SoftwareVersion: "test"}}, nil, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{st: st, r: r, study: spec.StudyInstanceUID(), serie: series}
}

func (f *fixture) job(t *testing.T, model string, series []string, dests ...string) store.Job {
	t.Helper()
	js, err := f.st.Work().Evaluate(context.Background(), f.study, 1, "routed",
		[]store.NewJob{{Model: model, Route: "test", Priority: int(inference.Stat), Series: series, Destinations: dests, Digest: model + strings.Join(series, ","), ReadyAt: time.Now()}}, store.Effects{})
	if err != nil || len(js) != 1 {
		t.Fatalf("Evaluate: %v %v", js, err)
	}
	j, ok, err := f.st.Work().ClaimJob(context.Background(), time.Now())
	if err != nil || !ok || j.ID != js[0].ID {
		t.Fatalf("ClaimJob: %+v %v %v", j, ok, err)
	}
	return j
}

// TestRunJob: a positive CT job ends done, its SR and KOS queued for each
// destination, its result holding the findings and the objects' UIDs; a
// second run (after a crash) queues nothing new.
func TestRunJob(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	dests := []string{"dimse://A@127.0.0.1:1", "dimse://B@127.0.0.1:2"}
	j := f.job(t, "ct-ich", []string{f.serie}, dests...)
	f.r.run(ctx, j)

	done, err := f.st.Work().Job(ctx, j.ID)
	if err != nil || done.State != store.JobDone || done.ModelVersion != "1.0.0" {
		t.Fatalf("job after run: %+v %v", done, err)
	}
	var res Result
	if err := json.Unmarshal(done.Result, &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Findings) != 1 || !res.Findings[0].Positive || len(res.Frames) != 8 {
		t.Errorf("result findings %+v, %d frames; want hemorrhage positive over 8 slices", res.Findings, len(res.Frames))
	}
	if len(res.Objects) != 2 || res.Objects[0].Kind != "sr" || res.Objects[1].Kind != "kos" {
		t.Fatalf("objects %+v; want an SR and a KOS", res.Objects)
	}
	ds, err := f.st.Work().Deliveries(ctx, j.ID)
	if err != nil || len(ds) != 4 {
		t.Fatalf("deliveries %d (%v); want SR and KOS to each of 2 destinations", len(ds), err)
	}
	for _, d := range ds {
		meta, _, err := dcm.OpenPart10(bytes.NewReader(d.Payload))
		if err != nil || meta.MediaStorageSOPInstanceUID != d.ObjectUID || meta.MediaStorageSOPClassUID != d.SOPClassUID {
			t.Errorf("delivery %s %s: payload meta %+v, %v", d.Destination, d.Kind, meta, err)
		}
	}
	if got := testutil.ToFloat64(f.r.m.jobs.WithLabelValues("ct-ich", "done")); got != 1 {
		t.Errorf("done jobs metric %v", got)
	}
	// Run again as after a crash before the completion was durable: the
	// same objects, nothing queued twice.
	f.r.run(ctx, j)
	if ds2, _ := f.st.Work().Deliveries(ctx, j.ID); len(ds2) != 4 {
		t.Errorf("a second run queued %d deliveries, want the same 4", len(ds2))
	}
}

// TestRunJobFailures: a model that is not loaded is retried later; a job
// whose series holds nothing the model can read fails for good.
func TestRunJobFailures(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	j := f.job(t, "no-such-model", []string{f.serie})
	f.r.run(ctx, j)
	got, _ := f.st.Work().Job(ctx, j.ID)
	if got.State != store.JobQueued || !got.NotBefore.After(time.Now()) || !strings.Contains(got.Error, "no-such-model") {
		t.Errorf("a job for a missing model: %+v; want queued for later with the reason", got)
	}
	// The chest model refuses CT slices (its hints): nothing ran.
	j = f.job(t, "cxr-triage", []string{f.serie})
	f.r.run(ctx, j)
	if got, _ = f.st.Work().Job(ctx, j.ID); got.State != store.JobFailed || !strings.Contains(got.Error, "no instance could be run") {
		t.Errorf("a job nothing could run: %+v; want failed", got)
	}
	j = f.job(t, "ct-ich", []string{"1.2.3.4"})
	f.r.run(ctx, j)
	if got, _ = f.st.Work().Job(ctx, j.ID); got.State != store.JobFailed {
		t.Errorf("a job for an empty series: %+v; want failed", got)
	}
}
