package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/radgate/radgate/api/kserve"
	"github.com/radgate/radgate/internal/peertest"
	"github.com/radgate/radgate/internal/refengine"
	"github.com/radgate/radgate/loadtest"
)

// serveKServe starts an engine on the reference models behind
// kserve.NewServer on 127.0.0.1:0 and returns its address.
func serveKServe(t *testing.T) string {
	t.Helper()
	eng := refengine.Open(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := kserve.NewServer(eng, "bench-test")
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	t.Cleanup(func() {
		srv.GracefulStop()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return l.Addr().String()
}

func TestBenchUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		out  string
	}{
		{[]string{"bench"}, "--grpc and --model are required"},
		{[]string{"bench", "--grpc", "h:1", "--model", "m", "--concurrency", "1,x"}, "positive numbers"},
		{[]string{"bench", "--grpc", "h:1", "--model", "m", "--concurrency", "2", "--rate", "5"}, "exclusive"},
		{[]string{"bench", "--grpc", "h:1", "--model", "m", "--requests", "5", "--duration", "1s"}, "exclusive"},
		{[]string{"bench", "--grpc", "h:1", "--model", "m", "--priority", "urgent"}, "--priority"},
		{[]string{"bench", "--grpc", "h:1", "--model", "m", "extra"}, "unexpected argument"},
	} {
		var out, errOut bytes.Buffer
		if code := run(t.Context(), tc.args, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), tc.out) {
			t.Errorf("%v: exit %d, %q; want 2 and %q", tc.args, code, errOut.String(), tc.out)
		}
	}
}

// TestBenchEndToEnd runs `radgate bench` against radgate's own KServe
// server on cxr-triage, then (if installed) ghz with the same request at
// the same concurrency, and logs the throughput ratio: not asserted, two
// shared cores are too noisy for a timed assertion.
func TestBenchEndToEnd(t *testing.T) {
	addr := serveKServe(t)
	dir := t.TempDir()
	var out, errOut bytes.Buffer
	code := run(t.Context(), []string{"bench", "--grpc", addr, "--model", "cxr-triage", "--concurrency", "1,4", "--requests", "20",
		"--priority", "ROUTINE", "--out", dir}, &out, &errOut)
	t.Logf("stdout:\n%s\nstderr:\n%s", out.String(), errOut.String())
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{"c=1", "c=4", "P99.9 ms"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q", want)
		}
	}
	// Not a terminal: progress lines.
	if !strings.Contains(errOut.String(), "step 2/2 c=4: 20/20 requests, 0 errors") {
		t.Errorf("no final progress line for step 2")
	}
	rep := readReport(t, filepath.Join(dir, "results.json"))
	if len(rep.Steps) != 2 || rep.Model != "cxr-triage" || rep.Target != addr {
		t.Fatalf("report %+v", rep)
	}
	for _, s := range rep.Steps {
		if s.Requests != 20 || s.OK != 20 || s.Errors != 0 || !(s.Throughput > 0) || !(s.Latency.P50 > 0) || s.Latency.Max < s.Latency.P99 {
			t.Errorf("step %s: %+v", s.Load(), s)
		}
	}
	for _, f := range []string{"results.csv", "plot.html"} {
		if st, err := os.Stat(filepath.Join(dir, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}

	ghz, err := peertest.Tool("ghz")
	if err != nil {
		t.Logf("ghz not installed (%v): no comparison", err)
		return
	}
	const n, c = "100", "4"
	out.Reset()
	if code := run(t.Context(), []string{"bench", "--grpc", addr, "--model", "cxr-triage", "--concurrency", c, "--requests", n, "--out", dir}, &out, &bytes.Buffer{}); code != 0 {
		t.Fatalf("bench -c %s: exit %d\n%s", c, code, out.String())
	}
	ours := readReport(t, filepath.Join(dir, "results.json")).Steps[0].Throughput
	theirs := ghzThroughput(t, ghz, addr, n, c)
	t.Logf("cxr-triage c=%s, %s requests: radgate bench %.1f req/s, ghz %.1f req/s, ratio %.3f", c, n, ours, theirs, ours/theirs)
}

func readReport(t *testing.T, path string) loadtest.Report {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var rep loadtest.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	return rep
}

// ghzThroughput runs ghz with the very request bench sends (the same
// NewGRPCClient, in protobuf JSON), 5 warmup requests skipped as bench does.
func ghzThroughput(t *testing.T, ghz, addr, n, c string) float64 {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client, err := loadtest.NewGRPCClient(t.Context(), conn, loadtest.Request{Model: "cxr-triage", Batch: 1})
	if err != nil {
		t.Fatal(err)
	}
	// JSON, not -B binary: ghz runs its call template over the data, and
	// random FP32 bytes hold "{{" sooner or later; base64 never does.
	body, err := protojson.Marshal(client.Request())
	if err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(t.TempDir(), "infer.json")
	if err := os.WriteFile(data, body, 0o644); err != nil {
		t.Fatal(err)
	}
	root, err := peertest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	cmd := exec.CommandContext(ctx, ghz, "--insecure", "--import-paths", filepath.Join(root, "api/kserve/v2"), "--proto", "grpc_predict_v2.proto",
		"--call", "inference.GRPCInferenceService/ModelInfer", "-D", data, "-n", n, "-c", c, "--skipFirst", "5", "--format", "json", addr)
	res, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			res = append(res, ee.Stderr...)
		}
		t.Fatalf("ghz: %v\n%s", err, res)
	}
	var rep struct {
		Count          int
		Rps            float64
		StatusCodeDist map[string]int `json:"statusCodeDistribution"`
	}
	if err := json.Unmarshal(res, &rep); err != nil || rep.Rps <= 0 {
		t.Fatalf("ghz output: %v\n%s", err, res)
	}
	t.Logf("ghz: %d requests, codes %v", rep.Count, rep.StatusCodeDist)
	return rep.Rps
}
