package study

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/radgate/radgate/dcm"
	"github.com/radgate/radgate/inference"
	"github.com/radgate/radgate/internal/metric"
	"github.com/radgate/radgate/internal/stage"
	"github.com/radgate/radgate/store"
)

// Config configures an Assembler.
type Config struct {
	// Rules route series to models, first match wins (DefaultRules when
	// empty).
	Rules []Rule
	// Quiet is the silence after a study's last instance after which it
	// counts as complete, for rules that do not set their own.
	Quiet time.Duration
	// ReleaseQuiet, when not 0, is the shorter silence that suffices once
	// a DIMSE association that carried the study was released (the
	// sender says it is done, for now).
	ReleaseQuiet time.Duration
	// Destinations receive results of rules that name none.
	Destinations []string
	// Poll is how often pending studies are looked at (0: DefaultPoll).
	Poll time.Duration
	// Notify (optional) makes the deliveries that announce a complete
	// study (its FHIR ImagingStudy), queued with the evaluation.
	Notify func(ctx context.Context, studyInstanceUID string, ins []store.Instance) ([]store.NewDelivery, error)
	// Workitem (optional) gives a complete study its reading worklist
	// item, in the evaluation's transaction: pri is the highest of the
	// instances' request priority and the matched routes' (their names
	// in routes).
	Workitem func(studyInstanceUID string, ins []store.Instance, pri inference.Priority, routes []string) *store.WorkitemChange
}

// DefaultPoll bounds how late after its quiet period a study is noticed.
const DefaultPoll = 250 * time.Millisecond

// Assembler decides when studies are complete and turns them into jobs.
// Its state is the index's (store.Work): a restart resumes the studies
// pending before it, each after its silence measured from its last
// arrival. Only the release hint lives in memory; lost, it costs the
// full quiet period.
type Assembler struct {
	work    store.Work
	cfg     Config
	log     *slog.Logger
	latency *stage.Latency
	m       *metrics
	onJobs  func() // told when jobs were created

	mu       sync.Mutex
	released map[string]time.Time // study UID → the release after its last arrival
	// notYet remembers, for a study whose routes want more silence than
	// it has had, until when: its instances are not read again before
	// then unless more arrive. Only Sweep's goroutine uses it.
	notYet map[string]waiting
}

