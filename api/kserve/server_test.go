package kserve

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net"
	"slices"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	inferencev2 "github.com/radgate/radgate/api/kserve/v2"
	"github.com/radgate/radgate/inference"
	"github.com/radgate/radgate/internal/refengine"
)

const testVersion = "test-1"

// fixture is an engine on the reference models served in process.
type fixture struct {
	eng    *inference.Engine
	addr   string
	client inferencev2.GRPCInferenceServiceClient
	conn   *grpc.ClientConn
}

func serve(t testing.TB) *fixture {
	t.Helper()
	eng := refengine.Open(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(eng, testVersion)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	conn, err := grpc.NewClient(l.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
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
	return &fixture{eng: eng, addr: l.Addr().String(), client: inferencev2.NewGRPCInferenceServiceClient(conn), conn: conn}
}

func (f *fixture) model(t *testing.T, name string) *inference.Loaded {
	t.Helper()
	l, ok := f.eng.Lookup(name)
	if !ok {
		t.Fatalf("%s not loaded", name)
	}
	return l
}

// items is n batch items of l's input: deterministic values k/256, which
// FP16, UINT8 (as k) and INT64 (as k) all carry exactly.
func items(l *inference.Loaded, n int) (shape []int64, ks []uint8) {
	shape = append([]int64{int64(n)}, l.Input.Shape[1:]...)
	size := n
	for _, d := range shape[1:] {
		size *= int(d)
	}
	ks = make([]uint8, size)
	x := uint32(12345)
	for i := range ks {
		x = x*1664525 + 1013904223
		ks[i] = uint8(x >> 24)
	}
	return shape, ks
}

// direct runs the same tensor through the engine's scheduler.
func (f *fixture) direct(t *testing.T, l *inference.Loaded, shape []int64, data []float32) []float32 {
	t.Helper()
	out, _, err := f.eng.Scheduler().Infer(t.Context(), l.ID(), inference.Routine, []inference.Tensor{{Shape: shape, Data: data}})
	if err != nil {
		t.Fatal(err)
	}
	return out[0].Data
}

func scale(ks []uint8, s float32) []float32 {
	v := make([]float32, len(ks))
	for i, k := range ks {
		v[i] = float32(k) * s
	}
	return v
}

func rawOutput(t *testing.T, l *inference.Loaded, n int, resp *inferencev2.ModelInferResponse) []float32 {
	t.Helper()
	if len(resp.Outputs) != 1 || len(resp.RawOutputContents) != 1 {
		t.Fatalf("outputs %v, %d raw", resp.Outputs, len(resp.RawOutputContents))
	}
	o := resp.Outputs[0]
	if o.Name != l.Output.Name || o.Datatype != "FP32" || fmt.Sprint(o.Shape) != fmt.Sprint([]int64{int64(n), int64(len(l.Labels))}) {
		t.Fatalf("output %s %s %v", o.Name, o.Datatype, o.Shape)
	}
	b := resp.RawOutputContents[0]
	v := make([]float32, len(b)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v
}

func near(t *testing.T, got, want []float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d values, want %d", len(got), len(want))
	}
	for i := range got {
		if math.Abs(float64(got[i]-want[i])) > 1e-6 {
			t.Fatalf("value %d: %v, engine says %v", i, got[i], want[i])
		}
	}
}

func TestMetadataRPCs(t *testing.T) {
	f := serve(t)
	ctx := t.Context()
	live, err := f.client.ServerLive(ctx, &inferencev2.ServerLiveRequest{})
	if err != nil || !live.Live {
		t.Fatalf("ServerLive %v %v", live, err)
	}
	ready, err := f.client.ServerReady(ctx, &inferencev2.ServerReadyRequest{})
	if err != nil || !ready.Ready {
		t.Fatalf("ServerReady %v %v", ready, err)
	}
	for _, c := range []struct {
		name, version string
		ready         bool
	}{{"cxr-triage", "", true}, {"cxr-triage", "1.0.0", true}, {"cxr-triage", "9.9.9", false}, {"nope", "", false}} {
		r, err := f.client.ModelReady(ctx, &inferencev2.ModelReadyRequest{Name: c.name, Version: c.version})
		if err != nil || r.Ready != c.ready {
			t.Errorf("ModelReady(%s, %q) = %v, %v; want %v", c.name, c.version, r, err, c.ready)
		}
	}
	md, err := f.client.ServerMetadata(ctx, &inferencev2.ServerMetadataRequest{})
	if err != nil || md.Name != "radgate" || md.Version != testVersion {
		t.Fatalf("ServerMetadata %v %v", md, err)
	}
	mm, err := f.client.ModelMetadata(ctx, &inferencev2.ModelMetadataRequest{Name: "cxr-triage"})
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprintln(mm.Name, mm.Versions, mm.Platform, mm.Inputs[0].Name, mm.Inputs[0].Datatype, mm.Inputs[0].Shape,
		mm.Outputs[0].Name, mm.Outputs[0].Datatype, mm.Outputs[0].Shape); got != "cxr-triage [1.0.0] onnxruntime_onnx image FP32 [-1 1 320 320] probabilities FP32 [-1 2]\n" {
		t.Errorf("ModelMetadata: %s", got)
	}
	if mm.Inputs[0].Shape[0] != -1 || mm.Outputs[0].Shape[1] != int64(len(f.model(t, "cxr-triage").Labels)) {
		t.Errorf("ModelMetadata shapes %v %v", mm.Inputs[0].Shape, mm.Outputs[0].Shape)
	}
	if _, err := f.client.ModelMetadata(ctx, &inferencev2.ModelMetadataRequest{Name: "nope"}); status.Code(err) != codes.NotFound {
		t.Errorf("ModelMetadata(nope): %v, want NotFound", err)
	}
	h, err := healthpb.NewHealthClient(f.conn).Check(ctx, &healthpb.HealthCheckRequest{Service: ServiceName})
	if err != nil || h.Status != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("health %v %v", h, err)
	}
}

// TestModelInfer sends the same values in every datatype and encoding the
// server accepts; each answer must be the engine's own for those values.
func TestModelInfer(t *testing.T) {
	f := serve(t)
	cxr, ct := f.model(t, "cxr-triage"), f.model(t, "ct-ich")
	halfOf := halfTable()
	for _, c := range []struct {
		name     string
		model    *inference.Loaded
		n        int
		datatype string
		typed    bool
		scale    float32 // the float value of k
	}{
		{"fp32 raw", cxr, 1, dtFP32, false, 1.0 / 256},
		{"fp32 typed", cxr, 1, dtFP32, true, 1.0 / 256},
		{"fp16 raw", cxr, 1, dtFP16, false, 1.0 / 256},
		{"uint8 raw", cxr, 1, dtUINT8, false, 1},
		{"uint8 typed", cxr, 1, dtUINT8, true, 1},
		{"int64 raw", ct, 1, dtINT64, false, 1},
		{"int64 typed", ct, 1, dtINT64, true, 1},
		{"fp32 batch 2", cxr, 2, dtFP32, false, 1.0 / 256},
		{"fp32 batch 20 in chunks of 16", ct, 20, dtFP32, false, 1.0 / 256},
	} {
		t.Run(c.name, func(t *testing.T) {
			shape, ks := items(c.model, c.n)
			want := c.model.Input
			in := &inferencev2.ModelInferRequest_InferInputTensor{Name: want.Name, Datatype: c.datatype, Shape: shape}
			req := &inferencev2.ModelInferRequest{ModelName: c.model.Name, Id: "req-1", Inputs: []*inferencev2.ModelInferRequest_InferInputTensor{in},
				Parameters: map[string]*inferencev2.InferParameter{"priority": {ParameterChoice: &inferencev2.InferParameter_StringParam{StringParam: "STAT"}}}}
			values := scale(ks, c.scale)
			var raw []byte
			switch {
			case c.typed && c.datatype == dtFP32:
				in.Contents = &inferencev2.InferTensorContents{Fp32Contents: values}
			case c.typed && c.datatype == dtUINT8:
				in.Contents = &inferencev2.InferTensorContents{}
				for _, k := range ks {
					in.Contents.UintContents = append(in.Contents.UintContents, uint32(k))
				}
			case c.typed && c.datatype == dtINT64:
				in.Contents = &inferencev2.InferTensorContents{}
				for _, k := range ks {
					in.Contents.Int64Contents = append(in.Contents.Int64Contents, int64(k))
				}
			case c.datatype == dtFP32:
				raw = encodeFP32(values)
			case c.datatype == dtFP16:
				for _, v := range values {
					raw = binary.LittleEndian.AppendUint16(raw, halfOf[v])
				}
			case c.datatype == dtUINT8:
				raw = ks
			case c.datatype == dtINT64:
				for _, k := range ks {
					raw = binary.LittleEndian.AppendUint64(raw, uint64(k))
				}
			}
			if raw != nil {
				req.RawInputContents = [][]byte{raw}
			}
			resp, err := f.client.ModelInfer(t.Context(), req)
			if err != nil {
				t.Fatal(err)
			}
			if resp.ModelName != c.model.Name || resp.ModelVersion != c.model.Version || resp.Id != "req-1" {
				t.Errorf("response names %s %s %s", resp.ModelName, resp.ModelVersion, resp.Id)
			}
			got := rawOutput(t, c.model, c.n, resp)
			var direct []float32
			step := c.model.Batching.MaxBatch
			item := len(values) / c.n
			for lo := 0; lo < c.n; lo += step {
				hi := min(lo+step, c.n)
				direct = append(direct, f.direct(t, c.model, append([]int64{int64(hi - lo)}, shape[1:]...), values[lo*item:hi*item])...)
			}
			near(t, got, direct)
		})
	}
}

// halfTable inverts halfToFloat over every finite binary16 value (checked
// against fixed bit patterns in TestHalfToFloat).
func halfTable() map[float32]uint16 {
	m := map[float32]uint16{}
	for h := range 1 << 16 {
		v := halfToFloat(uint16(h))
		if _, ok := m[v]; !ok && !math.IsNaN(float64(v)) {
			m[v] = uint16(h)
		}
	}
	return m
}

func TestHalfToFloat(t *testing.T) {
	for _, c := range []struct {
		h    uint16
		want float64
	}{
		{0x0000, 0}, {0x3c00, 1}, {0xc000, -2}, {0x3555, 0.333251953125}, {0x7bff, 65504},
		{0x0001, math.Ldexp(1, -24)}, {0x03ff, math.Ldexp(1023, -24)}, {0x0400, math.Ldexp(1, -14)},
		{0x8001, -math.Ldexp(1, -24)}, {0x7c00, math.Inf(1)}, {0xfc00, math.Inf(-1)},
	} {
		if got := halfToFloat(c.h); float64(got) != c.want {
			t.Errorf("halfToFloat(%#04x) = %v, want %v", c.h, got, c.want)
		}
	}
	if v := halfToFloat(0x7e00); !math.IsNaN(float64(v)) {
		t.Errorf("halfToFloat(0x7e00) = %v, want NaN", v)
	}
	if v := halfToFloat(0x8000); v != 0 || !math.Signbit(float64(v)) {
		t.Errorf("halfToFloat(0x8000) = %v, want -0", v)
	}
}

func TestModelInferErrors(t *testing.T) {
	f := serve(t)
	cxr := f.model(t, "cxr-triage")
	shape, ks := items(cxr, 1)
	good := func() *inferencev2.ModelInferRequest {
		return &inferencev2.ModelInferRequest{ModelName: "cxr-triage",
			Inputs:           []*inferencev2.ModelInferRequest_InferInputTensor{{Name: "image", Datatype: "UINT8", Shape: slices.Clone(shape)}},
			RawInputContents: [][]byte{ks}}
	}
	strParam := func(s string) *inferencev2.InferParameter {
		return &inferencev2.InferParameter{ParameterChoice: &inferencev2.InferParameter_StringParam{StringParam: s}}
	}
	for _, c := range []struct {
		name string
		edit func(r *inferencev2.ModelInferRequest)
		code codes.Code
	}{
		{"ok", func(*inferencev2.ModelInferRequest) {}, codes.OK},
		{"unknown model", func(r *inferencev2.ModelInferRequest) { r.ModelName = "nope" }, codes.NotFound},
		{"unknown version", func(r *inferencev2.ModelInferRequest) { r.ModelVersion = "2.0.0" }, codes.NotFound},
		{"wrong shape", func(r *inferencev2.ModelInferRequest) { r.Inputs[0].Shape = []int64{1, 1, 224, 224} }, codes.InvalidArgument},
		{"wrong rank", func(r *inferencev2.ModelInferRequest) { r.Inputs[0].Shape = []int64{1, 320, 320} }, codes.InvalidArgument},
		{"zero batch", func(r *inferencev2.ModelInferRequest) { r.Inputs[0].Shape[0] = 0 }, codes.InvalidArgument},
		{"batch over the limit", func(r *inferencev2.ModelInferRequest) { r.Inputs[0].Shape[0] = maxItems + 1 }, codes.InvalidArgument},
		{"short raw", func(r *inferencev2.ModelInferRequest) { r.RawInputContents[0] = ks[1:] }, codes.InvalidArgument},
		{"raw and typed", func(r *inferencev2.ModelInferRequest) {
			r.Inputs[0].Contents = &inferencev2.InferTensorContents{}
		}, codes.InvalidArgument},
		{"typed count", func(r *inferencev2.ModelInferRequest) {
			r.RawInputContents = nil
			r.Inputs[0].Contents = &inferencev2.InferTensorContents{UintContents: []uint32{1, 2}}
		}, codes.InvalidArgument},
		{"typed UINT8 over 255", func(r *inferencev2.ModelInferRequest) {
			r.RawInputContents = nil
			v := make([]uint32, len(ks))
			v[7] = 300
			r.Inputs[0].Contents = &inferencev2.InferTensorContents{UintContents: v}
		}, codes.InvalidArgument},
		{"typed FP16", func(r *inferencev2.ModelInferRequest) {
			r.RawInputContents = nil
			r.Inputs[0].Datatype = "FP16"
			r.Inputs[0].Contents = &inferencev2.InferTensorContents{}
		}, codes.InvalidArgument},
		{"datatype", func(r *inferencev2.ModelInferRequest) { r.Inputs[0].Datatype = "BF16" }, codes.InvalidArgument},
		{"input name", func(r *inferencev2.ModelInferRequest) { r.Inputs[0].Name = "slices" }, codes.InvalidArgument},
		{"two inputs", func(r *inferencev2.ModelInferRequest) { r.Inputs = append(r.Inputs, r.Inputs[0]) }, codes.InvalidArgument},
		{"output name", func(r *inferencev2.ModelInferRequest) {
			r.Outputs = []*inferencev2.ModelInferRequest_InferRequestedOutputTensor{{Name: "logits"}}
		}, codes.InvalidArgument},
		{"output requested", func(r *inferencev2.ModelInferRequest) {
			r.Outputs = []*inferencev2.ModelInferRequest_InferRequestedOutputTensor{{Name: "probabilities"}}
		}, codes.OK},
		{"priority name", func(r *inferencev2.ModelInferRequest) {
			r.Parameters = map[string]*inferencev2.InferParameter{"priority": strParam("urgent")}
		}, codes.InvalidArgument},
		{"priority bool", func(r *inferencev2.ModelInferRequest) {
			r.Parameters = map[string]*inferencev2.InferParameter{"priority": {ParameterChoice: &inferencev2.InferParameter_BoolParam{BoolParam: true}}}
		}, codes.InvalidArgument},
		{"triton priority", func(r *inferencev2.ModelInferRequest) {
			r.Parameters = map[string]*inferencev2.InferParameter{"priority": int64Param(1)}
		}, codes.OK},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := good()
			c.edit(r)
			_, err := f.client.ModelInfer(t.Context(), r)
			if status.Code(err) != c.code {
				t.Fatalf("%v, want %v", err, c.code)
			}
		})
	}
}

