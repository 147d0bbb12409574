package inference

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/radgate/radgate/gpu"
	"github.com/radgate/radgate/inference/ort"
	"github.com/radgate/radgate/models"
)

// Config sizes the engine.
type Config struct {
	// ModelsDir is the model repository (models.Scan).
	ModelsDir string
	// ORTLibrary is the ONNX Runtime shared library.
	ORTLibrary string
	// Device: the execution provider wanted (cpu, cuda, tensorrt).
	Device gpu.Provider
	// CacheDir holds TensorRT engine caches.
	CacheDir string
	// Threads: cores inference may use in all (0: every core).
	Threads int
	// Workers: batches run at once; each session gets Threads/Workers
	// intra-op threads, so workers × threads never exceed the cores.
	Workers int
	// MaxQueue: items waiting per model and priority (backpressure).
	MaxQueue int
}

// DefaultMaxQueue bounds each model's queue per priority: 1024 CT slices
// of 3×256² float32 are 768 MiB.
const DefaultMaxQueue = 1024

// Loaded is a model version the engine serves.
type Loaded struct {
	models.Model
	Placement gpu.Placement // where an in-process model runs
	Remote    string        // the KServe v2 endpoint serving a remote model ("" in process)

	remote *remoteBackend // a remote model's backend, for Health
}

// Health says whether the model can be run now; detail, empty when
// ready, says why not. A model in process is always ready. A remote one
// is as its endpoint answered the last periodic ModelReady check (ready
// from load until a check fails); while not, detail names the endpoint,
// since when (RFC 3339, UTC) and the last check's error. Requests to a
// remote model that is not ready are still tried.
func (l *Loaded) Health() (ready bool, detail string) {
	if l.remote == nil {
		return true, ""
	}
	return l.remote.state()
}

// Engine is the model pool: the repository's models loaded into ONNX
// Runtime sessions behind one scheduler.
type Engine struct {
	cfg     Config
	log     *slog.Logger
	rt      *ort.Runtime
	sched   *Scheduler
	metrics *Metrics
	place   gpu.Placement
	threads int

	mu     sync.RWMutex
	loaded map[string]*Loaded // by ID
}

// Open loads the ONNX Runtime library and every valid model of the
// repository. A model that fails to load is logged and returned among the
// errors; the others are served.
func Open(cfg Config, log *slog.Logger, m *Metrics) (*Engine, []error, error) {
	rt, err := ort.Open(cfg.ORTLibrary, log)
	if err != nil {
		return nil, nil, err
	}
	cores := cfg.Threads
	if cores <= 0 {
		cores = runtime.NumCPU()
	}
	workers := max(cfg.Workers, 1)
	if cfg.MaxQueue <= 0 {
		cfg.MaxQueue = DefaultMaxQueue
	}
	e := &Engine{
		cfg: cfg, log: log, rt: rt, metrics: m,
		sched:   NewScheduler(workers, m),
		threads: max(cores/workers, 1),
		loaded:  map[string]*Loaded{},
	}
	e.place = e.placement()
	found, errs := models.Scan(cfg.ModelsDir)
	for _, md := range found {
		if err := e.Load(md); err != nil {
			errs = append(errs, err)
		}
	}
	for _, err := range errs {
		log.Error("model not loaded", "err", err)
	}
	return e, errs, nil
}

// placement decides the device once: discovery, then the fallback rule.
func (e *Engine) placement() gpu.Placement {
	if e.cfg.Device == "" || e.cfg.Device == gpu.CPU {
		return gpu.Placement{Provider: gpu.CPU}
	}
	inv, err := gpu.Discover()
	if err != nil {
		e.log.Warn("GPU requested, running on CPU", "device", string(e.cfg.Device), "reason", err.Error())
		return gpu.Placement{Provider: gpu.CPU}
	}
	p, why := gpu.Place(e.cfg.Device, inv, e.cfg.CacheDir)
	if why != "" {
		e.log.Warn("GPU requested, running on CPU", "device", string(e.cfg.Device), "reason", why)
	}
	return p
}

// RuntimeVersion is the ONNX Runtime library's version.
func (e *Engine) RuntimeVersion() string { return e.rt.Version() }

