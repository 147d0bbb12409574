package peertest

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/radgate/radgate/inference/ort"
)

// ORTLibraryEnv names the ONNX Runtime library (the serve setting too).
const ORTLibraryEnv = "RADGATE_ORT_LIB"

// ORTLibraryPath is the ONNX Runtime library tests load: $RADGATE_ORT_LIB,
// else the one `make build` fetched into bin/.
func ORTLibraryPath() (string, error) {
	if p := os.Getenv(ORTLibraryEnv); p != "" {
		return p, nil
	}
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	p := filepath.Join(root, "bin", ort.BundledLibrary)
	if _, err := os.Stat(p); err != nil {
		return "", err
	}
	return p, nil
}

// ORTLibrary is ORTLibraryPath for a test: it skips t when the library is
// missing (fails under RADGATE_REQUIRE_PEERS=1).
func ORTLibrary(t testing.TB) string {
	t.Helper()
	p, err := ORTLibraryPath()
	if err == nil {
		return p
	}
	msg := fmt.Sprintf("ONNX Runtime library not found (%v): run `make build` (it fetches it) or set %s", err, ORTLibraryEnv)
	if os.Getenv(RequirePeersEnv) == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// ModelsDir is the repository's model folder (the reference models).
func ModelsDir() (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, "models"), nil
}
