package loadtest

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"google.golang.org/grpc/status"
)

// Limits and defaults.
const (
	// DefaultRequests is a step's length when neither Requests nor
	// Duration is set.
	DefaultRequests = 200
	// MaxOpenLoopInflight caps an open-loop step's outstanding requests:
	// a server that stops answering would otherwise cost a goroutine per
	// scheduled request. At the cap the sender waits, the achieved rate
	// falls below the target, and the waiting shows in the latencies
	// (they are measured from the scheduled send time).
	MaxOpenLoopInflight = 4096
	// ProgressInterval is how often Run reports a running step.
	ProgressInterval = 100 * time.Millisecond
)

// Errors of Run and NewGRPCClient.
var (
	ErrNoLoad          = errors.New("loadtest: no load level (want Concurrency or Rate)")
	ErrBothLoads       = errors.New("loadtest: Concurrency and Rate are exclusive")
	ErrBadLoad         = errors.New("loadtest: concurrency and rate must be positive")
	ErrUnsupportedType = errors.New("loadtest: model input datatype unsupported (want FP32)")
	ErrShape           = errors.New("loadtest: model input shape unusable")
)

// Client sends one request. Infer is called from many goroutines at once;
// its error is counted under its gRPC status code (status.Code).
type Client interface {
	Infer(ctx context.Context) error
}

// Config is one load test: a list of load levels, each run as a step.
type Config struct {
	// Client is the endpoint under test (NewGRPCClient).
	Client Client
	// Concurrency: closed loop, one step per value, each with that many
	// workers sending back to back.
	Concurrency []int
	// Rate: open loop, one step per value, requests sent at that many per
	// second whether or not earlier ones have been answered.
	Rate []float64
	// Requests per step (DefaultRequests if zero and Duration is zero).
	Requests int
	// Duration of each step; when set, Requests is ignored.
	Duration time.Duration
	// Batch is the items per request; only for items/s.
	Batch int
	// Warmup requests are sent one at a time before the first step and
	// not recorded; a failed one fails Run.
	Warmup int
	// Timeout bounds each request (0: none).
	Timeout time.Duration
}

// Progress is a running step's state, reported every ProgressInterval
// and once when the step ends (Final).
type Progress struct {
	Step, Steps int    // 1-based
	Load        string // "c=4" or "r=50"
	Done        int    // requests answered (ok or not)
	Total       int    // Requests; 0 when the step runs for a Duration
	Errors      int
	Elapsed     time.Duration
	Duration    time.Duration // the step's Duration, if any
	Final       bool
}

// Report is a load test's result, one Step per load level in order.
type Report struct {
	Target  string    `json:"target"`
	Model   string    `json:"model"`
	Version string    `json:"version"`
	Batch   int       `json:"batch"`
	Started time.Time `json:"started"`
	Steps   []Step    `json:"steps"`
}

// Step is one load level's measurements. The JSON names are also the CSV
// columns (csvHeader).
type Step struct {
	Index       int     `json:"step"`        // 1-based
	Mode        string  `json:"mode"`        // "closed" or "open"
	Concurrency int     `json:"concurrency"` // closed loop: workers; open loop: 0
	Rate        float64 `json:"rate_rps"`    // open loop: target requests/s; closed loop: 0
	Batch       int     `json:"batch"`
	Requests    int     `json:"requests"` // sent and answered: OK + Errors
	OK          int     `json:"ok"`
	Errors      int     `json:"errors"`
	// ErrorsByCode counts failed requests by gRPC status code name.
	ErrorsByCode map[string]int `json:"errors_by_code"`
	// ElapsedS: from the step's start to its last answer, seconds.
	ElapsedS float64 `json:"elapsed_s"`
	// Throughput: successful requests per second of ElapsedS.
	Throughput float64 `json:"throughput_rps"`
	// ItemsPerS: Throughput × Batch.
	ItemsPerS float64 `json:"items_per_s"`
	// AchievedConcurrency: mean requests in flight (Little's law: total
	// latency of all requests / ElapsedS).
	AchievedConcurrency float64 `json:"achieved_concurrency"`
	// AchievedRate: requests sent per second, between the first and the
	// last send.
	AchievedRate float64 `json:"achieved_rate_rps"`
	// Latency of the successful requests. In open loop it is measured
	// from the scheduled send time, so a sender held back still counts.
	Latency Latency `json:"latency_ms"`
	// Histogram of the same latencies (not a CSV column).
	Histogram []Bucket `json:"histogram"`
}

