// Package gateway composes radgate's services from a Config: the store, the
// ingest path, the DIMSE SCP and the HTTP endpoints for operators
// (/healthz, /readyz, /metrics), with optional continuous profiling. It owns
// their lifecycle: New builds and binds, Run serves until its context ends,
// then shuts everything down in order (stop accepting, let in-flight
// associations finish within the grace period, abort the rest, close the
// store).
package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/grafana/pyroscope-go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/radgate/radgate/config"
	"github.com/radgate/radgate/dimse"
	"github.com/radgate/radgate/gpu"
	"github.com/radgate/radgate/inference"
	"github.com/radgate/radgate/inference/ort"
	"github.com/radgate/radgate/ingest"
	"github.com/radgate/radgate/store"
)

// Gateway is a running radgate.
type Gateway struct {
	cfg      *config.Config
	log      *slog.Logger
	reg      *prometheus.Registry
	store    *store.Store
	dimse    *dimse.Server
	dimseLn  net.Listener
	http     *http.Server
	httpLn   net.Listener
	profiler *pyroscope.Profiler
	engine   *inference.Engine
	// modelErrs are the repository's models that could not be loaded:
	// the gateway is not ready while there are any.
	modelMu   sync.Mutex
	modelErrs []error
	version   string
}

// ReloadModels rescans the model repository (radgate serve does it on
// SIGHUP): new versions are loaded, removed or changed ones unloaded.
func (g *Gateway) ReloadModels(ctx context.Context) {
	errs := g.engine.Reload(ctx)
	g.modelMu.Lock()
	g.modelErrs = errs
	g.modelMu.Unlock()
	g.log.Info("radgate: models reloaded", "loaded", len(g.engine.Models()), "failed", len(errs))
}

func (g *Gateway) modelErrors() []error {
	g.modelMu.Lock()
	defer g.modelMu.Unlock()
	return g.modelErrs
}

// InferenceConfig maps the settings onto the inference engine's.
func InferenceConfig(cfg *config.Config) inference.Config {
	lib := cfg.ORTLib
	if lib == "" {
		lib = ort.DefaultLibrary()
	}
	return inference.Config{
		ModelsDir:  cfg.ModelsDir,
		ORTLibrary: lib,
		Device:     gpu.Provider(cfg.Device),
		CacheDir:   filepath.Join(cfg.DataDir, "trt-cache"),
		Threads:    cfg.InferenceThreads,
		Workers:    cfg.InferenceWorkers,
		MaxQueue:   cfg.InferenceMaxQueue,
	}
}

// New opens the store and binds the listeners; nothing is served until Run.
func New(ctx context.Context, cfg *config.Config, log *slog.Logger, version string) (*Gateway, error) {
	g := &Gateway{cfg: cfg, log: log, reg: prometheus.NewRegistry(), version: version}
	g.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	buildInfo := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "radgate_build_info", Help: "Version of the running radgate."}, []string{"version", "goversion"})
	buildInfo.WithLabelValues(version, runtime.Version()).Set(1)
	g.reg.MustRegister(buildInfo)

	dup, err := store.ParseDuplicatePolicy(cfg.Duplicates)
	if err != nil {
		return nil, err
	}
	st, err := store.Open(ctx, store.Config{
		DataDir:          cfg.DataDir,
		MinFreeBytes:     cfg.MinFreeDisk,
		Duplicates:       dup,
		MaxInstanceBytes: cfg.MaxInstanceBytes,
	}, log, g.reg)
	if err != nil {
		return nil, fmt.Errorf("gateway: open store: %w", err)
	}
	g.store = st

	g.engine, g.modelErrs, err = inference.Open(InferenceConfig(cfg), log, inference.NewMetrics(g.reg))
	if err != nil {
		g.closeAll()
		return nil, fmt.Errorf("gateway: inference: %w", err)
	}

	g.dimse = &dimse.Server{
		Policy: dimse.Policy{
			AETitle:           cfg.AETitle,
			AnyCalledAE:       cfg.DIMSEAnyCalledAE,
			AllowedCallingAEs: cfg.DIMSEAllowedCalling,
			AllowedPeers:      cfg.DIMSEAllowedPeers,
			MaxAssociations:   cfg.DIMSEMaxAssociations,
		},
		Handler:      ingest.New(st, log),
		MaxPDULength: cfg.DIMSEMaxPDU,
		ARTIM:        cfg.DIMSEARTIM,
		IdleTimeout:  cfg.DIMSEIdleTimeout,
		Logger:       log,
		Metrics:      dimse.NewMetrics(g.reg),
	}
	if g.dimseLn, err = net.Listen("tcp", cfg.DIMSEAddr); err != nil {
		g.closeAll()
		return nil, fmt.Errorf("gateway: DIMSE listen: %w", err)
	}
	if g.httpLn, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
		g.closeAll()
		return nil, fmt.Errorf("gateway: HTTP listen: %w", err)
	}
	g.http = &http.Server{
		Handler:           g.routes(),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	if cfg.PyroscopeURL != "" {
		g.profiler, err = pyroscope.Start(pyroscope.Config{
			ApplicationName: "radgate",
			ServerAddress:   cfg.PyroscopeURL,
			Tags:            map[string]string{"ae_title": cfg.AETitle, "version": version},
			ProfileTypes: []pyroscope.ProfileType{
				pyroscope.ProfileCPU, pyroscope.ProfileAllocObjects, pyroscope.ProfileAllocSpace,
				pyroscope.ProfileInuseObjects, pyroscope.ProfileInuseSpace, pyroscope.ProfileGoroutines,
			},
		})
		if err != nil {
			g.closeAll()
			return nil, fmt.Errorf("gateway: start profiling: %w", err)
		}
	}
	return g, nil
}

