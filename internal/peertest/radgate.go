package peertest

import (
	"fmt"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// RadgateBinEnv names a prebuilt radgate binary to test instead of building
// one (make test can pass bin/radgate).
const RadgateBinEnv = "RADGATE_BIN"

// BuildRadgate builds ./cmd/radgate into dir (go build with extra flags,
// e.g. -race) and returns the binary's path. When RADGATE_BIN is set it
// returns that instead, after checking it exists.
func BuildRadgate(dir string, flags ...string) (string, error) {
	if bin := os.Getenv(RadgateBinEnv); bin != "" {
		abs, err := filepath.Abs(bin)
		if err != nil {
			return "", err
		}
		if _, err := os.Stat(abs); err != nil {
			return "", fmt.Errorf("peertest: %s=%s: %w", RadgateBinEnv, bin, err)
		}
		return abs, nil
	}
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	goBin, err := Tool("go")
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, "radgate")
	args := append([]string{"build"}, flags...)
	cmd := exec.Command(goBin, append(args, "-o", out, "./cmd/radgate")...)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("peertest: go build %s ./cmd/radgate: %v\n%s", strings.Join(flags, " "), err, b)
	}
	return out, nil
}

// RadgateConfig configures a radgate serve process. Every address is on
// 127.0.0.1 with a port picked here, since radgate cannot report a port it
// chose itself.
type RadgateConfig struct {
	Bin       string
	DataDir   string // RADGATE_DATA_DIR; created if missing
	AE        string // RADGATE_AE_TITLE; default "RADGATE"
	DIMSEPort int    // 0 = a free port
	HTTPPort  int    // 0 = a free port
	GRPCPort  int    // 0 = a free port
	LogLevel  string // default "info"
	LogFormat string // default "text"
	// Env adds or overrides RADGATE_* settings (and anything else).
	Env     map[string]string
	LogPath string // default: DataDir + ".log"
	// Args replace the default ["serve"].
	Args []string
}

// Radgate is a running radgate serve.
type Radgate struct {
	*Proc
	Config RadgateConfig
}

// Addr is the DIMSE host:port.
func (r *Radgate) Addr() string { return "127.0.0.1:" + strconv.Itoa(r.Config.DIMSEPort) }

// Target is AE@host:port.
func (r *Radgate) Target() string { return r.Config.AE + "@" + r.Addr() }

// HTTPURL is the HTTP base URL, without a trailing slash.
func (r *Radgate) HTTPURL() string { return "http://127.0.0.1:" + strconv.Itoa(r.Config.HTTPPort) }

// DataDir is RADGATE_DATA_DIR.
func (r *Radgate) DataDir() string { return r.Config.DataDir }

// PeakRSS is VmHWM of the running process, in bytes.
func (r *Radgate) PeakRSS() (int64, error) { return ProcStatus(r.Pid(), "VmHWM") }

// RSS is VmRSS of the running process, in bytes.
func (r *Radgate) RSS() (int64, error) { return ProcStatus(r.Pid(), "VmRSS") }

// Environ is the environment radgate runs with: the current one without any
// RADGATE_* variable, then the configured settings.
func (cfg RadgateConfig) Environ() []string {
	env := CleanEnv()
	set := map[string]string{
		"RADGATE_DATA_DIR":   cfg.DataDir,
		"RADGATE_AE_TITLE":   cfg.AE,
		"RADGATE_DIMSE_ADDR": "127.0.0.1:" + strconv.Itoa(cfg.DIMSEPort),
		"RADGATE_HTTP_ADDR":  "127.0.0.1:" + strconv.Itoa(cfg.HTTPPort),
		"RADGATE_GRPC_ADDR":  "127.0.0.1:" + strconv.Itoa(cfg.GRPCPort),
		"RADGATE_LOG_LEVEL":  cfg.LogLevel,
		"RADGATE_LOG_FORMAT": cfg.LogFormat,
	}
	// The binary lives in a temporary folder, away from bin/lib: point it
	// at the library and the reference models of the repository.
	if lib, err := ORTLibraryPath(); err == nil {
		set["RADGATE_ORT_LIB"] = lib
	}
	if dir, err := ModelsDir(); err == nil {
		set["RADGATE_MODELS_DIR"] = dir
	}
	maps.Copy(set, cfg.Env)
	for _, k := range slices.Sorted(maps.Keys(set)) {
		env = append(env, k+"="+set[k])
	}
	return env
}

// CleanEnv is the current environment without RADGATE_* variables, for
// radgate client commands (echo, send) that must not pick up stray settings.
func CleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "RADGATE_") {
			env = append(env, kv)
		}
	}
	return env
}

