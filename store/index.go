package store

import "context"

// Index records which instances exist, their attributes and where their
// blobs are. SQLiteIndex is the embedded implementation; a PostgreSQL one
// (shared by replicas) fits the same contract.
type Index interface {
	// Lookup returns the current record for a SOP Instance UID, or
	// ErrNotFound.
	Lookup(ctx context.Context, sopInstanceUID string) (Instance, error)
	// Upsert makes inst the current record for inst.SOPInstanceUID, in one
	// durable transaction (with its patient, study and series rows),
	// provided the current record's BlobKey is expect ("" meaning there is
	// none); otherwise it changes nothing and returns ErrConflict. That
	// compare-and-swap keeps concurrent writers (other processes, later
	// replicas) from losing each other's instances.
	//
	// It returns the blob keys that no record references any more (the
	// replaced record's blob). They are also noted in the index as orphans
	// in the same transaction, so a crash before the caller removes them
	// loses nothing: Orphans lists them again.
	Upsert(ctx context.Context, inst Instance, expect string) (orphans []string, err error)
	// Remove deletes the record of a SOP Instance UID provided its BlobKey
	// is expect (it undoes an Upsert whose blob could not be committed).
	// Removing a missing record is not an error.
	Remove(ctx context.Context, sopInstanceUID, expect string) error
	// Recent returns the SOP Instance UIDs and blob keys of the n records
	// written last, newest first (Open checks them after a crash).
	Recent(ctx context.Context, n int) ([]RecordRef, error)
	// Orphans lists blob keys noted as orphans that still no record
	// references.
	Orphans(ctx context.Context) ([]string, error)
	// ForgetOrphans drops orphan notes once their blobs are removed.
	ForgetOrphans(ctx context.Context, keys []string) error
	// Count returns the number of instance records.
	Count(ctx context.Context) (int64, error)
	// Ping reports whether the index answers.
	Ping(ctx context.Context) error
	Close() error
}

// RecordRef names an index record and its blob.
type RecordRef struct {
	SOPInstanceUID, BlobKey string
}
