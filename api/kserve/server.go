package kserve

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	inferencev2 "github.com/radgate/radgate/api/kserve/v2"
	"github.com/radgate/radgate/inference"
)

// Limits on what a peer may ask for.
const (
	// MaxRecvMsgSize bounds one request: 64 MiB holds 160 chest
	// radiographs of 1×320² float32, or 320 CT slices of 3×128² float32.
	// gRPC's default of 4 MiB would refuse a batch of ten radiographs.
	MaxRecvMsgSize = 64 << 20
	// maxItems bounds a request's batch axis before anything is
	// allocated for it; a UINT8 request of this many radiographs
	// converts to 100 MiB of float32.
	maxItems = 256
)

// Protocol constants.
const (
	serverName = "radgate"
	// platform names the backend as Triton's model configuration does.
	platform = "onnxruntime_onnx"
	// priorityParam is the request parameter holding the priority.
	priorityParam = "priority"
	// ServiceName is the v2 service's full name (health, reflection).
	ServiceName = "inference.GRPCInferenceService"
)

// Service implements inference.GRPCInferenceService over an engine.
type Service struct {
	inferencev2.UnimplementedGRPCInferenceServiceServer
	eng     *inference.Engine
	version string
}

// NewService serves eng's models; version is the gateway's, for
// ServerMetadata.
func NewService(eng *inference.Engine, version string) *Service {
	return &Service{eng: eng, version: version}
}

// Register adds the v2 service to s.
func Register(s *grpc.Server, eng *inference.Engine, version string) {
	inferencev2.RegisterGRPCInferenceServiceServer(s, NewService(eng, version))
}

// NewServer returns a gRPC server with the v2 service, gRPC health and
// server reflection (AddHealthAndReflection). opts come after radgate's
// own (MaxRecvMsgSize), so a caller's win.
func NewServer(eng *inference.Engine, version string, opts ...grpc.ServerOption) *grpc.Server {
	s := grpc.NewServer(append([]grpc.ServerOption{grpc.MaxRecvMsgSize(MaxRecvMsgSize)}, opts...)...)
	Register(s, eng, version)
	AddHealthAndReflection(s)
	return s
}

// AddHealthAndReflection registers gRPC health (grpc.health.v1, SERVING
// for "" and for every service registered on s so far) and server
// reflection (so grpcurl needs no proto file): the last registration on a
// server.
func AddHealthAndReflection(s *grpc.Server) {
	hs := health.NewServer()
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	for name := range s.GetServiceInfo() {
		hs.SetServingStatus(name, healthpb.HealthCheckResponse_SERVING)
	}
	healthpb.RegisterHealthServer(s, hs)
	reflection.Register(s)
}

// ServerLive: the process answers, so it is live.
func (*Service) ServerLive(context.Context, *inferencev2.ServerLiveRequest) (*inferencev2.ServerLiveResponse, error) {
	return &inferencev2.ServerLiveResponse{Live: true}, nil
}

// ServerReady: ready once a model is loaded.
func (s *Service) ServerReady(context.Context, *inferencev2.ServerReadyRequest) (*inferencev2.ServerReadyResponse, error) {
	return &inferencev2.ServerReadyResponse{Ready: len(s.eng.Models()) > 0}, nil
}

// ModelReady answers false, not NotFound, for a model that is not loaded:
// not ready is the answer to the question asked (Triton does the same).
// A loaded model is ready as its Health says: always in process, and for
// a remote model as long as its endpoint answered the last periodic
// check ready.
func (s *Service) ModelReady(_ context.Context, r *inferencev2.ModelReadyRequest) (*inferencev2.ModelReadyResponse, error) {
	if r.GetName() == "" {
		return nil, status.Error(codes.InvalidArgument, "model name is empty")
	}
	l, ok := s.eng.Lookup(Ref(r.GetName(), r.GetVersion()))
	if ok {
		ok, _ = l.Health()
	}
	return &inferencev2.ModelReadyResponse{Ready: ok}, nil
}