// Threads is the intra-op thread count of each session.
func (e *Engine) Threads() int { return e.threads }

// Scheduler is the engine's queue, for callers that bring their own
// tensors (the KServe v2 API).
func (e *Engine) Scheduler() *Scheduler { return e.sched }

// Load verifies a model against its manifest (file checksum, then the
// ONNX graph's input and output tensors), creates its session and starts
// serving it. Several versions of a model may be loaded side by side.
func (e *Engine) Load(md models.Model) error {
	if err := md.Verify(); err != nil {
		return err
	}
	var (
		b     Backend
		l     = &Loaded{Model: md}
		where string
	)
	if md.Remote != nil {
		rb, err := dialRemote(md)
		if err != nil {
			return err
		}
		b, l.Remote, l.remote, where = rb, md.Remote.Address, rb, "kserve "+md.Remote.Address
	} else {
		if err := e.checkGraph(md); err != nil {
			return err
		}
		s, err := e.rt.NewSession(md.Path(), []string{md.Input.Name}, []string{md.Output.Name},
			ort.SessionOptions{IntraOpThreads: e.threads, Placement: e.place})
		if err != nil {
			return fmt.Errorf("inference: %s: %w", md.ID(), err)
		}
		b, l.Placement, where = sessionBackend{s}, s.Placement(), s.Placement().String()
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.sched.Add(md.ID(), b, Policy{
		MaxBatch: md.Batching.MaxBatch, MaxQueueDelay: md.Batching.MaxQueueDelay, MaxQueue: e.cfg.MaxQueue,
	}); err != nil {
		b.Close()
		return err
	}
	if l.remote != nil {
		l.remote.watch(md.ID(), e.log, e.metrics) // until the scheduler closes it
	}
	e.loaded[md.ID()] = l
	e.log.Info("model loaded", "model", md.ID(), "task", md.Task, "device", where,
		"max_batch", md.Batching.MaxBatch, "threads", e.threads)
	return nil
}

// ErrGraph: the ONNX file's tensors are not what the manifest declares.
var ErrGraph = errors.New("inference: model graph does not match its manifest")

func (e *Engine) checkGraph(md models.Model) error {
	ins, outs, err := e.rt.Inspect(md.Path())
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrGraph, md.ID(), err)
	}
	find := func(ios []ort.IO, name string) (ort.IO, bool) {
		i := slices.IndexFunc(ios, func(x ort.IO) bool { return x.Name == name })
		if i < 0 {
			return ort.IO{}, false
		}
		return ios[i], true
	}
	in, ok := find(ins, md.Input.Name)
	if !ok || len(ins) != 1 {
		return fmt.Errorf("%w: %s: manifest input %q, graph inputs %v", ErrGraph, md.ID(), md.Input.Name, names(ins))
	}
	if in.Type != "float32" || !shapeFits(in.Shape, md.Input.Shape) {
		return fmt.Errorf("%w: %s: input %s is %s%v, manifest says float32%v", ErrGraph, md.ID(), in.Name, in.Type, in.Shape, md.Input.Shape)
	}
	out, ok := find(outs, md.Output.Name)
	if !ok {
		return fmt.Errorf("%w: %s: manifest output %q, graph outputs %v", ErrGraph, md.ID(), md.Output.Name, names(outs))
	}
	if out.Type != "float32" || !shapeFits(out.Shape, []int64{-1, int64(len(md.Labels))}) {
		return fmt.Errorf("%w: %s: output %s is %s%v, manifest has %d labels", ErrGraph, md.ID(), out.Name, out.Type, out.Shape, len(md.Labels))
	}
	return nil
}

func names(ios []ort.IO) []string {
	n := make([]string, len(ios))
	for i, x := range ios {
		n[i] = x.Name
	}
	return n
}

// shapeFits: same rank, and every fixed dimension of the graph equals the
// manifest's (a dynamic graph axis, <0, takes anything).
func shapeFits(graph, manifest []int64) bool {
	if len(graph) != len(manifest) {
		return false
	}
	for i, d := range graph {
		if d >= 0 && d != manifest[i] {
			return false
		}
	}
	return true
}

