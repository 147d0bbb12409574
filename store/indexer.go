package store

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// indexer applies committed log records to the Index in batches, on its
// own goroutine: an ingest waits for its record's fdatasync, not for a
// database transaction nor for the SHA-256 of its blob, which the indexer
// computes (reading the blob back from the page cache while the sender
// gets its answer and sends the next instance); one transaction covers
// every record that arrived meanwhile. A record acknowledged but not yet
// indexed is in pending, which lookups consult first, so the Store reads
// its own writes.
type indexer struct {
	index   Index
	log     *slog.Logger
	digest  func(ctx context.Context, key string, buf []byte) (string, error)
	reclaim func(ctx context.Context, segments []uint64) // segments whose last reference went
	buf     []byte                                       // digest's read buffer
	queue   chan IndexOp
	done    chan struct{}
	closing atomic.Bool

	mu      sync.Mutex
	cond    sync.Cond
	pending map[string]Instance // by SOP Instance UID
	perSeg  map[uint64]int      // queued ops per segment
	queued  uint64
	applied uint64
	failing error // the last Apply error, until one succeeds
}

func newIndexer(index Index, log *slog.Logger, digest func(context.Context, string, []byte) (string, error),
	reclaim func(context.Context, []uint64)) *indexer {
	ix := &indexer{
		index:   index,
		log:     log,
		digest:  digest,
		reclaim: reclaim,
		buf:     make([]byte, chunkSize),
		queue:   make(chan IndexOp, maxIndexQueue),
		done:    make(chan struct{}),
		pending: map[string]Instance{},
		perSeg:  map[uint64]int{},
	}
	ix.cond.L = &ix.mu
	go ix.run()
	return ix
}

// enqueue hands a committed record over. It blocks while maxIndexQueue
// records wait, which holds ingest back rather than letting the index
// fall ever further behind.
func (ix *indexer) enqueue(op IndexOp) {
	ix.mu.Lock()
	ix.pending[op.Instance.SOPInstanceUID] = op.Instance
	ix.perSeg[op.End.Segment]++
	ix.queued++
	ix.mu.Unlock()
	ix.queue <- op
}

// lookup is Index.Lookup seeing acknowledged records not yet indexed.
func (ix *indexer) lookup(ctx context.Context, uid string) (Instance, error) {
	ix.mu.Lock()
	in, ok := ix.pending[uid]
	ix.mu.Unlock()
	if ok {
		return in, nil
	}
	return ix.index.Lookup(ctx, uid)
}

// flush waits until every record enqueued before the call is indexed. It
// returns early with the error while the index is failing.
func (ix *indexer) flush() error {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	target := ix.queued
	for ix.applied < target && ix.failing == nil {
		ix.cond.Wait()
	}
	return ix.failing
}

// err is the index's last failure, nil once a batch succeeds again.
func (ix *indexer) err() error {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	return ix.failing
}

// depth is the number of records acknowledged and not yet indexed.
func (ix *indexer) depth() float64 {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	return float64(ix.queued - ix.applied)
}

// close indexes what is queued, then stops. No enqueue may follow.
func (ix *indexer) close() {
	ix.closing.Store(true)
	close(ix.queue)
	<-ix.done
}

func (ix *indexer) run() {
	defer close(ix.done)
	batch := make([]IndexOp, 0, maxIndexBatch)
	for {
		op, ok := <-ix.queue
		if !ok {
			return
		}
		batch = append(batch[:0], op)
	drain:
		for len(batch) < maxIndexBatch {
			select {
			case op, ok := <-ix.queue:
				if !ok {
					break drain
				}
				batch = append(batch, op)
			default:
				break drain
			}
		}
		ix.apply(batch)
	}
}

// apply digests a batch's blobs and commits it, retrying with backoff
// while that fails: the records are durable in the log, so waiting loses
// nothing. When stopping, it gives up after a few tries; Open replays
// those records.
func (ix *indexer) apply(batch []IndexOp) {
	ctx := context.Background()
	backoff := indexRetryMin
	for attempt := 1; ; attempt++ {
		emptied, err := ix.digestAll(ctx, batch)
		if err == nil {
			emptied, err = ix.index.Apply(ctx, batch)
		}
		if err == nil {
			ix.finish(batch, emptied)
			return
		}
		ix.mu.Lock()
		first := ix.failing == nil
		ix.failing = err
		ix.cond.Broadcast()
		ix.mu.Unlock()
		if first {
			ix.log.Error("store: indexing failed; retrying (the instances are durable in the log)", "instances", len(batch), "err", err)
		}
		if ix.closing.Load() && attempt >= indexStopTries {
			ix.log.Error("store: indexing abandoned at shutdown; the next start indexes these instances from the log", "instances", len(batch), "err", err)
			ix.mu.Lock()
			for _, op := range batch {
				ix.forgetLocked(op)
			}
			ix.mu.Unlock()
			return
		}
		time.Sleep(backoff)
		backoff = min(2*backoff, indexRetryMax)
	}
}

// digestAll fills in the SHA-256 of the blobs that lack it.
func (ix *indexer) digestAll(ctx context.Context, batch []IndexOp) ([]uint64, error) {
	for i := range batch {
		in := &batch[i].Instance
		if in.SHA256 != "" {
			continue
		}
		sum, err := ix.digest(ctx, in.BlobKey, ix.buf)
		if err != nil {
			return nil, err
		}
		in.SHA256 = sum
	}
	return nil, nil
}

func (ix *indexer) finish(batch []IndexOp, emptied []uint64) {
	ix.mu.Lock()
	for _, op := range batch {
		ix.forgetLocked(op)
	}
	if ix.failing != nil {
		ix.log.Info("store: indexing recovered")
		ix.failing = nil
	}
	free := ix.reclaimableLocked(emptied)
	ix.cond.Broadcast()
	ix.mu.Unlock()
	if len(free) > 0 {
		ix.reclaim(context.Background(), free)
	}
}

// reclaimable keeps of segments the index counts empty those no queued
// record is in: only these may be deleted.
func (ix *indexer) reclaimable(emptied []uint64) []uint64 {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	return ix.reclaimableLocked(emptied)
}

func (ix *indexer) reclaimableLocked(emptied []uint64) []uint64 {
	var free []uint64
	for _, id := range emptied {
		if ix.perSeg[id] == 0 {
			free = append(free, id)
		}
	}
	return free
}

// holdsStudy reports whether an instance of the study is acknowledged and
// not yet indexed.
func (ix *indexer) holdsStudy(studyInstanceUID string) bool {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	for _, in := range ix.pending {
		if in.StudyInstanceUID == studyInstanceUID {
			return true
		}
	}
	return false
}

// forgetLocked drops a finished op from the bookkeeping. ix.mu is held.
func (ix *indexer) forgetLocked(op IndexOp) {
	uid := op.Instance.SOPInstanceUID
	if p, ok := ix.pending[uid]; ok && p.Seq == op.Instance.Seq {
		delete(ix.pending, uid)
	}
	if ix.perSeg[op.End.Segment]--; ix.perSeg[op.End.Segment] <= 0 {
		delete(ix.perSeg, op.End.Segment)
	}
	ix.applied++
}
