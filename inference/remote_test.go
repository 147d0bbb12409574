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
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"

	"github.com/radgate/radgate/api/kserve"
	inferencev2 "github.com/radgate/radgate/api/kserve/v2"
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

	// Pixels that may carry burned-in identifying text never leave: the
	// remote model refuses the image, the local one still reads it.
	burned := withBurnedInAnnotation(t, ins[0].Data)
	bsrc := []inference.Source{{Name: "burned", Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(burned)), nil }}}
	if _, err := first.Run(ctx, "cxr-triage", inference.Routine, bsrc); err != nil {
		t.Fatalf("local model on a burned-in image: %v", err)
	}
	if res, err := second.Run(ctx, "cxr-triage", inference.Routine, bsrc); !errors.Is(err, inference.ErrNothingRan) ||
		len(res.Errors) != 1 || !strings.Contains(res.Errors[0].Error, "not sent to the remote backend") {
		t.Errorf("remote model on a burned-in image: %v, %+v; want it refused before sending", err, res)
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

// withBurnedInAnnotation returns the Part 10 file with Burned In
// Annotation (0028,0301) YES instead of the phantom's NO.
func withBurnedInAnnotation(t *testing.T, part10 []byte) []byte {
	t.Helper()
	ds, err := dicom.Parse(bytes.NewReader(part10), int64(len(part10)), nil)
	if err != nil {
		t.Fatal(err)
	}
	el, err := dicom.NewElement(tag.BurnedInAnnotation, []string{"YES"})
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(ds.Elements, func(e *dicom.Element) bool { return e.Tag == tag.BurnedInAnnotation })
	if i < 0 {
		t.Fatal("the phantom has no Burned In Annotation")
	}
	ds.Elements[i] = el
	var out bytes.Buffer
	if err := dicom.Write(&out, ds, dicom.SkipVRVerification()); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// TestRemoteHealth: a loaded remote model's endpoint is checked every
// interval. When it goes away the model turns not ready — Health, the
// radgate_model_remote_up gauge and the KServe ModelReady of the engine
// that loaded it — with one Warn line however many checks fail; when a
// server is back on the address, ready again with one Info line. Close
// stops the checks and drops the gauge.
func TestRemoteHealth(t *testing.T) {
	const interval = 50 * time.Millisecond
	inference.SetRemoteHealthInterval(t, interval)
	lib := peertest.ORTLibrary(t)
	first := refengine.Open(t)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	srv := kserve.NewServer(first, "test")
	go srv.Serve(lis)
	defer func() { srv.Stop() }()

	var logs lockedBuffer
	reg := prometheus.NewRegistry()
	second, errs, err := inference.Open(inference.Config{ModelsDir: remoteRepo(t, addr, nil), ORTLibrary: lib, Threads: 1},
		slog.New(slog.NewTextHandler(&logs, nil)), inference.NewMetrics(reg))
	if err != nil || len(errs) > 0 {
		t.Fatalf("second engine: %v %v", err, errs)
	}
	closed := false
	defer func() {
		if !closed {
			second.Close()
		}
	}()
	l, ok := second.Lookup("cxr-triage")
	if !ok {
		t.Fatal("cxr-triage not loaded")
	}
	svc := kserve.NewService(second, "test")

	// await waits a few intervals for Health to say want, then checks the
	// gauge and ModelReady agree.
	await := func(want bool) string {
		t.Helper()
		deadline := time.Now().Add(30 * interval)
		ready, detail := l.Health()
		for ready != want && time.Now().Before(deadline) {
			time.Sleep(interval / 5)
			ready, detail = l.Health()
		}
		if ready != want || (detail == "") != want {
			t.Fatalf("Health: %v %q; want %v, with a detail only when not ready", ready, detail, want)
		}
		if up, ok := remoteUp(t, reg, l.ID()); !ok || up != map[bool]float64{true: 1, false: 0}[want] {
			t.Errorf("radgate_model_remote_up{model=%q}: %v (present %v) with Health %v", l.ID(), up, ok, want)
		}
		r, err := svc.ModelReady(context.Background(), &inferencev2.ModelReadyRequest{Name: "cxr-triage"})
		if err != nil || r.GetReady() != want {
			t.Errorf("ModelReady: %v %v; want %v", r, err, want)
		}
		return detail
	}
	await(true)

	srv.Stop()
	if detail := await(false); !strings.Contains(detail, "remote "+addr+" not ready since ") || !strings.Contains(detail, "Unavailable") {
		t.Errorf("Health detail while down: %q; want the address, since when and the error", detail)
	}
	time.Sleep(3 * interval) // more failed checks: still one Warn line

	lis, err = net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv = kserve.NewServer(first, "test")
	go srv.Serve(lis)
	await(true)
	time.Sleep(3 * interval)

	out := logs.String()
	if n := strings.Count(out, "level=WARN msg=\"remote model not ready\""); n != 1 {
		t.Errorf("%d Warn lines for the endpoint going down, want 1:\n%s", n, out)
	}
	if n := strings.Count(out, "level=INFO msg=\"remote model ready again\""); n != 1 {
		t.Errorf("%d Info lines for the endpoint coming back, want 1:\n%s", n, out)
	}
	if !strings.Contains(out, "address="+addr) || !strings.Contains(out, "model=cxr-triage@") {
		t.Errorf("transition lines name neither model nor address:\n%s", out)
	}

	// Close stops the checks: the gauge is gone and, the endpoint going
	// away again, nothing more is logged.
	closed = true
	if err := second.Close(); err != nil {
		t.Fatal(err)
	}
	if n, err := testutil.GatherAndCount(reg, "radgate_model_remote_up"); err != nil || n != 0 {
		t.Errorf("after Close, %d radgate_model_remote_up series (%v); want none", n, err)
	}
	srv.Stop()
	before := logs.String()
	time.Sleep(4 * interval)
	if after := logs.String(); after != before {
		t.Errorf("logged after Close:\n%s", after[len(before):])
	}
}

// remoteUp reads a model's radgate_model_remote_up.
func remoteUp(t *testing.T, reg *prometheus.Registry, model string) (float64, bool) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "radgate_model_remote_up" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "model" && lp.GetValue() == model {
					return m.GetGauge().GetValue(), true
				}
			}
		}
	}
	return 0, false
}

// lockedBuffer is a log sink safe to read while the engine writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *lockedBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *lockedBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}
