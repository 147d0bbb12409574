package ort

import (
	"fmt"
	"path/filepath"
	"sync"

	onnx "github.com/yalue/onnxruntime_go"

	"github.com/radgate/radgate/gpu"
)

// SessionOptions size and place one session.
type SessionOptions struct {
	// IntraOpThreads: threads one Run uses (0: ONNX Runtime's default,
	// one per core). Keep sessions × threads ≤ cores.
	IntraOpThreads int
	// Placement: the execution provider and device.
	Placement gpu.Placement
}

// Session is one loaded model. Run may be called from several goroutines
// at once (ONNX Runtime sessions are safe for concurrent Run).
type Session struct {
	mu        sync.RWMutex // Close waits for running Runs
	s         *onnx.DynamicAdvancedSession
	inputs    []string
	outputs   []string
	placement gpu.Placement
}

// Tensor is a float32 tensor: data in row-major order filling shape.
type Tensor struct {
	Shape []int64
	Data  []float32
}

// NewSession loads modelPath with the named inputs and outputs. When the
// placement's execution provider cannot be appended (the library lacks it,
// or no device answers) the session is made on CPU instead and the reason
// logged once; Placement reports where it ended up.
func (rt *Runtime) NewSession(modelPath string, inputs, outputs []string, opt SessionOptions) (*Session, error) {
	placement := opt.Placement
	so, err := rt.sessionOptions(opt.IntraOpThreads, placement)
	if err != nil && placement.Provider != gpu.CPU && placement.Provider != "" {
		rt.log.Warn("execution provider unavailable; falling back to CPU",
			"provider", string(placement.Provider), "model", filepath.Base(modelPath), "err", err)
		placement = gpu.Placement{Provider: gpu.CPU}
		so, err = rt.sessionOptions(opt.IntraOpThreads, placement)
	}
	if err != nil {
		return nil, err
	}
	defer so.Destroy()
	s, err := onnx.NewDynamicAdvancedSession(modelPath, inputs, outputs, so)
	if err != nil {
		return nil, fmt.Errorf("ort: load %s: %w", filepath.Base(modelPath), err)
	}
	return &Session{s: s, inputs: inputs, outputs: outputs, placement: placement}, nil
}

func (rt *Runtime) sessionOptions(threads int, p gpu.Placement) (*onnx.SessionOptions, error) {
	so, err := onnx.NewSessionOptions()
	if err != nil {
		return nil, fmt.Errorf("ort: session options: %w", err)
	}
	fail := func(what string, err error) (*onnx.SessionOptions, error) {
		so.Destroy()
		return nil, fmt.Errorf("ort: %s: %w", what, err)
	}
	if threads > 0 {
		if err := so.SetIntraOpNumThreads(threads); err != nil {
			return fail("intra-op threads", err)
		}
		// Batches are run one per session at a time by the scheduler;
		// inter-op parallelism would only oversubscribe the cores.
		if err := so.SetInterOpNumThreads(1); err != nil {
			return fail("inter-op threads", err)
		}
	}
	switch p.Provider {
	case gpu.CUDA:
		o, err := onnx.NewCUDAProviderOptions()
		if err != nil {
			return fail("CUDA provider options", err)
		}
		defer o.Destroy()
		if err := o.Update(p.Options); err != nil {
			return fail("CUDA provider options", err)
		}
		if err := so.AppendExecutionProviderCUDA(o); err != nil {
			return fail("CUDA execution provider", err)
		}
	case gpu.TensorRT:
		o, err := onnx.NewTensorRTProviderOptions()
		if err != nil {
			return fail("TensorRT provider options", err)
		}
		defer o.Destroy()
		if err := o.Update(p.Options); err != nil {
			return fail("TensorRT provider options", err)
		}
		if err := so.AppendExecutionProviderTensorRT(o); err != nil {
			return fail("TensorRT execution provider", err)
		}
	}
	return so, nil
}

// Placement is where the session runs.
func (s *Session) Placement() gpu.Placement { return s.placement }

// Run runs the model on one float32 tensor per input (in the order of
// the input names) and returns one per output.
func (s *Session) Run(inputs []Tensor) ([]Tensor, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.s == nil {
		return nil, ErrClosed
	}
	if len(inputs) != len(s.inputs) {
		return nil, fmt.Errorf("ort: %d inputs given, model takes %d", len(inputs), len(s.inputs))
	}
	in := make([]onnx.Value, len(inputs))
	defer func() {
		for _, v := range in {
			if v != nil {
				v.Destroy()
			}
		}
	}()
	for i, t := range inputs {
		shape := onnx.NewShape(t.Shape...)
		if shape.FlattenedSize() != int64(len(t.Data)) {
			return nil, fmt.Errorf("%w: input %s shape %v holds %d values, got %d", ErrShape, s.inputs[i], t.Shape, shape.FlattenedSize(), len(t.Data))
		}
		// NewTensor wraps the Go slice without copying; it stays alive
		// (inputs is referenced) until Run returns.
		v, err := onnx.NewTensor(shape, t.Data)
		if err != nil {
			return nil, fmt.Errorf("ort: input %s: %w", s.inputs[i], err)
		}
		in[i] = v
	}
	out := make([]onnx.Value, len(s.outputs))
	if err := s.s.Run(in, out); err != nil {
		return nil, fmt.Errorf("ort: run: %w", err)
	}
	res := make([]Tensor, len(out))
	var err error
	for i, v := range out {
		if t, ok := v.(*onnx.Tensor[float32]); ok && err == nil {
			res[i] = Tensor{Shape: append([]int64(nil), t.GetShape()...), Data: append([]float32(nil), t.GetData()...)}
		} else if err == nil {
			err = fmt.Errorf("ort: output %s is not a float32 tensor", s.outputs[i])
		}
		v.Destroy()
	}
	if err != nil {
		return nil, err
	}
	return res, nil
}

// Close releases the session after any Run in progress.
func (s *Session) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.s == nil {
		return nil
	}
	err := s.s.Destroy()
	s.s = nil
	return err
}
