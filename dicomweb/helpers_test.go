package dicomweb

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/radgate/radgate/ingest"
	"github.com/radgate/radgate/internal/peertest"
	"github.com/radgate/radgate/phantom"
	"github.com/radgate/radgate/store"
)

// testServer is a Server over a fresh store, behind httptest.
type testServer struct {
	*httptest.Server
	st *store.Store
	s  *Server
}

func newTestServer(t testing.TB, cfg Config) *testServer {
	t.Helper()
	log := peertest.Logger(t)
	st, err := store.Open(context.Background(), store.Config{DataDir: t.TempDir(), SegmentSize: 8 << 20}, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	s, err := New(st, ingest.New(st, log, nil), cfg, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	s.Register(mux)
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)
	return &testServer{Server: hs, st: st, s: s}
}

// put stores Part 10 files directly (as C-STORE would) and waits until
// they are indexed.
func (ts *testServer) put(t testing.TB, files ...[]byte) {
	t.Helper()
	for _, f := range files {
		peertest.Ingest(t, ts.st, f, store.Incoming{Source: "dimse"})
	}
	if _, err := ts.st.CountInstances(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// ctPhantom is a small head CT series: Part 10 files.
func ctPhantom(t testing.TB, seed uint64, slices int) [][]byte {
	t.Helper()
	ins, err := phantom.Generate(phantom.Spec{Kind: phantom.KindCTHead, Finding: phantom.None, Seed: seed, Slices: slices})
	if err != nil {
		t.Fatal(err)
	}
	out := make([][]byte, len(ins))
	for i, in := range ins {
		out[i] = in.Data
	}
	return out
}
