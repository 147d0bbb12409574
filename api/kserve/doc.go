// Package kserve serves radgate's models over the KServe v2 predict
// protocol's gRPC service (inference.GRPCInferenceService, the one Triton
// and KServe speak), so that any v2 client — tritonclient, grpcurl, ghz —
// can run the loaded models on tensors it prepared itself.
//
// Entry points:
//
//   - [NewServer]: a *grpc.Server with the service, gRPC health and
//     server reflection registered.
//   - [Register]: the service alone, onto a server the caller owns.
//   - [Service]: the implementation, over an *inference.Engine. Every
//     ModelInfer goes through the engine's scheduler, so its items are
//     batched with everyone else's and keep their priority.
//
// What the v2 protocol leaves to the server, and radgate's answers:
//
//   - Inputs: the model's one input, FP32 (raw little-endian bytes or
//     fp32_contents), FP16 (raw only; the protocol has no typed field),
//     UINT8 (raw or uint_contents) or INT64 (raw or int64_contents), all
//     converted to float32; shape [N, item shape of the manifest].
//   - Outputs: the graph's output as the scheduler returns it (no
//     activation applied: the manifest's "sigmoid" is the study-level
//     run's business), FP32 [N, labels], in raw_output_contents.
//   - Priority: request parameter "priority", a string (low, routine,
//     high, stat, any case) or Triton's int64 (1 highest … 0 default).
//   - Readiness: ModelReady is false for a model that is not loaded (not
//     NotFound), and for a loaded remote model (one this radgate serves
//     from another KServe v2 endpoint) while that endpoint fails its
//     periodic health check; requests to it are still tried.
//   - Errors: unknown model → NotFound, bad tensors → InvalidArgument,
//     queue full → ResourceExhausted, deadline → DeadlineExceeded.
//
// The protocol's Repository and ModelStatistics extensions are not in the
// KServe v0.15 proto; the statistics are served, with Triton's message
// shapes, by radgate.v1.Gateway's ModelStatistics (package api/radgate).
package kserve
