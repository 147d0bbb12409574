// Package gateway composes radgate's services from a Config: the store, the
// ingest path, the DIMSE SCP, the HTTP server (DICOMweb and /healthz,
// /readyz, /metrics), the gRPC server (KServe v2), the inference engine and
// the pipeline after ingest (study assembly, jobs, the outbox, the EHR
// client in ehr.go), with optional continuous profiling. It owns their
// lifecycle: New builds and binds, Run serves until its context ends, then
// shuts everything down in order (stop accepting, let in-flight
// associations and requests finish within the grace period, abort the
// rest, stop the pipeline, close the engine and the store).
package gateway

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/grafana/pyroscope-go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/radgate/radgate/api/kserve"
	radgateapi "github.com/radgate/radgate/api/radgate"
	"github.com/radgate/radgate/audit"
	"github.com/radgate/radgate/auth"
	"github.com/radgate/radgate/config"
	"github.com/radgate/radgate/delivery"
	"github.com/radgate/radgate/dicomweb"
	"github.com/radgate/radgate/dimse"
	"github.com/radgate/radgate/gpu"
	"github.com/radgate/radgate/inference"
	"github.com/radgate/radgate/inference/ort"
	"github.com/radgate/radgate/ingest"
	"github.com/radgate/radgate/internal/stage"
	"github.com/radgate/radgate/internal/tlsconf"
	"github.com/radgate/radgate/kms"
	"github.com/radgate/radgate/results"
	"github.com/radgate/radgate/sr"
	"github.com/radgate/radgate/store"
	"github.com/radgate/radgate/study"
	"github.com/radgate/radgate/web"
	"github.com/radgate/radgate/worklist"
)

