package loadtest

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"

	"google.golang.org/grpc"

	inferencev2 "github.com/radgate/radgate/api/kserve/v2"
)

const (
	// MaxInputBytes bounds the request body a model's metadata may ask
	// us to build (checked before allocating): 256 MiB is 640 chest
	// radiographs at 320×320 FP32.
	MaxInputBytes = 256 << 20
	// Seed makes the generated inputs the same on every run.
	Seed = 20240229
	// priorityParam is the request parameter radgate reads the queue
	// priority from (api/kserve).
	priorityParam = "priority"
)

// Request describes the request NewRequest builds.
type Request struct {
	Model, Version string
	Batch          int    // replaces the input's leading -1
	Priority       string // sent as parameter "priority" when not empty
}

// NewRequest builds a ModelInfer request for md's inputs (all FP32):
// deterministic uniform [0, 1) values from Seed, little-endian, in
// raw_input_contents. The leading -1 dimension becomes r.Batch; any other
// -1 is ErrShape, as is a fixed shape with a Batch above 1.
func NewRequest(md *inferencev2.ModelMetadataResponse, r Request) (*inferencev2.ModelInferRequest, error) {
	batch := max(r.Batch, 1)
	if len(md.GetInputs()) == 0 {
		return nil, fmt.Errorf("%w: model %s has no inputs", ErrShape, md.GetName())
	}
	req := &inferencev2.ModelInferRequest{ModelName: r.Model, ModelVersion: r.Version}
	if r.Priority != "" {
		req.Parameters = map[string]*inferencev2.InferParameter{
			priorityParam: {ParameterChoice: &inferencev2.InferParameter_StringParam{StringParam: r.Priority}},
		}
	}
	rng := rand.New(rand.NewPCG(Seed, Seed))
	total := 0
	for _, in := range md.Inputs {
		if in.Datatype != "FP32" {
			return nil, fmt.Errorf("%w: input %s is %s", ErrUnsupportedType, in.Name, in.Datatype)
		}
		shape, n, err := concreteShape(in, batch)
		if err != nil {
			return nil, err
		}
		if total += 4 * n; total > MaxInputBytes {
			return nil, fmt.Errorf("%w: inputs over %d bytes", ErrShape, MaxInputBytes)
		}
		raw := make([]byte, 4*n)
		for i := range n {
			binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(rng.Float32()))
		}
		req.Inputs = append(req.Inputs, &inferencev2.ModelInferRequest_InferInputTensor{Name: in.Name, Datatype: in.Datatype, Shape: shape})
		req.RawInputContents = append(req.RawInputContents, raw)
	}
	return req, nil
}

// concreteShape is in's shape with the leading -1 set to batch, and its
// element count (bounded by MaxInputBytes before it can overflow).
func concreteShape(in *inferencev2.ModelMetadataResponse_TensorMetadata, batch int) ([]int64, int, error) {
	shape := make([]int64, len(in.Shape))
	n := 1
	for i, d := range in.Shape {
		switch {
		case d == -1 && i == 0:
			d = int64(batch)
		case d < 0:
			return nil, 0, fmt.Errorf("%w: input %s shape %v: only the leading dimension may be -1", ErrShape, in.Name, in.Shape)
		case i == 0 && batch > 1:
			return nil, 0, fmt.Errorf("%w: input %s shape %v has no batch dimension; batch %d", ErrShape, in.Name, in.Shape, batch)
		}
		if d > 0 && int64(n) > MaxInputBytes/4/d {
			return nil, 0, fmt.Errorf("%w: input %s shape %v over %d bytes", ErrShape, in.Name, in.Shape, MaxInputBytes)
		}
		shape[i] = d
		n *= int(d)
	}
	return shape, n, nil
}

// GRPCClient sends one fixed ModelInfer request to a KServe v2 server.
type GRPCClient struct {
	svc inferencev2.GRPCInferenceServiceClient
	req *inferencev2.ModelInferRequest
}

// NewGRPCClient reads r.Model's metadata over conn and builds its request
// (NewRequest). The request is shared by every call: gRPC only reads it.
func NewGRPCClient(ctx context.Context, conn grpc.ClientConnInterface, r Request) (*GRPCClient, error) {
	svc := inferencev2.NewGRPCInferenceServiceClient(conn)
	md, err := svc.ModelMetadata(ctx, &inferencev2.ModelMetadataRequest{Name: r.Model, Version: r.Version})
	if err != nil {
		return nil, fmt.Errorf("loadtest: metadata of %s: %w", r.Model, err)
	}
	req, err := NewRequest(md, r)
	if err != nil {
		return nil, err
	}
	return &GRPCClient{svc: svc, req: req}, nil
}

// Request is the request every Infer sends.
func (c *GRPCClient) Request() *inferencev2.ModelInferRequest { return c.req }

// Infer sends the request; the answer is discarded.
func (c *GRPCClient) Infer(ctx context.Context) error {
	_, err := c.svc.ModelInfer(ctx, c.req)
	return err
}
