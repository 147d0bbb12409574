package inference

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// recorder is a backend whose timing the test controls: the scheduler's
// ordering and batching are what is under test here, so the backend is a
// stand-in (ONNX Runtime itself is tested in inference/ort and end to end
// in engine_test.go). Each item's output is its first input value, so a
// request can check it got its own rows back.
type recorder struct {
	mu      sync.Mutex
	batches [][]float32 // the first value of each item, per batch
	gate    chan struct{}
	entered chan struct{}
	closed  bool
}

func newRecorder(gated bool) *recorder {
	r := &recorder{entered: make(chan struct{}, 100)}
	if gated {
		r.gate = make(chan struct{})
	}
	return r
}

func (r *recorder) Run(_ context.Context, in []Tensor) ([]Tensor, error) {
	r.entered <- struct{}{}
	if r.gate != nil {
		<-r.gate
	}
	n := int(in[0].Shape[0])
	per := len(in[0].Data) / n
	firsts := make([]float32, n)
	for i := range n {
		firsts[i] = in[0].Data[i*per]
	}
	r.mu.Lock()
	r.batches = append(r.batches, firsts)
	r.mu.Unlock()
	return []Tensor{{Shape: []int64{int64(n), 1}, Data: slices.Clone(firsts)}}, nil
}

func (r *recorder) Close() error {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	return nil
}

func (r *recorder) got() [][]float32 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.batches)
}

func item(v float32) []Tensor {
	return []Tensor{{Shape: []int64{1, 2}, Data: []float32{v, -v}}}
}

type answer struct {
	v      float32
	out    []Tensor
	timing Timing
	err    error
}

// submit runs Infer in a goroutine and returns the channel of its answer.
func submit(ctx context.Context, s *Scheduler, model string, p Priority, v float32) chan answer {
	ch := make(chan answer, 1)
	go func() {
		out, t, err := s.Infer(ctx, model, p, item(v))
		ch <- answer{v, out, t, err}
	}()
	return ch
}

