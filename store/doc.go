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
//   - [Blobs] ([Log]) and [Index] ([SQLiteIndex]) are the two backends,
//     small interfaces so that S3 (minio-go) and PostgreSQL can replace the
//     local file system and SQLite without touching callers.
//   - [Store.Work] is the [Work] that follows the instances, kept in the
//     same index: per study how far its instances were evaluated (its
//     activity rows are written in the same transaction as the instance
//     rows), the inference [Job]s, and the outbox of [Delivery]s. Package
//     study, results and delivery drive it.
//   - [Store.Search] answers QIDO-RS style searches ([Query] at study,
//     series or instance level → [Match]es) from the index ([Searcher]),
//     with PS3.4 C.2.2.2 matching; [Attributes] lists what it can match
//     and return.
//   - [Store.Expired] lists the studies the retention policy purges now
//     (settled: their results delivered), [Store.Purge] purges one: its
//     rows, and its instances erased from the log (purge.go).
//   - [LogRecords] and [OpenBlobFile] read a data directory without a
//     Store, for tools and tests.
//   - [Config].Keys, a [KeyProvider] ([KeyFile]: [GenerateKeyFile],
//     [OpenKeyFile], [KeyFile.Rotate]), seals the log's records at rest;
//     see Encryption at rest.
//
// # On disk
//
//	DataDir/lock                     flock(2): one radgate per data directory
//	DataDir/segments/<id>.seg        the log: Part 10 files as records
//	DataDir/index.db (-wal, -shm)    SQLite: patient, study, series, instance,
//	                                 segment; study_activity, job, outbox;
//	                                 workitem, worklist_event; erasure
//	DataDir/seal.json                present once records are sealed (Config.Keys)
//
// A blob is the Part 10 file (PS3.10 7.1): a file meta that radgate writes
// from what the sender declared (its calling AE as Source Application
// Entity Title), then the data set bytes exactly as received, never
// re-encoded. It is one record of the log, named by its key (segment,
// offset, length): no UID or PHI in any file name.
//
// # Encryption at rest
//
// With Config.Keys set (HIPAA 45 CFR 164.312(a)(2)(iv)), each record's
// data, the Part 10 file, is sealed by a Blobs decorator over the log
// (sealed.go), so the log's layout, CRCs and crash argument are unchanged:
// the sealed bytes are simply the record's data. Per record a fresh
// AES-256 data key is made and wrapped by the KeyProvider's current
// key-encryption key (KeyFile: AES-256-GCM, the KEK id as associated data,
// NIST SP 800-38D); the record's data is a header (magic "RGS1", version,
// KEK id, wrapped data key, 4-byte nonce prefix) and the file in 64 KiB
// chunks, each AES-256-GCM under the data key with nonce prefix || chunk
// index and the header, chunk index and a final-chunk flag as associated
// data (the STREAM construction): a changed byte, a moved, swapped or
// foreign chunk and a truncation all fail with ErrSealBroken, and no
// unauthenticated byte is returned. Ingest encrypts as it streams (one
// chunk buffer), the read-back walk and the indexer's digest decrypt only
// the chunks they touch; sizes and SHA-256 in the index are of the
// plaintext. Rotating the KEK (KeyFile.Rotate, radgate keys rotate) seals
// new records under the new KEK; old KEKs stay in the key file, and old
// records are never rewritten.
//
// What stays plaintext: the record meta (recordMeta: the Incoming fields,
// i.e. SOP Class, SOP Instance and, for STOW-RS to a study, Study Instance
// UID, transfer syntax, calling and called AE titles, the peer's address,
// source, C-STORE priority; the reception time; the file meta's length):
// no patient attributes, but UIDs and network details; the log headers;
// and the SQLite index, which holds patient names, IDs and birth dates for
// QIDO-RS and must be protected by the file system (dm-crypt/LUKS, an
// encrypted volume) until it is encrypted itself.
//
// DataDir/seal.json is written (durably) before the first sealed record:
// the KEK the directory was first sealed under, a data key wrapped by it
// (Open checks that Keys unwraps it: another key file fails with
// ErrUnknownKey at once), and the first segment id that may hold sealed
// records. Open refuses a directory with the marker and no Keys
// (ErrKeysRequired); sealing cannot be turned off again. Records in
// earlier segments were written in plaintext before Keys was set and are
// read as they are; in later segments a record without the seal header is
// refused, so a plaintext record cannot be slipped in. Which records are
// plaintext is decided by the segment id, never by sniffing a record's
// first bytes. A record's seal does not bind it to its key (a sealed record
// copied whole over another of the same ring would be read as that one;
// the index's SHA-256 would tell), nor the plaintext meta to the data.
//
// # Why a log
//
// An acknowledgement must wait until the instance is on stable storage.
// Writing each instance to its own file costs, on ext4 or XFS, a journal
// commit for the new file and another for its name, besides the data: three
// or four device flushes per instance. Appending to a segment whose space
// was allocated and written (zeros) beforehand changes no file system
// metadata, so one fdatasync, one flush, makes the record durable. Segments
// are made ahead of need (spareSegments, zero-filled by O_DIRECT) and their
// names made durable then. The index is kept off that path too: its rows
// are written in batches by one goroutine after the acknowledgement, and
// are rebuilt from the log whenever a crash got ahead of them.
//
// # Ingest, step by step
//
//  1. Refuse early, writing nothing: unknown transfer syntax, invalid
//     declared UIDs, free disk below MinFreeBytes (statfs, cached 1 s).
//  2. Stream the file meta and the data set into a new record of a segment
//     no other ingest writes to (the page cache; CRC-32C alongside; whole
//     pages only, so the kernel never reads a block back to complete one;
//     writeback started every 256 KiB). No data set is ever held in memory.
//  3. Walk the data set back from the page cache with dcm.Scanner, seeking
//     over pixel data: it must parse to the end, carry the four identifying
//     UIDs and be the SOP instance the sender announced. The walk yields
//     the indexed attributes.
//  4. Duplicates, under a per-SOP-Instance-UID lock: the same data set
//     bytes in the same transfer syntax are DuplicateSame; other content is
//     kept, replaced or rejected per [DuplicatePolicy]. Rejected, invalid
//     and duplicate data sets stop here, cost no fsync, and their space is
//     marked dead by a tombstone.
//  5. Commit: write the record's header (sequence number, lengths,
//     checksums) and fdatasync the segment. From here the instance is
//     durable and Ingest returns.
//  6. The indexer computes the blob's SHA-256 (reading it back from the
//     page cache) and writes the patient, study, series and instance rows,
//     with the segment's reference count and mark, in one SQLite
//     transaction per batch. Until then the Store's own lookups see the
//     instance in memory.
//
// # Crash safety
//
// Whatever instant the process or the machine stops at:
//
//   - No acknowledged instance is lost. Ingest returns nil only after the
//     record's fdatasync: its data, meta and header are on stable storage,
//     in space (and under a name) made durable when the segment was made.
//   - No partial record is ever read as an instance. A record's header is
//     written last and carries CRC-32Cs of itself, its meta and its data;
//     the first position in a segment without a valid header ends it. The
//     header's place is zeros until the commit, aborted records are covered
//     by a tombstone before anything follows them, so no byte a sender
//     chose is ever read as a header.
//   - The index catches up. Its commits are synchronous=NORMAL (WAL): a
//     power loss may roll back the last ones, together with each segment's
//     mark (up to where its records are indexed), which lives in the same
//     transactions. Open replays every record past its segment's mark, in
//     sequence order, through the same code that indexes a new instance;
//     replaying a record already indexed changes nothing. Open also trims
//     each segment after its last valid record.
//   - Space is reclaimed safely. A segment's count of referenced records is
//     kept in the same transactions as the rows; a sealed segment whose
//     count falls to zero is deleted once no record of it waits to be
//     indexed, and Open deletes what a crash left.
//   - A purge is never undone. Its transaction (rows deleted, the records'
//     keys noted for erasure) commits synchronous=FULL before any record is
//     touched; erasing a record first rewrites its header's kind byte alone
//     (one byte cannot be torn), made durable, and only then punches its
//     meta and data out, so a record is either whole or skipped by every
//     walk, and the walk still reaches the records after it. Open finishes
//     the erasures a crash interrupted. Only a lost index together with a
//     crash between a purge's commit and its erasure brings a purged
//     instance back.
//
// A SIGKILL test (crash_test.go) and the DCMTK kill -9 test (test/interop)
// check the process-crash half of this; the power-loss half rests on the
// fdatasync and checksum argument above, and on a test that rebuilds a
// deleted index from the log alone.
//
// # Index
//
// SQLite (modernc.org/sqlite, pure Go) in WAL mode: readers never block
// the writer. All writes go through one connection owned by the indexer
// goroutine; reads use a small pool of their own. Statements are prepared
// once. The schema is versioned with PRAGMA user_version and migrated
// forward at Open (migrations in sqlite.go). Patient-, study- and
// series-level attributes live in their own rows, normalized as QIDO-RS
// queries them (PS3.18 10.6), holding the values most recently received.
//
// # Concurrency and limits
//
// A Store is safe for concurrent use: ingests of different instances run
// in parallel, each in its own segment. At most maxIndexQueue instances
// wait for the index; ingest waits beyond. Close waits for ingests in
// progress and indexes what is queued. No PHI (patient name, ID, birth
// date) is logged; UIDs appear only hashed (dcm.UIDRef).
package store
