package store

import "time"

// Limits and tunables, in one place.
const (
	// chunkSize is the unit of the ingest copy pipeline (two per ingest in
	// flight): 256 KiB means a 530 KB CT slice takes three write(2) calls,
	// and no data set is ever held whole in memory.
	chunkSize = 256 << 10
	// writebackChunk is how much written data accumulates before writeback
	// to the disk is started (startWriteback): the fdatasync at commit then
	// has little left to wait for.
	writebackChunk = 256 << 10
	// DefaultSegmentSize is the nominal size of a log segment: made ahead
	// of need at this size, sealed once a record ends past it (a larger
	// instance makes its segment larger). Big enough that making segments
	// is rare (one per ~120 CT slices), small enough that the spares and
	// the unused tail of each open segment cost little disk.
	DefaultSegmentSize = 64 << 20
	// spareSegments is how many segments are kept made ahead of need: a
	// burst of this many segments' worth (256 MiB) finds them ready.
	spareSegments = 4
	// maxIndexQueue bounds the records acknowledged but not yet indexed;
	// ingest waits beyond it.
	maxIndexQueue = 1024
	// maxIndexBatch bounds the records one index transaction applies.
	maxIndexBatch = 256
	// indexRetryMin and indexRetryMax bound the backoff between attempts
	// at a failing index transaction; indexStopTries is how many are made
	// at shutdown before the batch is left for replay.
	indexRetryMin  = 50 * time.Millisecond
	indexRetryMax  = 5 * time.Second
	indexStopTries = 3
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
	// maxKeyValues bounds the values of a query, over all its keys (UID
	// lists, values separated by "\"): each becomes one or two SQL
	// parameters, well below SQLite's limit of 32766.
	maxKeyValues = 1000
	// fileMode and dirMode: blobs hold PHI, so only radgate's user reads
	// them.
	fileMode = 0o600
	dirMode  = 0o700
)