// ServerMetadata names the server. Of the v2 extensions it supports
// "parameters" (request parameters: the priority).
func (s *Service) ServerMetadata(context.Context, *inferencev2.ServerMetadataRequest) (*inferencev2.ServerMetadataResponse, error) {
	return &inferencev2.ServerMetadataResponse{Name: serverName, Version: s.version, Extensions: []string{"parameters"}}, nil
}

// ModelMetadata describes a model version from its manifest: versions
// lists every loaded version of the name (only the one asked for when a
// version is given).
func (s *Service) ModelMetadata(_ context.Context, r *inferencev2.ModelMetadataRequest) (*inferencev2.ModelMetadataResponse, error) {
	l, err := s.lookup(r.GetName(), r.GetVersion())
	if err != nil {
		return nil, err
	}
	versions := []string{l.Version}
	if r.GetVersion() == "" {
		versions = versions[:0]
		for _, m := range s.eng.Models() {
			if m.Name == l.Name {
				versions = append(versions, m.Version)
			}
		}
	}
	return &inferencev2.ModelMetadataResponse{
		Name:     l.Name,
		Versions: versions,
		Platform: platform,
		Inputs: []*inferencev2.ModelMetadataResponse_TensorMetadata{
			{Name: l.Input.Name, Datatype: dtFP32, Shape: l.Input.Shape},
		},
		Outputs: []*inferencev2.ModelMetadataResponse_TensorMetadata{
			{Name: l.Output.Name, Datatype: dtFP32, Shape: outputShape(l, -1)},
		},
	}, nil
}

// ModelInfer runs one request through the scheduler. A batch up to the
// model's max batch is queued as one request, so its items run together;
// a larger one is queued in chunks of max batch at once, which the
// workers run side by side.
func (s *Service) ModelInfer(ctx context.Context, r *inferencev2.ModelInferRequest) (*inferencev2.ModelInferResponse, error) {
	l, err := s.lookup(r.GetModelName(), r.GetModelVersion())
	if err != nil {
		return nil, err
	}
	pri, err := priority(r.GetParameters())
	if err != nil {
		return nil, err
	}
	outputs, err := requestedOutputs(l, r.GetOutputs())
	if err != nil {
		return nil, err
	}
	in, err := decodeInput(l, r)
	if err != nil {
		return nil, err
	}
	out, timing, err := s.infer(ctx, l, pri, in)
	if err != nil {
		return nil, Status(err)
	}
	resp := &inferencev2.ModelInferResponse{
		ModelName: l.Name, ModelVersion: l.Version, Id: r.GetId(),
		Parameters: map[string]*inferencev2.InferParameter{
			"queue_time_us":   int64Param(timing.Queue.Microseconds()),
			"compute_time_us": int64Param(timing.Compute.Microseconds()),
		},
	}
	raw := encodeFP32(out.Data)
	for range outputs {
		resp.Outputs = append(resp.Outputs, &inferencev2.ModelInferResponse_InferOutputTensor{
			Name: l.Output.Name, Datatype: dtFP32, Shape: out.Shape,
		})
		resp.RawOutputContents = append(resp.RawOutputContents, raw)
	}
	return resp, nil
}

// infer queues in in chunks of the model's max batch and joins their
// outputs in order. Timing is the slowest chunk's.
func (s *Service) infer(ctx context.Context, l *inference.Loaded, pri inference.Priority, in inference.Tensor) (inference.Tensor, inference.Timing, error) {
	n := int(in.Shape[0])
	step := l.Batching.MaxBatch
	itemIn := len(in.Data) / n
	labels := len(l.Labels)
	out := inference.Tensor{Shape: outputShape(l, int64(n)), Data: make([]float32, n*labels)}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		timing   inference.Timing
	)
	for lo := 0; lo < n; lo += step {
		hi := min(lo+step, n)
		chunk := inference.Tensor{
			Shape: append([]int64{int64(hi - lo)}, in.Shape[1:]...),
			Data:  in.Data[lo*itemIn : hi*itemIn],
		}
		wg.Go(func() {
			res, t, err := s.eng.Scheduler().Infer(ctx, l.ID(), pri, []inference.Tensor{chunk})
			if err == nil && (len(res) != 1 || len(res[0].Data) != (hi-lo)*labels) {
				err = fmt.Errorf("%w: %s returned %d outputs", errBackend, l.ID(), len(res))
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if firstErr == nil {
					firstErr = err
					cancel()
				}
				return
			}
			copy(out.Data[lo*labels:], res[0].Data)
			timing.Queue = max(timing.Queue, t.Queue)
			timing.Compute = max(timing.Compute, t.Compute)
		})
	}
	wg.Wait()
	return out, timing, firstErr
}

