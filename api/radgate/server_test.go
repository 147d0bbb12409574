package radgate

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/radgate/radgate/api/kserve"
	radgatev1 "github.com/radgate/radgate/api/radgate/v1"
	"github.com/radgate/radgate/inference"
	"github.com/radgate/radgate/internal/peertest"
	"github.com/radgate/radgate/internal/refengine"
	"github.com/radgate/radgate/phantom"
	"github.com/radgate/radgate/sr"
	"github.com/radgate/radgate/store"
	"github.com/radgate/radgate/study"
)

// fixture is the service over an engine on the reference models, served
// on loopback, with a real client.
type fixture struct {
	eng    *inference.Engine
	addr   string
	client radgatev1.GatewayClient
}

func serve(t testing.TB, cfg Config) *fixture {
	t.Helper()
	eng := refengine.Open(t)
	if cfg.Rules == nil {
		cfg.Rules = study.DefaultRules()
	}
	cfg.Equipment = sr.Equipment{Manufacturer: "radgate", SoftwareVersion: "test"}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.MaxRecvMsgSize(kserve.MaxRecvMsgSize))
	Register(srv, eng, cfg)
	kserve.AddHealthAndReflection(srv)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	conn, err := grpc.NewClient(l.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = conn.Close()
		srv.GracefulStop()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return &fixture{eng: eng, addr: l.Addr().String(), client: radgatev1.NewGatewayClient(conn)}
}

func generate(t testing.TB, s phantom.Spec) []phantom.Instance {
	t.Helper()
	ins, err := phantom.Generate(s)
	if err != nil {
		t.Fatal(err)
	}
	return ins
}

