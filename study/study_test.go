package study

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/radgate/radgate/config"
	"github.com/radgate/radgate/inference"
	"github.com/radgate/radgate/internal/peertest"
	"github.com/radgate/radgate/phantom"
	"github.com/radgate/radgate/store"
)

func TestCompile(t *testing.T) {
	good := config.Route{Name: "head", Match: config.RouteMatch{Modality: []string{"ct"}, SeriesDescription: "(?i)axial"},
		Models: []string{"ct-ich"}, Priority: "stat", Quiet: "3s", Destinations: []string{"dimse://PACS@h:104"}}
	rules, err := Compile([]config.Route{good})
	if err != nil {
		t.Fatal(err)
	}
	r := rules[0]
	if !cmp.Equal(r.Modalities, []string{"CT"}) || r.Priority != inference.Stat || r.Quiet != 3*time.Second || r.SeriesDescription.String() != "(?i)axial" {
		t.Errorf("compiled %+v", r)
	}
	for _, tc := range []struct {
		name string
		edit func(*config.Route)
		want string
	}{
		{"no name", func(r *config.Route) { r.Name = "" }, "no name"},
		{"bad regexp", func(r *config.Route) { r.Match.SeriesDescription = "(" }, "series_description"},
		{"no models", func(r *config.Route) { r.Models = nil }, "no models"},
		{"bad priority", func(r *config.Route) { r.Priority = "urgent" }, "priority"},
		{"bad quiet", func(r *config.Route) { r.Quiet = "-1s" }, "quiet"},
		{"min above max", func(r *config.Route) { r.Match.MinImages, r.Match.MaxImages = 5, 2 }, "min_images"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := good
			tc.edit(&bad)
			_, err := Compile([]config.Route{bad})
			if !errors.Is(err, ErrRule) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Compile = %v; want ErrRule mentioning %q", err, tc.want)
			}
		})
	}
	if _, err := Compile([]config.Route{good, good}); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("duplicate names: %v", err)
	}
}

func regexpOf(t *testing.T, s string) *regexp.Regexp {
	t.Helper()
	re, err := regexp.Compile(s)
	if err != nil {
		t.Fatal(err)
	}
	return re
}

func TestMatches(t *testing.T) {
	ins := func(n int, calling string) []store.Instance {
		out := make([]store.Instance, n)
		for i := range out {
			out[i] = store.Instance{SOPClassUID: "1.2.840.10008.5.1.4.1.1.2", CallingAE: calling, CalledAE: "RADGATE"}
		}
		return out
	}
	head := Rule{Name: "head", Modalities: []string{"CT"}, BodyParts: []string{"HEAD"}, MinImages: 3, MaxImages: 400,
		CallingAEs: []string{"ORTHANC"}, SOPClasses: []string{"1.2.840.10008.5.1.4.1.1.2"}}
	for _, tc := range []struct {
		name string
		rule Rule
		s    Series
		want string // "" = match
	}{
		{"match", head, Series{Modality: "CT", BodyPart: "head ", Instances: ins(10, "orthanc")}, ""},
		{"modality", head, Series{Modality: "MR", BodyPart: "HEAD", Instances: ins(10, "ORTHANC")}, "modality MR"},
		{"body part", head, Series{Modality: "CT", BodyPart: "CHEST", Instances: ins(10, "ORTHANC")}, "body part CHEST"},
		{"too few", head, Series{Modality: "CT", BodyPart: "HEAD", Instances: ins(2, "ORTHANC")}, "2 images, fewer than 3"},
		{"too many", head, Series{Modality: "CT", BodyPart: "HEAD", Instances: ins(401, "ORTHANC")}, "401 images, more than 400"},
		{"calling AE", head, Series{Modality: "CT", BodyPart: "HEAD", Instances: ins(10, "MODALITY")}, "calling AE MODALITY"},
		{"description", Rule{SeriesDescription: regexpOf(t, "(?i)^axial")}, Series{Description: "coronal"}, "series description"},
		{"empty rule matches all", Rule{}, Series{Modality: "SR"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ok, why := tc.rule.Matches(&tc.s)
			if ok != (tc.want == "") || why != tc.want {
				t.Errorf("Matches = %v, %q; want %q", ok, why, tc.want)
			}
		})
	}
}

// fixture is a store holding phantom studies, and an Assembler over it.
type fixture struct {
	t    *testing.T
	st   *store.Store
	reg  *prometheus.Registry
	jobs int // onJobs calls
}

