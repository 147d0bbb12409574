// Package interop holds the acceptance tests of issue 2 against real peers:
// DCMTK (echoscu, storescu, storescp, dcmdump), Orthanc, and hand-built
// upper-layer PDUs. Each test names the acceptance item it proves.
//
// The radgate binary is built once per run (or taken from RADGATE_BIN); every
// test starts its own radgate serve on free loopback ports with a fresh data
// directory, so the tests run in parallel. Peers that are not installed make
// their tests skip with a message (fail with RADGATE_REQUIRE_PEERS=1);
// scripts/test-deps.sh installs them.
package interop

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/radgate/radgate/internal/peertest"
)

// radgateBuildFlags are extra go build flags for radgate (-race under
// go test -race; see race_test.go).
var radgateBuildFlags []string

var build struct {
	once sync.Once
	dir  string
	bin  string
	err  error
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "radgate-interop-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	build.dir = dir
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// radgateBin builds ./cmd/radgate once for the whole package.
func radgateBin(t testing.TB) string {
	t.Helper()
	build.once.Do(func() {
		start := time.Now()
		build.bin, build.err = peertest.BuildRadgate(build.dir, radgateBuildFlags...)
		if build.err == nil {
			t.Logf("radgate built in %s: %s", time.Since(start).Round(time.Millisecond), build.bin)
		}
	})
	if build.err != nil {
		t.Fatalf("cannot build radgate: %v", build.err)
	}
	return build.bin
}

// startRadgate starts radgate serve for t with extra RADGATE_* settings.
func startRadgate(t *testing.T, env map[string]string) *peertest.Radgate {
	t.Helper()
	return peertest.StartRadgate(t, radgateBin(t), env)
}

// toolTimeout bounds every DCMTK command a test runs.
const toolTimeout = 2 * time.Minute

// dcmtk runs a DCMTK tool with TCP_NODELAY=1 and returns its combined output.
func dcmtk(t testing.TB, tool string, args ...string) (string, error) {
	t.Helper()
	bin, err := peertest.Tool(tool)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = peertest.PeerEnv("")
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		err = fmt.Errorf("%s timed out after %s: %w", tool, toolTimeout, err)
	}
	return string(out), err
}

// echo runs `echoscu -aet calling -aec called 127.0.0.1 PORT` against r.
func echo(t testing.TB, r *peertest.Radgate, calling, called string) (string, error) {
	t.Helper()
	return dcmtk(t, "echoscu", "-aet", calling, "-aec", called, "127.0.0.1", strconv.Itoa(r.Config.DIMSEPort))
}

// mustEcho proves radgate still serves: a plain echoscu succeeds.
func mustEcho(t testing.TB, r *peertest.Radgate) {
	t.Helper()
	if out, err := echo(t, r, "ECHOSCU", r.Config.AE); err != nil {
		t.Fatalf("radgate stopped serving: echoscu after the event failed: %v\n%s", err, out)
	}
}

// waitFor polls cond every 50 ms until it returns nil or timeout passes.
func waitFor(timeout time.Duration, cond func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("still not true after %s: %w", timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// storedByUID maps the SOP Instance UID of every instance committed in
// radgate's log (copied out as a Part 10 file into a temp folder) to that
// file, checking on the way that each parses and that no UID is there
// twice.
func storedByUID(t testing.TB, dataDir string) map[string]string {
	t.Helper()
	files, err := peertest.Stored(dataDir, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	m := make(map[string]string, len(files))
	for _, f := range files {
		p, err := peertest.ProbeFile(ctx, f)
		if err != nil {
			t.Errorf("unreadable record: %v", err)
			continue
		}
		if prev, dup := m[p.SOPInstanceUID]; dup {
			t.Errorf("SOP Instance UID %s stored twice: %s and %s", p.SOPInstanceUID, prev, f)
		}
		m[p.SOPInstanceUID] = f
	}
	return m
}

// indexedUIDs reads radgate's index, failing t when it cannot.
func indexedUIDs(t testing.TB, dataDir string) map[string]bool {
	t.Helper()
	uids, err := peertest.IndexedUIDs(dataDir)
	if err != nil {
		t.Fatalf("reading radgate's index: %v", err)
	}
	return uids
}

// logLine waits for a radgate log line after offset that contains every one
// of words (case-insensitive).
func logLine(r *peertest.Radgate, offset int64, timeout time.Duration, words ...string) (string, error) {
	var found string
	err := waitFor(timeout, func() error {
		for _, line := range strings.Split(r.LogSince(offset), "\n") {
			l := strings.ToLower(line)
			ok := line != ""
			for _, w := range words {
				ok = ok && strings.Contains(l, strings.ToLower(w))
			}
			if ok {
				found = line
				return nil
			}
		}
		return errors.New("no log line containing " + strings.Join(words, " + "))
	})
	return found, err
}

// copyFile copies src to dst.
func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o644)
}

func itoa(i int) string { return strconv.Itoa(i) }