// sendStudy streams the instances, each split in chunks of at most chunk
// bytes (0: whole), the options in the first message.
func sendStudy(t *testing.T, c radgatev1.GatewayClient, opts *radgatev1.InferStudyOptions, chunk int, files ...[]byte) (*radgatev1.InferStudyResponse, error) {
	t.Helper()
	stream, err := c.InferStudy(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	first := true
	for _, f := range files {
		for len(f) > 0 {
			n := len(f)
			if chunk > 0 {
				n = min(chunk, n)
			}
			m := &radgatev1.InferStudyRequest{Data: f[:n], Continued: n < len(f)}
			if first {
				m.Options, first = opts, false
			}
			if err := stream.Send(m); err != nil {
				return nil, err
			}
			f = f[n:]
		}
	}
	return stream.CloseAndRecv()
}

func datas(ins []phantom.Instance) [][]byte {
	out := make([][]byte, len(ins))
	for i, in := range ins {
		out[i] = in.Data
	}
	return out
}

func TestListModels(t *testing.T) {
	f := serve(t, Config{})
	resp, err := f.client.ListModels(t.Context(), &radgatev1.ListModelsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	loaded := f.eng.Models()
	if len(resp.Models) != len(loaded) || len(loaded) == 0 {
		t.Fatalf("%d models listed, %d loaded", len(resp.Models), len(loaded))
	}
	for i, m := range resp.Models {
		l := loaded[i]
		if m.Id != l.ID() || m.Task != l.Task || m.Sha256 != l.SHA256 || len(m.Labels) != len(l.Labels) ||
			!slices.Equal(m.Input.Shape, l.Input.Shape) || m.Output.Shape[1] != int64(len(l.Labels)) ||
			int(m.MaxBatch) != l.Batching.MaxBatch || m.Placement != "cpu" || !m.Ready || m.NotReady != "" {
			t.Errorf("model %d: %v, loaded %s", i, m, l.ID())
		}
		// The reference models say where they come from.
		if !m.TrainedOnPhantoms {
			t.Errorf("%s: trained_on_phantoms not set", m.Id)
		}
		for k, lb := range m.Labels {
			if lb.Name != l.Labels[k].Name || lb.Concept.Value != l.Labels[k].Concept.Code || lb.Threshold != l.Labels[k].Threshold {
				t.Errorf("%s label %d: %v, manifest %v", m.Id, k, lb, l.Labels[k])
			}
		}
	}
}

// TestInferStudy: a positive head CT, streamed in chunks, is routed to
// ct-ich as the pipeline would; the answer's findings are the engine's
// own for those slices, and the SR and KOS are the study's.
func TestInferStudy(t *testing.T) {
	f := serve(t, Config{})
	spec := phantom.Spec{Kind: phantom.KindCTHead, Finding: phantom.Hemorrhage, Seed: 5, Slices: 8}
	ins := generate(t, spec)
	// Shuffled: the server orders the slices itself.
	files := datas(ins)
	files[0], files[5] = files[5], files[0]
	resp, err := sendStudy(t, f.client, nil, 64<<10, files...)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StudyInstanceUid != spec.StudyInstanceUID() || resp.Instances != 8 || len(resp.Unrouted) != 0 || len(resp.Results) != 1 {
		t.Fatalf("answer: %v", resp)
	}
	r := resp.Results[0]
	if r.Model != "ct-ich" || r.Route != "head-ct" || r.Error != "" || len(r.SeriesInstanceUids) != 1 || r.Priority == "ROUTINE" {
		t.Fatalf("result: model %s route %s error %q series %d priority %s", r.Model, r.Route, r.Error, len(r.SeriesInstanceUids), r.Priority)
	}

	// The same slices through the engine directly.
	srcs := make([]inference.Source, len(ins))
	for i, in := range ins {
		data := in.Data
		srcs[i] = inference.Source{Name: in.SOPInstanceUID, Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }}
	}
	direct, err := f.eng.Run(t.Context(), "ct-ich", inference.Routine, srcs)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Findings) != len(direct.Findings) {
		t.Fatalf("%d findings, the engine has %d", len(r.Findings), len(direct.Findings))
	}
	positive := false
	for i, fd := range r.Findings {
		d := direct.Findings[i]
		if fd.Label != d.Label || fd.Probability != d.Probability || fd.Positive != d.Positive || len(fd.KeyImages) != len(d.KeyFrames) {
			t.Errorf("finding %s: %v; engine %+v", d.Label, fd, d)
		}
		for k, ki := range fd.KeyImages {
			if ki.SopInstanceUid != direct.Frames[d.KeyFrames[k]].SOPInstanceUID || ki.Frame != 0 {
				t.Errorf("finding %s key image %d: %v", d.Label, k, ki)
			}
		}
		positive = positive || fd.Positive
	}
	if !positive {
		t.Fatal("the hemorrhage phantom is not positive")
	}
	if r.Timing.TotalMs <= 0 || r.Timing.InferenceMs <= 0 {
		t.Errorf("timing %v", r.Timing)
	}

	// The SR and the KOS: Part 10 files of the study.
	kinds := map[string]string{}
	for _, o := range r.Objects {
		in, err := store.Describe(bytes.NewReader(o.Data))
		if err != nil {
			t.Fatalf("%s: %v", o.Kind, err)
		}
		if in.StudyInstanceUID != spec.StudyInstanceUID() || in.SOPInstanceUID != o.SopInstanceUid || in.SOPClassUID != o.SopClassUid {
			t.Errorf("%s: study %s, instance %s class %s; answer says %s %s", o.Kind, in.StudyInstanceUID, in.SOPInstanceUID, in.SOPClassUID, o.SopInstanceUid, o.SopClassUid)
		}
		kinds[o.Kind] = in.Modality
	}
	if kinds["sr"] != "SR" || kinds["kos"] != "KO" || len(kinds) != 2 {
		t.Errorf("objects: %v, want an SR and a KOS", kinds)
	}
}

// TestInferStudyModels: models named run on the whole study whatever the
// rules say; one that does not fit the images says so in its result.
func TestInferStudyModels(t *testing.T) {
	f := serve(t, Config{Rules: []study.Rule{}})
	ct := datas(generate(t, phantom.Spec{Kind: phantom.KindCTHead, Finding: phantom.None, Seed: 3, Slices: 2}))

	// No rule: the series is reported, nothing is run.
	resp, err := sendStudy(t, f.client, nil, 0, ct...)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Results) != 0 || len(resp.Unrouted) != 1 {
		t.Fatalf("no rules: %d results, unrouted %v", len(resp.Results), resp.Unrouted)
	}

	resp, err = sendStudy(t, f.client, &radgatev1.InferStudyOptions{Models: []string{"ct-ich", "cxr-triage", "nope"}, Priority: "stat"}, 0, ct...)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Results) != 3 {
		t.Fatalf("%d results, want 3", len(resp.Results))
	}
	ok, misfit, missing := resp.Results[0], resp.Results[1], resp.Results[2]
	if ok.Error != "" || len(ok.Findings) == 0 || len(ok.Objects) != 1 || ok.Objects[0].Kind != "sr" || ok.Route != "" {
		t.Errorf("ct-ich: error %q, %d findings, %d objects, route %q", ok.Error, len(ok.Findings), len(ok.Objects), ok.Route)
	}
	if misfit.Error == "" || len(misfit.Objects) != 0 {
		t.Errorf("cxr-triage on a head CT: error %q, %d objects", misfit.Error, len(misfit.Objects))
	}
	if missing.Error == "" {
		t.Error("a model not loaded gave no error")
	}
}