func (cfg *RadgateConfig) fill() error {
	if cfg.Bin == "" {
		return fmt.Errorf("peertest: RadgateConfig.Bin is empty")
	}
	if cfg.DataDir == "" {
		return fmt.Errorf("peertest: RadgateConfig.DataDir is empty")
	}
	abs, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return err
	}
	cfg.DataDir = abs
	if cfg.AE == "" {
		cfg.AE = "RADGATE"
	}
	if cfg.LogLevel == "" {
		cfg.LogLevel = "info"
	}
	if cfg.LogFormat == "" {
		cfg.LogFormat = "text"
	}
	for _, p := range []*int{&cfg.DIMSEPort, &cfg.HTTPPort, &cfg.GRPCPort} {
		if *p == 0 {
			if *p, err = FreePort(); err != nil {
				return err
			}
		}
	}
	if cfg.LogPath == "" {
		cfg.LogPath = filepath.Clean(cfg.DataDir) + ".log"
	}
	if len(cfg.Args) == 0 {
		cfg.Args = []string{"serve"}
	}
	return os.MkdirAll(cfg.DataDir, 0o755)
}

// LaunchRadgate starts radgate serve and waits until /readyz answers 200 and
// the DIMSE port accepts connections. The caller stops it.
func LaunchRadgate(cfg RadgateConfig) (*Radgate, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	p, err := Launch(cfg.Bin, cfg.Args, cfg.Environ(), filepath.Dir(cfg.DataDir), cfg.LogPath)
	if err != nil {
		return nil, err
	}
	p.Name = "radgate"
	r := &Radgate{Proc: p, Config: cfg}
	if err := p.WaitHTTP(r.HTTPURL()+"/readyz", http.StatusOK, ReadyTimeout); err != nil {
		_ = p.Stop(StopTimeout)
		return nil, err
	}
	if err := p.WaitTCP(r.Addr(), ReadyTimeout); err != nil {
		_ = p.Stop(StopTimeout)
		return nil, err
	}
	return r, nil
}

// Relaunch starts radgate again with the same configuration (ports, data
// directory, log file), after the previous process stopped or was killed.
func (r *Radgate) Relaunch() (*Radgate, error) {
	if done, _ := r.Exited(); !done {
		return nil, fmt.Errorf("peertest: radgate pid %d is still running", r.Pid())
	}
	return LaunchRadgate(r.Config)
}

// StartRadgate starts bin serve for a test with env (RADGATE_* settings;
// RADGATE_DATA_DIR defaults to a fresh directory), stopped when the test
// ends. Stop it earlier with Stop (SIGTERM) or Kill (SIGKILL).
func StartRadgate(t testing.TB, bin string, env map[string]string) *Radgate {
	t.Helper()
	dir := t.TempDir()
	// Debug level: every line a test makes radgate write is checked for PHI.
	cfg := RadgateConfig{Bin: bin, DataDir: filepath.Join(dir, "data"), LogPath: filepath.Join(dir, "radgate.log"), Env: env, LogLevel: "debug"}
	if d := env["RADGATE_DATA_DIR"]; d != "" {
		cfg.DataDir = d
	}
	return StartRadgateWith(t, cfg)
}

// StartRadgateWith is StartRadgate with every option.
func StartRadgateWith(t testing.TB, cfg RadgateConfig) *Radgate {
	t.Helper()
	r, err := LaunchRadgate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cleanupRadgate(t, r)
	return r
}

// cleanupRadgate stops r when t ends and fails t when a race-enabled radgate
// reported a data race, or when its log names a patient.
func cleanupRadgate(t testing.TB, r *Radgate) {
	// Registered first so that it runs last, after the stop: cleanups run
	// in reverse order.
	t.Cleanup(func() {
		if log := r.Log(); strings.Contains(log, "WARNING: DATA RACE") {
			i := strings.Index(log, "WARNING: DATA RACE")
			t.Errorf("radgate reported a data race (log %s):\n%s", r.LogPath, clip(log[i:], 6000))
		}
		NoPHI(t, r.LogPath, r.Log())
	})
	cleanupProc(t, r.Proc)
}

// RestartRadgate relaunches r (after Stop or Kill) for a test.
func RestartRadgate(t testing.TB, r *Radgate) *Radgate {
	t.Helper()
	n, err := r.Relaunch()
	if err != nil {
		t.Fatal(err)
	}
	cleanupRadgate(t, n)
	return n
}

// StopGracefully sends SIGTERM and waits for a clean exit.
func (r *Radgate) StopGracefully() error {
	start := time.Now()
	if err := r.Stop(StopTimeout); err != nil {
		return fmt.Errorf("radgate did not exit cleanly on SIGTERM after %s: %w", time.Since(start).Round(time.Millisecond), err)
	}
	return nil
}
