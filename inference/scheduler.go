package inference

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"
)

// Priority of a request in the queue. A higher priority is always taken
// first, also by a batch already forming, so a STAT stroke CT overtakes
// routine chest X-rays that were queued before it. Within one priority the
// queue is first come, first served.
type Priority int

// Priorities, lowest first.
const (
	Low Priority = iota
	Routine
	High
	Stat
	numPriorities
)

var priorityNames = [numPriorities]string{"low", "routine", "high", "stat"}

func (p Priority) String() string {
	if p >= 0 && p < numPriorities {
		return priorityNames[p]
	}
	return fmt.Sprintf("priority(%d)", int(p))
}

// ParsePriority accepts the names String gives, in any case.
func ParsePriority(s string) (Priority, error) {
	for i, n := range priorityNames {
		if strings.EqualFold(s, n) {
			return Priority(i), nil
		}
	}
	return 0, fmt.Errorf("inference: unknown priority %q (want low, routine, high or stat)", s)
}

// Tensor is a float32 tensor, row-major, batch axis first.
type Tensor struct {
	Shape []int64
	Data  []float32
}

// Backend runs one batch of a loaded model. Run may be called from several
// goroutines at once. Implementations: inference/ort in process; a remote
// KServe v2 server fits the same interface.
type Backend interface {
	Run(ctx context.Context, inputs []Tensor) ([]Tensor, error)
	Close() error
}

// Policy is a model's batching and queueing policy.
type Policy struct {
	// MaxBatch: at most this many items (frames) in one Run.
	MaxBatch int
	// MaxQueueDelay: how long the oldest request may wait for a batch to
	// fill before it runs anyway. A request waits only while requests of
	// the model arrive faster than that (see queue.gap): a lone client
	// sending one at a time gains nothing from waiting. STAT requests
	// never wait for company.
	MaxQueueDelay time.Duration
	// MaxQueue bounds the items waiting at each priority; beyond it
	// Infer fails at once with ErrQueueFull (backpressure). A flood at
	// one priority never fills the queue of another.
	MaxQueue int
}

// Sentinel errors of the scheduler.
var (
	ErrQueueFull     = errors.New("inference: queue full")
	ErrBatchTooLarge = errors.New("inference: request larger than the model's max batch")
	ErrNoModel       = errors.New("inference: model not loaded")
	ErrStopped       = errors.New("inference: scheduler stopped")
	ErrBadRequest    = errors.New("inference: malformed request")
)

// Timing is where a request's time went.
type Timing struct {
	Queue   time.Duration // enqueue to the start of its batch's Run
	Compute time.Duration // the batch's Run
	Batch   int           // items in that batch
}

// Scheduler queues requests for the models loaded on one device and runs
// them in dynamic batches on a fixed set of workers, so that sessions ×
// threads never exceed the cores. It follows Triton's dynamic batcher: a
// batch is formed from one model's queue, highest priority first, and
// runs when it is full, when its oldest request has waited MaxQueueDelay,
// at once for STAT, and at once when requests arrive too far apart for
// waiting to fill a batch.
type Scheduler struct {
	mu      sync.Mutex
	models  map[string]*queue
	changed chan struct{} // closed and replaced when queues change
	stopped bool
	// free counts the batches that may start: workers minus batches
	// running. A batch runs on a worker goroutine, or directly on the
	// goroutine of the request that made it ready when a slot is free
	// (no hand-off: measured a few percent of throughput at batch 1).
	free    int
	wg      sync.WaitGroup // workers
	batches sync.WaitGroup // batches running
	metrics *Metrics
}

type queue struct {
	id      string
	backend Backend
	policy  Policy
	waiting [numPriorities][]*pending
	items   [numPriorities]int
	running int // batches in Run
	// lastArrival and gap (a moving average of the time between
	// arrivals) tell whether waiting for company can pay: only when the
	// next request is expected within MaxQueueDelay.
	lastArrival time.Time
	gap         time.Duration
	removed     bool
	idle        chan struct{} // closed when removed and the last batch ends
	stats       Stats
}