// Gateway is a running radgate.
type Gateway struct {
	cfg     *config.Config
	log     *slog.Logger
	reg     *prometheus.Registry
	store   *store.Store
	dimse   *dimse.Server
	dimseLn net.Listener
	// dimseTLSLn is the DICOM TLS port (nil without tls_cert); tls holds
	// the identity HTTPS, gRPC and it serve, reloaded when renewed.
	dimseTLSLn net.Listener
	tls        *tlsconf.Source
	// verifier checks bearer tokens (nil: authentication off); sessions
	// sign the page's users in (nil: bearer tokens only).
	verifier *auth.Verifier
	sessions *auth.Sessions
	// keys seal the stored instances (nil: blob_key_file unset), reloaded
	// for rotations; keysFailing while the file is refused.
	keys        *store.KeyFile
	keysFailing atomic.Bool
	// hsm holds the key-encryption key instead (nil: blob_kms unset).
	hsm *kms.PKCS11
	// trail is the audit trail (data_dir/audit).
	trail    *audit.Trail
	http     *http.Server
	httpLn   net.Listener
	grpc     *grpc.Server
	grpcLn   net.Listener
	profiler *pyroscope.Profiler
	engine   *inference.Engine
	// ingest is where DIMSE and STOW-RS store instances and studies are
	// purged (retention, DICOMweb DELETE).
	ingest   *ingest.Service
	dicomweb *dicomweb.Server
	// web is the reading worklist page at /.
	web *web.Server
	// The pipeline after ingest: study assembly, jobs, the outbox.
	assembler *study.Assembler
	runner    *results.Runner
	outbox    *delivery.Outbox
	worklist  *worklist.Service
	rules     []study.Rule
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
	scfg := store.Config{
		DataDir:          cfg.DataDir,
		MinFreeBytes:     cfg.MinFreeDisk,
		Duplicates:       dup,
		MaxInstanceBytes: cfg.MaxInstanceBytes,
	}
	switch {
	case cfg.BlobKeyFile != "":
		keys, err := store.OpenKeyFile(cfg.BlobKeyFile)
		if err != nil {
			return nil, fmt.Errorf("gateway: blob_key_file: %w", err)
		}
		scfg.Keys, g.keys = keys, keys
		g.reg.MustRegister(g.keysMetric())
	case cfg.BlobKMS != "":
		uri, err := kms.ParseURI(cfg.BlobKMS)
		if err == nil {
			g.hsm, err = kms.Open(uri)
		}
		if err != nil {
			return nil, fmt.Errorf("gateway: blob_kms: %w", err)
		}
		scfg.Keys = g.hsm
	}
	st, err := store.Open(ctx, scfg, log, g.reg)
	if err != nil {
		g.closeAll()
		return nil, fmt.Errorf("gateway: open store: %w", err)
	}
	g.store = st

	g.engine, g.modelErrs, err = inference.Open(InferenceConfig(cfg), log, inference.NewMetrics(g.reg))
	if err != nil {
		g.closeAll()
		return nil, fmt.Errorf("gateway: inference: %w", err)
	}

	if cfg.TLSCert != "" {
		if g.tls, err = tlsconf.Load(tlsconf.Files{Cert: cfg.TLSCert, Key: cfg.TLSKey, ClientCA: cfg.TLSClientCA}, g.log, g.reg); err != nil {
			g.closeAll()
			return nil, fmt.Errorf("gateway: %w", err)
		}
	}
	if err := g.pipeline(cfg); err != nil {
		g.closeAll()
		return nil, err
	}

	ing := ingest.New(st, log, g.assembler.Released)
	g.ingest = ing
	if err := g.openAudit(cfg, ing); err != nil {
		g.closeAll()
		return nil, err
	}
	if g.dicomweb, err = dicomweb.New(st, ing, dicomweb.Config{
		MaxRequestBytes: cfg.DICOMwebMaxBody, MaxParts: cfg.DICOMwebMaxParts, Worklist: g.worklist,
	}, log, g.reg); err != nil {
		g.closeAll()
		return nil, fmt.Errorf("gateway: DICOMweb: %w", err)
	}
	wcfg := web.Config{DICOMweb: dicomweb.Prefix}
	if cfg.AuthAuthorizeURL != "" {
		wcfg.SignOut = auth.LogoutPath
	}
	if g.web, err = web.New(g.worklist, wcfg, log); err != nil {
		g.closeAll()
		return nil, fmt.Errorf("gateway: worklist page: %w", err)
	}

	g.dimse = &dimse.Server{
		Policy: dimse.Policy{
			AETitle:           cfg.AETitle,
			AnyCalledAE:       cfg.DIMSEAnyCalledAE,
			AllowedCallingAEs: cfg.DIMSEAllowedCalling,
			AllowedPeers:      cfg.DIMSEAllowedPeers,
			MaxAssociations:   cfg.DIMSEMaxAssociations,
		},
		Handler:      ing,
		MaxPDULength: cfg.DIMSEMaxPDU,
		ARTIM:        cfg.DIMSEARTIM,
		IdleTimeout:  cfg.DIMSEIdleTimeout,
		Logger:       log,
		Metrics:      dimse.NewMetrics(g.reg),
	}
	if err := g.listen(cfg); err != nil {
		g.closeAll()
		return nil, err
	}
	if err := g.newAuth(ctx, cfg); err != nil {
		g.closeAll()
		return nil, err
	}
	gopts := []grpc.ServerOption{grpc.MaxRecvMsgSize(kserve.MaxRecvMsgSize)}
	if g.tls != nil {
		gopts = append(gopts, grpc.Creds(credentials.NewTLS(g.tls.Server(tls.NoClientCert, "h2"))))
	}
	if g.verifier != nil {
		gopts = append(gopts, g.verifier.ServerOptions(grpcScope)...)
	}
	g.grpc = grpc.NewServer(gopts...)
	kserve.Register(g.grpc, g.engine, version)
	radgateapi.Register(g.grpc, g.engine, radgateapi.Config{Rules: g.rules, Equipment: g.equipment(), Store: st, Worklist: g.worklist})
	kserve.AddHealthAndReflection(g.grpc)
	g.http = &http.Server{
		Handler:           g.routes(),
		ReadHeaderTimeout: 10 * time.Second,
		MaxHeaderBytes:    cfg.HTTPMaxHeader,
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

// listen binds the ports; with tls_cert, HTTP is HTTPS only (HTTP/2 and
// 1.1 over TLS) and DIMSE gains its TLS port next to the plain one.
func (g *Gateway) listen(cfg *config.Config) error {
	var err error
	if g.tls != nil {
		if g.dimseTLSLn, err = net.Listen("tcp", cfg.DIMSETLSAddr); err != nil {
			return fmt.Errorf("gateway: DIMSE TLS listen: %w", err)
		}
	}
	if g.dimseLn, err = net.Listen("tcp", cfg.DIMSEAddr); err != nil {
		return fmt.Errorf("gateway: DIMSE listen: %w", err)
	}
	if g.httpLn, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
		return fmt.Errorf("gateway: HTTP listen: %w", err)
	}
	if g.tls != nil {
		g.httpLn = tls.NewListener(g.httpLn, g.tls.Server(tls.NoClientCert, "h2", "http/1.1"))
	}
	if g.grpcLn, err = net.Listen("tcp", cfg.GRPCAddr); err != nil {
		return fmt.Errorf("gateway: gRPC listen: %w", err)
	}
	return nil
}

// peerTLS is the client TLS of dimse+tls:// destinations: tls_peer_ca's
// roots, and src's certificate (nil: none) for a peer that asks.
func peerTLS(src *tlsconf.Source, cfg *config.Config) (*tls.Config, error) {
	roots, err := certPool("tls_peer_ca", cfg.TLSPeerCA)
	if err != nil {
		return nil, err
	}
	return tlsconf.Client(src, roots), nil
}

// certPool reads the CA certificates a setting names (nil when empty:
// the system's roots).
func certPool(setting, path string) (*x509.CertPool, error) {
	if path == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("gateway: %s: %w", setting, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("gateway: %s %s: no PEM certificate in it", setting, path)
	}
	return pool, nil
}

// ReloadTLS re-reads the certificate files now (radgate serve does it on
// SIGHUP; a change is also noticed within seconds without one).
func (g *Gateway) ReloadTLS() {
	if g.tls == nil {
		return
	}
	if err := g.tls.Reload(); err != nil {
		g.log.Error("radgate: TLS certificate reload failed; still serving the previous one", "err", err)
		return
	}
	g.log.Info("radgate: TLS certificate reloaded")
}

// pipeline builds what follows ingest: study assembly with the routing
// rules, the job runner and the outbox. Every destination is checked here,
// so a typo stops the start instead of dead-lettering results later.
func (g *Gateway) pipeline(cfg *config.Config) error {
	rules, err := study.Compile(cfg.Routes)
	if err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	if len(rules) == 0 {
		rules = study.DefaultRules()
	}
	g.rules = rules
	dests := slices.Clone(cfg.ResultsTo)
	for _, r := range rules {
		dests = append(dests, r.Destinations...)
	}
	peerTLS, err := peerTLS(g.tls, cfg)
	if err != nil {
		return err
	}
	dcfg := delivery.Config{
		CallingAE: cfg.AETitle, TLS: peerTLS, MaxAttempts: cfg.DeliveryMaxAttempts, Backoff: cfg.DeliveryBackoff, BackoffMax: cfg.DeliveryBackoffMax,
		Delivered: g.delivered,
	}
	for _, d := range dests {
		if strings.HasPrefix(d, "mllp://") {
			return fmt.Errorf("gateway: results go to DICOM destinations, not HL7 %q (that is worklist_hl7_to)", d)
		}
		if _, err := delivery.Parse(d, dcfg); err != nil {
			return fmt.Errorf("gateway: %w", err)
		}
	}
	latency, err := stage.NewLatency(g.reg)
	if err != nil {
		return err
	}
	work := g.store.Work()
	ehr, err := g.newEHR(cfg)
	if err != nil {
		return err
	}
	rcfg := results.Config{Workers: cfg.JobWorkers, Equipment: g.equipment()}
	scfg := study.Config{Rules: rules, Quiet: cfg.StudyQuiet, ReleaseQuiet: cfg.StudyReleaseQuiet, Destinations: cfg.ResultsTo}
	if ehr != nil {
		dcfg.Senders = map[string]delivery.Sender{ehr.dest: ehr.client.Sender()}
		rcfg.Notify, scfg.Notify = ehr.report, ehr.study
	}
	upsSinks, err := upsSinks(cfg, &dcfg)
	if err != nil {
		return err
	}
	if g.outbox, err = delivery.New(work, dcfg, g.log, g.reg, latency); err != nil {
		return err
	}
	hl7, err := g.hl7Sinks(cfg)
	if err != nil {
		return err
	}
	if g.worklist, err = worklist.New(g.store.Worklist(), append(hl7, upsSinks...), g.log, g.reg); err != nil {
		return err
	}
	scfg.Workitem = g.worklist.StudyComplete
	rcfg.Workitem = func(j store.Job, ins []store.Instance, res *inference.Result, l *inference.Loaded, srUID string) *store.WorkitemChange {
		return g.worklist.JobDone(worklist.Result{Model: l.Name, Version: l.Version, Job: j, Result: res, SRUID: srUID, Instances: ins})
	}
	if g.runner, err = results.New(g.store, g.engine, rcfg, g.log, g.reg, latency, g.outbox.Notify); err != nil {
		return err
	}
	g.assembler, err = study.New(work, scfg, g.log, g.reg, latency, g.runner.Notify)
	return err
}

// equipment is radgate itself, as every SR names it.
func (g *Gateway) equipment() sr.Equipment {
	return sr.Equipment{Manufacturer: "radgate", SoftwareVersion: g.version}
}

// DIMSEAddr, HTTPAddr and GRPCAddr are the bound listen addresses;
// DIMSETLSAddr is nil without TLS.
func (g *Gateway) DIMSEAddr() net.Addr { return g.dimseLn.Addr() }
func (g *Gateway) DIMSETLSAddr() net.Addr {
	if g.dimseTLSLn == nil {
		return nil
	}
	return g.dimseTLSLn.Addr()
}
func (g *Gateway) HTTPAddr() net.Addr { return g.httpLn.Addr() }
func (g *Gateway) GRPCAddr() net.Addr { return g.grpcLn.Addr() }

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
	g.dicomweb.Register(mux)
	// The reading worklist page: /, /worklist/..., and its sign-in.
	g.web.Register(mux)
	if g.sessions != nil {
		g.sessions.Register(mux)
	}
	return g.protect(mux)
}

