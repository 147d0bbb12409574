package results

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/radgate/radgate/dcm"
	"github.com/radgate/radgate/inference"
	"github.com/radgate/radgate/internal/metric"
	"github.com/radgate/radgate/internal/stage"
	"github.com/radgate/radgate/sr"
	"github.com/radgate/radgate/store"
)

// Config configures a Runner.
type Config struct {
	Workers     int          // jobs run at once
	MaxAttempts int          // attempts at a job before it fails (0: DefaultMaxAttempts)
	Equipment   sr.Equipment // radgate itself, in every SR
	// Poll bounds how late a job due without a notification (a retry's
	// wait ending) starts (0: DefaultPoll).
	Poll time.Duration
	// Notify (optional) makes further deliveries of a result (its FHIR
	// DiagnosticReport), queued with the SR in the same transaction.
	Notify func(ctx context.Context, j store.Job, ins []store.Instance, res *inference.Result, model *inference.Loaded) ([]store.NewDelivery, error)
	// Workitem (optional) is what a result does to its study's reading
	// worklist item (its findings, a priority raise), in the completion's
	// transaction; srUID is the SR reporting it.
	Workitem func(j store.Job, ins []store.Instance, res *inference.Result, model *inference.Loaded, srUID string) *store.WorkitemChange
}

// Limits.
const (
	DefaultMaxAttempts = 5
	DefaultPoll        = time.Second
	// retryWait is the wait before a failed job's next attempt, times the
	// attempts so far (a model being reloaded, the engine's queue full).
	retryWait = 15 * time.Second
)

// Runner runs the inference jobs study assembly creates: the model over
// the job's series, the findings written as a TID 1500 SR (and a KOS of
// the key images for a positive CT), queued for every destination in the
// same transaction that marks the job done. A job interrupted by a stop
// is requeued at the next start and runs again, with the same UIDs.
type Runner struct {
	store   *store.Store
	work    store.Work
	engine  *inference.Engine
	cfg     Config
	log     *slog.Logger
	latency *stage.Latency
	m       *metrics
	queued  func() // deliveries were queued
	wake    chan struct{}
}