// Stats is a model's cumulative statistics since it was loaded, counted
// as Triton's ModelStatistics counts them: Success and Fail per request
// (enqueue to answer), Queue and Compute per request that ran, Batches
// per batch size and execution.
type Stats struct {
	LastInference time.Time // the end of the last batch
	Items         uint64    // batch entries inferred
	Executions    uint64    // batches run
	Success       StatDuration
	Fail          StatDuration // failed requests, refused ones included (with no time)
	Queue         StatDuration
	Compute       StatDuration
	Batches       map[int]StatDuration // by batch size: compute per execution
}

// StatDuration is a count and the total time of what it counts.
type StatDuration struct {
	Count uint64
	Total time.Duration
}

func (d *StatDuration) add(t time.Duration) {
	d.Count++
	d.Total += t
}

type pending struct {
	ctx      context.Context
	inputs   []Tensor
	n        int
	priority Priority
	enqueued time.Time
	done     chan result // buffered: a worker never blocks on an abandoned request
}

type result struct {
	outputs []Tensor
	timing  Timing
	err     error
}

// NewScheduler starts workers goroutines; Stop ends them.
func NewScheduler(workers int, m *Metrics) *Scheduler {
	s := &Scheduler{models: map[string]*queue{}, changed: make(chan struct{}), metrics: m, free: max(workers, 1)}
	for range max(workers, 1) {
		s.wg.Go(s.work)
	}
	return s
}

// Add makes a model available under id. The scheduler owns backend from
// here on and closes it on Remove or Stop.
func (s *Scheduler) Add(id string, backend Backend, p Policy) error {
	if p.MaxBatch < 1 || p.MaxQueue < 1 {
		return fmt.Errorf("inference: %s: policy needs MaxBatch and MaxQueue ≥ 1", id)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return ErrStopped
	}
	if _, ok := s.models[id]; ok {
		return fmt.Errorf("inference: %s already loaded", id)
	}
	s.models[id] = &queue{id: id, backend: backend, policy: p, idle: make(chan struct{})}
	return nil
}

// Remove unloads a model: its waiting requests fail with ErrNoModel, the
// batches running finish, then its backend is closed. When ctx ends first
// Remove returns its error, and the backend is closed once they finish.
func (s *Scheduler) Remove(ctx context.Context, id string) error {
	s.mu.Lock()
	q, ok := s.models[id]
	if !ok {
		s.mu.Unlock()
		return fmt.Errorf("%w: %s", ErrNoModel, id)
	}
	delete(s.models, id)
	q.removed = true
	s.failWaitingLocked(q, ErrNoModel)
	if q.running == 0 {
		close(q.idle)
	}
	s.mu.Unlock()
	select {
	case <-q.idle:
	case <-ctx.Done():
		// The batches still running finish on their own; the backend is
		// closed after them all the same.
		go func() {
			<-q.idle
			_ = q.backend.Close()
		}()
		return ctx.Err()
	}
	return q.backend.Close()
}

// Stats returns the statistics of the model loaded as id.
func (s *Scheduler) Stats(id string) (Stats, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q, ok := s.models[id]
	if !ok {
		return Stats{}, false
	}
	st := q.stats
	st.Batches = maps.Clone(q.stats.Batches)
	return st, true
}

// Stop fails whatever is waiting, waits for running batches, and closes
// every backend.
func (s *Scheduler) Stop() error {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return nil
	}
	s.stopped = true
	for _, q := range s.models {
		s.failWaitingLocked(q, ErrStopped)
	}
	s.notifyLocked()
	s.mu.Unlock()
	s.wg.Wait()
	s.batches.Wait()
	var errs []error
	for _, q := range s.models {
		errs = append(errs, q.backend.Close())
	}
	s.models = nil
	return errors.Join(errs...)
}

