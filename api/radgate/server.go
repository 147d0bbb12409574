package radgate

import (
	"context"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/radgate/radgate/api/kserve"
	radgatev1 "github.com/radgate/radgate/api/radgate/v1"
	"github.com/radgate/radgate/inference"
	"github.com/radgate/radgate/sr"
	"github.com/radgate/radgate/store"
	"github.com/radgate/radgate/study"
	"github.com/radgate/radgate/worklist"
)

// ServiceName is the service's full name (health, reflection).
const ServiceName = "radgate.v1.Gateway"

// Config is what the service needs beside the engine.
type Config struct {
	// Rules route InferStudy's series when the request names no model:
	// the gateway's own routing rules.
	Rules []study.Rule
	// Equipment is radgate itself, in every SR.
	Equipment sr.Equipment
	// Store holds the studies Benchmark's stored source names (nil: that
	// source is refused).
	Store *store.Store
	// Worklist feeds WatchWorklist (nil: Unimplemented).
	Worklist *worklist.Service
}

// Service implements radgate.v1.Gateway over an engine.
type Service struct {
	radgatev1.UnimplementedGatewayServer
	eng *inference.Engine
	cfg Config
	// studies bounds the InferStudy calls holding their instances at once.
	studies chan struct{}
}

// NewService serves eng's models.
func NewService(eng *inference.Engine, cfg Config) *Service {
	return &Service{eng: eng, cfg: cfg, studies: make(chan struct{}, maxStudiesInFlight)}
}

// Register adds the service to s.
func Register(s *grpc.Server, eng *inference.Engine, cfg Config) {
	radgatev1.RegisterGatewayServer(s, NewService(eng, cfg))
}

// ListModels lists the loaded models, sorted by name then version.
func (s *Service) ListModels(context.Context, *radgatev1.ListModelsRequest) (*radgatev1.ListModelsResponse, error) {
	resp := &radgatev1.ListModelsResponse{}
	for _, l := range s.eng.Models() {
		m := &radgatev1.Model{
			Name: l.Name, Version: l.Version, Id: l.ID(), Task: l.Task, Description: l.Description,
			Manufacturer: l.Manufacturer, Sha256: l.SHA256, TrainedOnPhantoms: l.TrainedOnPhantoms,
			Input:      &radgatev1.Tensor{Name: l.Input.Name, Datatype: "FP32", Shape: l.Input.Shape},
			Output:     &radgatev1.Tensor{Name: l.Output.Name, Datatype: "FP32", Shape: []int64{-1, int64(len(l.Labels))}},
			MaxBatch:   int32(l.Batching.MaxBatch),
			MaxDelayMs: ms(l.Batching.MaxQueueDelay),
			Placement:  l.Placement.String(),
		}
		if l.Remote != "" {
			m.Placement, m.Sha256 = "remote "+l.Remote, ""
		}
		m.Ready, m.NotReady = l.Health()
		for _, lb := range l.Labels {
			m.Labels = append(m.Labels, &radgatev1.Label{
				Name: lb.Name, Threshold: lb.Threshold, Priority: lb.Priority,
				Concept: &radgatev1.Code{Scheme: lb.Concept.Scheme, Value: lb.Concept.Code, Meaning: lb.Concept.Meaning},
			})
		}
		resp.Models = append(resp.Models, m)
	}
	return resp, nil
}

// ModelStatistics reports the scheduler's statistics of the loaded
// models r selects: all, one name's versions, or one version.
func (s *Service) ModelStatistics(_ context.Context, r *radgatev1.ModelStatisticsRequest) (*radgatev1.ModelStatisticsResponse, error) {
	if r.GetName() == "" && r.GetVersion() != "" {
		return nil, status.Error(codes.InvalidArgument, "a version without a model name")
	}
	resp := &radgatev1.ModelStatisticsResponse{}
	for _, l := range s.eng.Models() {
		if (r.GetName() != "" && l.Name != r.GetName()) || (r.GetVersion() != "" && l.Version != r.GetVersion()) {
			continue
		}
		st, ok := s.eng.Scheduler().Stats(l.ID())
		if !ok {
			continue // unloaded since Models
		}
		resp.ModelStats = append(resp.ModelStats, statistics(l, st))
	}
	if r.GetName() != "" && len(resp.ModelStats) == 0 {
		return nil, status.Errorf(codes.NotFound, "model %q not loaded", kserve.Ref(r.GetName(), r.GetVersion()))
	}
	return resp, nil
}

func statistics(l *inference.Loaded, st inference.Stats) *radgatev1.ModelStatistics {
	d := func(v inference.StatDuration) *radgatev1.StatisticDuration {
		return &radgatev1.StatisticDuration{Count: v.Count, Ns: uint64(v.Total.Nanoseconds())}
	}
	out := &radgatev1.ModelStatistics{
		Name: l.Name, Version: l.Version, InferenceCount: st.Items, ExecutionCount: st.Executions,
		InferenceStats: &radgatev1.InferStatistics{
			Success: d(st.Success), Fail: d(st.Fail), Queue: d(st.Queue), ComputeInfer: d(st.Compute),
		},
	}
	if !st.LastInference.IsZero() {
		out.LastInference = uint64(st.LastInference.UnixMilli())
	}
	for size := 1; size <= l.Batching.MaxBatch; size++ {
		if b, ok := st.Batches[size]; ok {
			out.BatchStats = append(out.BatchStats, &radgatev1.InferBatchStatistics{BatchSize: uint64(size), ComputeInfer: d(b)})
		}
	}
	return out
}

// priority parses a request's priority; empty is def.
func priority(s string, def inference.Priority) (inference.Priority, error) {
	if s == "" {
		return def, nil
	}
	p, err := inference.ParsePriority(s)
	if err != nil {
		return 0, status.Error(codes.InvalidArgument, err.Error())
	}
	return p, nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
