package ort

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	onnx "github.com/yalue/onnxruntime_go"
)

// Sentinel errors.
var (
	// ErrNoLibrary: the ONNX Runtime shared library is not where the
	// settings say (RADGATE_ORT_LIB; `make build` fetches it).
	ErrNoLibrary = errors.New("ort: ONNX Runtime library not found")
	// ErrClosed: the runtime or session was closed.
	ErrClosed = errors.New("ort: closed")
	// ErrShape: a tensor's data does not fill its shape.
	ErrShape = errors.New("ort: tensor data does not match its shape")
)

// The onnxruntime_go binding keeps one process-wide ORT environment. The
// Runtime values handed out share it through this reference count, so no
// caller sees the global and the environment lives exactly as long as some
// Runtime is open.
var env struct {
	sync.Mutex
	refs int
	path string
}

// Runtime is an open ONNX Runtime library. Close releases it.
type Runtime struct {
	log     *slog.Logger
	version string
	once    sync.Once
}

// Open loads the ONNX Runtime shared library at path. Opening a second
// Runtime with the same library shares the environment; with a different
// library it fails, as one process can hold only one.
func Open(path string, log *slog.Logger) (*Runtime, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(abs); err != nil {
		return nil, fmt.Errorf("%w: %s (run `make build`, or set RADGATE_ORT_LIB)", ErrNoLibrary, abs)
	}
	env.Lock()
	defer env.Unlock()
	if env.refs > 0 {
		if env.path != abs {
			return nil, fmt.Errorf("ort: %s already loaded; cannot also load %s", env.path, abs)
		}
	} else {
		onnx.SetSharedLibraryPath(abs)
		if err := onnx.InitializeEnvironment(onnx.WithLogLevelError()); err != nil {
			return nil, fmt.Errorf("ort: initialize %s: %w", abs, err)
		}
		env.path = abs
	}
	env.refs++
	return &Runtime{log: log, version: onnx.GetVersion()}, nil
}

// Version is the library's version string, e.g. "1.30.0".
func (rt *Runtime) Version() string { return rt.version }

// Close releases this Runtime's share of the environment. Sessions must be
// closed first.
func (rt *Runtime) Close() error {
	var err error
	rt.once.Do(func() {
		env.Lock()
		defer env.Unlock()
		env.refs--
		if env.refs == 0 {
			err = onnx.DestroyEnvironment()
			env.path = ""
		}
	})
	return err
}

// IO describes one model input or output as the ONNX file declares it.
type IO struct {
	Name string
	// Shape with -1 for a dynamic axis (such as the batch).
	Shape []int64
	// Type is the element type, e.g. "float32".
	Type string
}

// Inspect reads a model file's inputs and outputs.
func (rt *Runtime) Inspect(modelPath string) (inputs, outputs []IO, err error) {
	in, out, err := onnx.GetInputOutputInfo(modelPath)
	if err != nil {
		return nil, nil, fmt.Errorf("ort: inspect %s: %w", filepath.Base(modelPath), err)
	}
	conv := func(infos []onnx.InputOutputInfo) []IO {
		ios := make([]IO, len(infos))
		for i, x := range infos {
			ios[i] = IO{Name: x.Name, Shape: append([]int64(nil), x.Dimensions...), Type: elemType(x.DataType)}
		}
		return ios
	}
	return conv(in), conv(out), nil
}

func elemType(t onnx.TensorElementDataType) string {
	switch t {
	case onnx.TensorElementDataTypeFloat:
		return "float32"
	case onnx.TensorElementDataTypeFloat16:
		return "float16"
	case onnx.TensorElementDataTypeUint8:
		return "uint8"
	case onnx.TensorElementDataTypeInt64:
		return "int64"
	case onnx.TensorElementDataTypeDouble:
		return "float64"
	}
	return t.String()
}

// BundledLibrary is where `make build` puts the pinned library, relative to
// the directory of the radgate binary (bin/radgate → bin/lib/…).
const BundledLibrary = "lib/libonnxruntime.so.1"

// DefaultLibrary is the library next to the running executable, the
// default of RADGATE_ORT_LIB.
func DefaultLibrary() string {
	exe, err := os.Executable()
	if err != nil {
		return BundledLibrary
	}
	if r, err := filepath.EvalSymlinks(exe); err == nil {
		exe = r
	}
	return filepath.Join(filepath.Dir(exe), BundledLibrary)
}