// Infer queues one request — one tensor per model input, all with the
// same leading batch size n ≤ MaxBatch — and waits for its outputs.
// Cancelling ctx (or its deadline passing) takes the request out of the
// queue; once its batch runs, the batch completes and the result is
// dropped. The scheduler does not keep inputs after Infer returns.
func (s *Scheduler) Infer(ctx context.Context, model string, pri Priority, inputs []Tensor) ([]Tensor, Timing, error) {
	if pri < 0 || pri >= numPriorities {
		return nil, Timing{}, fmt.Errorf("%w: priority %d", ErrBadRequest, pri)
	}
	n, err := batchSize(inputs)
	if err != nil {
		return nil, Timing{}, err
	}
	p := &pending{ctx: ctx, inputs: inputs, n: n, priority: pri, enqueued: time.Now(), done: make(chan result, 1)}
	s.mu.Lock()
	q, ok := s.models[model]
	switch {
	case s.stopped:
		err = ErrStopped
	case !ok:
		err = fmt.Errorf("%w: %s", ErrNoModel, model)
	case n > q.policy.MaxBatch:
		err = fmt.Errorf("%w: %d > %d", ErrBatchTooLarge, n, q.policy.MaxBatch)
	case q.items[pri]+n > q.policy.MaxQueue:
		err = fmt.Errorf("%w: %s has %d %s items waiting", ErrQueueFull, model, q.items[pri], pri)
	}
	if err != nil {
		if ok {
			q.stats.Fail.add(0)
		}
		s.mu.Unlock()
		s.metrics.rejected(model, err)
		return nil, Timing{}, err
	}
	q.waiting[pri] = append(q.waiting[pri], p)
	q.items[pri] += n
	q.arrived(p.enqueued)
	s.metrics.queued(model, pri, n)
	rq, batch := s.startLocked(time.Now())
	s.notifyWorkLocked()
	s.mu.Unlock()
	if batch != nil {
		s.run(rq, batch)
	}

	select {
	case r := <-p.done:
		return r.outputs, r.timing, r.err
	case <-ctx.Done():
		s.mu.Lock()
		if i := slices.Index(q.waiting[pri], p); i >= 0 {
			q.waiting[pri] = slices.Delete(q.waiting[pri], i, i+1)
			q.items[pri] -= n
			s.metrics.dequeued(model, pri, n)
		}
		s.mu.Unlock()
		return nil, Timing{}, ctx.Err()
	}
}

// batchSize checks that every input has the same leading dimension and
// that its data fills its shape.
func batchSize(inputs []Tensor) (int, error) {
	if len(inputs) == 0 {
		return 0, fmt.Errorf("%w: no inputs", ErrBadRequest)
	}
	n := int64(-1)
	for i, t := range inputs {
		if len(t.Shape) == 0 || t.Shape[0] < 1 {
			return 0, fmt.Errorf("%w: input %d has no batch axis", ErrBadRequest, i)
		}
		size := int64(1)
		for _, d := range t.Shape {
			if d < 1 {
				return 0, fmt.Errorf("%w: input %d shape %v", ErrBadRequest, i, t.Shape)
			}
			size *= d
		}
		if size != int64(len(t.Data)) {
			return 0, fmt.Errorf("%w: input %d shape %v holds %d values, got %d", ErrBadRequest, i, t.Shape, size, len(t.Data))
		}
		if n >= 0 && t.Shape[0] != n {
			return 0, fmt.Errorf("%w: inputs disagree on the batch size", ErrBadRequest)
		}
		n = t.Shape[0]
	}
	return int(n), nil
}

// notifyWorkLocked wakes the workers when something waits for them.
// Waking them for nothing would take a core from the running batch, whose
// intra-op threads are sized to all of them.
func (s *Scheduler) notifyWorkLocked() {
	for _, q := range s.models {
		if _, _, _, ok := q.headLocked(); ok {
			s.notifyLocked()
			return
		}
	}
}

func (s *Scheduler) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *Scheduler) failWaitingLocked(q *queue, err error) {
	for pri := range q.waiting {
		for _, p := range q.waiting[pri] {
			p.done <- result{err: fmt.Errorf("%w: %s", err, q.id)}
		}
		s.metrics.dequeued(q.id, Priority(pri), q.items[pri])
		q.waiting[pri] = nil
		q.items[pri] = 0
	}
}

// work is one worker: pick a ready batch, run it, deliver the results.
func (s *Scheduler) work() {
	for {
		q, batch, ok := s.next()
		if !ok {
			return
		}
		s.run(q, batch)
	}
}