// Unload stops serving a model version once its running batches end.
func (e *Engine) Unload(ctx context.Context, id string) error {
	e.mu.Lock()
	_, ok := e.loaded[id]
	delete(e.loaded, id)
	e.mu.Unlock()
	if !ok {
		return fmt.Errorf("%w: %s", ErrNoModel, id)
	}
	return e.sched.Remove(ctx, id)
}

// Models lists the loaded model versions, sorted by ID.
func (e *Engine) Models() []*Loaded {
	e.mu.RLock()
	defer e.mu.RUnlock()
	ls := make([]*Loaded, 0, len(e.loaded))
	for _, l := range e.loaded {
		ls = append(ls, l)
	}
	slices.SortFunc(ls, func(a, b *Loaded) int { return strings.Compare(a.ID(), b.ID()) })
	return ls
}

// Lookup finds a model by ID (name@version) or by name, which means its
// highest loaded version (versions compared as dotted numbers).
func (e *Engine) Lookup(ref string) (*Loaded, bool) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if l, ok := e.loaded[ref]; ok {
		return l, true
	}
	var best *Loaded
	for _, l := range e.loaded {
		if l.Name == ref && (best == nil || compareVersions(l.Version, best.Version) > 0) {
			best = l
		}
	}
	return best, best != nil
}

// compareVersions orders "1.10.0" after "1.9.2": numeric fields compare
// as numbers, others as text.
func compareVersions(a, b string) int {
	sep := func(r rune) bool { return r == '.' || r == '-' || r == '_' }
	fa, fb := strings.FieldsFunc(a, sep), strings.FieldsFunc(b, sep)
	for i := range min(len(fa), len(fb)) {
		nx, ex := strconv.ParseUint(fa[i], 10, 64)
		ny, ey := strconv.ParseUint(fb[i], 10, 64)
		if c := cmp.Compare(nx, ny); ex == nil && ey == nil && c != 0 {
			return c
		}
		if c := strings.Compare(fa[i], fb[i]); (ex != nil || ey != nil) && c != 0 {
			return c
		}
	}
	return cmp.Compare(len(fa), len(fb))
}

// Close stops the scheduler, closes every session (stopping the remote
// models' health checks) and the runtime.
func (e *Engine) Close() error {
	err := e.sched.Stop()
	return errors.Join(err, e.rt.Close())
}

// sessionBackend adapts an ONNX Runtime session to Backend.
type sessionBackend struct{ s *ort.Session }

func (b sessionBackend) Run(_ context.Context, in []Tensor) ([]Tensor, error) {
	tin := make([]ort.Tensor, len(in))
	for i, t := range in {
		tin[i] = ort.Tensor(t)
	}
	out, err := b.s.Run(tin)
	if err != nil {
		return nil, err
	}
	res := make([]Tensor, len(out))
	for i, t := range out {
		res[i] = Tensor(t)
	}
	return res, nil
}

func (b sessionBackend) Close() error { return b.s.Close() }

// sigmoid maps a logit to a probability.
func sigmoid(x float32) float32 { return float32(1 / (1 + math.Exp(-float64(x)))) }

// Reload brings the loaded models in line with the repository: versions
// that appeared are loaded, versions that disappeared or whose file
// changed (another sha256) are unloaded, after their running batches.
// It returns the models that failed, which stay unloaded.
func (e *Engine) Reload(ctx context.Context) []error {
	found, errs := models.Scan(e.cfg.ModelsDir)
	want := map[string]models.Model{}
	for _, md := range found {
		want[md.ID()] = md
	}
	for _, l := range e.Models() {
		if md, ok := want[l.ID()]; ok && md.SHA256 == l.SHA256 {
			delete(want, l.ID())
			continue
		}
		if err := e.Unload(ctx, l.ID()); err != nil {
			errs = append(errs, err)
			continue
		}
		e.log.Info("model unloaded", "model", l.ID())
	}
	for _, md := range found {
		if _, ok := want[md.ID()]; !ok {
			continue
		}
		if err := e.Load(md); err != nil {
			errs = append(errs, err)
		}
	}
	for _, err := range errs {
		e.log.Error("model not loaded", "err", err)
	}
	return errs
}
