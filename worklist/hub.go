package worklist

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/radgate/radgate/store"
)

// The feed of changes. Every change is a row of the index's append-only
// event log, whoever made it (the pipeline, a person, another process on
// the same index), so the hub reads the log: after each change made here
// at once, and every pollInterval for the rest. Each subscriber has a
// buffered channel; one that falls subscriberBuffer events behind is
// dropped (its channel closed) rather than holding the others back, and
// may resubscribe from the last seq it saw.
const (
	pollInterval     = 250 * time.Millisecond
	subscriberBuffer = 256
	pollBatch        = 500
)

// Hub fans the event log out to subscribers.
type Hub struct {
	wl   store.Worklist
	log  *slog.Logger
	wake chan struct{}

	mu   sync.Mutex
	last uint64 // the newest event read
	subs map[*subscriber]struct{}
	// started is closed once run has read where the log ends.
	started chan struct{}
}

type subscriber struct {
	ch    chan store.WorklistEvent
	after uint64 // replay: events up to here were sent by subscribe
}

func newHub(wl store.Worklist, log *slog.Logger) *Hub {
	return &Hub{wl: wl, log: log, wake: make(chan struct{}, 1), subs: map[*subscriber]struct{}{}, started: make(chan struct{})}
}

func (h *Hub) poke() {
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

func (h *Hub) run(ctx context.Context) error {
	// Start at the log's end: subscribers ask for history themselves.
	for {
		evs, err := h.wl.WorklistEvents(ctx, h.last, pollBatch)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			h.log.Error("worklist: reading the event log failed; retrying", "err", err)
			break
		}
		if len(evs) == 0 {
			break
		}
		h.last = evs[len(evs)-1].Seq
	}
	close(h.started)
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			h.mu.Lock()
			for s := range h.subs {
				close(s.ch)
				delete(h.subs, s)
			}
			h.mu.Unlock()
			return nil
		case <-t.C:
		case <-h.wake:
		}
		h.read(ctx)
	}
}

// read sends the events after last to every subscriber.
func (h *Hub) read(ctx context.Context) {
	for {
		h.mu.Lock()
		after := h.last
		h.mu.Unlock()
		evs, err := h.wl.WorklistEvents(ctx, after, pollBatch)
		if err != nil {
			if ctx.Err() == nil {
				h.log.Error("worklist: reading the event log failed", "err", err)
			}
			return
		}
		if len(evs) == 0 {
			return
		}
		h.mu.Lock()
		for _, e := range evs {
			for s := range h.subs {
				if e.Seq <= s.after {
					continue
				}
				select {
				case s.ch <- e:
				default:
					h.log.Warn("worklist: a subscriber fell behind; dropped", "seq", e.Seq)
					close(s.ch)
					delete(h.subs, s)
				}
			}
		}
		h.last = evs[len(evs)-1].Seq
		h.mu.Unlock()
		if len(evs) < pollBatch {
			return
		}
	}
}

// subscribe replays the events after afterSeq (0: none, from now on) and
// then follows the log.
func (h *Hub) subscribe(ctx context.Context, afterSeq uint64) <-chan store.WorklistEvent {
	s := &subscriber{ch: make(chan store.WorklistEvent, subscriberBuffer)}
	select {
	case <-h.started:
	case <-ctx.Done():
		close(s.ch)
		return s.ch
	}
	h.mu.Lock()
	last := h.last
	if afterSeq > 0 && afterSeq < last {
		// History first, up to where the hub has read; the hub sends the
		// rest. Holding the lock keeps the hub from sending meanwhile.
		evs, err := h.wl.WorklistEvents(ctx, afterSeq, int(min(last-afterSeq, subscriberBuffer)))
		if err != nil || len(evs) == subscriberBuffer {
			h.mu.Unlock()
			close(s.ch)
			return s.ch
		}
		for _, e := range evs {
			s.ch <- e
		}
	}
	s.after = last
	h.subs[s] = struct{}{}
	h.mu.Unlock()
	go func() {
		<-ctx.Done()
		h.mu.Lock()
		if _, ok := h.subs[s]; ok {
			delete(h.subs, s)
			close(s.ch)
		}
		h.mu.Unlock()
	}()
	return s.ch
}
