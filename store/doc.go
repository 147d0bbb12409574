// Package store keeps every received DICOM instance durably and indexes it,
// so that a C-STORE or STOW-RS sender is told "stored" only once the
// instance survives a crash or a power loss (ARCHITECTURE.md: never
// acknowledge before durable).
//
// Entry points:
//
//   - [Open] / [New] build a [Store] from a [Config]; [Store.Close].
//   - [Store.Ingest] streams one instance ([Incoming] + its data set) into
//     storage and returns a [Result] ([Outcome] and the [Instance] record).
//   - [Store.Instance], [Store.OpenBlob], [Store.CountInstances] read back;
//     [Store.Writable] is the readiness check.
//   - [Blobs] ([FSBlobs]) and [Index] ([SQLiteIndex]) are the two backends,
//     small interfaces so that S3 (minio-go) and PostgreSQL can replace the
//     local file system and SQLite without touching callers.
//
// # On disk
//
//	DataDir/lock                       flock(2): one radgate per data directory
//	DataDir/tmp/<random>.part          blobs being written (emptied by Open)
//	DataDir/blobs/ab/abcd….dcm         Part 10 files, named by their SHA-256;
//	                                   256 directories, all made at Open
//	DataDir/index.db (-wal, -shm)      SQLite: patient, study, series, instance
//
// A blob is the Part 10 file (PS3.10 7.1): a file meta that radgate writes
// from what the sender declared (its calling AE as Source Application
// Entity Title), then the data set bytes exactly as received, never
// re-encoded. Blob names are content hashes: no UID or PHI in a path,
// identical content maps to one file, and any blob can be checked by
// hashing it.
//
// # Ingest, step by step
//
//  1. Refuse early, writing nothing: unknown transfer syntax, invalid
//     declared UIDs, free disk below MinFreeBytes (statfs, cached 1 s).
//  2. Stream the file meta and the data set into tmp/ (O_EXCL) through a
//     256 KiB bufio.Writer, a SHA-256 and a byte count: no data set is ever
//     held in memory, and each byte is copied once. Every 256 KiB written,
//     writeback to disk is started (sync_file_range), so the fsync of step
//     5 finds little left to do.
//  3. Walk the data set back from the temp file (page cache) with
//     dcm.ScanDataset: it must parse to the end, carry the four identifying
//     UIDs and be the SOP instance the sender announced. The walk yields
//     the indexed attributes.
//  4. Duplicates, under a per-SOP-Instance-UID lock: the same content (the
//     same hash, or the same data set bytes under another file meta) is
//     DuplicateSame; other content is kept, replaced or rejected per
//     [DuplicatePolicy]. Rejected, invalid and duplicate data sets stop
//     here and cost no fsync.
//  5. Make the blob durable: fsync the temp file, rename it into blobs/,
//     fsync the blob's directory.
//  6. Commit the patient, study, series and instance rows in one SQLite
//     transaction (WAL, synchronous=FULL: the commit fsyncs the WAL). For
//     a new instance, 5 and 6 run at the same time, which hides the WAL
//     fsync behind the blob's; when a row is replaced, 6 follows 5.
//  7. On Replace, delete the previous blob if no row references it.
//
// # Crash safety
//
// Whatever instant the process or the machine stops at:
//
//   - No acknowledged instance is lost. Ingest returns nil only after both
//     step 5 and step 6 are done: the blob's bytes (file fsync), its name
//     (directory fsync; the directories' own names are fsynced in blobs/
//     at every Open) and its row (WAL fsync) are all on stable storage
//     before the sender is told.
//   - No partial file is visible under blobs/. Bytes are written only in
//     tmp/; a file enters blobs/ by rename(2), which is atomic, and only
//     after its content was fsync'd, so even file systems that reorder data
//     and metadata writes cannot expose a short file under a final name.
//     Open empties tmp/, discarding whatever an interrupted Ingest left.
//   - A row without its blob can only belong to an instance never
//     acknowledged: a new instance whose parallel steps 5 and 6 were cut
//     short. If the blob step fails, Ingest removes the row; if the process
//     dies, the next Open does (Close leaves a "clean" marker; without it,
//     Open checks the newest rows, more than can be in flight, for their
//     blobs). A replaced row is only rewritten once the new blob is
//     durable. The reverse, a complete blob without a row, is harmless:
//     the sender got no answer and will resend, and the same content gets
//     the same name, so the blob is reused. While an ingest is in flight a
//     reader may see the new row a moment before the blob can be opened.
//   - A replaced blob is noted as an orphan in the same transaction that
//     replaces its row; it is deleted (and its directory fsync'd) after the
//     commit, then the note dropped. A crash in between leaves the note,
//     and Open finishes the deletion.
//
// A SIGKILL test (crash_test.go) checks the process-crash half of this;
// the power-loss half rests on the fsync ordering above.
//
// # Index
//
// SQLite (modernc.org/sqlite, pure Go) in WAL mode: readers never block
// the writer. All writes go through one connection, so concurrent ingests
// queue in Go rather than fail with SQLITE_BUSY; reads use a small pool of
// their own. Statements are prepared once. The schema is versioned with
// PRAGMA user_version and migrated forward at Open (migrations in
// sqlite.go). Patient-, study- and series-level attributes live in their
// own rows, normalized as QIDO-RS queries them (PS3.18 10.6), holding the
// values most recently received.
//
// # Concurrency and limits
//
// A Store is safe for concurrent use: ingests of different instances run
// in parallel up to the index commit, which is serialized. Close waits for
// ingests in progress. No PHI (patient name, ID, birth date) is logged;
// UIDs appear only hashed (dcm.UIDRef).
package store
