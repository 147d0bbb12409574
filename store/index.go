package store

import (
	"context"
	"time"
)

// Index records which instances exist, their attributes and where their
// blobs are, and per log segment how many records are still referenced
// and up to where the log is indexed. SQLiteIndex is the embedded
// implementation; a PostgreSQL one (shared by replicas) fits the same
// contract. It also keeps the Work that follows the instances.
type Index interface {
	Work
	Worklist
	Searcher

	// Lookup returns the current record for a SOP Instance UID, or
	// ErrNotFound.
	Lookup(ctx context.Context, sopInstanceUID string) (Instance, error)
	// Apply records ops in one transaction, in order. An op whose Seq is
	// not above the current record's for its SOP Instance UID changes no
	// instance row (a replay of a superseded record). Each segment's
	// mark moves to its ops' End, and its count of referenced records is
	// kept. It returns the segments whose count fell to zero.
	Apply(ctx context.Context, ops []IndexOp) (emptied []uint64, err error)
	// Segments returns the state of every segment the index knows.
	Segments(ctx context.Context) ([]SegmentState, error)
	// ForgetSegment drops a reclaimed segment's row.
	ForgetSegment(ctx context.Context, id uint64) error
	// SettledStudies lists up to limit studies settled before before,
	// oldest first, and counts those settled but held because a delivery
	// gave up (see Store.Expired).
	SettledStudies(ctx context.Context, before time.Time, limit int) (due []string, held int, err error)
	// PurgeStudy deletes every row about a study and records its
	// instances' blob keys for erasure, in one transaction durable at
	// commit (purge.go); ErrNotFound, or ErrInFlight while work for it is
	// in progress.
	PurgeStudy(ctx context.Context, studyInstanceUID string) (Purged, error)
	// Erasures lists the blob keys purged and not yet erased; Erased
	// drops keys whose records are erased.
	Erasures(ctx context.Context) ([]string, error)
	Erased(ctx context.Context, keys []string) error
	// MaxSeq is the highest sequence number recorded.
	MaxSeq(ctx context.Context) (uint64, error)
	// Count returns the number of instance records.
	Count(ctx context.Context) (int64, error)
	// Ping reports whether the index answers.
	Ping(ctx context.Context) error
	Close() error
}

// IndexOp is one committed log record to index: its instance record
// (BlobKey, Seq set) and the record's end in its segment.
type IndexOp struct {
	Instance Instance
	End      Mark
}

// SegmentState is the index's view of a log segment.
type SegmentState struct {
	ID        uint64
	Live      int64 // instance records referencing it
	IndexedTo int64 // every record ending at or before this is indexed
}
