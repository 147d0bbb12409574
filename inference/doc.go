// Package inference is radgate's model pool: models from the repository
// loaded into ONNX Runtime sessions, a scheduler with priorities and
// dynamic batching in front of them, and the study-level run that turns
// DICOM instances into findings.
//
// Entry points (the split of Triton's core: lifecycle, scheduler, backend):
//
//   - [Open] and [Engine]: load, verify (checksum, graph against manifest),
//     [Engine.Load] and [Engine.Unload] at run time, several versions side
//     by side, [Engine.Lookup] by name (highest version) or name@version.
//   - [Engine.Run]: decode, preprocess (package imaging, the same code the
//     training tensors come from), queue, infer and aggregate one
//     radiograph or one series into a [Result].
//   - [Scheduler]: per-model queues at four [Priority] levels, dynamic
//     batches (max batch, max queue delay; STAT never waits for company),
//     bounded queues per priority ([ErrQueueFull]), cancellation and
//     deadlines through the context. Workers × intra-op threads never
//     exceed the cores.
//   - [Backend]: what runs a batch. inference/ort (the cgo leaf) in
//     process; a remote KServe v2 backend fits the same interface.
//   - Remote health: while a remote model is loaded its endpoint is asked
//     ModelReady every 10 s (with the manifest's call timeout) until it
//     is unloaded or the engine closed. [Loaded.Health] says ready or,
//     with since when and the last error, not (a model in process is
//     always ready); each change is logged once (Warn down, Info back, with model
//     and address) and the gauge radgate_model_remote_up{model} is 1 or 0.
//     A model that is down still takes requests: they are tried and
//     retried as always, never refused ahead.
//   - [Metrics]: queue depth and wait per priority, compute time, batch
//     sizes, stage times, remote endpoints up.
package inference