func TestInferStudyRefuses(t *testing.T) {
	f := serve(t, Config{})
	ct := generate(t, phantom.Spec{Kind: phantom.KindCTHead, Finding: phantom.None, Seed: 3, Slices: 1})[0].Data
	other := generate(t, phantom.Spec{Kind: phantom.KindCTHead, Finding: phantom.None, Seed: 4, Slices: 1})[0].Data
	send := func(msgs ...*radgatev1.InferStudyRequest) error {
		stream, err := f.client.InferStudy(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			if err := stream.Send(m); err != nil {
				break // the server answered early; CloseAndRecv has why
			}
		}
		_, err = stream.CloseAndRecv()
		return err
	}
	opts := &radgatev1.InferStudyOptions{}
	for name, msgs := range map[string][]*radgatev1.InferStudyRequest{
		"nothing":         nil,
		"options only":    {{Options: opts}},
		"empty message":   {{Data: ct}, {}},
		"late options":    {{Data: ct}, {Options: opts, Data: other}},
		"not DICOM":       {{Data: []byte("hello, this is not a DICOM file at all")}},
		"ends inside":     {{Data: ct[:1000], Continued: true}},
		"two studies":     {{Data: ct}, {Data: other}},
		"sent twice":      {{Data: ct}, {Data: ct}},
		"bad priority":    {{Options: &radgatev1.InferStudyOptions{Priority: "urgent"}, Data: ct}},
		"truncated image": {{Data: ct[:len(ct)-1000]}},
	} {
		err := send(msgs...)
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("%s: %v, want InvalidArgument", name, err)
		}
	}
}

func TestBenchmark(t *testing.T) {
	f := serve(t, Config{})
	stream, err := f.client.Benchmark(t.Context(), &radgatev1.BenchmarkRequest{
		Model:       "ct-ich",
		Source:      &radgatev1.BenchmarkRequest_Phantom{Phantom: &radgatev1.PhantomSource{Kind: "ct-head", Count: 2, Seed: 11, Slices: 2}},
		Concurrency: []int32{1, 2},
		Runs:        6,
	})
	if err != nil {
		t.Fatal(err)
	}
	var msgs []*radgatev1.BenchmarkProgress
	for {
		m, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, m)
	}
	last := msgs[len(msgs)-1]
	if len(msgs) < 3 || last.Result == nil {
		t.Fatalf("%d messages, last %v: want progress per step, then the result", len(msgs), last)
	}
	for _, m := range msgs[:len(msgs)-1] {
		if m.Result != nil || m.Total != 6 || m.Done > m.Total {
			t.Errorf("progress %v", m)
		}
	}
	res := last.Result
	if res.Model != "ct-ich" || res.InstancesPerStudy != 2 || len(res.Steps) != 2 {
		t.Fatalf("result %v", res)
	}
	for i, st := range res.Steps {
		n := int32(0)
		for _, b := range st.Histogram {
			n += b.Count
		}
		if st.Concurrency != []int32{1, 2}[i] || st.Ok != 6 || st.Errors != 0 || n != 6 ||
			st.Latency.P50Ms <= 0 || st.Latency.MaxMs < st.Latency.P50Ms || st.Throughput <= 0 {
			t.Errorf("step %d: %v", i+1, st)
		}
	}

	// The runs went through the scheduler: its statistics count them
	// (warmup included: 13 runs of 2 slices), queue and compute apart.
	stats, err := f.client.ModelStatistics(t.Context(), &radgatev1.ModelStatisticsRequest{Name: "ct-ich"})
	if err != nil {
		t.Fatal(err)
	}
	if len(stats.ModelStats) != 1 {
		t.Fatalf("statistics of %d models", len(stats.ModelStats))
	}
	s := stats.ModelStats[0]
	is := s.InferenceStats
	if s.InferenceCount != 26 || s.ExecutionCount == 0 || s.ExecutionCount > 26 || is.Success.Count == 0 ||
		is.Queue.Count != is.Success.Count || is.ComputeInfer.Ns == 0 || is.Fail.Count != 0 || s.LastInference == 0 || len(s.BatchStats) == 0 {
		t.Errorf("statistics %v", s)
	}
	if all, err := f.client.ModelStatistics(t.Context(), &radgatev1.ModelStatisticsRequest{}); err != nil || len(all.ModelStats) != len(f.eng.Models()) {
		t.Errorf("all statistics: %v, %v", all, err)
	}
	if _, err := f.client.ModelStatistics(t.Context(), &radgatev1.ModelStatisticsRequest{Name: "nope"}); status.Code(err) != codes.NotFound {
		t.Errorf("unknown model: %v", err)
	}
	if _, err := f.client.ModelStatistics(t.Context(), &radgatev1.ModelStatisticsRequest{Version: "1"}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("version alone: %v", err)
	}
}