func TestPriority(t *testing.T) {
	for _, c := range []struct {
		p    *inferencev2.InferParameter
		want inference.Priority
	}{
		{nil, inference.Routine},
		{&inferencev2.InferParameter{ParameterChoice: &inferencev2.InferParameter_StringParam{StringParam: "low"}}, inference.Low},
		{&inferencev2.InferParameter{ParameterChoice: &inferencev2.InferParameter_StringParam{StringParam: "High"}}, inference.High},
		{int64Param(0), inference.Routine},
		{int64Param(1), inference.Stat},
		{int64Param(2), inference.High},
		{int64Param(3), inference.Routine},
		{int64Param(4), inference.Low},
		{int64Param(99), inference.Low},
	} {
		params := map[string]*inferencev2.InferParameter{}
		if c.p != nil {
			params["priority"] = c.p
		}
		if got, err := priority(params); err != nil || got != c.want {
			t.Errorf("priority(%v) = %v, %v; want %v", c.p, got, err, c.want)
		}
	}
	if _, err := priority(map[string]*inferencev2.InferParameter{"priority": int64Param(-1)}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("priority -1: %v", err)
	}
}

func TestStatus(t *testing.T) {
	for _, c := range []struct {
		err  error
		code codes.Code
	}{
		{fmt.Errorf("%w: x", inference.ErrNoModel), codes.NotFound},
		{fmt.Errorf("%w: x", inference.ErrQueueFull), codes.ResourceExhausted},
		{fmt.Errorf("%w: x", inference.ErrBadRequest), codes.InvalidArgument},
		{fmt.Errorf("%w: x", inference.ErrBatchTooLarge), codes.InvalidArgument},
		{fmt.Errorf("%w: x", inference.ErrNothingRan), codes.InvalidArgument},
		{fmt.Errorf("%w: x", inference.ErrStopped), codes.Unavailable},
		{context.DeadlineExceeded, codes.DeadlineExceeded},
		{context.Canceled, codes.Canceled},
		{errors.New("ort: boom"), codes.Internal},
	} {
		if got := status.Code(Status(c.err)); got != c.code {
			t.Errorf("Status(%v) = %v, want %v", c.err, got, c.code)
		}
	}
}

// TestDeadline: a request whose deadline passes in the queue or in Run
// answers DeadlineExceeded.
func TestDeadline(t *testing.T) {
	f := serve(t)
	ct := f.model(t, "ct-ich")
	shape, ks := items(ct, 16)
	ctx, cancel := context.WithTimeout(t.Context(), 1) // 1ns: gone before the server sees it
	defer cancel()
	_, err := f.client.ModelInfer(ctx, &inferencev2.ModelInferRequest{ModelName: "ct-ich",
		Inputs:           []*inferencev2.ModelInferRequest_InferInputTensor{{Name: "slices", Datatype: "UINT8", Shape: shape}},
		RawInputContents: [][]byte{ks}})
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("%v, want DeadlineExceeded", err)
	}
}
