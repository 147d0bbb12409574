package inference

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	inferencev2 "github.com/radgate/radgate/api/kserve/v2"
	"github.com/radgate/radgate/models"
)

// remoteBackend runs a model on a KServe v2 gRPC endpoint (another
// radgate, a Triton server): the scheduler's batches go out as one
// ModelInfer each, FP32 little-endian raw contents. Only tensors leave the
// process, never a DICOM header.
//
// While it is loaded, a goroutine asks the endpoint ModelReady every
// interval and keeps the answer (health); Close stops it.
type remoteBackend struct {
	conn   *grpc.ClientConn
	client inferencev2.GRPCInferenceServiceClient
	r      models.Remote
	input  string
	output string
	// interval between health checks (remoteHealthInterval at dial).
	interval time.Duration

	mu     sync.Mutex
	health remoteHealth
	closed bool
	// Set by watch: the model's ID here, where changes go, and the
	// stop of the checks for Close.
	id      string
	log     *slog.Logger
	metrics *Metrics
	cancel  context.CancelFunc
	done    chan struct{}
}

// remoteHealth is what the endpoint last answered: ready or not, the
// error while not, and since when it has been so.
type remoteHealth struct {
	ready bool
	err   string
	since time.Time
}

// remoteHealthInterval is how often a loaded remote model's endpoint is
// asked ModelReady (a variable so that tests can shorten it).
var remoteHealthInterval = 10 * time.Second

// remoteRetryWait is the first wait before retrying a remote call; it
// doubles per retry.
const remoteRetryWait = 100 * time.Millisecond

// dialRemote connects to a remote model's endpoint and checks, as Load
// checks an ONNX graph, that it serves the model ready with the tensors
// the manifest declares.
func dialRemote(md models.Model) (*remoteBackend, error) {
	r := *md.Remote
	if r.Model == "" {
		r.Model = md.Name
	}
	if r.Timeout == 0 {
		r.Timeout = models.DefaultRemoteTimeout
	}
	interval := remoteHealthInterval
	// Reconnect attempts back off to one health interval at most, not
	// gRPC's default of two minutes, so that an endpoint that comes back
	// is seen by the next check or the one after.
	bo := backoff.DefaultConfig
	bo.BaseDelay, bo.MaxDelay = min(bo.BaseDelay, interval), interval
	conn, err := grpc.NewClient(r.Address, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: bo, MinConnectTimeout: 20 * time.Second}),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20), grpc.MaxCallSendMsgSize(64<<20)))
	if err != nil {
		return nil, fmt.Errorf("inference: %s: remote %s: %w", md.ID(), r.Address, err)
	}
	b := &remoteBackend{conn: conn, client: inferencev2.NewGRPCInferenceServiceClient(conn), r: r,
		input: md.Input.Name, output: md.Output.Name, interval: interval}
	ctx, cancel := context.WithTimeout(context.Background(), r.Timeout)
	defer cancel()
	if err := b.check(ctx, md); err != nil {
		conn.Close()
		return nil, err
	}
	b.health = remoteHealth{ready: true, since: time.Now()}
	return b, nil
}

// watch starts the health checks of the model loaded as id: ModelReady
// every interval, with the call timeout. A change is recorded, logged
// once (Warn when the endpoint goes down, Info when it is back) and set
// on the radgate_model_remote_up gauge. Calls are not refused while it is
// down: they are tried, and retried, as always.
func (b *remoteBackend) watch(id string, log *slog.Logger, m *Metrics) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed || b.cancel != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	b.id, b.log, b.metrics, b.cancel, b.done = id, log, m, cancel, make(chan struct{})
	m.remoteUp(id, b.health.ready)
	go func() {
		defer close(b.done)
		t := time.NewTicker(b.interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			err := b.ping(ctx)
			if ctx.Err() != nil {
				return
			}
			b.record(err)
		}
	}()
}

// ping asks the endpoint whether it has the model ready.
func (b *remoteBackend) ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, b.r.Timeout)
	defer cancel()
	ready, err := b.client.ModelReady(ctx, &inferencev2.ModelReadyRequest{Name: b.r.Model, Version: b.r.Version})
	switch {
	case err != nil:
		return err
	case !ready.Ready:
		return fmt.Errorf("model %s is not ready there", b.r.Model)
	}
	return nil
}

// record keeps a check's outcome; a change of state is logged and
// exported, the same state again only updates the error text.
func (b *remoteBackend) record(err error) {
	up := err == nil
	b.mu.Lock()
	changed := b.health.ready != up
	b.health.ready, b.health.err = up, ""
	if err != nil {
		b.health.err = err.Error()
	}
	if changed {
		b.health.since = time.Now()
	}
	b.mu.Unlock()
	if !changed {
		return
	}
	b.metrics.remoteUp(b.id, up)
	if up {
		b.log.Info("remote model ready again", "model", b.id, "address", b.r.Address)
	} else {
		b.log.Warn("remote model not ready", "model", b.id, "address", b.r.Address, "err", err)
	}
}

// state is the last health check's answer and, while not ready, why and
// since when, for an operator.
func (b *remoteBackend) state() (bool, string) {
	b.mu.Lock()
	h := b.health
	b.mu.Unlock()
	if h.ready {
		return true, ""
	}
	return false, fmt.Sprintf("remote %s not ready since %s: %s", b.r.Address, h.since.UTC().Format(time.RFC3339), h.err)
}