// Load is the step's load level as the table and progress print it.
func (s Step) Load() string {
	if s.Mode == "open" {
		return "r=" + strconv.FormatFloat(s.Rate, 'g', -1, 64)
	}
	return "c=" + strconv.Itoa(s.Concurrency)
}

// Failed is the number of failed requests over all steps.
func (r Report) Failed() int {
	n := 0
	for _, s := range r.Steps {
		n += s.Errors
	}
	return n
}

// Run warms up, then runs cfg's steps in order, calling progress (which
// may be nil) from Run's own goroutine. On ctx's end it returns the steps
// finished so far and ctx's error.
func Run(ctx context.Context, cfg Config, progress func(Progress)) (Report, error) {
	if len(cfg.Concurrency) > 0 && len(cfg.Rate) > 0 {
		return Report{}, ErrBothLoads
	}
	steps := stepPlans(cfg)
	if len(steps) == 0 {
		return Report{}, ErrNoLoad
	}
	for _, st := range steps {
		if st.Concurrency < 0 || st.Rate < 0 || (st.Concurrency == 0 && st.Rate == 0) {
			return Report{}, fmt.Errorf("%w: %s", ErrBadLoad, st.Load())
		}
	}
	if cfg.Requests == 0 && cfg.Duration == 0 {
		cfg.Requests = DefaultRequests
	}
	cfg.Batch = max(cfg.Batch, 1)
	rep := Report{Batch: cfg.Batch, Started: time.Now()}
	for i := range cfg.Warmup {
		if err := cfg.infer(ctx); err != nil {
			return rep, fmt.Errorf("loadtest: warmup request %d: %w", i+1, err)
		}
	}
	for i, st := range steps {
		st.Index = i + 1
		s := runStep(ctx, cfg, st, len(steps), progress)
		if ctx.Err() != nil {
			return rep, ctx.Err()
		}
		rep.Steps = append(rep.Steps, s)
	}
	return rep, nil
}

func stepPlans(cfg Config) []Step {
	var steps []Step
	for _, c := range cfg.Concurrency {
		steps = append(steps, Step{Mode: "closed", Concurrency: c})
	}
	for _, r := range cfg.Rate {
		steps = append(steps, Step{Mode: "open", Rate: r})
	}
	return steps
}

func (cfg *Config) infer(ctx context.Context) error {
	if cfg.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.Timeout)
		defer cancel()
	}
	return cfg.Client.Infer(ctx)
}

// recorder collects one step's samples from its senders.
type recorder struct {
	mu        sync.Mutex
	ok        []time.Duration
	errs      map[string]int
	nErr      int
	total     time.Duration // every request's latency, for AchievedConcurrency
	firstSend time.Time
	lastSend  time.Time
	lastDone  time.Time
}

func (r *recorder) sent(at time.Time) {
	r.mu.Lock()
	if r.firstSend.IsZero() || at.Before(r.firstSend) {
		r.firstSend = at
	}
	if at.After(r.lastSend) {
		r.lastSend = at
	}
	r.mu.Unlock()
}

func (r *recorder) done(lat time.Duration, err error) {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.total += lat
	r.lastDone = now
	if err == nil {
		r.ok = append(r.ok, lat)
		return
	}
	r.nErr++
	r.errs[status.Code(err).String()]++
}

func (r *recorder) counts() (done, errs int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.ok) + r.nErr, r.nErr
}

