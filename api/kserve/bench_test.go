package kserve

import (
	"testing"

	inferencev2 "github.com/radgate/radgate/api/kserve/v2"
	"github.com/radgate/radgate/inference"
)

// BenchmarkAddedLatency compares one cxr-triage item at batch 1 through
// the scheduler in process with the same item through ModelInfer over
// gRPC on loopback: the difference is the protocol's cost.
func BenchmarkAddedLatency(b *testing.B) {
	f := serve(b)
	l, ok := f.eng.Lookup("cxr-triage")
	if !ok {
		b.Fatal("cxr-triage not loaded")
	}
	shape, ks := items(l, 1)
	data := scale(ks, 1.0/256)
	in := []inference.Tensor{{Shape: shape, Data: data}}
	req := &inferencev2.ModelInferRequest{
		ModelName:        l.Name,
		Inputs:           []*inferencev2.ModelInferRequest_InferInputTensor{{Name: l.Input.Name, Datatype: "FP32", Shape: shape}},
		RawInputContents: [][]byte{encodeFP32(data)},
	}
	b.Run("in-process", func(b *testing.B) {
		for b.Loop() {
			if _, _, err := f.eng.Scheduler().Infer(b.Context(), l.ID(), inference.Routine, in); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("grpc", func(b *testing.B) {
		for b.Loop() {
			if _, err := f.client.ModelInfer(b.Context(), req); err != nil {
				b.Fatal(err)
			}
		}
	})
}
