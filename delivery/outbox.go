package delivery

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/radgate/radgate/dcm"
	"github.com/radgate/radgate/internal/metric"
	"github.com/radgate/radgate/internal/stage"
	"github.com/radgate/radgate/store"
)

// Config configures an Outbox.
type Config struct {
	CallingAE string // our AE title, for DIMSE destinations
	// TLS is the client side of dimse+tls:// destinations (the peer's CA,
	// our certificate): tlsconf.Source.Client.
	TLS         *tls.Config
	MaxAttempts int           // attempts before a delivery is dead
	Backoff     time.Duration // wait after the first failure; doubled after each
	BackoffMax  time.Duration // longest wait
	// Poll is how often the outbox looks for destinations with work it
	// was not told about (0: DefaultPoll).
	Poll time.Duration
	// Senders serve destinations Parse does not know, by their exact
	// name (the EHR's FHIR client under "fhir:" + its base URL).
	Senders map[string]Sender
	// Delivered, when set, is told of each delivery once it is recorded
	// as delivered (the gateway audits it).
	Delivered func(context.Context, store.Delivery)
}

// Limits.
const (
	// DefaultPoll bounds how late a delivery due without a notification
	// (a retry's backoff ending) is noticed.
	DefaultPoll = time.Second
	// batchSize is how many deliveries one association carries.
	batchSize = 16
	// jitter spreads retries by ±20%, so destinations coming back are not
	// hit by every delivery at once.
	jitter = 0.2
)

// Outbox sends the store's pending deliveries: one worker per destination,
// so a destination that is down delays only its own deliveries; each
// failure waits an exponential backoff with jitter, and after MaxAttempts
// the delivery is dead (kept, counted in metrics, logged as an error).
type Outbox struct {
	work    store.Work
	cfg     Config
	log     *slog.Logger
	latency *stage.Latency
	m       *metrics
	parse   func(dest string) (Sender, error)

	kick    chan struct{} // Notify → Run: look for new destinations now
	mu      sync.Mutex
	workers map[string]chan struct{} // destination → its wake-up
	wg      sync.WaitGroup
}