// errBackend: the model answered with tensors its manifest does not have.
var errBackend = errors.New("kserve: unexpected model output")

func outputShape(l *inference.Loaded, n int64) []int64 { return []int64{n, int64(len(l.Labels))} }

func int64Param(v int64) *inferencev2.InferParameter {
	return &inferencev2.InferParameter{ParameterChoice: &inferencev2.InferParameter_Int64Param{Int64Param: v}}
}

// Ref is the engine's model reference: name, or name@version.
func Ref(name, version string) string {
	if version == "" {
		return name
	}
	return name + "@" + version
}

func (s *Service) lookup(name, version string) (*inference.Loaded, error) {
	if name == "" {
		return nil, status.Error(codes.InvalidArgument, "model name is empty")
	}
	l, ok := s.eng.Lookup(Ref(name, version))
	if !ok {
		return nil, status.Errorf(codes.NotFound, "model %q not loaded", Ref(name, version))
	}
	return l, nil
}

// requestedOutputs checks the outputs asked for; none means all (the
// model has one).
func requestedOutputs(l *inference.Loaded, req []*inferencev2.ModelInferRequest_InferRequestedOutputTensor) ([]string, error) {
	if len(req) == 0 {
		return []string{l.Output.Name}, nil
	}
	if len(req) > 1 {
		return nil, status.Errorf(codes.InvalidArgument, "%d outputs requested; model %s has one, %q", len(req), l.ID(), l.Output.Name)
	}
	if req[0].GetName() != l.Output.Name {
		return nil, status.Errorf(codes.InvalidArgument, "output %q requested; model %s has %q", req[0].GetName(), l.ID(), l.Output.Name)
	}
	return []string{l.Output.Name}, nil
}

// priority reads the request parameter: a name (inference.ParsePriority)
// or Triton's int64, where 1 is the highest level and 0 the default.
func priority(params map[string]*inferencev2.InferParameter) (inference.Priority, error) {
	p, ok := params[priorityParam]
	if !ok {
		return inference.Routine, nil
	}
	switch v := p.GetParameterChoice().(type) {
	case *inferencev2.InferParameter_StringParam:
		pri, err := inference.ParsePriority(v.StringParam)
		if err != nil {
			return 0, status.Error(codes.InvalidArgument, err.Error())
		}
		return pri, nil
	case *inferencev2.InferParameter_Int64Param:
		switch n := v.Int64Param; {
		case n < 0:
			return 0, status.Errorf(codes.InvalidArgument, "priority %d: want 0 (default) or 1 (highest) and above", n)
		case n == 0:
			return inference.Routine, nil
		case n <= int64(inference.Stat):
			return inference.Stat - inference.Priority(n-1), nil
		default:
			return inference.Low, nil
		}
	}
	return 0, status.Error(codes.InvalidArgument, "priority: want a string (low, routine, high, stat) or an int64")
}

// Status maps the engine's errors to gRPC status errors (for every API
// over the engine).
func Status(err error) error {
	code := codes.Internal
	switch {
	case errors.Is(err, inference.ErrNoModel):
		code = codes.NotFound
	case errors.Is(err, inference.ErrQueueFull):
		code = codes.ResourceExhausted
	case errors.Is(err, inference.ErrBadRequest), errors.Is(err, inference.ErrBatchTooLarge),
		errors.Is(err, inference.ErrNothingRan):
		code = codes.InvalidArgument
	case errors.Is(err, inference.ErrStopped):
		code = codes.Unavailable
	case errors.Is(err, context.DeadlineExceeded):
		code = codes.DeadlineExceeded
	case errors.Is(err, context.Canceled):
		code = codes.Canceled
	}
	return status.Error(code, err.Error())
}
