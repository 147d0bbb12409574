package store

import "time"

// Limits and tunables, in one place.
const (
	// chunkSize is the unit of the ingest copy pipeline (two per ingest in
	// flight): 256 KiB means a 530 KB CT slice takes three write(2) calls,
	// and no data set is ever held whole in memory.
	chunkSize = 256 << 10
	// diskCheckInterval bounds how stale the cached free-space figure may
	// be: one statfs(2) per second at most, whatever the ingest rate.
	diskCheckInterval = time.Second
	// readConns is the size of the read connection pool of SQLiteIndex.
	// WAL readers never block the writer nor each other.
	readConns = 4
	// busyTimeout is how long an SQLite connection waits for a lock held
	// by another connection (a checkpoint, a reader opening the WAL)
	// before it reports SQLITE_BUSY.
	busyTimeout = 5 * time.Second
	// fileMode and dirMode: blobs hold PHI, so only radgate's user reads
	// them.
	fileMode = 0o600
	dirMode  = 0o700
)
