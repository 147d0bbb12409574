// Package refengine opens the inference engine on the repository's
// reference models for tests (its own package: inference's own tests use
// peertest, so peertest cannot import inference).
package refengine

import (
	"log/slog"
	"testing"

	"github.com/radgate/radgate/inference"
	"github.com/radgate/radgate/internal/peertest"
)

// Open opens an engine on the reference models (two intra-op threads, two
// workers), closed when t ends.
func Open(t testing.TB) *inference.Engine {
	t.Helper()
	dir, err := peertest.ModelsDir()
	if err != nil {
		t.Fatal(err)
	}
	eng, errs, err := inference.Open(inference.Config{ModelsDir: dir, ORTLibrary: peertest.ORTLibrary(t), Threads: 2, Workers: 2},
		slog.New(slog.DiscardHandler), inference.NewMetrics(nil))
	if err != nil {
		t.Fatal(err)
	}
	if len(errs) > 0 {
		eng.Close()
		t.Fatal(errs)
	}
	t.Cleanup(func() {
		if err := eng.Close(); err != nil {
			t.Error(err)
		}
	})
	return eng
}
