// Package worklisttest opens the reading worklist over a fresh store for
// the tests of the packages that serve it (its own package: worklist's
// tests cannot import it).
package worklisttest

import (
	"context"
	"testing"

	"github.com/radgate/radgate/internal/peertest"
	"github.com/radgate/radgate/store"
	"github.com/radgate/radgate/worklist"
)

// Open returns a store in a temporary folder and the worklist over it,
// its feed running; both end with t.
func Open(t testing.TB) (*store.Store, *worklist.Service) {
	t.Helper()
	st, err := store.Open(context.Background(), store.Config{DataDir: t.TempDir(), SegmentSize: 4 << 20}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	wl, err := worklist.New(st.Worklist(), nil, peertest.Logger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { wl.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return st, wl
}