// startLocked takes the batch that should run now, if a slot is free,
// and counts it as running; the caller runs it.
func (s *Scheduler) startLocked(now time.Time) (*queue, []*pending) {
	for s.free > 0 {
		q, _ := s.pickLocked(now)
		if q == nil {
			return nil, nil
		}
		if batch := s.takeLocked(q, now); len(batch) > 0 {
			s.free--
			q.running++
			s.batches.Add(1)
			return q, batch
		}
		// Only cancelled requests were there; look again.
	}
	return nil, nil
}

// next blocks until a batch is ready and takes it out of its queue.
func (s *Scheduler) next() (*queue, []*pending, bool) {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		if s.stopped {
			return nil, nil, false
		}
		now := time.Now()
		if q, batch := s.startLocked(now); batch != nil {
			return q, batch, true
		}
		var wait time.Duration
		if s.free > 0 {
			_, wait = s.pickLocked(now)
		}
		ch := s.changed
		s.mu.Unlock()
		var expired <-chan time.Time
		if wait > 0 {
			if timer == nil {
				timer = time.NewTimer(wait)
			} else {
				timer.Reset(wait)
			}
			expired = timer.C
		}
		select {
		case <-ch:
		case <-expired:
		}
		if timer != nil {
			timer.Stop()
		}
		s.mu.Lock()
	}
}

// pickLocked chooses the model whose batch should run now: of the models
// whose batch is ready, the one with the highest-priority, then oldest,
// head of queue. When none is ready it returns how long until the
// earliest MaxQueueDelay expires (0: nothing is waiting).
func (s *Scheduler) pickLocked(now time.Time) (*queue, time.Duration) {
	var (
		best     *queue
		bestPri  Priority
		bestTime time.Time
		wait     time.Duration
	)
	for _, q := range s.models {
		pri, head, items, ok := q.headLocked()
		if !ok {
			continue
		}
		age := now.Sub(head)
		ready := pri == Stat || items >= q.policy.MaxBatch || age >= q.policy.MaxQueueDelay || !q.busyArrivals()
		if !ready {
			if d := q.policy.MaxQueueDelay - age; wait == 0 || d < wait {
				wait = d
			}
			continue
		}
		if best == nil || pri > bestPri || (pri == bestPri && head.Before(bestTime)) {
			best, bestPri, bestTime = q, pri, head
		}
	}
	return best, wait
}

// arrived updates the inter-arrival average (weight 1/4 for the newest).
func (q *queue) arrived(t time.Time) {
	if !q.lastArrival.IsZero() {
		g := t.Sub(q.lastArrival)
		if q.gap == 0 {
			q.gap = g
		} else {
			q.gap = (3*q.gap + g) / 4
		}
	}
	q.lastArrival = t
}

// busyArrivals: requests have been arriving closer together than the
// queue delay, so another is likely to join a batch that waits.
func (q *queue) busyArrivals() bool {
	return q.gap > 0 && q.gap < q.policy.MaxQueueDelay
}

// headLocked returns the highest priority with a waiting request, the
// oldest enqueue time across the queue, and the items waiting in all.
func (q *queue) headLocked() (Priority, time.Time, int, bool) {
	var (
		top    Priority
		oldest time.Time
		items  int
		found  bool
	)
	for pri := numPriorities - 1; pri >= 0; pri-- {
		w := q.waiting[pri]
		if len(w) == 0 {
			continue
		}
		if !found {
			top, found = pri, true
		}
		if oldest.IsZero() || w[0].enqueued.Before(oldest) {
			oldest = w[0].enqueued
		}
		items += q.items[pri]
	}
	return top, oldest, items, found
}

// takeLocked takes up to MaxBatch items, highest priority first and in
// arrival order within a priority. Requests whose context ended are
// answered and dropped on the way.
func (s *Scheduler) takeLocked(q *queue, now time.Time) []*pending {
	var (
		batch []*pending
		items int
	)
	for pri := numPriorities - 1; pri >= 0; pri-- {
		w := q.waiting[pri]
		i := 0
		for ; i < len(w); i++ {
			p := w[i]
			if err := p.ctx.Err(); err != nil {
				p.done <- result{err: err}
				q.items[pri] -= p.n
				s.metrics.dequeued(q.id, pri, p.n)
				continue
			}
			if items+p.n > q.policy.MaxBatch {
				break
			}
			batch = append(batch, p)
			items += p.n
			q.items[pri] -= p.n
			s.metrics.dequeued(q.id, pri, p.n)
			s.metrics.waited(q.id, pri, now.Sub(p.enqueued))
		}
		q.waiting[pri] = slices.Delete(w, 0, i)
		if items >= q.policy.MaxBatch {
			break
		}
	}
	return batch
}

