// Package radgatev1 is the generated Go code of radgate's own gRPC API,
// radgate.v1.Gateway (gateway.proto in this folder): ListModels,
// ModelStatistics, InferStudy and Benchmark. Regenerate with `make
// generate` (scripts/gen-proto.sh); package api/radgate serves it.
package radgatev1
