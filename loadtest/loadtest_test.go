package loadtest

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	inferencev2 "github.com/radgate/radgate/api/kserve/v2"
)

func TestBenchPercentiles(t *testing.T) {
	ms := func(n int) []time.Duration {
		s := make([]time.Duration, n)
		for i := range s {
			// Reversed: summarise must sort.
			s[i] = time.Duration(n-i) * time.Millisecond
		}
		return s
	}
	tests := []struct {
		name    string
		samples []time.Duration
		want    Latency
	}{
		{"none", nil, Latency{}},
		{"one", []time.Duration{3 * time.Millisecond}, Latency{P50: 3, P90: 3, P99: 3, P999: 3, Max: 3, Mean: 3}},
		{"1..10", ms(10), Latency{P50: 5, P90: 9, P99: 10, P999: 10, Max: 10, Mean: 5.5}},
		{"1..100", ms(100), Latency{P50: 50, P90: 90, P99: 99, P999: 100, Max: 100, Mean: 50.5}},
		{"1..1000", ms(1000), Latency{P50: 500, P90: 900, P99: 990, P999: 999, Max: 1000, Mean: 500.5}},
	}
	for _, tc := range tests {
		if diff := cmp.Diff(tc.want, summarise(tc.samples)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.name, diff)
		}
	}
}

func TestBenchHistogram(t *testing.T) {
	d := func(msecs ...float64) []time.Duration {
		out := make([]time.Duration, len(msecs))
		for i, m := range msecs {
			out[i] = time.Duration(m * float64(time.Millisecond))
		}
		return out
	}
	tests := []struct {
		name    string
		samples []time.Duration
		want    []Bucket
	}{
		{"none", nil, nil},
		{"one", d(3), []Bucket{{5, 1}}},
		// From the fastest's bucket to the slowest's, empty ones kept;
		// a sample on a bound belongs to that bound's bucket.
		{"spread", d(0.9, 1, 1.5, 2, 4, 30, 30), []Bucket{{1, 2}, {2, 2}, {5, 1}, {10, 0}, {20, 0}, {50, 2}}},
		{"beyond 5000 s", d(4e6, 6e6), []Bucket{{5e6, 1}, {6e6, 1}}},
	}
	for _, tc := range tests {
		if diff := cmp.Diff(tc.want, histogram(tc.samples)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.name, diff)
		}
	}
}

// fake answers after a fixed time; every failEvery-th call fails.
type fake struct {
	delay     time.Duration
	failEvery int64
	calls     atomic.Int64
	inflight  atomic.Int64
	peak      atomic.Int64
}

func (f *fake) Infer(ctx context.Context) error {
	n := f.calls.Add(1)
	in := f.inflight.Add(1)
	defer f.inflight.Add(-1)
	for p := f.peak.Load(); in > p && !f.peak.CompareAndSwap(p, in); p = f.peak.Load() {
	}
	select {
	case <-time.After(f.delay):
	case <-ctx.Done():
		return status.FromContextError(ctx.Err()).Err()
	}
	if f.failEvery > 0 && n%f.failEvery == 0 {
		return status.Error(codes.Unavailable, "fake failure")
	}
	return nil
}