// DIMSEAddr and HTTPAddr are the bound listen addresses.
func (g *Gateway) DIMSEAddr() net.Addr { return g.dimseLn.Addr() }
func (g *Gateway) HTTPAddr() net.Addr  { return g.httpLn.Addr() }

func (g *Gateway) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := g.store.Writable(ctx); err != nil {
			g.log.Warn("gateway: not ready", "err", err)
			http.Error(w, "not ready: store: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		if errs := g.modelErrors(); len(errs) > 0 {
			http.Error(w, "not ready: models: "+errors.Join(errs...).Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ready\n")
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(g.reg, promhttp.HandlerOpts{Registry: g.reg}))
	return mux
}

// Banner describes the running gateway for the operator.
func (g *Gateway) Banner(ctx context.Context) string {
	var b strings.Builder
	c := g.cfg
	fmt.Fprintf(&b, "radgate %s (%s) — DICOM imaging AI inference gateway\n", g.version, runtime.Version())
	fmt.Fprintf(&b, "  AE title    %s\n", c.AETitle)
	fmt.Fprintf(&b, "  DIMSE       %s  (max PDU %d bytes, %d associations, ARTIM %s, idle %s)\n",
		g.DIMSEAddr(), c.DIMSEMaxPDU, c.DIMSEMaxAssociations, c.DIMSEARTIM, c.DIMSEIdleTimeout)
	fmt.Fprintf(&b, "  HTTP        %s  (/healthz /readyz /metrics)\n", g.HTTPAddr())
	n, _ := g.store.CountInstances(ctx)
	fmt.Fprintf(&b, "  data        %s  (%d instances; refuse below %d bytes free)\n", c.DataDir, n, c.MinFreeDisk)
	policy := "any calling AE"
	if len(c.DIMSEAllowedCalling) > 0 {
		policy = "calling AE in " + strings.Join(c.DIMSEAllowedCalling, ",")
	}
	if len(c.DIMSEAllowedPeers) > 0 {
		policy += fmt.Sprintf("; peers in %v", c.DIMSEAllowedPeers)
	}
	fmt.Fprintf(&b, "  accepting   %s\n", policy)
	models := "none"
	if ms := g.engine.Models(); len(ms) > 0 {
		ids := make([]string, len(ms))
		for i, m := range ms {
			ids[i] = m.ID() + " [" + m.Task + "]"
		}
		models = strings.Join(ids, ", ")
	}
	fmt.Fprintf(&b, "  models      %s  (from %s)\n", models, c.ModelsDir)
	for _, err := range g.modelErrors() {
		fmt.Fprintf(&b, "              NOT LOADED: %v\n", err)
	}
	device := "cpu"
	if ms := g.engine.Models(); len(ms) > 0 {
		device = ms[0].Placement.String()
	}
	fmt.Fprintf(&b, "  inference   %s, ONNX Runtime %s, %d threads per session, requested %s\n",
		device, g.engine.RuntimeVersion(), g.engine.Threads(), c.Device)
	prof := "off"
	if c.PyroscopeURL != "" {
		prof = c.PyroscopeURL
	}
	fmt.Fprintf(&b, "  profiling   %s\n", prof)
	return b.String()
}

// Run serves until ctx is cancelled, then shuts down within the grace
// period. It returns the first serving error, if any.
func (g *Gateway) Run(ctx context.Context) error {
	errc := make(chan error, 2)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		if err := g.dimse.Serve(g.dimseLn); err != nil && !errors.Is(err, dimse.ErrServerClosed) {
			errc <- fmt.Errorf("gateway: DIMSE: %w", err)
		}
	}()
	go func() {
		defer wg.Done()
		if err := g.http.Serve(g.httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("gateway: HTTP: %w", err)
		}
	}()
	g.log.Info("radgate: serving", "dimse", g.DIMSEAddr().String(), "http", g.HTTPAddr().String(), "ae_title", g.cfg.AETitle)

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	g.log.Info("radgate: shutting down", "grace", g.cfg.ShutdownGrace)
	sctx, cancel := context.WithTimeout(context.Background(), g.cfg.ShutdownGrace)
	defer cancel()
	if err := g.dimse.Shutdown(sctx); err != nil {
		g.log.Warn("radgate: associations aborted at the end of the grace period", "err", err)
	}
	if err := g.http.Shutdown(sctx); err != nil {
		g.log.Warn("radgate: HTTP shutdown", "err", err)
	}
	wg.Wait()
	g.closeAll()
	g.log.Info("radgate: stopped")
	return runErr
}

// closeAll releases what New acquired.
func (g *Gateway) closeAll() {
	if g.profiler != nil {
		_ = g.profiler.Stop()
	}
	for _, l := range []net.Listener{g.dimseLn, g.httpLn} {
		if l != nil {
			_ = l.Close()
		}
	}
	if g.engine != nil {
		if err := g.engine.Close(); err != nil {
			g.log.Error("radgate: close inference engine", "err", err)
		}
	}
	if g.store != nil {
		if err := g.store.Close(); err != nil {
			g.log.Error("radgate: close store", "err", err)
		}
	}
}
