package peertest

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// ModulePath is radgate's Go module; RepoRoot looks for its go.mod.
const ModulePath = "github.com/radgate/radgate"

// PydicomTestFiles is where Debian's python3-pydicom keeps its sample files.
const PydicomTestFiles = "/usr/lib/python3/dist-packages/pydicom/data/test_files"

// OrthancDicomWebPlugin is the plugin Debian's orthanc-dicomweb installs.
const OrthancDicomWebPlugin = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so"

// RequirePeersEnv, when "1", turns Require's skips into failures: CI that
// installed everything must not pass by skipping.
const RequirePeersEnv = "RADGATE_REQUIRE_PEERS"

// packageOf says which Debian package provides a tool Require checks.
var packageOf = map[string]string{
	"storescu": "dcmtk", "storescp": "dcmtk", "echoscu": "dcmtk", "dcmdump": "dcmtk",
	"dcmodify": "dcmtk", "dcmconv": "dcmtk", "dcmcjpeg": "dcmtk", "dcmcjpls": "dcmtk",
	"dcmcrle": "dcmtk", "dsrdump": "dcmtk", "dciodvfy": "dicom3tools", "dcentvfy": "dicom3tools", "Orthanc": "orthanc",
	"orthanc-dicomweb": "orthanc-dicomweb", "pydicom": "python3-pydicom", "hl7": "python3-hl7",
	"cc": "gcc", "go": "golang", "softhsm2-util": "softhsm2", "softhsm2": "softhsm2",
	// Built by scripts/test-deps.sh with go install into bin/tools.
	"grpcurl": "(go install) grpcurl", "ghz": "(go install) ghz",
}

// extraBin are searched after PATH: Orthanc lives in /usr/sbin, which a
// non-root PATH often lacks.
var extraBin = []string{"/usr/sbin", "/sbin", "/usr/local/sbin"}

// Tool returns the absolute path of an executable, looking in PATH, then
// the sbin directories, then the repository's bin/tools (the Go-built
// peers scripts/test-deps.sh installs: grpcurl, ghz).
func Tool(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return filepath.Abs(p)
	}
	dirs := slices.Clone(extraBin)
	if root, err := RepoRoot(); err == nil {
		dirs = append(dirs, filepath.Join(root, "bin", "tools"))
	}
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("peertest: %s not found in PATH or %s", name, strings.Join(dirs, ", "))
}

// Missing returns the tools (executables, or the pseudo-tools
// "orthanc-dicomweb", "pydicom", "hl7" and "softhsm2" for data, plugins,
// Python modules and libraries) that are not installed.
func Missing(tools ...string) []string {
	var miss []string
	for _, name := range tools {
		var err error
		switch name {
		case "orthanc-dicomweb":
			_, err = os.Stat(OrthancDicomWebPlugin)
		case "pydicom":
			_, err = os.Stat(filepath.Join(PydicomTestFiles, "CT_small.dcm"))
		case "softhsm2":
			_, err = os.Stat(SoftHSMModule)
		case "hl7": // python3-hl7's MLLP server, for the system python3
			if _, err = os.Stat(HL7Python); err == nil {
				_, err = os.Stat(hl7Module)
			}
		default:
			_, err = Tool(name)
		}
		if err != nil {
			miss = append(miss, name)
		}
	}
	return miss
}

// Require skips t when one of tools is not installed, naming the Debian
// package to install. With RADGATE_REQUIRE_PEERS=1 it fails instead.
func Require(t testing.TB, tools ...string) {
	t.Helper()
	miss := Missing(tools...)
	if len(miss) == 0 {
		return
	}
	var pk []string
	for _, m := range miss {
		if p, ok := packageOf[m]; ok && !slices.Contains(pk, p) {
			pk = append(pk, p)
		}
	}
	msg := fmt.Sprintf("peer tool(s) not installed: %s (Debian: apt-get install %s; or run scripts/test-deps.sh as root)",
		strings.Join(miss, ", "), strings.Join(pk, " "))
	if os.Getenv(RequirePeersEnv) == "1" {
		t.Fatal(msg + " — failing because " + RequirePeersEnv + "=1")
	}
	t.Skip(msg)
}

var repoRoot struct {
	once sync.Once
	dir  string
	err  error
}

// RepoRoot returns the directory holding radgate's go.mod, found by walking
// up from the working directory (go test runs in the package directory).
func RepoRoot() (string, error) {
	repoRoot.once.Do(func() {
		dir, err := os.Getwd()
		if err != nil {
			repoRoot.err = err
			return
		}
		for {
			b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
			if err == nil && bytes.Contains(b, []byte("module "+ModulePath)) {
				repoRoot.dir = dir
				return
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				repoRoot.err = errors.New("peertest: go.mod of " + ModulePath + " not found above the working directory")
				return
			}
			dir = parent
		}
	})
	return repoRoot.dir, repoRoot.err
}

// PeersDir is test/peers in the repository: configs and sources of the peers.
func PeersDir() (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, "test", "peers"), nil
}

// PeerEnv is the environment for DCMTK tools and Orthanc: the current one plus
// TCP_NODELAY=1 (both leave Nagle on otherwise, which makes them ~10× slower
// on loopback) and, when bindlo is not empty, LD_PRELOAD of the loopback shim.
func PeerEnv(bindlo string) []string {
	env := make([]string, 0, len(os.Environ())+2)
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "TCP_NODELAY=") || strings.HasPrefix(kv, "LD_PRELOAD=") {
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "TCP_NODELAY=1")
	if bindlo != "" {
		env = append(env, "LD_PRELOAD="+bindlo)
	}
	return env
}

// handedOut remembers ports FreePort returned in this process so that two
// parallel tests never get the same one before either has bound it.
var handedOut struct {
	mu    sync.Mutex
	ports map[int]bool
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago and has
// not been returned before in this process. For peers that cannot listen on
// port 0 and report it.
func FreePort() (int, error) {
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("peertest: free port: %w", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		_ = l.Close()
		handedOut.mu.Lock()
		if handedOut.ports == nil {
			handedOut.ports = make(map[int]bool)
		}
		dup := handedOut.ports[port]
		handedOut.ports[port] = true
		handedOut.mu.Unlock()
		if !dup {
			return port, nil
		}
	}
	return 0, errors.New("peertest: no unused free port after 100 tries")
}

// MustFreePort is FreePort for tests.
func MustFreePort(t testing.TB) int {
	t.Helper()
	p, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// RequireTool is Require for one tool, then its path (Tool).
func RequireTool(t testing.TB, name string) string {
	t.Helper()
	Require(t, name)
	p, err := Tool(name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Run runs a peer tool with stdin and returns its combined output,
// failing t when it exits non-zero.
func Run(t testing.TB, stdin []byte, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), name, args...)
	cmd.Stdin = bytes.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
	}
	return out
}
