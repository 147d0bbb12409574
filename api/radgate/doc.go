// Package radgate serves radgate's own gRPC API, radgate.v1.Gateway
// (api/radgate/v1/gateway.proto), beside the KServe v2 service of package
// kserve on the same server:
//
//   - ListModels: the loaded models with their manifests' facts (labels
//     and codes, thresholds, tensors, batching), where each runs and
//     whether it is ready (a remote one as its last health check said).
//   - ModelStatistics: the scheduler's per-model counts as Triton's
//     ModelStatistics has them: requests that succeeded and failed,
//     queue time and compute time apart, executions per batch size.
//   - InferStudy: a study streamed in (Part 10 files, chunked at will),
//     routed by the gateway's routing rules or run by the models named,
//     answered with the findings and the SR and KOS the pipeline would
//     send. Nothing is stored, sent or kept: the study lives in memory
//     for the call (at most MaxStudyBytes, MaxStudyInstances; four calls
//     at once, more wait).
//   - Benchmark: a model run server-side over phantom studies generated in
//     memory or studies in the store, in closed loop at each concurrency
//     asked for, at low priority by default so that clinical work goes
//     first; progress is streamed and the last message has exact
//     percentiles and a latency histogram per step (package loadtest does
//     the measuring, as for `radgate bench`).
//   - WatchWorklist: the reading worklist's changes as they happen, each
//     with its workitem's state, priority and findings (no patient data),
//     resumable from the last seq seen.
//
// Errors are gRPC codes: bad input InvalidArgument, an unknown model or
// study NotFound, a full queue ResourceExhausted.
package radgate