// New makes an Outbox over work.
func New(work store.Work, cfg Config, log *slog.Logger, reg prometheus.Registerer, latency *stage.Latency) (*Outbox, error) {
	if cfg.MaxAttempts < 1 || cfg.Backoff <= 0 || cfg.BackoffMax < cfg.Backoff {
		return nil, fmt.Errorf("delivery: max attempts %d, backoff %v..%v", cfg.MaxAttempts, cfg.Backoff, cfg.BackoffMax)
	}
	if cfg.Poll <= 0 {
		cfg.Poll = DefaultPoll
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(reg, work)
	if err != nil {
		return nil, err
	}
	o := &Outbox{work: work, cfg: cfg, log: log, latency: latency, m: m, kick: make(chan struct{}, 1), workers: map[string]chan struct{}{}}
	o.parse = func(dest string) (Sender, error) {
		if s, ok := cfg.Senders[dest]; ok {
			return s, nil
		}
		return Parse(dest, cfg)
	}
	return o, nil
}

// Notify says new deliveries were queued.
func (o *Outbox) Notify() {
	select {
	case o.kick <- struct{}{}:
	default:
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, wake := range o.workers {
		select {
		case wake <- struct{}{}:
		default:
		}
	}
}

// Run delivers until ctx ends, then waits for the workers.
func (o *Outbox) Run(ctx context.Context) error {
	defer o.wg.Wait()
	t := time.NewTicker(o.cfg.Poll)
	defer t.Stop()
	for {
		dests, err := o.work.PendingDestinations(ctx)
		if err != nil && ctx.Err() == nil {
			o.log.Error("delivery: reading the outbox failed; retrying", "err", err)
		}
		for _, d := range dests {
			o.start(ctx, d)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-o.kick:
		}
	}
}

// start runs a worker for dest unless one runs; it ends when dest has
// nothing pending.
func (o *Outbox) start(ctx context.Context, dest string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if _, ok := o.workers[dest]; ok {
		return
	}
	wake := make(chan struct{}, 1)
	o.workers[dest] = wake
	o.wg.Go(func() {
		defer func() {
			o.mu.Lock()
			delete(o.workers, dest)
			o.mu.Unlock()
		}()
		o.serve(ctx, dest, wake)
	})
}

func (o *Outbox) serve(ctx context.Context, dest string, wake chan struct{}) {
	name := Redact(dest)
	sender, err := o.parse(dest)
	for ctx.Err() == nil {
		due, qerr := o.work.DueDeliveries(ctx, dest, time.Now(), batchSize)
		if qerr != nil {
			o.log.Error("delivery: reading the outbox failed", "destination", name, "err", qerr)
			return
		}
		if len(due) > 0 {
			errs := make([]error, len(due))
			if err != nil {
				// A destination that no longer parses (the configuration
				// changed): its deliveries are dead, loudly.
				for i := range errs {
					errs[i] = fmt.Errorf("%w: %v", ErrPermanent, err)
				}
			} else {
				errs = sender.Send(ctx, due)
			}
			for i, d := range due {
				o.record(ctx, name, d, errs[i])
			}
			continue
		}
		next, ok, qerr := o.work.NextDelivery(ctx, dest)
		if qerr != nil || !ok {
			return // nothing pending: Run starts a worker again when there is
		}
		wait := time.Until(next)
		select {
		case <-ctx.Done():
			return
		case <-wake:
		case <-time.After(max(wait, 0)):
		}
	}
}

// record stores an attempt's outcome.
func (o *Outbox) record(ctx context.Context, dest string, d store.Delivery, err error) {
	ctx = context.WithoutCancel(ctx) // an attempt made is recorded, even at shutdown
	attrs := []any{"destination", dest, "kind", d.Kind, "object", dcm.UIDRef(d.ObjectUID), "job", d.JobID, "attempt", d.Attempts + 1}
	var werr error
	switch {
	case err == nil:
		werr = o.work.Delivered(ctx, d.ID, time.Now())
		if werr == nil && o.cfg.Delivered != nil {
			o.cfg.Delivered(ctx, d)
		}
		o.m.attempts.WithLabelValues(d.Kind, "delivered").Inc()
		o.latency.Observe(stage.Delivered, "", d.ReadyAt)
		o.log.Info("delivery: delivered", attrs...)
	case errors.Is(err, ErrPermanent) || d.Attempts+1 >= o.cfg.MaxAttempts:
		werr = o.work.DeadDelivery(ctx, d.ID, err.Error())
		o.m.attempts.WithLabelValues(d.Kind, "dead").Inc()
		o.log.Error("delivery: dead-lettered; it will not be retried", append(attrs, "err", err)...)
	default:
		wait := o.backoff(d.Attempts)
		werr = o.work.RetryDelivery(ctx, d.ID, time.Now().Add(wait), err.Error())
		o.m.attempts.WithLabelValues(d.Kind, "retry").Inc()
		o.log.Warn("delivery: failed; will retry", append(attrs, "in", wait.Round(time.Millisecond), "err", err)...)
	}
	if werr != nil {
		o.log.Error("delivery: recording the attempt failed", append(attrs, "err", werr)...)
	}
}

// backoff is the wait after the attempts-th failure (0-based): Backoff
// doubled per earlier failure, at most BackoffMax, ±20% jitter.
func (o *Outbox) backoff(attempts int) time.Duration {
	d := o.cfg.Backoff
	for range attempts {
		if d >= o.cfg.BackoffMax/2 {
			d = o.cfg.BackoffMax
			break
		}
		d *= 2
	}
	d = min(d, o.cfg.BackoffMax)
	return time.Duration(float64(d) * (1 - jitter + 2*jitter*rand.Float64()))
}

type metrics struct {
	attempts *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer, work store.Work) (*metrics, error) {
	m := &metrics{attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "radgate_delivery_attempts_total",
		Help: "Delivery attempts by kind (sr, kos) and outcome: delivered, retry (failed, will retry), dead (dead-lettered).",
	}, []string{"kind", "outcome"})}
	return m, metric.Register(reg, m.attempts, &workCollector{work: work})
}

// workCollector reports the outbox and job queue by state at each scrape.
type workCollector struct{ work store.Work }

var (
	outboxDesc = prometheus.NewDesc("radgate_outbox", "Deliveries in the outbox by state (pending, delivered, dead).", []string{"state"}, nil)
	jobsDesc   = prometheus.NewDesc("radgate_jobs", "Inference jobs by state (queued, running, done, failed).", []string{"state"}, nil)
)

func (c *workCollector) Describe(ch chan<- *prometheus.Desc) { ch <- outboxDesc; ch <- jobsDesc }

func (c *workCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	n, err := c.work.WorkCounts(ctx)
	if err != nil {
		return
	}
	for _, s := range []store.DeliveryState{store.DeliveryPending, store.DeliveryDelivered, store.DeliveryDead} {
		ch <- prometheus.MustNewConstMetric(outboxDesc, prometheus.GaugeValue, float64(n.Deliveries[s]), string(s))
	}
	for _, s := range []store.JobState{store.JobQueued, store.JobRunning, store.JobDone, store.JobFailed} {
		ch <- prometheus.MustNewConstMetric(jobsDesc, prometheus.GaugeValue, float64(n.Jobs[s]), string(s))
	}
}