// New makes a Runner. queued (may be nil) is called after a job's
// deliveries were queued.
func New(st *store.Store, eng *inference.Engine, cfg Config, log *slog.Logger, reg prometheus.Registerer, latency *stage.Latency, queued func()) (*Runner, error) {
	if cfg.Workers < 1 {
		return nil, fmt.Errorf("results: %d workers", cfg.Workers)
	}
	if cfg.MaxAttempts == 0 {
		cfg.MaxAttempts = DefaultMaxAttempts
	}
	if cfg.Poll <= 0 {
		cfg.Poll = DefaultPoll
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	if queued == nil {
		queued = func() {}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Runner{store: st, work: st.Work(), engine: eng, cfg: cfg, log: log, latency: latency, m: m,
		queued: queued, wake: make(chan struct{}, cfg.Workers)}, nil
}

// Notify says jobs were created.
func (r *Runner) Notify() {
	for range r.cfg.Workers {
		select {
		case r.wake <- struct{}{}:
		default:
		}
	}
}

// Run requeues what a previous process left running, then runs jobs until
// ctx ends; a job in progress then is requeued.
func (r *Runner) Run(ctx context.Context) error {
	n, err := r.work.RequeueRunning(ctx)
	if err != nil {
		return err
	}
	if n > 0 {
		r.log.Warn("results: requeued jobs an interrupted run left unfinished", "jobs", n)
	}
	var wg sync.WaitGroup
	for range r.cfg.Workers {
		wg.Go(func() { r.worker(ctx) })
	}
	wg.Wait()
	return nil
}

func (r *Runner) worker(ctx context.Context) {
	t := time.NewTicker(r.cfg.Poll)
	defer t.Stop()
	for ctx.Err() == nil {
		j, ok, err := r.work.ClaimJob(ctx, time.Now())
		if err != nil && ctx.Err() == nil {
			r.log.Error("results: claiming a job failed", "err", err)
		}
		if ok {
			r.run(ctx, j)
			continue
		}
		select {
		case <-ctx.Done():
		case <-r.wake:
		case <-t.C:
		}
	}
}

// ErrNoInstances: the job's series hold no instance any more.
var ErrNoInstances = errors.New("results: the job's series have no instances")

// run runs one claimed job and records how it ended.
func (r *Runner) run(ctx context.Context, j store.Job) {
	attrs := []any{"job", j.ID, "study", dcm.UIDRef(j.StudyInstanceUID), "model", j.Model, "revision", j.Revision, "attempt", j.Attempts}
	start := time.Now()
	res, fx, err := r.process(ctx, j)
	out := fx.Deliveries
	bg := context.WithoutCancel(ctx)
	switch {
	case err == nil:
		body, _ := json.Marshal(res)
		if err = r.work.CompleteJob(bg, j.ID, res.Version, body, fx); err == nil {
			r.m.jobs.WithLabelValues(j.Model, "done").Inc()
			r.m.seconds.WithLabelValues(j.Model).Observe(time.Since(start).Seconds())
			r.latency.Observe(stage.Inferred, j.Model, j.ReadyAt)
			r.log.Info("results: job done", append(attrs, "version", res.Version, "priority", res.Priority,
				"positive", positives(res), "deliveries", len(out), "ms", time.Since(start).Milliseconds())...)
			if len(j.Destinations) == 0 {
				r.log.Warn("results: no destination configured; the result is kept in the index only", attrs...)
			}
			if len(out) > 0 {
				r.queued()
			}
			return
		}
		r.log.Error("results: recording the result failed; the job will run again", append(attrs, "err", err)...)
	case ctx.Err() != nil:
		// Stopping: run it again at the next start, not counting this try.
		if err := r.work.RetryJob(bg, j.ID, time.Now(), "interrupted by shutdown"); err != nil {
			r.log.Error("results: requeueing an interrupted job failed; the next start requeues it", append(attrs, "err", err)...)
		}
		return
	}
	permanent := errors.Is(err, inference.ErrNothingRan) || errors.Is(err, ErrNoInstances) || errors.Is(err, sr.ErrNoKeyImages)
	if permanent || j.Attempts >= r.cfg.MaxAttempts {
		r.m.jobs.WithLabelValues(j.Model, "failed").Inc()
		r.log.Error("results: job failed", append(attrs, "err", err)...)
		if ferr := r.work.FailJob(bg, j.ID, err.Error()); ferr != nil {
			r.log.Error("results: recording a failed job failed", append(attrs, "err", ferr)...)
		}
		return
	}
	wait := retryWait * time.Duration(j.Attempts)
	r.m.jobs.WithLabelValues(j.Model, "retry").Inc()
	r.log.Warn("results: job failed; will retry", append(attrs, "in", wait, "err", err)...)
	if rerr := r.work.RetryJob(bg, j.ID, time.Now().Add(wait), err.Error()); rerr != nil {
		r.log.Error("results: requeueing a job failed", append(attrs, "err", rerr)...)
	}
}

// Result is what a done job keeps (store.Job.Result, JSON): the model's
// answer and the objects made from it.
type Result struct {
	*inference.Result
	Objects []Object `json:"objects"`
}

// Object is an SR or KOS made from a result.
type Object struct {
	Kind           string `json:"kind"`
	SOPClassUID    string `json:"sop_class_uid"`
	SOPInstanceUID string `json:"sop_instance_uid"`
	SeriesUID      string `json:"series_instance_uid"`
}

func positives(res *Result) string {
	var p []string
	for _, f := range res.Findings {
		if f.Positive {
			p = append(p, f.Label)
		}
	}
	return strings.Join(p, ",")
}

// process runs the model and writes the objects, and returns what
// completing the job is to do; it changes nothing in the store.
func (r *Runner) process(ctx context.Context, j store.Job) (*Result, store.Effects, error) {
	var fx store.Effects
	l, ok := r.engine.Lookup(j.Model)
	if !ok {
		return nil, fx, fmt.Errorf("%w: %s", inference.ErrNoModel, j.Model)
	}
	all, err := r.work.StudyInstances(ctx, j.StudyInstanceUID)
	if err != nil {
		return nil, fx, err
	}
	var ins []store.Instance
	for _, in := range all {
		if slices.Contains(j.Series, in.SeriesInstanceUID) {
			ins = append(ins, in)
		}
	}
	a := Analyzer{Engine: r.engine, Equipment: r.cfg.Equipment}
	res, docs, err := a.Analyze(ctx, l, Input{
		Instances: ins, Priority: inference.Priority(j.Priority), Revision: j.Revision, Time: j.CreatedAt,
		Open: func(in store.Instance) func() (io.ReadCloser, error) {
			return func() (io.ReadCloser, error) { return r.store.OpenBlob(ctx, in.BlobKey) }
		},
	})
	if err != nil {
		return nil, fx, err
	}
	if r.cfg.Notify != nil {
		if fx.Deliveries, err = r.cfg.Notify(ctx, j, ins, res.Result, l); err != nil {
			return nil, fx, fmt.Errorf("results: notification: %w", err)
		}
	}
	for _, d := range docs {
		for _, dest := range j.Destinations {
			fx.Deliveries = append(fx.Deliveries, store.NewDelivery{Destination: dest, Kind: d.Kind, ObjectUID: d.SOPInstanceUID,
				SOPClassUID: d.SOPClassUID, Payload: d.Data, ReadyAt: j.ReadyAt})
		}
	}
	if r.cfg.Workitem != nil {
		fx.Workitem = r.cfg.Workitem(j, ins, res.Result, l, docs[0].SOPInstanceUID)
	}
	return res, fx, nil
}

// Analyzer runs a model over instances and writes what its result makes:
// the TID 1500 SR and, for a positive series with key slices, the KOS.
// The Runner uses one per job; it also serves instances that are never
// stored (the gRPC API's InferStudy).
type Analyzer struct {
	Engine    *inference.Engine
	Equipment sr.Equipment // radgate itself, in every SR
}

// Input is one unit of work for Analyze.
type Input struct {
	Instances []store.Instance
	// Open reads an instance's Part 10 file.
	Open     func(store.Instance) func() (io.ReadCloser, error)
	Priority inference.Priority
	// Revision and Time go into the SR (its UIDs depend on the revision).
	Revision int
	Time     time.Time
}

// Document is an SR or KOS Analyze wrote; Kind is "sr" or "kos".
type Document struct {
	Kind string
	sr.Document
}

// Analyze runs l over in's instances and writes the documents of its
// result; it keeps nothing.
func (a Analyzer) Analyze(ctx context.Context, l *inference.Loaded, in Input) (*Result, []Document, error) {
	if len(in.Instances) == 0 {
		return nil, nil, ErrNoInstances
	}
	byUID := make(map[string]store.Instance, len(in.Instances))
	sources := make([]inference.Source, len(in.Instances))
	for i, ins := range in.Instances {
		byUID[ins.SOPInstanceUID] = ins
		sources[i] = inference.Source{Name: dcm.UIDRef(ins.SOPInstanceUID), Open: in.Open(ins)}
	}
	ires, err := a.Engine.Run(ctx, l.ID(), in.Priority, sources)
	if err != nil {
		return nil, nil, err
	}
	res := &Result{Result: ires}

	// What ran: every instance but those that failed.
	failed := map[string]bool{}
	for _, e := range ires.Errors {
		failed[e.Source] = true
	}
	var evidence []sr.ImageRef
	for _, ins := range in.Instances {
		if !failed[dcm.UIDRef(ins.SOPInstanceUID)] {
			evidence = append(evidence, imageRef(ins, 0))
		}
	}
	first := byUID[evidence[0].SOPInstanceUID]
	rep := sr.Report{
		Algorithm: sr.Algorithm{Name: l.Name, Version: l.Version, Manufacturer: l.Manufacturer, SHA256: l.SHA256, TrainedOnPhantoms: l.TrainedOnPhantoms},
		Equipment: a.Equipment,
		Procedure: sr.ProcedureFor(first.Modality, first.BodyPartExamined),
		Evidence:  evidence,
		Revision:  in.Revision,
		Time:      in.Time,
	}
	for _, f := range ires.Findings {
		sf := sr.Finding{
			Label: f.Label, Concept: sr.Code{Scheme: f.Concept.Scheme, Value: f.Concept.Code, Meaning: f.Concept.Meaning},
			Probability: f.Probability, Threshold: f.Threshold, Positive: f.Positive,
		}
		if ires.Frames == nil {
			// One score per radiograph: the images are the evidence.
			sf.Images = evidence
		}
		for _, k := range f.KeyFrames {
			fr := ires.Frames[k]
			frame := 0
			if ins := byUID[fr.SOPInstanceUID]; ins.NumberOfFrames > 1 {
				frame = fr.Frame + 1 // PS3.3 C.10.9: frame numbers start at 1
			}
			sf.Images = append(sf.Images, imageRef(byUID[fr.SOPInstanceUID], frame))
		}
		rep.Findings = append(rep.Findings, sf)
	}
	docs, err := documents(rep, in.Open(first), ires)
	if err != nil {
		return nil, nil, err
	}
	for _, d := range docs {
		res.Objects = append(res.Objects, Object{Kind: d.Kind, SOPClassUID: d.SOPClassUID, SOPInstanceUID: d.SOPInstanceUID, SeriesUID: d.SeriesInstanceUID})
	}
	return res, docs, nil
}

// documents writes the SR and, for a positive series with key slices, the
// KOS of those slices; open reads the source instance they copy the
// patient and study from.
func documents(rep sr.Report, open func() (io.ReadCloser, error), res *inference.Result) ([]Document, error) {
	write := func(kind string, w func(sr.Report) (sr.Document, error)) (Document, error) {
		rc, err := open()
		if err != nil {
			return Document{}, err
		}
		defer rc.Close()
		rep.Source = rc
		d, err := w(rep)
		if err != nil {
			return Document{}, fmt.Errorf("results: %s: %w", kind, err)
		}
		return Document{Kind: kind, Document: d}, nil
	}
	srDoc, err := write("sr", sr.WriteSR)
	if err != nil {
		return nil, err
	}
	docs := []Document{srDoc}
	if res.Frames != nil && slices.ContainsFunc(res.Findings, func(f inference.Finding) bool { return f.Positive && len(f.KeyFrames) > 0 }) {
		kos, err := write("kos", sr.WriteKOS)
		if err != nil {
			return nil, err
		}
		docs = append(docs, kos)
	}
	return docs, nil
}

func imageRef(in store.Instance, frame int) sr.ImageRef {
	return sr.ImageRef{SOPClassUID: in.SOPClassUID, SOPInstanceUID: in.SOPInstanceUID, SeriesInstanceUID: in.SeriesInstanceUID, Frame: frame}
}

type metrics struct {
	jobs    *prometheus.CounterVec
	seconds *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		jobs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "radgate_jobs_finished_total",
			Help: "Inference job attempts by model and outcome: done (result queued for delivery), retry, failed.",
		}, []string{"model", "outcome"}),
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "radgate_job_seconds",
			Help:    "Time to run a job: read the series, run the model, write the SR and KOS.",
			Buckets: []float64{.05, .1, .25, .5, 1, 2, 4, 8, 15, 30, 60, 120},
		}, []string{"model"}),
	}
	return m, metric.Register(reg, m.jobs, m.seconds)
}
