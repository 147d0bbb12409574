package inference

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"google.golang.org/grpc"
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
type remoteBackend struct {
	conn   *grpc.ClientConn
	client inferencev2.GRPCInferenceServiceClient
	r      models.Remote
	input  string
	output string
}

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
	conn, err := grpc.NewClient(r.Address, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20), grpc.MaxCallSendMsgSize(64<<20)))
	if err != nil {
		return nil, fmt.Errorf("inference: %s: remote %s: %w", md.ID(), r.Address, err)
	}
	b := &remoteBackend{conn: conn, client: inferencev2.NewGRPCInferenceServiceClient(conn), r: r,
		input: md.Input.Name, output: md.Output.Name}
	ctx, cancel := context.WithTimeout(context.Background(), r.Timeout)
	defer cancel()
	if err := b.check(ctx, md); err != nil {
		conn.Close()
		return nil, err
	}
	return b, nil
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

func (b *remoteBackend) Close() error { return b.conn.Close() }
