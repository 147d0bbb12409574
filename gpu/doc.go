// Package gpu discovers NVIDIA devices through NVML and decides where a
// model session runs.
//
// Entry points:
//
//   - [Discover]: the driver version and devices (name, memory, compute
//     capability), or [ErrNoNVML] on a machine without the driver.
//   - [Place]: a [Placement] (execution provider, device, provider options)
//     for a requested [Provider], falling back to CPU with a reason.
//   - [Options]: CUDA/TensorRT provider options for a device.
//
// NVML is opened at run time (github.com/NVIDIA/go-nvml dlopens
// libnvidia-ml.so.1), so one binary serves CPU-only and GPU machines.
package gpu