// waitQueued polls until the model has n items waiting (the scheduler's
// own state, not a sleep).
func waitQueued(t *testing.T, s *Scheduler, model string, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		s.mu.Lock()
		q := s.models[model]
		got := 0
		for _, c := range q.items {
			got += c
		}
		s.mu.Unlock()
		if got == n {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("%s: never had %d items queued", model, n)
}

func TestDynamicBatching(t *testing.T) {
	r := newRecorder(true)
	s := NewScheduler(1, nil)
	defer s.Stop()
	if err := s.Add("m", r, Policy{MaxBatch: 4, MaxQueueDelay: time.Second, MaxQueue: 100}); err != nil {
		t.Fatal(err)
	}
	// A STAT request occupies the only worker; nine routine ones queue
	// behind it and must come out as full batches of 4, then the rest.
	first := submit(t.Context(), s, "m", Stat, 100)
	<-r.entered
	var chans []chan answer
	for i := range 9 {
		chans = append(chans, submit(t.Context(), s, "m", Routine, float32(i)))
		waitQueued(t, s, "m", i+1)
	}
	close(r.gate)
	if a := <-first; a.err != nil {
		t.Fatal(a.err)
	}
	for _, ch := range chans {
		a := <-ch
		if a.err != nil {
			t.Fatal(a.err)
		}
		if a.out[0].Data[0] != a.v || len(a.out[0].Data) != 1 {
			t.Errorf("request %v got %v: not its own output", a.v, a.out[0].Data)
		}
	}
	want := [][]float32{{100}, {0, 1, 2, 3}, {4, 5, 6, 7}, {8}}
	if d := cmp.Diff(want, r.got()); d != "" {
		t.Errorf("batches (-want +got):\n%s", d)
	}

	// The statistics count the same: 10 requests in 4 batches.
	st, ok := s.Stats("m")
	if !ok {
		t.Fatal("no statistics for m")
	}
	if st.Items != 10 || st.Executions != 4 || st.Success.Count != 10 || st.Queue.Count != 10 ||
		st.Compute.Count != 10 || st.Fail.Count != 0 || st.LastInference.IsZero() {
		t.Errorf("statistics %+v: want 10 items, 4 executions, 10 successes", st)
	}
	if st.Batches[1].Count != 2 || st.Batches[4].Count != 2 || len(st.Batches) != 2 {
		t.Errorf("batch statistics %v: want 2 of size 1, 2 of size 4", st.Batches)
	}
	// The routine requests waited for the STAT one: queue time is there.
	if st.Queue.Total <= 0 || st.Success.Total < st.Queue.Total {
		t.Errorf("queue %v, success %v: want 0 < queue ≤ success", st.Queue.Total, st.Success.Total)
	}
	if _, ok := s.Stats("x"); ok {
		t.Error("statistics for a model never added")
	}
}

func TestStatOvertakesQueuedRoutine(t *testing.T) {
	r := newRecorder(true)
	s := NewScheduler(1, nil)
	defer s.Stop()
	s.Add("cxr", r, Policy{MaxBatch: 2, MaxQueue: 100})
	s.Add("ct", r, Policy{MaxBatch: 2, MaxQueue: 100})
	busy := submit(t.Context(), s, "cxr", Routine, 1)
	<-r.entered
	var routine []chan answer
	for i := range 4 {
		routine = append(routine, submit(t.Context(), s, "cxr", Routine, float32(10+i)))
		waitQueued(t, s, "cxr", i+1)
	}
	stat := submit(t.Context(), s, "ct", Stat, 99)
	waitQueued(t, s, "ct", 1)
	close(r.gate)
	a := <-stat
	if a.err != nil {
		t.Fatal(a.err)
	}
	<-busy
	for _, ch := range routine {
		<-ch
	}
	got := r.got()
	// The running batch finishes; then the STAT CT goes before all four
	// routine chest X-rays that were queued earlier.
	if d := cmp.Diff([]float32{99}, got[1]); d != "" {
		t.Errorf("second batch (-want +got):\n%s\nall: %v", d, got)
	}
	if a.timing.Queue <= 0 || a.timing.Batch != 1 {
		t.Errorf("timing %+v", a.timing)
	}
}

func TestMaxQueueDelay(t *testing.T) {
	r := newRecorder(false)
	s := NewScheduler(1, nil)
	defer s.Stop()
	const delay = 100 * time.Millisecond
	s.Add("m", r, Policy{MaxBatch: 8, MaxQueueDelay: delay, MaxQueue: 100})
	// A lone request: nothing suggests company is coming, so it runs at once.
	a := <-submit(t.Context(), s, "m", Routine, 1)
	if a.err != nil {
		t.Fatal(a.err)
	}
	if a.timing.Queue >= delay {
		t.Errorf("a lone request waited %v for company", a.timing.Queue)
	}
	// Requests arriving close together: the first waits up to the delay
	// for the others, and they run as one batch.
	var chans []chan answer
	for i := range 3 {
		chans = append(chans, submit(t.Context(), s, "m", Routine, float32(10+i)))
		waitQueued(t, s, "m", i+1)
	}
	first := <-chans[0]
	for _, ch := range chans[1:] {
		<-ch
	}
	if first.timing.Queue < delay || first.timing.Batch != 3 {
		t.Errorf("close arrivals: first waited %v in a batch of %d; want ≥ %v in a batch of 3 (batches %v)", first.timing.Queue, first.timing.Batch, delay, r.got())
	}
	a = <-submit(t.Context(), s, "m", Stat, 2)
	if a.timing.Queue >= delay {
		t.Errorf("a STAT request waited %v for company", a.timing.Queue)
	}
}

func TestBackpressurePerPriority(t *testing.T) {
	r := newRecorder(true)
	s := NewScheduler(1, nil)
	defer func() { close(r.gate); s.Stop() }()
	s.Add("m", r, Policy{MaxBatch: 1, MaxQueue: 2})
	submit(t.Context(), s, "m", Routine, 0)
	<-r.entered
	submit(t.Context(), s, "m", Routine, 1)
	submit(t.Context(), s, "m", Routine, 2)
	waitQueued(t, s, "m", 2)
	if _, _, err := s.Infer(t.Context(), "m", Routine, item(3)); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("third routine request: %v, want ErrQueueFull", err)
	}
	// A full routine queue does not keep out a STAT request.
	submit(t.Context(), s, "m", Stat, 4)
	waitQueued(t, s, "m", 3)
}

func TestCancelledRequestLeavesQueue(t *testing.T) {
	r := newRecorder(true)
	s := NewScheduler(1, nil)
	defer s.Stop()
	s.Add("m", r, Policy{MaxBatch: 4, MaxQueue: 10})
	busy := submit(t.Context(), s, "m", Stat, 0)
	<-r.entered
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	a := <-submit(ctx, s, "m", Routine, 7)
	if !errors.Is(a.err, context.DeadlineExceeded) {
		t.Fatalf("expired request: %v", a.err)
	}
	waitQueued(t, s, "m", 0)
	close(r.gate)
	<-busy
	for _, b := range r.got() {
		if slices.Contains(b, 7) {
			t.Fatalf("the expired request ran: %v", r.got())
		}
	}
}

