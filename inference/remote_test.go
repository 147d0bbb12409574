package inference_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/radgate/radgate/api/kserve"
	"github.com/radgate/radgate/inference"
	"github.com/radgate/radgate/internal/peertest"
	"github.com/radgate/radgate/internal/refengine"
	"github.com/radgate/radgate/phantom"
)

// remoteRepo writes a repository whose cxr-triage is the reference
// manifest served by the KServe v2 endpoint at addr, with edit applied to
// the manifest text.
func remoteRepo(t *testing.T, addr string, edit func([]byte) []byte) string {
	t.Helper()
	src, err := peertest.ModelsDir()
	if err != nil {
		t.Fatal(err)
	}
	from := filepath.Join(src, "cxr-triage", "1.0.0")
	repo := t.TempDir()
	to := filepath.Join(repo, "cxr-triage", "1.0.0")
	if err := os.MkdirAll(to, 0o755); err != nil {
		t.Fatal(err)
	}
	m, err := os.ReadFile(filepath.Join(from, "manifest.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	m = regexp.MustCompile(`(?m)^(file|sha256): .*\n`).ReplaceAll(m, nil)
	m = append(m, []byte("remote: {address: \""+addr+"\", timeout: 20s, retries: 1}\n")...)
	if edit != nil {
		m = edit(m)
	}
	card, err := os.ReadFile(filepath.Join(from, "MODEL_CARD.md"))
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{"manifest.yaml": m, "MODEL_CARD.md": card} {
		if err := os.WriteFile(filepath.Join(to, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return repo
}

// TestRemoteBackend: a second engine whose cxr-triage is served by the
// first through its KServe v2 gRPC service gets identical findings; a
// remote that serves other tensors is refused at load; a remote that went
// away fails the request.
func TestRemoteBackend(t *testing.T) {
	lib := peertest.ORTLibrary(t)
	log := slog.New(slog.DiscardHandler)
	first := refengine.Open(t)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := kserve.NewServer(first, "test")
	go srv.Serve(lis)
	defer srv.Stop()

	second, errs, err := inference.Open(inference.Config{ModelsDir: remoteRepo(t, lis.Addr().String(), nil), ORTLibrary: lib, Threads: 1}, log, nil)
	if err != nil || len(errs) > 0 {
		t.Fatalf("second engine: %v %v", err, errs)
	}
	defer second.Close()
	l, ok := second.Lookup("cxr-triage")
	if !ok || l.Remote != lis.Addr().String() {
		t.Fatalf("second engine's cxr-triage: %+v", l)
	}

	ins, err := phantom.Generate(phantom.Spec{Kind: phantom.KindCXR, Finding: phantom.Pneumothorax, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	src := []inference.Source{{Name: "cxr", Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(ins[0].Data)), nil }}}
	ctx := context.Background()
	local, err := first.Run(ctx, "cxr-triage", inference.Routine, src)
	if err != nil {
		t.Fatal(err)
	}
	remote, err := second.Run(ctx, "cxr-triage", inference.Routine, src)
	if err != nil {
		t.Fatal(err)
	}
	if len(local.Findings) != len(remote.Findings) || len(local.Findings) == 0 {
		t.Fatalf("findings: local %+v, remote %+v", local.Findings, remote.Findings)
	}
	for i := range local.Findings {
		a, b := local.Findings[i], remote.Findings[i]
		if a.Label != b.Label || a.Probability != b.Probability || a.Positive != b.Positive {
			t.Errorf("finding %d: local %+v, remote %+v; want identical", i, a, b)
		}
	}

	// A remote whose tensors are not the manifest's is refused at load.
	wrong := remoteRepo(t, lis.Addr().String(), func(m []byte) []byte {
		return regexp.MustCompile(`(?m)^(\s+name:) image$`).ReplaceAll(m, []byte("$1 pixels"))
	})
	_, errs, err = inference.Open(inference.Config{ModelsDir: wrong, ORTLibrary: lib, Threads: 1}, log, nil)
	if err != nil || len(errs) != 1 || !errors.Is(errs[0], inference.ErrGraph) {
		t.Errorf("a remote with other tensors: %v %v; want one ErrGraph", err, errs)
	}

	// The remote goes away: the request fails (after its retry), it does
	// not hang.
	srv.Stop()
	if _, err := second.Run(ctx, "cxr-triage", inference.Routine, src); err == nil {
		t.Error("a request to a remote that is gone succeeded")
	}
}