// runStep runs one step: its senders in a goroutine it waits for, the
// progress ticks here.
func runStep(ctx context.Context, cfg Config, st Step, nSteps int, progress func(Progress)) Step {
	rec := &recorder{errs: map[string]int{}}
	total := cfg.Requests
	if cfg.Duration > 0 {
		total = 0 // a duration-bound step has no total
	}
	start := time.Now()
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		if st.Mode == "open" {
			openLoop(ctx, cfg, st.Rate, start, rec)
		} else {
			closedLoop(ctx, cfg, st.Concurrency, start, rec)
		}
	}()
	report := func(final bool) {
		if progress == nil {
			return
		}
		done, errs := rec.counts()
		progress(Progress{Step: st.Index, Steps: nSteps, Load: st.Load(), Done: done, Total: total,
			Errors: errs, Elapsed: time.Since(start), Duration: cfg.Duration, Final: final})
	}
	tick := time.NewTicker(ProgressInterval)
	defer tick.Stop()
wait:
	for {
		select {
		case <-finished:
			break wait
		case <-tick.C:
			report(false)
		}
	}
	report(true)
	return finish(st, cfg.Batch, start, rec)
}

// finish turns a step's samples into its measurements.
func finish(st Step, batch int, start time.Time, rec *recorder) Step {
	st.Batch = batch
	st.OK, st.Errors = len(rec.ok), rec.nErr
	st.Requests = st.OK + st.Errors
	st.ErrorsByCode = rec.errs
	if st.Requests == 0 {
		return st
	}
	elapsed := rec.lastDone.Sub(start).Seconds()
	st.ElapsedS = elapsed
	if elapsed > 0 {
		st.Throughput = float64(st.OK) / elapsed
		st.ItemsPerS = st.Throughput * float64(batch)
		st.AchievedConcurrency = rec.total.Seconds() / elapsed
	}
	if w := rec.lastSend.Sub(rec.firstSend).Seconds(); st.Requests > 1 && w > 0 {
		st.AchievedRate = float64(st.Requests-1) / w
	}
	st.Latency = summarise(rec.ok) // sorts rec.ok
	st.Histogram = histogram(rec.ok)
	return st
}

// closedLoop: workers each send a request, wait for its answer, repeat,
// until the step's Requests are claimed or its Duration is over.
func closedLoop(ctx context.Context, cfg Config, workers int, start time.Time, rec *recorder) {
	var (
		mu      sync.Mutex
		claimed int
		wg      sync.WaitGroup
	)
	deadline := start.Add(cfg.Duration)
	claim := func() bool {
		if ctx.Err() != nil || (cfg.Duration > 0 && !time.Now().Before(deadline)) {
			return false
		}
		mu.Lock()
		defer mu.Unlock()
		if cfg.Duration == 0 && claimed >= cfg.Requests {
			return false
		}
		claimed++
		return true
	}
	for range workers {
		wg.Go(func() {
			for claim() {
				t0 := time.Now()
				rec.sent(t0)
				err := cfg.infer(ctx)
				rec.done(time.Since(t0), err)
			}
		})
	}
	wg.Wait()
}

// openLoop sends request i at start + i/rate, each in its own goroutine,
// until Requests are sent or Duration is over.
func openLoop(ctx context.Context, cfg Config, rate float64, start time.Time, rec *recorder) {
	var wg sync.WaitGroup
	defer wg.Wait()
	slots := make(chan struct{}, MaxOpenLoopInflight)
	interval := time.Duration(float64(time.Second) / rate)
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
	for i := 0; cfg.Duration > 0 || i < cfg.Requests; i++ {
		at := start.Add(time.Duration(i) * interval)
		if cfg.Duration > 0 && !at.Before(start.Add(cfg.Duration)) {
			return
		}
		timer.Reset(time.Until(at))
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		select {
		case <-ctx.Done():
			return
		case slots <- struct{}{}:
		}
		rec.sent(time.Now())
		wg.Go(func() {
			defer func() { <-slots }()
			err := cfg.infer(ctx)
			rec.done(time.Since(at), err)
		})
	}
}