// TestBenchOpenLoopPacing: at 100 requests/s against a server that takes
// 50 ms, an open loop keeps sending on schedule (about 5 in flight);
// a closed loop of one would take 2.5 s for the 50 requests.
func TestBenchOpenLoopPacing(t *testing.T) {
	f := &fake{delay: 50 * time.Millisecond}
	var ticks []Progress
	rep, err := Run(t.Context(), Config{Client: f, Rate: []float64{100}, Requests: 50, Warmup: 2}, func(p Progress) { ticks = append(ticks, p) })
	if err != nil {
		t.Fatal(err)
	}
	s := rep.Steps[0]
	t.Logf("open loop: %+v, peak in flight %d", s, f.peak.Load())
	if s.Requests != 50 || s.OK != 50 || f.calls.Load() != 52 {
		t.Fatalf("requests %d ok %d calls %d; want 50, 50, 52 (warmup 2)", s.Requests, s.OK, f.calls.Load())
	}
	// Sends are 10 ms apart: 49 intervals, 490 ms; noisy shared CPUs get
	// a wide margin, but nowhere near the closed loop's 2.5 s.
	if s.AchievedRate < 70 || s.AchievedRate > 130 {
		t.Errorf("achieved rate %.1f/s; want about 100", s.AchievedRate)
	}
	if s.ElapsedS > 1.5 || f.peak.Load() < 3 {
		t.Errorf("elapsed %.2fs, peak in flight %d: the loop waited for answers", s.ElapsedS, f.peak.Load())
	}
	if s.AchievedConcurrency < 3 || s.AchievedConcurrency > 8 {
		t.Errorf("achieved concurrency %.2f; want about 5", s.AchievedConcurrency)
	}
	if s.Latency.P50 < 50 {
		t.Errorf("p50 %.2f ms below the fake's 50 ms", s.Latency.P50)
	}
	if last := ticks[len(ticks)-1]; !last.Final || last.Done != 50 || last.Total != 50 || last.Load != "r=100" {
		t.Errorf("last progress %+v", last)
	}
}

func TestBenchClosedLoop(t *testing.T) {
	f := &fake{delay: 10 * time.Millisecond, failEvery: 5}
	rep, err := Run(t.Context(), Config{Client: f, Concurrency: []int{1, 4}, Requests: 40, Batch: 3}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Steps) != 2 {
		t.Fatalf("%d steps", len(rep.Steps))
	}
	for i, s := range rep.Steps {
		if s.Index != i+1 || s.Requests != 40 || s.OK != 32 || s.Errors != 8 || s.ErrorsByCode["Unavailable"] != 8 {
			t.Errorf("step %d: %+v; want 40 requests, 8 Unavailable", i+1, s)
		}
		if s.ItemsPerS != 3*s.Throughput || s.Latency.P50 < 10 {
			t.Errorf("step %d: items/s %.1f throughput %.1f p50 %.2f", i+1, s.ItemsPerS, s.Throughput, s.Latency.P50)
		}
	}
	if c := rep.Steps[1].AchievedConcurrency; c < 2.5 || c > 4.01 {
		t.Errorf("c=4 achieved concurrency %.2f", c)
	}
	if rep.Failed() != 16 {
		t.Errorf("Failed %d", rep.Failed())
	}
}

