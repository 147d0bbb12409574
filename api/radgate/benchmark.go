package radgate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/radgate/radgate/api/kserve"
	radgatev1 "github.com/radgate/radgate/api/radgate/v1"
	"github.com/radgate/radgate/dcm"
	"github.com/radgate/radgate/inference"
	"github.com/radgate/radgate/loadtest"
	"github.com/radgate/radgate/phantom"
)

// Limits and defaults of Benchmark.
const (
	defaultBenchRuns   = 20
	maxBenchRuns       = 100000
	maxBenchSteps      = 16
	maxBenchConcurrent = 64
	// maxBenchStudies bounds the studies a benchmark holds (phantoms in
	// memory) or names (stored ones).
	maxBenchStudies = 64
)

// Benchmark runs a model over a set of studies, round robin, in closed
// loop at each concurrency asked for, through the engine's Run (decode,
// preprocessing, the scheduler, aggregation: what a job does, less the
// SR). Progress goes out every loadtest.ProgressInterval; the last
// message carries the result.
func (s *Service) Benchmark(r *radgatev1.BenchmarkRequest, stream grpc.ServerStreamingServer[radgatev1.BenchmarkProgress]) error {
	ctx := stream.Context()
	l, ok := s.eng.Lookup(r.GetModel())
	if !ok {
		return status.Errorf(codes.NotFound, "model %q not loaded", r.GetModel())
	}
	pri, err := priority(r.GetPriority(), inference.Low)
	if err != nil {
		return err
	}
	cfg := loadtest.Config{Requests: int(r.GetRuns()), Warmup: 1}
	if cfg.Requests == 0 {
		cfg.Requests = defaultBenchRuns
	}
	if r.Warmup != nil {
		cfg.Warmup = int(r.GetWarmup())
	}
	switch {
	case cfg.Requests < 0 || cfg.Requests > maxBenchRuns:
		return status.Errorf(codes.InvalidArgument, "runs %d: want 1 to %d", cfg.Requests, maxBenchRuns)
	case cfg.Warmup < 0 || cfg.Warmup > maxBenchRuns:
		return status.Errorf(codes.InvalidArgument, "warmup %d: want 0 to %d", cfg.Warmup, maxBenchRuns)
	case len(r.GetConcurrency()) > maxBenchSteps:
		return status.Errorf(codes.InvalidArgument, "%d concurrency steps: at most %d", len(r.GetConcurrency()), maxBenchSteps)
	}
	for _, c := range r.GetConcurrency() {
		if c < 1 || c > maxBenchConcurrent {
			return status.Errorf(codes.InvalidArgument, "concurrency %d: want 1 to %d", c, maxBenchConcurrent)
		}
		cfg.Concurrency = append(cfg.Concurrency, int(c))
	}
	if len(cfg.Concurrency) == 0 {
		cfg.Concurrency = []int{1}
	}
	studies, err := s.benchStudies(ctx, r)
	if err != nil {
		return err
	}
	client := &studyClient{eng: s.eng, model: l.ID(), pri: pri, studies: studies}
	cfg.Client = client

	var sendErr error
	rep, err := loadtest.Run(ctx, cfg, func(p loadtest.Progress) {
		if sendErr == nil {
			sendErr = stream.Send(progressOf(p, cfg.Concurrency))
		}
	})
	switch {
	case sendErr != nil:
		return sendErr
	case ctx.Err() != nil:
		return status.FromContextError(ctx.Err()).Err()
	case err != nil:
		// A warmup run failed (its status wrapped): the studies cannot
		// run on this model.
		st, _ := status.FromError(err)
		return st.Err()
	}
	res := &radgatev1.BenchmarkResult{Model: l.Name, Version: l.Version, InstancesPerStudy: int32(len(studies[0]))}
	for _, st := range rep.Steps {
		res.Steps = append(res.Steps, stepOf(st))
	}
	last := &radgatev1.BenchmarkProgress{Step: int32(len(rep.Steps)), Steps: int32(len(rep.Steps)), Result: res}
	if n := len(rep.Steps); n > 0 {
		st := rep.Steps[n-1]
		last.Concurrency, last.Done, last.Total, last.Errors = int32(st.Concurrency), int32(st.Requests), int32(cfg.Requests), int32(st.Errors)
		last.ElapsedMs = st.ElapsedS * 1000
	}
	return stream.Send(last)
}