func newFixture(t *testing.T) *fixture {
	st, err := store.Open(context.Background(), store.Config{DataDir: t.TempDir(), SegmentSize: 4 << 20}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return &fixture{t: t, st: st, reg: prometheus.NewRegistry()}
}

func (f *fixture) assembler(cfg Config) *Assembler {
	f.t.Helper()
	if cfg.Quiet == 0 {
		cfg.Quiet = 10 * time.Second
	}
	a, err := New(f.st.Work(), cfg, nil, f.reg, nil, func() { f.jobs++ })
	if err != nil {
		f.t.Fatal(err)
	}
	return a
}

// ingest stores phantom instances as DIMSE C-STOREs from ORTHANC would,
// and returns when the last one was received.
func (f *fixture) ingest(ins ...phantom.Instance) time.Time {
	f.t.Helper()
	var last time.Time
	for _, in := range ins {
		last = peertest.Ingest(f.t, f.st, in.Data, store.Incoming{CallingAE: "ORTHANC", CalledAE: "RADGATE", Source: "dimse"}).ReceivedAt
	}
	if _, err := f.st.CountInstances(context.Background()); err != nil { // indexed
		f.t.Fatal(err)
	}
	return last
}

func (f *fixture) jobsOf(study string) []store.Job {
	f.t.Helper()
	js, err := f.st.Work().Jobs(context.Background(), study)
	if err != nil {
		f.t.Fatal(err)
	}
	return js
}

func ctSlices(t *testing.T, n int) []phantom.Instance {
	t.Helper()
	ins, err := phantom.Generate(phantom.Spec{Kind: phantom.KindCTHead, Finding: phantom.Hemorrhage, Seed: 7, Slices: n})
	if err != nil {
		t.Fatal(err)
	}
	return ins
}

// TestAssembler: a head CT is complete only after its quiet period, gets
// one ct-ich job, is not re-run when nothing changed, and gets revision 2
// when a late slice arrives.
func TestAssembler(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	a := f.assembler(Config{Destinations: []string{"dimse://PACS@127.0.0.1:104"}})
	slices := ctSlices(t, 4)
	study := phantom.Spec{Kind: phantom.KindCTHead, Finding: phantom.Hemorrhage, Seed: 7, Slices: 4}.StudyInstanceUID()
	last := f.ingest(slices[:3]...)

	if err := a.Sweep(ctx, last.Add(9*time.Second)); err != nil {
		t.Fatal(err)
	}
	if js := f.jobsOf(study); len(js) != 0 {
		t.Fatalf("jobs before the quiet period ended: %+v", js)
	}
	if err := a.Sweep(ctx, last.Add(10*time.Second)); err != nil {
		t.Fatal(err)
	}
	js := f.jobsOf(study)
	if len(js) != 1 || js[0].Model != "ct-ich" || js[0].Route != "head-ct" || js[0].Revision != 1 ||
		len(js[0].Series) != 1 || !cmp.Equal(js[0].Destinations, []string{"dimse://PACS@127.0.0.1:104"}) || !js[0].ReadyAt.Equal(last) {
		t.Fatalf("jobs after the quiet period: %+v", js)
	}
	if f.jobs != 1 {
		t.Errorf("onJobs called %d times, want 1", f.jobs)
	}
	// The same slice again (a resend): pending, evaluated, unchanged.
	f.ingest(slices[0])
	if p, _ := f.st.Work().PendingStudies(ctx); len(p) != 0 {
		// An identical resend writes nothing and so is not new activity.
		if err := a.Sweep(ctx, p[0].LastReceivedAt.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	if js := f.jobsOf(study); len(js) != 1 {
		t.Fatalf("a resend created jobs: %+v", js)
	}
	late := f.ingest(slices[3])
	if err := a.Sweep(ctx, late.Add(10*time.Second)); err != nil {
		t.Fatal(err)
	}
	js = f.jobsOf(study)
	if len(js) != 2 || js[1].Revision != 2 || js[1].Digest == js[0].Digest {
		t.Fatalf("after a late slice: %+v", js)
	}
	if got := testutil.ToFloat64(a.m.evaluations.WithLabelValues("routed")); got != 2 {
		t.Errorf("routed evaluations = %v, want 2", got)
	}
}

// TestAssemblerReleaseAndUnmatched: a released association shortens the
// wait; a study no rule takes is recorded, not run.
func TestAssemblerReleaseAndUnmatched(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	a := f.assembler(Config{ReleaseQuiet: time.Second, Rules: []Rule{{Name: "mr-only", Modalities: []string{"MR"}, Models: []string{"x"}}}})
	last := f.ingest(ctSlices(t, 2)...)
	study := phantom.Spec{Kind: phantom.KindCTHead, Finding: phantom.Hemorrhage, Seed: 7, Slices: 2}.StudyInstanceUID()

	// A release before the last arrival says nothing.
	a.Released([]string{study}, last.Add(-time.Second))
	if err := a.Sweep(ctx, last.Add(2*time.Second)); err != nil {
		t.Fatal(err)
	}
	if p, _ := f.st.Work().PendingStudies(ctx); len(p) != 1 {
		t.Fatalf("a stale release completed the study")
	}
	a.Released([]string{study}, last.Add(100*time.Millisecond))
	if err := a.Sweep(ctx, last.Add(500*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if p, _ := f.st.Work().PendingStudies(ctx); len(p) != 1 {
		t.Fatalf("complete before the release quiet period")
	}
	if err := a.Sweep(ctx, last.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if p, _ := f.st.Work().PendingStudies(ctx); len(p) != 0 {
		t.Fatalf("still pending after a release and its quiet period: %+v", p)
	}
	if js := f.jobsOf(study); len(js) != 0 {
		t.Fatalf("an unmatched study ran: %+v", js)
	}
	if got := testutil.ToFloat64(a.m.evaluations.WithLabelValues("unmatched")); got != 1 {
		t.Errorf("unmatched evaluations = %v, want 1", got)
	}
}

// TestRouteQuiet: a route's own, longer quiet period holds the study back
// although the default one has passed.
func TestRouteQuiet(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	rules := DefaultRules()
	rules[1].Quiet = 5 * time.Second // head-ct
	a := f.assembler(Config{Quiet: time.Second, Rules: rules})
	last := f.ingest(ctSlices(t, 2)...)
	study := phantom.Spec{Kind: phantom.KindCTHead, Finding: phantom.Hemorrhage, Seed: 7, Slices: 2}.StudyInstanceUID()
	for _, after := range []time.Duration{2 * time.Second, 3 * time.Second} {
		if err := a.Sweep(ctx, last.Add(after)); err != nil {
			t.Fatal(err)
		}
		if js := f.jobsOf(study); len(js) != 0 {
			t.Fatalf("jobs %v after the last arrival, before head-ct's 5 s: %+v", after, js)
		}
	}
	if err := a.Sweep(ctx, last.Add(5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if js := f.jobsOf(study); len(js) != 1 {
		t.Fatalf("jobs after head-ct's quiet period: %+v", js)
	}
}