func TestBenchDuration(t *testing.T) {
	f := &fake{delay: 5 * time.Millisecond}
	rep, err := Run(t.Context(), Config{Client: f, Concurrency: []int{2}, Duration: 200 * time.Millisecond, Requests: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s := rep.Steps[0]; s.Requests < 10 || s.ElapsedS < 0.19 || s.ElapsedS > 1 {
		t.Errorf("200 ms step: %d requests in %.3fs", s.Requests, s.ElapsedS)
	}
}

func TestBenchConfigErrors(t *testing.T) {
	f := &fake{}
	for _, tc := range []struct {
		cfg  Config
		want error
	}{
		{Config{Client: f}, ErrNoLoad},
		{Config{Client: f, Concurrency: []int{1}, Rate: []float64{1}}, ErrBothLoads},
		{Config{Client: f, Concurrency: []int{0}}, ErrBadLoad},
		{Config{Client: f, Rate: []float64{-1}}, ErrBadLoad},
	} {
		if _, err := Run(t.Context(), tc.cfg, nil); !errors.Is(err, tc.want) {
			t.Errorf("%+v: %v, want %v", tc.cfg, err, tc.want)
		}
	}
	// A failed warmup fails the run.
	if _, err := Run(t.Context(), Config{Client: &fake{failEvery: 1}, Concurrency: []int{1}, Warmup: 1}, nil); status.Code(errors.Unwrap(err)) != codes.Unavailable {
		t.Errorf("warmup failure: %v", err)
	}
}

func TestBenchNewRequest(t *testing.T) {
	md := &inferencev2.ModelMetadataResponse{Name: "m", Inputs: []*inferencev2.ModelMetadataResponse_TensorMetadata{
		{Name: "image", Datatype: "FP32", Shape: []int64{-1, 1, 4, 4}},
	}}
	req, err := NewRequest(md, Request{Model: "m", Version: "2", Batch: 3, Priority: "stat"})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]int64{3, 1, 4, 4}, req.Inputs[0].Shape); diff != "" || len(req.RawInputContents[0]) != 3*16*4 || req.ModelVersion != "2" {
		t.Fatalf("shape %v, %d bytes, version %q", req.Inputs[0].Shape, len(req.RawInputContents[0]), req.ModelVersion)
	}
	if p := req.Parameters["priority"].GetStringParam(); p != "stat" {
		t.Errorf("priority %q", p)
	}
	again, _ := NewRequest(md, Request{Model: "m", Batch: 3})
	if !bytes.Equal(req.RawInputContents[0], again.RawInputContents[0]) || again.Parameters != nil {
		t.Error("inputs differ between runs, or a priority was sent unasked")
	}
	for _, in := range []*inferencev2.ModelMetadataResponse_TensorMetadata{
		{Name: "x", Datatype: "UINT8", Shape: []int64{-1, 4}},
		{Name: "x", Datatype: "FP32", Shape: []int64{-1, -1}},
		{Name: "x", Datatype: "FP32", Shape: []int64{1, 4}},
		{Name: "x", Datatype: "FP32", Shape: []int64{-1, 1 << 40}},
	} {
		if _, err := NewRequest(&inferencev2.ModelMetadataResponse{Inputs: []*inferencev2.ModelMetadataResponse_TensorMetadata{in}}, Request{Batch: 2}); !errors.Is(err, ErrShape) && !errors.Is(err, ErrUnsupportedType) {
			t.Errorf("%v %v: %v", in.Datatype, in.Shape, err)
		}
	}
}

func sampleReport() Report {
	return Report{Target: "127.0.0.1:1", Model: "cxr<triage>", Batch: 2, Started: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Steps: []Step{
		{Index: 1, Mode: "closed", Concurrency: 1, Batch: 2, Requests: 10, OK: 10, ErrorsByCode: map[string]int{}, ElapsedS: 1, Throughput: 10, ItemsPerS: 20,
			AchievedConcurrency: 1, AchievedRate: 10, Latency: Latency{P50: 100, P90: 110, P99: 120, P999: 121, Max: 121, Mean: 100.5}},
		{Index: 2, Mode: "closed", Concurrency: 4, Batch: 2, Requests: 10, OK: 7, Errors: 3, ErrorsByCode: map[string]int{"Unavailable": 2, "DeadlineExceeded": 1},
			ElapsedS: 0.5, Throughput: 14, ItemsPerS: 28, AchievedConcurrency: 3.9, AchievedRate: 20, Latency: Latency{P50: 250, P90: 300, P99: 390, P999: 399, Max: 400, Mean: 260}},
		{Index: 3, Mode: "open", Rate: 12.5, Batch: 2, Requests: 10, OK: 10, ErrorsByCode: map[string]int{}, ElapsedS: 0.8, Throughput: 12.5, ItemsPerS: 25,
			AchievedConcurrency: 1.5, AchievedRate: 12.5, Latency: Latency{P50: 110, P90: 130, P99: 150, P999: 151, Max: 151, Mean: 115}},
	}}
}

