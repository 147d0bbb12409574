package peertest

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// StorescpConfig configures DCMTK's storescp as a C-STORE SCP.
type StorescpConfig struct {
	Dir  string // where received files go (-od); created if missing
	AE   string // its AE title; default "STORESCP"
	Port int    // 0 = a free port
	// Fork runs one child process per association (--fork), so several
	// associations are received in parallel; otherwise associations are
	// served one at a time by a single process.
	Fork bool
	// BitPreserving writes data sets exactly as received (+B) instead of
	// re-encoding them: what interop tests compare against.
	BitPreserving bool
	// ConfigFile and Profile, when set, replace +xa with an acceptor
	// profile (-xf FILE PROFILE): storescp +xa lacks some syntaxes (JPEG
	// lossless process 14).
	ConfigFile string
	Profile    string
	Verbose    bool     // -v
	Bindlo     string   // LD_PRELOAD shim; "" listens on every interface
	LogPath    string   // default: Dir + ".log"
	Args       []string // extra arguments before the port
}

// Storescp is a running storescp.
type Storescp struct {
	*Proc
	AE   string
	Port int
	Dir  string
}

// Addr is host:port.
func (s *Storescp) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.Port) }

// Target is AE@host:port, as radgate send takes it.
func (s *Storescp) Target() string { return s.AE + "@" + s.Addr() }

// LaunchStorescp starts storescp receiving every storage SOP class in every
// transfer syntax it knows (+xa, or the configured profile) into cfg.Dir as
// *.dcm, and waits until it
// accepts connections. The caller stops it.
func LaunchStorescp(cfg StorescpConfig) (*Storescp, error) {
	bin, err := Tool("storescp")
	if err != nil {
		return nil, err
	}
	if cfg.AE == "" {
		cfg.AE = "STORESCP"
	}
	if cfg.Port == 0 {
		if cfg.Port, err = FreePort(); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, err
	}
	if cfg.LogPath == "" {
		cfg.LogPath = filepath.Clean(cfg.Dir) + ".log"
	}
	args := []string{"-aet", cfg.AE, "-od", cfg.Dir, "-fe", ".dcm", "-dhl"}
	if cfg.ConfigFile != "" {
		args = append(args, "-xf", cfg.ConfigFile, cfg.Profile)
	} else {
		args = append(args, "+xa")
	}
	if cfg.Fork {
		args = append(args, "--fork")
	}
	if cfg.BitPreserving {
		args = append(args, "+B")
	}
	if cfg.Verbose {
		args = append(args, "-v")
	}
	args = append(args, cfg.Args...)
	args = append(args, strconv.Itoa(cfg.Port))
	p, err := Launch(bin, args, PeerEnv(cfg.Bindlo), cfg.Dir, cfg.LogPath)
	if err != nil {
		return nil, err
	}
	p.Name = "storescp"
	s := &Storescp{Proc: p, AE: cfg.AE, Port: cfg.Port, Dir: cfg.Dir}
	if err := p.WaitTCP(s.Addr(), ReadyTimeout); err != nil {
		_ = p.Stop(StopTimeout)
		return nil, fmt.Errorf("storescp on port %d: %w", cfg.Port, err)
	}
	return s, nil
}

// StartStorescp starts a bit-preserving storescp for a test, receiving into
// dir under title ae on port (0 = free), bound to loopback; it is stopped
// when the test ends.
func StartStorescp(t testing.TB, dir, ae string, port int) *Storescp {
	t.Helper()
	return StartStorescpWith(t, StorescpConfig{Dir: dir, AE: ae, Port: port, BitPreserving: true, Verbose: true})
}

// StartStorescpWith is StartStorescp with every option; the shim is filled
// in when cfg.Bindlo is empty.
func StartStorescpWith(t testing.TB, cfg StorescpConfig) *Storescp {
	t.Helper()
	Require(t, "storescp")
	if cfg.Bindlo == "" {
		cfg.Bindlo = Bindlo(t)
	}
	if cfg.LogPath == "" {
		cfg.LogPath = filepath.Join(t.TempDir(), "storescp.log")
	}
	s, err := LaunchStorescp(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cleanupProc(t, s.Proc)
	return s
}