func (b *remoteBackend) check(ctx context.Context, md models.Model) error {
	ready, err := b.client.ModelReady(ctx, &inferencev2.ModelReadyRequest{Name: b.r.Model, Version: b.r.Version})
	if err != nil {
		return fmt.Errorf("inference: %s: remote %s: %w", md.ID(), b.r.Address, err)
	}
	if !ready.Ready {
		return fmt.Errorf("inference: %s: remote %s does not have model %s ready", md.ID(), b.r.Address, b.r.Model)
	}
	meta, err := b.client.ModelMetadata(ctx, &inferencev2.ModelMetadataRequest{Name: b.r.Model, Version: b.r.Version})
	if err != nil {
		return fmt.Errorf("inference: %s: remote %s: %w", md.ID(), b.r.Address, err)
	}
	in := slices.IndexFunc(meta.Inputs, func(t *inferencev2.ModelMetadataResponse_TensorMetadata) bool { return t.Name == md.Input.Name })
	out := slices.IndexFunc(meta.Outputs, func(t *inferencev2.ModelMetadataResponse_TensorMetadata) bool { return t.Name == md.Output.Name })
	switch {
	case in < 0 || out < 0:
		return fmt.Errorf("%w: %s: remote %s model %s has no input %q and output %q", ErrGraph, md.ID(), b.r.Address, b.r.Model, md.Input.Name, md.Output.Name)
	case meta.Inputs[in].Datatype != "FP32" || !sameDims(meta.Inputs[in].Shape, md.Input.Shape):
		return fmt.Errorf("%w: %s: remote input %s is %s %v, manifest says FP32 %v", ErrGraph, md.ID(), md.Input.Name,
			meta.Inputs[in].Datatype, meta.Inputs[in].Shape, md.Input.Shape)
	}
	return nil
}

// sameDims compares shapes, a -1 (any) on either side matching anything.
func sameDims(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] && a[i] != -1 && b[i] != -1 {
			return false
		}
	}
	return true
}

func (b *remoteBackend) Run(ctx context.Context, in []Tensor) ([]Tensor, error) {
	if len(in) != 1 {
		return nil, fmt.Errorf("inference: remote model: %d inputs, want 1", len(in))
	}
	raw := make([]byte, 4*len(in[0].Data))
	for i, v := range in[0].Data {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
	}
	req := &inferencev2.ModelInferRequest{
		ModelName: b.r.Model, ModelVersion: b.r.Version,
		Inputs:           []*inferencev2.ModelInferRequest_InferInputTensor{{Name: b.input, Datatype: "FP32", Shape: in[0].Shape}},
		RawInputContents: [][]byte{raw},
		Outputs:          []*inferencev2.ModelInferRequest_InferRequestedOutputTensor{{Name: b.output}},
	}
	wait := remoteRetryWait
	for attempt := 0; ; attempt++ {
		cctx, cancel := context.WithTimeout(ctx, b.r.Timeout)
		resp, err := b.client.ModelInfer(cctx, req)
		cancel()
		if err == nil {
			return b.decode(resp)
		}
		if c := status.Code(err); attempt >= b.r.Retries || ctx.Err() != nil || (c != codes.Unavailable && c != codes.ResourceExhausted) {
			return nil, fmt.Errorf("inference: remote %s model %s: %w", b.r.Address, b.r.Model, err)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
		wait *= 2
	}
}

// decode reads the output tensor, raw or typed FP32.
func (b *remoteBackend) decode(resp *inferencev2.ModelInferResponse) ([]Tensor, error) {
	i := slices.IndexFunc(resp.Outputs, func(t *inferencev2.ModelInferResponse_InferOutputTensor) bool { return t.Name == b.output })
	if i < 0 {
		return nil, fmt.Errorf("%w: remote %s answered without output %q", ErrGraph, b.r.Address, b.output)
	}
	o := resp.Outputs[i]
	if o.Datatype != "FP32" {
		return nil, fmt.Errorf("%w: remote output %s is %s, want FP32", ErrGraph, b.output, o.Datatype)
	}
	n := int64(1)
	for _, d := range o.Shape {
		n *= d
	}
	var data []float32
	switch {
	case i < len(resp.RawOutputContents):
		raw := resp.RawOutputContents[i]
		if int64(len(raw)) != 4*n {
			return nil, fmt.Errorf("%w: remote output %s: %d bytes for shape %v", ErrGraph, b.output, len(raw), o.Shape)
		}
		data = make([]float32, n)
		for k := range data {
			data[k] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*k:]))
		}
	case o.Contents != nil && int64(len(o.Contents.Fp32Contents)) == n:
		data = o.Contents.Fp32Contents
	default:
		return nil, errors.New("inference: remote output has no contents of its shape")
	}
	return []Tensor{{Shape: o.Shape, Data: data}}, nil
}

// Close stops the health checks, waiting for the one under way, and
// closes the connection.
func (b *remoteBackend) Close() error {
	b.mu.Lock()
	watching := !b.closed && b.cancel != nil
	b.closed = true
	b.mu.Unlock()
	if watching {
		b.cancel()
		<-b.done
		b.metrics.remoteGone(b.id)
	}
	return b.conn.Close()
}
