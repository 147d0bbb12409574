//go:build race

package interop

// Under `go test -race` radgate itself is built with -race too, so the
// real-peer traffic exercises its concurrency with the detector on.
func init() { radgateBuildFlags = []string{"-race"} }
