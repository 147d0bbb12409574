package gpu

import (
	"errors"
	"fmt"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// Device is one NVIDIA GPU as NVML reports it.
type Device struct {
	Index        int
	Name         string
	UUID         string
	MemoryBytes  uint64
	ComputeMajor int
	ComputeMinor int
}

// Inventory is what Discover found.
type Inventory struct {
	Driver  string
	Devices []Device
}

// ErrNoNVML: the NVIDIA management library is not installed (no driver),
// which on a CPU machine is the normal case.
var ErrNoNVML = errors.New("gpu: NVML not available (no NVIDIA driver)")

// Discover lists the NVIDIA devices through NVML (libnvidia-ml.so.1,
// opened at run time, so the binary runs where no driver exists). It
// returns ErrNoNVML when the library is absent, and an empty inventory
// when the driver sees no device.
func Discover() (Inventory, error) {
	lib := nvml.New()
	if ret := lib.Init(); ret != nvml.SUCCESS {
		if ret == nvml.ERROR_LIBRARY_NOT_FOUND {
			return Inventory{}, ErrNoNVML
		}
		return Inventory{}, fmt.Errorf("gpu: nvmlInit: %s", lib.ErrorString(ret))
	}
	defer lib.Shutdown()
	var inv Inventory
	if v, ret := lib.SystemGetDriverVersion(); ret == nvml.SUCCESS {
		inv.Driver = v
	}
	n, ret := lib.DeviceGetCount()
	if ret != nvml.SUCCESS {
		return inv, fmt.Errorf("gpu: nvmlDeviceGetCount: %s", lib.ErrorString(ret))
	}
	for i := range n {
		h, ret := lib.DeviceGetHandleByIndex(i)
		if ret != nvml.SUCCESS {
			return inv, fmt.Errorf("gpu: device %d: %s", i, lib.ErrorString(ret))
		}
		d := Device{Index: i}
		d.Name, _ = h.GetName()
		d.UUID, _ = h.GetUUID()
		if m, ret := h.GetMemoryInfo(); ret == nvml.SUCCESS {
			d.MemoryBytes = m.Total
		}
		d.ComputeMajor, d.ComputeMinor, _ = h.GetCudaComputeCapability()
		inv.Devices = append(inv.Devices, d)
	}
	return inv, nil
}

// Place chooses the placement for a model session: the wanted provider on
// the first device, or CPU with the reason when the wanted provider
// cannot be had (no driver, no device). Whether ONNX Runtime itself has
// the provider is known only when the session is made; inference/ort
// falls back to CPU then, with one log line.
func Place(want Provider, inv Inventory, cacheDir string) (Placement, string) {
	if want == CPU || want == "" {
		return Placement{Provider: CPU}, ""
	}
	if len(inv.Devices) == 0 {
		return Placement{Provider: CPU}, fmt.Sprintf("%s requested but no NVIDIA device found", want)
	}
	d := inv.Devices[0]
	return Placement{Provider: want, DeviceID: d.Index, Options: Options(want, d, cacheDir)}, ""
}
