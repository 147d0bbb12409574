package store

import (
	"context"
	"io"
)

// Blobs keeps the Part 10 files of received instances as records of an
// append-only log, each made durable by Commit. Log (segment files on the
// local file system) is the implementation; an S3 one (minio-go) would
// spool a record locally and PutObject it on Commit, with no replay.
type Blobs interface {
	// Create starts a record; meta (the reception details) is kept with
	// it and given back by Replay.
	Create(ctx context.Context, meta []byte) (BlobWriter, error)
	// Open returns the Part 10 bytes of a committed record; ErrNotFound
	// when there is none.
	Open(ctx context.Context, key string) (io.ReadCloser, error)
	// Replay calls fn for every committed record past marks (per segment),
	// oldest first within a segment.
	Replay(ctx context.Context, marks map[uint64]int64, fn func(Recovered, io.Reader) error) error
	// Segments lists the sealed segments; Reclaim deletes one whose
	// records are all unreferenced.
	Segments() []uint64
	Reclaim(id uint64) (bool, error)
	// Erase destroys committed records (a purge): no Replay returns them
	// again, and their data is gone from the disk. A key already erased,
	// or of a segment since reclaimed, is no error.
	Erase(ctx context.Context, keys []string) error
	// Reserve keeps segment ids up to id from being reused.
	Reserve(id uint64)
	// Ping reports whether new records can be written.
	Ping(ctx context.Context) error
	// Close releases what the backend holds; no call may follow.
	Close() error
}

// BlobWriter is a record being written. The caller writes the data, may
// read it back (to validate it), then calls Commit or Abort, and always
// Close.
type BlobWriter interface {
	io.Writer
	// ReadAt reads back the data written so far.
	io.ReaderAt
	// Commit makes the record durable under sequence number seq: once it
	// returns nil, a crash loses neither the record nor part of it. It
	// returns the record's key and end.
	Commit(ctx context.Context, seq uint64) (key string, end Mark, err error)
	// Abort discards the record.
	Abort() error
	// Close aborts the record unless committed and releases the writer.
	Close() error
}
