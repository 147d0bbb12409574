package gpu

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestPlaceFallsBackWithoutDevice(t *testing.T) {
	p, why := Place(CUDA, Inventory{}, "/tmp/trt")
	if p.Provider != CPU || why == "" {
		t.Fatalf("Place(cuda, no devices) = %v, %q; want cpu with a reason", p, why)
	}
	if p, why := Place(CPU, Inventory{}, ""); p.Provider != CPU || why != "" {
		t.Fatalf("Place(cpu) = %v, %q", p, why)
	}
}

func TestPlaceTensorRT(t *testing.T) {
	inv := Inventory{Devices: []Device{{Index: 0, Name: "H200", ComputeMajor: 9}}}
	p, why := Place(TensorRT, inv, "/var/trt")
	if why != "" {
		t.Fatalf("unexpected fallback: %s", why)
	}
	want := Placement{Provider: TensorRT, DeviceID: 0, Options: map[string]string{
		"device_id": "0", "trt_engine_cache_enable": "1", "trt_engine_cache_path": "/var/trt", "trt_fp16_enable": "1",
	}}
	if d := cmp.Diff(want, p); d != "" {
		t.Fatalf("placement (-want +got):\n%s", d)
	}
	if p.String() != "tensorrt:0" {
		t.Fatalf("String = %q", p.String())
	}
}

func TestParseProvider(t *testing.T) {
	for _, s := range []string{"cpu", "cuda", "tensorrt"} {
		if _, err := ParseProvider(s); err != nil {
			t.Errorf("ParseProvider(%q): %v", s, err)
		}
	}
	if _, err := ParseProvider("rocm"); err == nil {
		t.Error("ParseProvider(rocm) accepted")
	}
}

// TestDiscover runs NVML where a driver exists; on a CPU machine it checks
// that the absence is reported as ErrNoNVML, not as a failure.
func TestDiscover(t *testing.T) {
	inv, err := Discover()
	if errors.Is(err, ErrNoNVML) {
		t.Skip("no NVIDIA driver on this machine: GPU discovery not exercised")
	}
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Devices) == 0 {
		t.Skip("NVML present but no device")
	}
	for _, d := range inv.Devices {
		if d.Name == "" || d.MemoryBytes == 0 {
			t.Errorf("device %d incomplete: %+v", d.Index, d)
		}
		t.Logf("device %d: %s, %d MiB, compute %d.%d, driver %s", d.Index, d.Name, d.MemoryBytes>>20, d.ComputeMajor, d.ComputeMinor, inv.Driver)
	}
}