// Banner describes the running gateway for the operator.
func (g *Gateway) Banner(ctx context.Context) string {
	var b strings.Builder
	c := g.cfg
	fmt.Fprintf(&b, "radgate %s (%s) — DICOM imaging AI inference gateway\n", g.version, runtime.Version())
	fmt.Fprintf(&b, "  AE title    %s\n", c.AETitle)
	fmt.Fprintf(&b, "  DIMSE       %s  (max PDU %d bytes, %d associations, ARTIM %s, idle %s)\n",
		g.DIMSEAddr(), c.DIMSEMaxPDU, c.DIMSEMaxAssociations, c.DIMSEARTIM, c.DIMSEIdleTimeout)
	if g.dimseTLSLn != nil {
		node := "no client certificate asked"
		if c.TLSClientCA != "" {
			node = "client certificate required (node authentication)"
		}
		fmt.Fprintf(&b, "  DIMSE TLS   %s  (TLS 1.2+, BCP 195; %s)\n", g.DIMSETLSAddr(), node)
	}
	grpcSec, web := "plaintext", "HTTP"
	if g.tls != nil {
		grpcSec, web = "TLS", "HTTPS"
	}
	authn := "OFF — every endpoint is open (set auth_jwks before patient data arrives)"
	if g.verifier != nil {
		authn = fmt.Sprintf("OAuth 2 bearer JWTs from %s (audience %s, scoped; health open)", c.AuthIssuer, c.AuthAudience)
		if g.sessions != nil {
			authn += fmt.Sprintf("; page sign-in via %s, idle timeout %s", c.AuthAuthorizeURL, c.AuthIdleTimeout)
		}
		grpcSec += ", bearer JWT"
	}
	fmt.Fprintf(&b, "  gRPC        %s  (KServe v2 %s, %s, health, reflection; %s)\n", g.GRPCAddr(), kserve.ServiceName, radgateapi.ServiceName, grpcSec)
	fmt.Fprintf(&b, "  %-11s %s  (worklist page /; DICOMweb %s: STOW-RS, QIDO-RS, WADO-RS, UPS-RS; /healthz /readyz /metrics)\n", web, g.HTTPAddr(), dicomweb.Prefix)
	fmt.Fprintf(&b, "  auth        %s\n", authn)
	sinks := append(slices.Clone(c.WorklistHL7To), c.WorklistUPSTo...)
	if len(sinks) == 0 {
		sinks = []string{"none"}
	}
	fmt.Fprintf(&b, "  worklist    priority updates to %s\n", strings.Join(sinks, ", "))
	n, _ := g.store.CountInstances(ctx)
	atRest := "instances in clear (set blob_key_file or blob_kms)"
	switch {
	case g.keys != nil:
		atRest = "instances AES-256-GCM, keys " + c.BlobKeyFile
	case g.hsm != nil:
		atRest = "instances AES-256-GCM, key-encryption key " + g.hsm.Current() + " on PKCS #11 token " + g.hsm.Token()
	}
	fmt.Fprintf(&b, "  data        %s  (%d instances; %s; refuse below %d bytes free)\n", c.DataDir, n, atRest, c.MinFreeDisk)
	retention := "studies kept until deleted (study_retention 0)"
	if c.StudyRetention > 0 {
		retention = fmt.Sprintf("studies purged %s after they settle (results delivered), audited", c.StudyRetention)
	}
	fmt.Fprintf(&b, "  retention   %s; audit trail kept %s\n", retention, c.AuditRetention)
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
			if m.Remote != "" {
				ids[i] += " on kserve " + m.Remote
			}
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
	fmt.Fprintf(&b, "  studies     complete after %s of silence (%s after an association release)\n", c.StudyQuiet, c.StudyReleaseQuiet)
	for _, r := range g.rules {
		fmt.Fprintf(&b, "  route       %s: %s → %s (%s)\n", r.Name, describeMatch(r), strings.Join(r.Models, ","), r.Priority)
	}
	to := "none (results are kept in the index only)"
	if len(c.ResultsTo) > 0 {
		rs := make([]string, len(c.ResultsTo))
		for i, d := range c.ResultsTo {
			rs[i] = delivery.Redact(d)
		}
		to = strings.Join(rs, ", ")
	}
	fmt.Fprintf(&b, "  results to  %s  (at most %d attempts, backoff %s..%s)\n", to, c.DeliveryMaxAttempts, c.DeliveryBackoff, c.DeliveryBackoffMax)
	ehr := "off"
	if c.FHIRURL != "" {
		ehr = c.FHIRURL + "  (" + fhirAuthMode(c) + "; unknown patient: " + c.FHIRUnknownPatient + ")"
	}
	fmt.Fprintf(&b, "  FHIR        %s\n", ehr)
	prof := "off"
	if c.PyroscopeURL != "" {
		prof = c.PyroscopeURL
	}
	fmt.Fprintf(&b, "  profiling   %s\n", prof)
	return b.String()
}

