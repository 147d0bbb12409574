package gpu

import "fmt"

// Provider names an ONNX Runtime execution provider.
type Provider string

// The execution providers radgate places models on.
const (
	CPU      Provider = "cpu"
	CUDA     Provider = "cuda"
	TensorRT Provider = "tensorrt"
)

// ParseProvider accepts the names of the RADGATE_DEVICE setting.
func ParseProvider(s string) (Provider, error) {
	switch p := Provider(s); p {
	case CPU, CUDA, TensorRT:
		return p, nil
	}
	return "", fmt.Errorf("gpu: unknown execution provider %q (want cpu, cuda or tensorrt)", s)
}

// Placement says where a model session runs: an execution provider and,
// for CUDA and TensorRT, the device ordinal and provider options (the
// names ONNX Runtime's CUDA/TensorRT provider options take).
type Placement struct {
	Provider Provider
	DeviceID int
	Options  map[string]string
}

// String is the placement as the startup banner and metrics show it.
func (p Placement) String() string {
	if p.Provider == "" || p.Provider == CPU {
		return "cpu"
	}
	return fmt.Sprintf("%s:%d", p.Provider, p.DeviceID)
}

// Options returns the provider options for a placement on device id: the
// device ordinal, plus TensorRT's engine cache under cacheDir (building an
// engine takes minutes; the cache makes a restart fast) and FP16 where the
// device supports it.
func Options(p Provider, d Device, cacheDir string) map[string]string {
	o := map[string]string{"device_id": fmt.Sprint(d.Index)}
	if p == TensorRT {
		o["trt_engine_cache_enable"] = "1"
		o["trt_engine_cache_path"] = cacheDir
		if d.ComputeMajor >= 6 {
			o["trt_fp16_enable"] = "1"
		}
	}
	return o
}
