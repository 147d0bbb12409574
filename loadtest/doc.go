// Package loadtest drives a KServe v2 predict endpoint (radgate's, or
// Triton's) with a fixed request and measures it.
//
// A Config names the target and the load; Run executes one Step per load
// level (closed-loop concurrency, or open-loop rate) and returns a Report.
// A Client is the one call a step makes: NewGRPCClient builds the real one
// from the model's metadata; tests substitute a fake. WriteTable, WriteCSV,
// WriteJSON and WritePlot render a Report; their field names are listed on
// Step and Latency and documented in the README (`radgate bench`).
package loadtest