func TestBenchJSONRoundTrip(t *testing.T) {
	rep := sampleReport()
	var b bytes.Buffer
	if err := WriteJSON(&b, rep); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(b.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(rep, back); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	// The documented names.
	var raw struct {
		Steps []map[string]any `json:"steps"`
	}
	if err := json.Unmarshal(b.Bytes(), &raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"step", "mode", "concurrency", "rate_rps", "batch", "requests", "ok", "errors", "errors_by_code",
		"elapsed_s", "throughput_rps", "items_per_s", "achieved_concurrency", "achieved_rate_rps", "latency_ms"} {
		if _, ok := raw.Steps[0][k]; !ok {
			t.Errorf("JSON step lacks %q", k)
		}
	}
	if lat := raw.Steps[0]["latency_ms"].(map[string]any); lat["p99_9"] != 121.0 {
		t.Errorf("latency_ms %v", lat)
	}
}

func TestBenchCSV(t *testing.T) {
	var b bytes.Buffer
	if err := WriteCSV(&b, sampleReport()); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&b).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 4 || len(rows[0]) != len(csvHeader) || rows[0][0] != "step" {
		t.Fatalf("rows %v", rows)
	}
	col := func(row int, name string) string {
		for i, h := range rows[0] {
			if h == name {
				return rows[row][i]
			}
		}
		t.Fatalf("no column %s", name)
		return ""
	}
	for _, c := range []struct {
		row        int
		name, want string
	}{
		{1, "throughput_rps", "10"}, {2, "errors_by_code", "DeadlineExceeded=1;Unavailable=2"},
		{2, "p99_9_ms", "399"}, {3, "mode", "open"}, {3, "rate_rps", "12.5"}, {3, "concurrency", "0"},
	} {
		if got := col(c.row, c.name); got != c.want {
			t.Errorf("row %d %s = %q, want %q", c.row, c.name, got, c.want)
		}
	}
}

func TestBenchTable(t *testing.T) {
	var b bytes.Buffer
	if err := WriteTable(&b, sampleReport()); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"P99.9 ms", "c=4", "r=12.5", "step 2 c=4 errors: DeadlineExceeded 1, Unavailable 2"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}

// TestBenchPlot: the page is well-formed XML (so well-formed HTML), has
// no external references, and one SVG point per step per series.
func TestBenchPlot(t *testing.T) {
	rep := sampleReport()
	var b bytes.Buffer
	if err := WritePlot(&b, rep); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	d := xml.NewDecoder(strings.NewReader(page))
	circles := map[string]int{}
	var svgs, ticks int
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed: %v\n%s", err, page)
		}
		el, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		for _, a := range el.Attr {
			if a.Name.Local == "src" || a.Name.Local == "href" {
				t.Errorf("external reference <%s %s=%q>", el.Name.Local, a.Name.Local, a.Value)
			}
			if el.Name.Local == "circle" && a.Name.Local == "class" {
				circles[a.Value]++
			}
			if el.Name.Local == "line" && a.Name.Local == "class" && a.Value == "tick" {
				ticks++
			}
		}
		switch el.Name.Local {
		case "svg":
			svgs++
		case "script", "link":
			t.Errorf("<%s> in a self-contained page", el.Name.Local)
		}
	}
	if diff := cmp.Diff(map[string]int{"pt p50": 3, "pt p99": 3}, circles); diff != "" || svgs != 1 {
		t.Errorf("%d svg, points (-want +got):\n%s", svgs, diff)
	}
	if ticks < 6 {
		t.Errorf("%d ticks", ticks)
	}
	for _, want := range []string{"throughput (requests/s)", "latency (ms)", "cxr&lt;triage&gt;"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
}

func TestBenchNiceAxis(t *testing.T) {
	for _, tc := range []struct{ top, step, end float64 }{
		{0, 1, 5}, {1, 0.2, 1}, {7.3, 2, 8}, {42, 10, 50}, {99, 20, 100}, {100, 20, 100}, {1234, 500, 1500},
	} {
		if step, end := niceAxis(tc.top); step != tc.step || end != tc.end {
			t.Errorf("niceAxis(%g) = %g, %g; want %g, %g", tc.top, step, end, tc.step, tc.end)
		}
	}
}
