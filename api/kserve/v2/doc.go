// Package inferencev2 is the generated Go code of the KServe v2 predict
// protocol's gRPC service, inference.GRPCInferenceService
// (grpc_predict_v2.proto from github.com/kserve/kserve@v0.15.0; see
// api/README.md for the one edit). Regenerate with `make generate`
// (scripts/gen-proto.sh); package api/kserve serves it.
package inferencev2