// describeMatch is a rule's match for the banner.
func describeMatch(r study.Rule) string {
	var parts []string
	if len(r.Modalities) > 0 {
		parts = append(parts, strings.Join(r.Modalities, "/"))
	}
	if len(r.BodyParts) > 0 {
		parts = append(parts, strings.Join(r.BodyParts, "/"))
	}
	if r.SeriesDescription != nil {
		parts = append(parts, "description ~ "+r.SeriesDescription.String())
	}
	if len(r.CallingAEs) > 0 {
		parts = append(parts, "from "+strings.Join(r.CallingAEs, "/"))
	}
	if len(parts) == 0 {
		return "any series"
	}
	return strings.Join(parts, " ")
}

// Run serves until ctx is cancelled, then shuts down within the grace
// period. It returns the first serving error, if any.
func (g *Gateway) Run(ctx context.Context) error {
	errc := make(chan error, 8)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		if err := g.dimse.Serve(g.dimseLn); err != nil && !errors.Is(err, dimse.ErrServerClosed) {
			errc <- fmt.Errorf("gateway: DIMSE: %w", err)
		}
	}()
	if g.dimseTLSLn != nil {
		clientAuth := tls.NoClientCert
		if g.tls.HasClientCA() {
			clientAuth = tls.RequireAndVerifyClientCert
		}
		wg.Go(func() {
			if err := g.dimse.ServeTLS(g.dimseTLSLn, g.tls.Server(clientAuth)); err != nil && !errors.Is(err, dimse.ErrServerClosed) {
				errc <- fmt.Errorf("gateway: DIMSE TLS: %w", err)
			}
		})
	}
	go func() {
		defer wg.Done()
		if err := g.http.Serve(g.httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("gateway: HTTP: %w", err)
		}
	}()
	wg.Go(func() {
		if err := g.grpc.Serve(g.grpcLn); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			errc <- fmt.Errorf("gateway: gRPC: %w", err)
		}
	})
	workCtx, stopWork := context.WithCancel(context.WithoutCancel(ctx))
	var work sync.WaitGroup
	g.auditStart(ctx)
	for _, run := range []func(context.Context) error{g.assembler.Run, g.runner.Run, g.outbox.Run, g.worklist.Run, g.auditWorklist, g.retention, g.watchKeys} {
		work.Go(func() {
			if err := run(workCtx); err != nil {
				errc <- fmt.Errorf("gateway: pipeline: %w", err)
			}
		})
	}
	g.log.Info("radgate: serving", "dimse", g.DIMSEAddr().String(), "http", g.HTTPAddr().String(), "grpc", g.GRPCAddr().String(), "ae_title", g.cfg.AETitle)

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
	g.stopGRPC(sctx)
	wg.Wait()
	// Ingest has stopped: stop the pipeline (a job in progress is
	// requeued, an attempt in progress recorded), then close.
	stopWork()
	work.Wait()
	g.auditStop(sctx)
	g.closeAll()
	g.log.Info("radgate: stopped")
	return runErr
}

// stopGRPC lets in-flight RPCs finish until ctx ends, then cuts them.
func (g *Gateway) stopGRPC(ctx context.Context) {
	done := make(chan struct{})
	go func() { g.grpc.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		g.grpc.Stop()
		<-done
	}
}

// closeAll releases what New acquired.
func (g *Gateway) closeAll() {
	if g.profiler != nil {
		_ = g.profiler.Stop()
	}
	for _, l := range []net.Listener{g.dimseLn, g.dimseTLSLn, g.httpLn, g.grpcLn} {
		if l != nil {
			_ = l.Close()
		}
	}
	if g.verifier != nil {
		_ = g.verifier.Close()
	}
	if g.trail != nil {
		if err := g.trail.Close(); err != nil {
			g.log.Error("radgate: close audit trail", "err", err)
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
	if g.hsm != nil {
		if err := g.hsm.Close(); err != nil {
			g.log.Error("radgate: close PKCS #11 token", "err", err)
		}
	}
}