func TestRejects(t *testing.T) {
	s := NewScheduler(1, nil)
	defer s.Stop()
	r := newRecorder(false)
	s.Add("m", r, Policy{MaxBatch: 2, MaxQueue: 10})
	if err := s.Add("m", r, Policy{MaxBatch: 2, MaxQueue: 10}); err == nil {
		t.Error("second Add of the same id accepted")
	}
	big := []Tensor{{Shape: []int64{3, 2}, Data: make([]float32, 6)}}
	for name, tc := range map[string]struct {
		model  string
		inputs []Tensor
		want   error
	}{
		"too large":   {"m", big, ErrBatchTooLarge},
		"no model":    {"x", item(1), ErrNoModel},
		"short data":  {"m", []Tensor{{Shape: []int64{1, 3}, Data: make([]float32, 2)}}, ErrBadRequest},
		"no inputs":   {"m", nil, ErrBadRequest},
		"zero batch":  {"m", []Tensor{{Shape: []int64{0, 2}}}, ErrBadRequest},
		"mixed batch": {"m", []Tensor{{Shape: []int64{1, 1}, Data: []float32{1}}, {Shape: []int64{2, 1}, Data: []float32{1, 2}}}, ErrBadRequest},
	} {
		if _, _, err := s.Infer(t.Context(), tc.model, Routine, tc.inputs); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}
	// Of these only the batch too large reached m's queue: a failure.
	if st, _ := s.Stats("m"); st.Fail.Count != 1 || st.Success.Count != 0 || st.Executions != 0 {
		t.Errorf("statistics %+v: want 1 failure, nothing run", st)
	}
}

func TestRemoveAndStop(t *testing.T) {
	r := newRecorder(true)
	s := NewScheduler(1, nil)
	s.Add("m", r, Policy{MaxBatch: 1, MaxQueue: 10})
	running := submit(t.Context(), s, "m", Routine, 1)
	<-r.entered
	waiting := submit(t.Context(), s, "m", Routine, 2)
	waitQueued(t, s, "m", 1)
	removed := make(chan error, 1)
	go func() { removed <- s.Remove(t.Context(), "m") }()
	if a := <-waiting; !errors.Is(a.err, ErrNoModel) {
		t.Errorf("waiting request after Remove: %v", a.err)
	}
	close(r.gate) // the running batch completes, then the backend closes
	if a := <-running; a.err != nil {
		t.Errorf("running batch: %v", a.err)
	}
	if err := <-removed; err != nil {
		t.Fatal(err)
	}
	if !r.closed {
		t.Error("backend not closed by Remove")
	}
	r2 := newRecorder(false)
	s.Add("m2", r2, Policy{MaxBatch: 1, MaxQueue: 10})
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if !r2.closed {
		t.Error("backend not closed by Stop")
	}
	if _, _, err := s.Infer(t.Context(), "m2", Routine, item(1)); !errors.Is(err, ErrStopped) {
		t.Errorf("Infer after Stop: %v", err)
	}
}

func TestParsePriority(t *testing.T) {
	for _, p := range []Priority{Low, Routine, High, Stat} {
		got, err := ParsePriority(p.String())
		if err != nil || got != p {
			t.Errorf("ParsePriority(%q) = %v, %v", p.String(), got, err)
		}
	}
	if p, _ := ParsePriority("STAT"); p != Stat {
		t.Error("case-insensitive parse")
	}
	if _, err := ParsePriority("urgent"); err == nil {
		t.Error("unknown priority accepted")
	}
}

// A Remove that gives up waiting for a running batch still closes the
// backend once the batch ends (else a remote model's connection leaks).
func TestRemoveGivingUpStillCloses(t *testing.T) {
	r := newRecorder(true)
	s := NewScheduler(1, nil)
	defer s.Stop()
	s.Add("m", r, Policy{MaxBatch: 1, MaxQueue: 10})
	running := submit(t.Context(), s, "m", Routine, 1)
	<-r.entered
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s.Remove(ctx, "m"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Remove with an ended context: %v", err)
	}
	r.mu.Lock()
	closed := r.closed
	r.mu.Unlock()
	if closed {
		t.Fatal("backend closed while its batch runs")
	}
	close(r.gate)
	if a := <-running; a.err != nil {
		t.Errorf("running batch: %v", a.err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		r.mu.Lock()
		closed := r.closed
		r.mu.Unlock()
		if closed {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("backend never closed after its batch ended")
		}
		time.Sleep(time.Millisecond)
	}
}