// run stacks the batch's inputs, runs the backend and hands each request
// its slice of the outputs.
func (s *Scheduler) run(q *queue, batch []*pending) {
	start := time.Now()
	outputs, n, err := runBatch(q.backend, batch)
	end := time.Now()
	compute := end.Sub(start)
	s.metrics.ran(q.id, n, compute, err)
	// Counted before anyone is answered: a caller that has its answer
	// finds it in Stats.
	s.mu.Lock()
	q.stats.record(batch, n, start, end, err)
	s.mu.Unlock()
	off := 0
	for _, p := range batch {
		t := Timing{Queue: start.Sub(p.enqueued), Compute: compute, Batch: n}
		if err != nil {
			p.done <- result{err: err, timing: t}
			continue
		}
		p.done <- result{outputs: sliceBatch(outputs, off, p.n), timing: t}
		off += p.n
	}
	s.mu.Lock()
	q.running--
	s.free++
	if q.removed && q.running == 0 {
		close(q.idle)
	}
	s.notifyWorkLocked() // a slot is free: a worker may start the next batch
	s.mu.Unlock()
	s.batches.Done()
}

// record counts a batch of n items that ran from start to end.
func (st *Stats) record(batch []*pending, n int, start, end time.Time, err error) {
	st.LastInference = end
	st.Executions++
	st.Items += uint64(n)
	if st.Batches == nil {
		st.Batches = map[int]StatDuration{}
	}
	b := st.Batches[n]
	b.add(end.Sub(start))
	st.Batches[n] = b
	for _, p := range batch {
		st.Queue.add(start.Sub(p.enqueued))
		st.Compute.add(end.Sub(start))
		if err != nil {
			st.Fail.add(end.Sub(p.enqueued))
		} else {
			st.Success.add(end.Sub(p.enqueued))
		}
	}
}

func runBatch(b Backend, batch []*pending) ([]Tensor, int, error) {
	n := 0
	for _, p := range batch {
		n += p.n
	}
	inputs := batch[0].inputs
	if len(batch) > 1 {
		inputs = make([]Tensor, len(batch[0].inputs))
		for i := range inputs {
			shape := slices.Clone(batch[0].inputs[i].Shape)
			if len(shape) == 0 {
				return nil, n, fmt.Errorf("%w: input %d has no batch axis", ErrBadRequest, i)
			}
			shape[0] = int64(n)
			data := make([]float32, 0, len(batch[0].inputs[i].Data)/batch[0].n*n)
			for _, p := range batch {
				if !slices.Equal(p.inputs[i].Shape[1:], shape[1:]) {
					return nil, n, fmt.Errorf("%w: input %d shapes differ within a batch", ErrBadRequest, i)
				}
				data = append(data, p.inputs[i].Data...)
			}
			inputs[i] = Tensor{Shape: shape, Data: data}
		}
	}
	// A batch runs to the end even when its requesters give up: its
	// result is discarded, and other requests share it.
	out, err := b.Run(context.Background(), inputs)
	if err != nil {
		return nil, n, err
	}
	for i, t := range out {
		if len(t.Shape) == 0 || t.Shape[0] != int64(n) {
			return nil, n, fmt.Errorf("inference: output %d has shape %v for a batch of %d", i, t.Shape, n)
		}
	}
	return out, n, nil
}

// sliceBatch returns items [off, off+n) of each output, copied so a
// request never aliases another's results.
func sliceBatch(outputs []Tensor, off, n int) []Tensor {
	res := make([]Tensor, len(outputs))
	for i, t := range outputs {
		per := len(t.Data) / int(t.Shape[0])
		shape := slices.Clone(t.Shape)
		shape[0] = int64(n)
		res[i] = Tensor{Shape: shape, Data: slices.Clone(t.Data[off*per : (off+n)*per])}
	}
	return res
}
