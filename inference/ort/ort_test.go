package ort_test

import (
	"errors"
	"log/slog"
	"math"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/radgate/radgate/gpu"
	"github.com/radgate/radgate/inference/ort"
	"github.com/radgate/radgate/internal/peertest"
)

// tiny.onnx is shared with the engine tests; see its generator.
const tinyModel = "../testdata/tiny.onnx"

func openRuntime(t *testing.T) *ort.Runtime {
	t.Helper()
	rt, err := ort.Open(peertest.ORTLibrary(t), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := rt.Close(); err != nil {
			t.Error(err)
		}
	})
	return rt
}

// want computes tiny.onnx (see ../testdata/gen_tiny.py) in Go.
func want(x []float32) []float32 {
	n := len(x) / 16
	y := make([]float32, 0, n*3)
	for b := range n {
		for j := range 3 {
			z := float64(j)/4 - 0.25
			for i := range 16 {
				z += float64(x[b*16+i]) * float64(i-8+j) / 16
			}
			y = append(y, float32(1/(1+math.Exp(-z))))
		}
	}
	return y
}

func TestRunMatchesGo(t *testing.T) {
	rt := openRuntime(t)
	if rt.Version() == "" {
		t.Error("empty version")
	}
	in, out, err := rt.Inspect(tinyModel)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]ort.IO{{Name: "x", Shape: []int64{-1, 1, 4, 4}, Type: "float32"}}, in); d != "" {
		t.Errorf("inputs (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]ort.IO{{Name: "y", Shape: []int64{-1, 3}, Type: "float32"}}, out); d != "" {
		t.Errorf("outputs (-want +got):\n%s", d)
	}
	s, err := rt.NewSession(tinyModel, []string{"x"}, []string{"y"}, ort.SessionOptions{IntraOpThreads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Placement().Provider != gpu.CPU && s.Placement().Provider != "" {
		t.Errorf("placement %v", s.Placement())
	}
	// Several goroutines, batches of different sizes: one session serves all.
	var wg sync.WaitGroup
	for n := 1; n <= 4; n++ {
		wg.Go(func() {
			x := make([]float32, n*16)
			for i := range x {
				x[i] = float32((i*7)%11)/11 - 0.5
			}
			res, err := s.Run([]ort.Tensor{{Shape: []int64{int64(n), 1, 4, 4}, Data: x}})
			if err != nil {
				t.Error(err)
				return
			}
			if d := cmp.Diff([]int64{int64(n), 3}, res[0].Shape); d != "" {
				t.Errorf("batch %d shape: %s", n, d)
			}
			w := want(x)
			for i := range w {
				if math.Abs(float64(w[i]-res[0].Data[i])) > 1e-5 {
					t.Errorf("batch %d y[%d] = %v, want %v", n, i, res[0].Data[i], w[i])
				}
			}
		})
	}
	wg.Wait()
}

func TestRunRejectsBadShape(t *testing.T) {
	rt := openRuntime(t)
	s, err := rt.NewSession(tinyModel, []string{"x"}, []string{"y"}, ort.SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Run([]ort.Tensor{{Shape: []int64{1, 1, 4, 4}, Data: make([]float32, 15)}}); !errors.Is(err, ort.ErrShape) {
		t.Errorf("short data: %v, want ErrShape", err)
	}
	if _, err := s.Run([]ort.Tensor{{Shape: []int64{1, 1, 4, 5}, Data: make([]float32, 20)}}); err == nil {
		t.Error("wrong dimension accepted")
	}
	s.Close()
	if _, err := s.Run([]ort.Tensor{{Shape: []int64{1, 1, 4, 4}, Data: make([]float32, 16)}}); !errors.Is(err, ort.ErrClosed) {
		t.Errorf("after Close: %v, want ErrClosed", err)
	}
}

// TestCUDAFallsBackToCPU: the pinned CPU library has no CUDA provider, so
// asking for CUDA must still give a working CPU session. On a GPU machine
// with a CUDA-enabled library the session really lands on the device.
func TestCUDAFallsBackToCPU(t *testing.T) {
	rt := openRuntime(t)
	s, err := rt.NewSession(tinyModel, []string{"x"}, []string{"y"}, ort.SessionOptions{
		Placement: gpu.Placement{Provider: gpu.CUDA, Options: map[string]string{"device_id": "0"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	t.Logf("CUDA requested, session placed on %s", s.Placement())
	if _, err := s.Run([]ort.Tensor{{Shape: []int64{1, 1, 4, 4}, Data: make([]float32, 16)}}); err != nil {
		t.Fatal(err)
	}
}

func TestOpenMissingLibrary(t *testing.T) {
	if _, err := ort.Open("/nonexistent/libonnxruntime.so", slog.New(slog.DiscardHandler)); !errors.Is(err, ort.ErrNoLibrary) {
		t.Fatalf("Open(missing) = %v, want ErrNoLibrary", err)
	}
}