// TestBenchmarkStored runs a study from a real store.
func TestBenchmarkStored(t *testing.T) {
	ctx := t.Context()
	st, err := store.Open(ctx, store.Config{DataDir: t.TempDir()}, peertest.Logger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	spec := phantom.Spec{Kind: phantom.KindCTHead, Finding: phantom.None, Seed: 2, Slices: 4}
	for _, in := range generate(t, spec) {
		peertest.Ingest(t, st, in.Data, store.Incoming{Source: "test"})
	}
	// The index rows follow the acknowledgement within milliseconds.
	deadline := time.Now().Add(10 * time.Second)
	for {
		ins, err := st.Work().StudyInstances(ctx, spec.StudyInstanceUID())
		if err == nil && len(ins) == 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("study not indexed: %d instances, %v", len(ins), err)
		}
		time.Sleep(10 * time.Millisecond)
	}

	f := serve(t, Config{Store: st})
	res := benchmark(t, f.client, &radgatev1.BenchmarkRequest{Model: "ct-ich", Runs: 3,
		Source: &radgatev1.BenchmarkRequest_Stored{Stored: &radgatev1.StoredSource{StudyInstanceUids: []string{spec.StudyInstanceUID()}}}})
	if res == nil || res.InstancesPerStudy != 4 || len(res.Steps) != 1 || res.Steps[0].Ok != 3 {
		t.Fatalf("stored benchmark: %v", res)
	}

	for name, tc := range map[string]struct {
		req  *radgatev1.BenchmarkRequest
		code codes.Code
	}{
		"unknown study": {&radgatev1.BenchmarkRequest{Model: "ct-ich", Source: &radgatev1.BenchmarkRequest_Stored{Stored: &radgatev1.StoredSource{StudyInstanceUids: []string{"1.2.3"}}}}, codes.NotFound},
		"no source":     {&radgatev1.BenchmarkRequest{Model: "ct-ich"}, codes.InvalidArgument},
		"no model":      {&radgatev1.BenchmarkRequest{Model: "nope"}, codes.NotFound},
		"bad phantom":   {&radgatev1.BenchmarkRequest{Model: "ct-ich", Source: &radgatev1.BenchmarkRequest_Phantom{Phantom: &radgatev1.PhantomSource{Kind: "mri"}}}, codes.InvalidArgument},
		// The warmup run fails: a chest model on a head CT.
		"misfit":      {&radgatev1.BenchmarkRequest{Model: "cxr-triage", Source: &radgatev1.BenchmarkRequest_Phantom{Phantom: &radgatev1.PhantomSource{Kind: "ct-head", Slices: 1}}}, codes.InvalidArgument},
		"concurrency": {&radgatev1.BenchmarkRequest{Model: "ct-ich", Concurrency: []int32{0}, Source: &radgatev1.BenchmarkRequest_Stored{}}, codes.InvalidArgument},
		"priority":    {&radgatev1.BenchmarkRequest{Model: "ct-ich", Priority: "urgent"}, codes.InvalidArgument},
	} {
		stream, err := f.client.Benchmark(ctx, tc.req)
		if err == nil {
			_, err = stream.Recv()
		}
		if status.Code(err) != tc.code {
			t.Errorf("%s: %v, want %v", name, err, tc.code)
		}
	}

	// Without a store, the stored source is refused.
	g := serve(t, Config{})
	stream, err := g.client.Benchmark(ctx, &radgatev1.BenchmarkRequest{Model: "ct-ich",
		Source: &radgatev1.BenchmarkRequest_Stored{Stored: &radgatev1.StoredSource{StudyInstanceUids: []string{spec.StudyInstanceUID()}}}})
	if err == nil {
		_, err = stream.Recv()
	}
	if status.Code(err) != codes.FailedPrecondition {
		t.Errorf("stored source without a store: %v", err)
	}
}

// benchmark runs one and returns its result (nil on error, reported).
func benchmark(t *testing.T, c radgatev1.GatewayClient, r *radgatev1.BenchmarkRequest) *radgatev1.BenchmarkResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	stream, err := c.Benchmark(ctx, r)
	if err != nil {
		t.Error(err)
		return nil
	}
	for {
		m, err := stream.Recv()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				t.Error(err)
			}
			return nil
		}
		if m.Result != nil {
			return m.Result
		}
	}
}