// benchStudies are the studies to run, each as the engine's sources.
func (s *Service) benchStudies(ctx context.Context, r *radgatev1.BenchmarkRequest) ([][]inference.Source, error) {
	var studies [][]inference.Source
	switch src := r.GetSource().(type) {
	case *radgatev1.BenchmarkRequest_Phantom:
		p := src.Phantom
		count := max(int(p.GetCount()), 1)
		if count > maxBenchStudies {
			return nil, status.Errorf(codes.InvalidArgument, "%d phantom studies: at most %d", count, maxBenchStudies)
		}
		finding := phantom.Finding(p.GetFinding())
		if finding == "" {
			finding = phantom.None
		}
		for i := range count {
			spec := phantom.Spec{Kind: phantom.Kind(p.GetKind()), Finding: finding, Seed: p.GetSeed() + uint64(i), Slices: int(p.GetSlices())}
			ins, err := phantom.Generate(spec)
			if err != nil {
				return nil, status.Error(codes.InvalidArgument, err.Error())
			}
			srcs := make([]inference.Source, len(ins))
			for k, in := range ins {
				data := in.Data
				srcs[k] = inference.Source{Name: dcm.UIDRef(in.SOPInstanceUID), Open: func() (io.ReadCloser, error) {
					return io.NopCloser(bytes.NewReader(data)), nil
				}}
			}
			studies = append(studies, srcs)
		}
	case *radgatev1.BenchmarkRequest_Stored:
		uids := src.Stored.GetStudyInstanceUids()
		switch {
		case s.cfg.Store == nil:
			return nil, status.Error(codes.FailedPrecondition, "this server has no store to benchmark from")
		case len(uids) == 0 || len(uids) > maxBenchStudies:
			return nil, status.Errorf(codes.InvalidArgument, "%d stored studies: want 1 to %d", len(uids), maxBenchStudies)
		}
		for _, uid := range uids {
			ins, err := s.cfg.Store.Work().StudyInstances(ctx, uid)
			if err != nil {
				return nil, status.Errorf(codes.Internal, "reading study %s: %v", dcm.UIDRef(uid), err)
			}
			if len(ins) == 0 {
				return nil, status.Errorf(codes.NotFound, "study %s is not in the store", dcm.UIDRef(uid))
			}
			srcs := make([]inference.Source, len(ins))
			for k, in := range ins {
				key := in.BlobKey
				srcs[k] = inference.Source{Name: dcm.UIDRef(in.SOPInstanceUID), Open: func() (io.ReadCloser, error) {
					return s.cfg.Store.OpenBlob(ctx, key)
				}}
			}
			studies = append(studies, srcs)
		}
	default:
		return nil, status.Error(codes.InvalidArgument, "no source: want phantom or stored studies")
	}
	return studies, nil
}

// studyClient runs the studies round robin, one engine.Run per request.
type studyClient struct {
	eng     *inference.Engine
	model   string
	pri     inference.Priority
	studies [][]inference.Source
	next    atomic.Uint64
}

// errPartial: some instances of a study could not be run; a benchmark run
// counts only when all were.
var errPartial = errors.New("instances of the study could not be run")

func (c *studyClient) Infer(ctx context.Context) error {
	srcs := c.studies[(c.next.Add(1)-1)%uint64(len(c.studies))]
	res, err := c.eng.Run(ctx, c.model, c.pri, srcs)
	if err != nil {
		return kserve.Status(err)
	}
	if len(res.Errors) > 0 {
		return status.Error(codes.InvalidArgument, fmt.Errorf("%w: %d of %d: %s", errPartial, len(res.Errors), len(srcs), res.Errors[0].Error).Error())
	}
	return nil
}

func progressOf(p loadtest.Progress, conc []int) *radgatev1.BenchmarkProgress {
	return &radgatev1.BenchmarkProgress{
		Step: int32(p.Step), Steps: int32(p.Steps), Concurrency: int32(conc[p.Step-1]),
		Done: int32(p.Done), Total: int32(p.Total), Errors: int32(p.Errors), ElapsedMs: ms(p.Elapsed),
	}
}

func stepOf(st loadtest.Step) *radgatev1.BenchmarkStep {
	l := st.Latency
	out := &radgatev1.BenchmarkStep{
		Concurrency: int32(st.Concurrency), Runs: int32(st.Requests), Ok: int32(st.OK), Errors: int32(st.Errors),
		ElapsedMs: st.ElapsedS * 1000, Throughput: st.Throughput,
		Latency: &radgatev1.LatencySummary{P50Ms: l.P50, P90Ms: l.P90, P99Ms: l.P99, P99_9Ms: l.P999, MaxMs: l.Max, MeanMs: l.Mean},
	}
	if len(st.ErrorsByCode) > 0 {
		out.ErrorsByCode = map[string]int32{}
		for k, v := range st.ErrorsByCode {
			out.ErrorsByCode[k] = int32(v)
		}
	}
	for _, b := range st.Histogram {
		out.Histogram = append(out.Histogram, &radgatev1.HistogramBucket{LeMs: b.LE, Count: int32(b.Count)})
	}
	return out
}