// New makes an Assembler over work. onJobs (may be nil) is called after
// an evaluation created jobs.
func New(work store.Work, cfg Config, log *slog.Logger, reg prometheus.Registerer, latency *stage.Latency, onJobs func()) (*Assembler, error) {
	if len(cfg.Rules) == 0 {
		cfg.Rules = DefaultRules()
	}
	if cfg.Poll <= 0 {
		cfg.Poll = DefaultPoll
	}
	if cfg.Quiet <= 0 {
		return nil, fmt.Errorf("study: quiet period %v: want a positive duration", cfg.Quiet)
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if onJobs == nil {
		onJobs = func() {}
	}
	return &Assembler{work: work, cfg: cfg, log: log, latency: latency, m: m, onJobs: onJobs,
		released: map[string]time.Time{}, notYet: map[string]waiting{}}, nil
}

// Released is the hint that a DIMSE association that carried instances
// of these studies ended with an A-RELEASE.
func (a *Assembler) Released(studyUIDs []string, at time.Time) {
	if a.cfg.ReleaseQuiet <= 0 || len(studyUIDs) == 0 {
		return
	}
	a.mu.Lock()
	for _, uid := range studyUIDs {
		a.released[uid] = at
	}
	a.mu.Unlock()
}

// Run evaluates studies as they become complete until ctx ends.
func (a *Assembler) Run(ctx context.Context) error {
	t := time.NewTicker(a.cfg.Poll)
	defer t.Stop()
	for {
		if err := a.Sweep(ctx, time.Now()); err != nil && ctx.Err() == nil {
			a.log.Error("study: evaluating pending studies failed; retrying", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Sweep evaluates every pending study complete at now.
func (a *Assembler) Sweep(ctx context.Context, now time.Time) error {
	pending, err := a.work.PendingStudies(ctx)
	if err != nil {
		return err
	}
	a.m.pending.Set(float64(len(pending)))
	shortest := a.cfg.Quiet
	for _, r := range a.cfg.Rules {
		if r.Quiet > 0 {
			shortest = min(shortest, r.Quiet)
		}
	}
	for _, p := range pending {
		hinted := a.releasedAfter(p, now)
		if !hinted && now.Before(p.LastReceivedAt.Add(shortest)) {
			continue
		}
		if w, ok := a.notYet[p.StudyInstanceUID]; ok && !hinted && w.seq == p.LastSeq && now.Before(w.until) {
			continue
		}
		if err := a.evaluate(ctx, p, now, hinted); err != nil {
			return err
		}
	}
	return nil
}

// releasedAfter reports whether an association released after the
// study's last arrival, and ReleaseQuiet ago, says it is complete.
func (a *Assembler) releasedAfter(p store.StudyActivity, now time.Time) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	at, ok := a.released[p.StudyInstanceUID]
	if !ok {
		return false
	}
	if at.Before(p.LastReceivedAt) {
		// Instances came after the release (another association).
		delete(a.released, p.StudyInstanceUID)
		return false
	}
	quiet := p.LastReceivedAt.Add(a.cfg.ReleaseQuiet)
	return !now.Before(quiet) && !now.Before(at)
}

// evaluate routes a study's series and records the jobs; a study whose
// matched rules want a longer silence than it has had is left for later.
func (a *Assembler) evaluate(ctx context.Context, p store.StudyActivity, now time.Time, hinted bool) error {
	ins, err := a.work.StudyInstances(ctx, p.StudyInstanceUID)
	if err != nil {
		return err
	}
	byRule, reasons := Route(a.cfg.Rules, ins)
	var quiet time.Duration
	nSeries := len(reasons)
	for _, br := range byRule {
		quiet = max(quiet, cmpOr(br.Rule.Quiet, a.cfg.Quiet))
		nSeries += len(br.Series)
	}
	if quiet == 0 {
		quiet = a.cfg.Quiet
	}
	if !hinted && now.Before(p.LastReceivedAt.Add(quiet)) {
		a.notYet[p.StudyInstanceUID] = waiting{seq: p.LastSeq, until: p.LastReceivedAt.Add(quiet)}
		return nil
	}
	delete(a.notYet, p.StudyInstanceUID)
	var jobs []store.NewJob
	var names []string
	studyPri := RequestPriority(ins)
	for _, br := range byRule {
		uids := make([]string, len(br.Series))
		h := sha256.New()
		var routed []store.Instance
		for i, s := range br.Series {
			uids[i] = s.UID
			for _, in := range s.Instances {
				fmt.Fprintf(h, "%s/%s\n", in.SOPInstanceUID, in.SHA256)
			}
			routed = append(routed, s.Instances...)
		}
		// The request's priority travels on when it is above the route's.
		pri := max(br.Rule.Priority, RequestPriority(routed))
		studyPri = max(studyPri, pri)
		digest := hex.EncodeToString(h.Sum(nil))
		dests := br.Rule.Destinations
		if dests == nil {
			dests = a.cfg.Destinations
		}
		for _, model := range br.Rule.Models {
			jobs = append(jobs, store.NewJob{
				Model: model, Route: br.Rule.Name, Priority: int(pri), Series: uids,
				Destinations: dests, Digest: digest, ReadyAt: p.LastReceivedAt,
			})
		}
		names = append(names, br.Rule.Name)
	}
	outcome := "routed: " + strings.Join(names, ", ")
	if len(byRule) == 0 {
		outcome = "unmatched: " + strings.Join(reasons, " | ")
	}
	var notes []store.NewDelivery
	if a.cfg.Notify != nil {
		if notes, err = a.cfg.Notify(ctx, p.StudyInstanceUID, ins); err != nil {
			return fmt.Errorf("study: notification: %w", err)
		}
	}
	fx := store.Effects{Deliveries: notes}
	if a.cfg.Workitem != nil {
		fx.Workitem = a.cfg.Workitem(p.StudyInstanceUID, ins, studyPri, names)
	}
	created, err := a.work.Evaluate(ctx, p.StudyInstanceUID, p.LastSeq, outcome, jobs, fx)
	if err != nil {
		return err
	}
	a.mu.Lock()
	delete(a.released, p.StudyInstanceUID)
	a.mu.Unlock()

	result := "routed"
	switch {
	case len(byRule) == 0:
		result = "unmatched"
	case len(created) == 0:
		result = "unchanged"
	}
	a.m.evaluations.WithLabelValues(result).Inc()
	a.latency.Observe(stage.Complete, "", p.LastReceivedAt)
	attrs := []any{"study", dcm.UIDRef(p.StudyInstanceUID), "series", nSeries, "instances", len(ins),
		"outcome", result, "by_release", hinted}
	if result == "unmatched" {
		a.log.Info("study: complete; no route matched, recorded and not run", append(attrs, "why", outcome)...)
	} else {
		revs := make([]string, len(created))
		for i, j := range created {
			revs[i] = j.Model + " r" + strconv.Itoa(j.Revision)
			a.latency.Observe(stage.Queued, j.Model, j.ReadyAt)
			a.m.jobs.WithLabelValues(j.Model).Inc()
		}
		a.log.Info("study: complete", append(attrs, "routes", strings.Join(names, ","), "jobs", strings.Join(revs, ","))...)
	}
	if len(created) > 0 {
		a.onJobs()
	}
	return nil
}

// waiting is a study left for later: as of its newest instance seq, it
// is not complete before until.
type waiting struct {
	seq   uint64
	until time.Time
}

func cmpOr(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

type metrics struct {
	evaluations *prometheus.CounterVec
	jobs        *prometheus.CounterVec
	pending     prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		evaluations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "radgate_study_evaluations_total",
			Help: "Studies found complete, by outcome: routed (jobs created), unchanged (nothing new for any model), unmatched (no route; recorded, not run).",
		}, []string{"outcome"}),
		jobs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "radgate_jobs_created_total",
			Help: "Inference jobs created, by model (a re-evaluation after late instances creates a new revision).",
		}, []string{"model"}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "radgate_studies_pending",
			Help: "Studies with instances not yet evaluated (receiving, or waiting for their quiet period).",
		}),
	}
	return m, metric.Register(reg, m.evaluations, m.jobs, m.pending)
}
