// Package peertest starts the real DICOM peers radgate is tested and
// benchmarked against — DCMTK's storescp, Orthanc — and radgate's own binary,
// on loopback with free ports, and tears them down so nothing lingers.
//
// Only tests (test/interop) and the ingest benchmark (bench) use it. Every
// helper comes in two forms: LaunchX(cfg) returns an error and leaves
// stopping to the caller (the benchmark), StartX(t, …) fails the test on
// error and registers the cleanup with t.Cleanup.
//
// Entry points:
//
//   - [Require] skips a test when a peer tool is truly not installed (or
//     fails it when RADGATE_REQUIRE_PEERS=1, for CI that must run everything).
//   - [FreePort], [RepoRoot], [PeerEnv], [Tool].
//   - [BuildBindlo]: the LD_PRELOAD shim that binds INADDR_ANY listeners to
//     127.0.0.1 (storescp and Orthanc 1.10 cannot choose their address).
//   - [Proc]: a child process in its own process group, logs to a file,
//     stopped with SIGTERM then SIGKILL of the whole group.
//   - [LaunchStorescp]/[StartStorescp], [LaunchOrthanc]/[StartOrthanc],
//     [BuildRadgate], [LaunchRadgate]/[StartRadgate].
//   - [DumpDataset]: dcmdump text of a file's data set, normalised so the
//     same data set received by different peers compares equal.
//   - [IndexedUIDs], [Blobs]: what radgate's store holds on disk.
//
// Readiness is always polled (TCP connect, HTTP status) against a deadline,
// never waited for with a sleep.
package peertest
