package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/radgate/radgate/dcm"
)

// Config configures a Store.
type Config struct {
	// DataDir holds blobs/ (the Part 10 files), tmp/ (files being
	// written; emptied by Open) and index.db (the SQLite index).
	DataDir string
	// MinFreeBytes: Ingest fails with ErrOutOfResources, before writing
	// anything, while the data directory's file system has less free space
	// than this. 0 turns the check off.
	MinFreeBytes int64
	// Duplicates is what to do with a known SOP Instance UID carrying other
	// content.
	Duplicates DuplicatePolicy
	// MaxInstanceBytes bounds the data set (the bytes after the file meta)
	// Ingest accepts; a larger one fails with ErrTooLarge. 0: no limit.
	MaxInstanceBytes int64
}

// Store keeps received instances durably: a Part 10 blob in Blobs and a
// record in the Index. Its methods are safe for concurrent use.
type Store struct {
	cfg      Config
	log      *slog.Logger
	blobs    Blobs
	index    Index
	m        *metrics
	disk     diskGuard
	locks    uidLocks
	lockFile *os.File // flock on DataDir/lock, held until Close

	mu     sync.RWMutex // Ingest and the readers hold it shared; Close exclusive
	closed bool

	// Per-ingest scratch, reused: a 256 KiB write buffer, a SHA-256 state
	// and a dcm.Scanner (its 64 KiB read buffer).
	chunks   sync.Pool
	hashes   sync.Pool
	scanners sync.Pool
}

// Open opens (creating when needed) the store in cfg.DataDir with the
// embedded backends, FSBlobs and SQLiteIndex. It takes the data
// directory's lock, deletes partial files a crash left in tmp/, and
// removes blobs the index noted as orphans. Metrics are registered on reg
// unless it is nil.
func Open(ctx context.Context, cfg Config, log *slog.Logger, reg prometheus.Registerer) (*Store, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("store: no data directory configured")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(cfg.DataDir, dirMode); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	lf, err := lockDataDir(filepath.Join(cfg.DataDir, lockName))
	if err != nil {
		return nil, err
	}
	blobs, err := NewFSBlobs(cfg.DataDir)
	if err != nil {
		lf.Close()
		return nil, err
	}
	n, err := blobs.RemovePartial()
	if err != nil {
		lf.Close()
		return nil, err
	}
	if n > 0 {
		log.Warn("store: removed partial blobs left by an interrupted run", "files", n)
	}
	index, err := OpenSQLiteIndex(ctx, filepath.Join(cfg.DataDir, indexName))
	if err != nil {
		lf.Close()
		return nil, err
	}
	if err := recoverUnclean(ctx, cfg.DataDir, blobs, index, log); err != nil {
		index.Close()
		lf.Close()
		return nil, err
	}
	s, err := New(ctx, cfg, blobs, index, log, reg)
	if err != nil {
		index.Close()
		lf.Close()
		return nil, err
	}
	s.lockFile = lf
	return s, nil
}

// New composes a Store from backends (Open uses FSBlobs and SQLiteIndex;
// S3 and PostgreSQL ones fit the same interfaces). The Store owns them
// from here on: Close closes the index. cfg.DataDir is where free space is
// measured. New removes the orphan blobs the index lists.
func New(ctx context.Context, cfg Config, blobs Blobs, index Index, log *slog.Logger, reg prometheus.Registerer) (*Store, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Duplicates < KeepFirst || cfg.Duplicates > Reject {
		return nil, fmt.Errorf("store: invalid duplicate policy %v", cfg.Duplicates)
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	if fb, ok := blobs.(*FSBlobs); ok {
		fb.onFsync = func(d time.Duration) { m.fsyncSeconds.Observe(d.Seconds()) }
	}
	if si, ok := index.(*SQLiteIndex); ok {
		si.onCommit = func(d time.Duration) { m.commitSeconds.Observe(d.Seconds()) }
	}
	s := &Store{
		cfg:   cfg,
		log:   log,
		blobs: blobs,
		index: index,
		m:     m,
		disk:  diskGuard{path: cfg.DataDir, min: cfg.MinFreeBytes},
	}
	s.chunks.New = func() any { return newChunkBuffers() }
	s.hashes.New = func() any { return sha256.New() }
	s.scanners.New = func() any { return new(dcm.Scanner) }

	orphans, err := index.Orphans(ctx)
	if err != nil {
		return nil, err
	}
	if len(orphans) > 0 {
		s.removeOrphans(ctx, orphans)
		log.Info("store: removed replaced blobs left by an interrupted run", "blobs", len(orphans))
	}
	return s, nil
}

// Close waits for Ingest calls in progress, then closes the index and
// releases the data directory. Later calls fail with ErrClosed.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	err := errors.Join(s.index.Close(), s.blobs.Close())
	if s.lockFile != nil {
		if err == nil {
			err = markClean(s.cfg.DataDir)
		}
		err = errors.Join(err, s.lockFile.Close())
	}
	return err
}

// recentChecked is how many of the newest index rows Open checks for their
// blob after an unclean stop. Rows are committed in parallel with their
// blob (see ingest), so a crash can leave a row whose blob never made it;
// there are at most as many such rows as ingests were in flight, far fewer
// than this.
const recentChecked = 4096

// recoverUnclean runs at Open. Unless the previous run closed cleanly (the
// clean marker is present), it removes index rows among the newest whose
// blob is missing: instances whose Ingest was cut short, never
// acknowledged. Then it removes the marker, durably, so a crash of this run
// is detected by the next.
func recoverUnclean(ctx context.Context, dataDir string, blobs Blobs, index Index, log *slog.Logger) error {
	marker := filepath.Join(dataDir, cleanName)
	if _, err := os.Stat(marker); err == nil {
		if err := os.Remove(marker); err != nil {
			return fmt.Errorf("store: %w", err)
		}
		return syncDirPath(dataDir)
	}
	refs, err := index.Recent(ctx, recentChecked)
	if err != nil {
		return err
	}
	removed := 0
	for _, r := range refs {
		ok, err := blobs.Exists(ctx, r.BlobKey)
		if err != nil {
			return err
		}
		if ok {
			continue
		}
		if err := index.Remove(ctx, r.SOPInstanceUID, r.BlobKey); err != nil {
			return err
		}
		removed++
	}
	if removed > 0 {
		log.Warn("store: removed index rows of unacknowledged instances an interrupted run left without a blob", "rows", removed)
	}
	return nil
}

// markClean records a clean Close: the next Open can skip recoverUnclean.
func markClean(dataDir string) error {
	f, err := os.OpenFile(filepath.Join(dataDir, cleanName), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, fileMode)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	if err := errors.Join(f.Sync(), f.Close()); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	return syncDirPath(dataDir)
}

// syncDirPath fsyncs a directory.
func syncDirPath(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("store: fsync %s: %w", dir, err)
	}
	return nil
}

// scanTags are the attributes Ingest indexes, in ascending tag order (as
// dcm.Scanner wants them; a test checks). Read-only.
var scanTags = []dcm.Tag{
	dcm.SpecificCharacterSet,
	dcm.SOPClassUID,
	dcm.SOPInstanceUID,
	dcm.StudyDate,
	dcm.StudyTime,
	dcm.AccessionNumber,
	dcm.Modality,
	dcm.ReferringPhysicianName,
	dcm.StudyDescription,
	dcm.SeriesDescription,
	dcm.PatientName,
	dcm.PatientID,
	dcm.PatientBirthDate,
	dcm.PatientSex,
	dcm.BodyPartExamined,
	dcm.StudyInstanceUID,
	dcm.SeriesInstanceUID,
	dcm.StudyID,
	dcm.SeriesNumber,
	dcm.InstanceNumber,
	dcm.NumberOfFrames,
	dcm.Rows,
	dcm.Columns,
}

// Ingest streams one instance's data set (the bytes after the file meta,
// encoded in in.TransferSyntaxUID) into durable storage and indexes it.
// It returns only after the blob is fsync'd, renamed into place, its
// directory fsync'd, and the index row committed with synchronous=FULL:
// a nil error means the instance survives a crash or power loss, so the
// sender may be told so.
//
// The blob is the Part 10 file radgate writes: a file meta built from in
// (PS3.10 7.1; SourceApplicationEntityTitle is the calling AE) followed by
// the data set bytes exactly as received.
//
// Errors wrap ErrUnknownTransferSyntax, ErrInvalidDataset,
// ErrOutOfResources, ErrTooLarge, ErrDuplicateRejected or ErrClosed, or
// the error of dataset itself (the sender went away); in every failure
// case nothing is left behind.
func (s *Store) Ingest(ctx context.Context, in Incoming, dataset io.Reader) (Result, error) {
	start := time.Now()
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		s.m.errors.WithLabelValues(reasonClosed).Inc()
		return Result{}, ErrClosed
	}
	res, reason, err := s.ingest(ctx, in, dataset)
	elapsed := time.Since(start)
	s.m.ingestSeconds.Observe(elapsed.Seconds())
	if err != nil {
		s.m.errors.WithLabelValues(reason).Inc()
		if reason == reasonIO {
			s.log.Error("store: ingest failed", "reason", reason, "err", err,
				"instance", dcm.UIDRef(in.SOPInstanceUID), "source", in.Source)
		}
		return Result{}, err
	}
	s.m.instances.WithLabelValues(res.Outcome.String()).Inc()
	level := slog.LevelDebug
	if res.Outcome == Replaced || res.Outcome == DuplicateKept {
		level = slog.LevelInfo
	}
	s.log.Log(ctx, level, "store: ingested", "outcome", res.Outcome.String(),
		"instance", dcm.UIDRef(in.SOPInstanceUID), "sop_class", in.SOPClassUID, "bytes", res.Instance.Size,
		"blob", res.Instance.BlobKey, "source", in.Source, "calling_ae", in.CallingAE, "elapsed", elapsed)
	return res, nil
}

// ingest does Ingest's work and names the failure reason for the metric.
//
// Order (see doc.go for the crash-safety argument): write the temp file,
// read it back to validate and index it, decide duplicates, and only for
// content that will be kept: fsync the file, rename it into place, fsync
// the directory, commit the index row. Validating before the fsync means
// rejected and duplicate instances cost no fsync at all.
func (s *Store) ingest(ctx context.Context, in Incoming, dataset io.Reader) (Result, string, error) {
	ts, ok := dcm.LookupTransferSyntax(in.TransferSyntaxUID)
	if !ok {
		return Result{}, reasonTransferSyntax, fmt.Errorf("%w: %q", ErrUnknownTransferSyntax, in.TransferSyntaxUID)
	}
	if !dcm.ValidUID(in.SOPClassUID) {
		return Result{}, reasonInvalid, fmt.Errorf("%w: declared SOP Class UID %q is not a valid UID", ErrInvalidDataset, in.SOPClassUID)
	}
	if !dcm.ValidUID(in.SOPInstanceUID) {
		return Result{}, reasonInvalid, fmt.Errorf("%w: declared SOP Instance UID (%s) is not a valid UID", ErrInvalidDataset, dcm.UIDRef(in.SOPInstanceUID))
	}
	if err := ctx.Err(); err != nil {
		return Result{}, reasonCanceled, err
	}
	if err := s.disk.check(time.Now(), false); err != nil {
		return Result{}, diskReason(err), err
	}

	// The per-UID lock makes lookup .. commit atomic for one SOP Instance
	// UID within this process (Upsert's compare-and-swap catches anyone
	// else). The declared UID is known before the data set arrives, so the
	// lookup runs while it streams in.
	unlock := s.locks.lock(in.SOPInstanceUID)
	defer unlock()
	prior := s.startLookup(ctx, in.SOPInstanceUID)
	defer prior.wait()

	w, err := s.blobs.Create(ctx)
	if err != nil {
		return Result{}, writeReason(err), writeErr(err)
	}
	defer w.Abort() // after Commit: does nothing

	// 1. Stream meta + data set to the temp file through the hash
	// (copyHashed overlaps reading the sender with hashing and writing).
	meta := dcm.FileMeta{
		MediaStorageSOPClassUID:      in.SOPClassUID,
		MediaStorageSOPInstanceUID:   in.SOPInstanceUID,
		TransferSyntaxUID:            ts.UID,
		ImplementationClassUID:       dcm.ImplementationClassUID,
		ImplementationVersionName:    dcm.ImplementationVersionName,
		SourceApplicationEntityTitle: metaAETitle(in.CallingAE),
	}
	h := s.hashes.Get().(hash.Hash)
	defer s.hashes.Put(h)
	h.Reset()
	var mb bytes.Buffer
	if err := dcm.WriteFileMeta(&mb, meta); err != nil {
		if errors.Is(err, dcm.ErrInvalidFileMeta) {
			return Result{}, reasonInvalid, fmt.Errorf("%w: %w", ErrInvalidDataset, err)
		}
		return Result{}, writeReason(err), writeErr(err)
	}
	metaLen := int64(mb.Len())
	h.Write(mb.Bytes())
	if _, err := w.Write(mb.Bytes()); err != nil {
		return Result{}, writeReason(err), writeErr(err)
	}
	bufs := s.chunks.Get().(*chunkBuffers)
	n, rerr, werr := copyHashed(w, h, dataset, s.cfg.MaxInstanceBytes, bufs)
	s.chunks.Put(bufs)
	if rerr != nil {
		return Result{}, reasonRead, fmt.Errorf("store: reading data set: %w", rerr)
	}
	if werr != nil {
		return Result{}, writeReason(werr), writeErr(werr)
	}
	if s.cfg.MaxInstanceBytes > 0 && n > s.cfg.MaxInstanceBytes {
		return Result{}, reasonTooLarge, fmt.Errorf("%w: data set exceeds %d bytes", ErrTooLarge, s.cfg.MaxInstanceBytes)
	}
	size := metaLen + n
	var sum [sha256.Size]byte
	key := hex.EncodeToString(h.Sum(sum[:0]))
	if err := ctx.Err(); err != nil {
		return Result{}, reasonCanceled, err
	}

	// 2. Validate: walk the whole data set back from the page cache.
	sc := s.scanners.Get().(*dcm.Scanner)
	attrs, err := sc.Scan(io.NewSectionReader(w, metaLen, size-metaLen), ts, scanTags)
	s.scanners.Put(sc)
	if err != nil {
		if errors.Is(err, dcm.ErrMalformed) {
			return Result{}, reasonInvalid, fmt.Errorf("%w: %w", ErrInvalidDataset, err)
		}
		return Result{}, reasonIO, fmt.Errorf("store: reading back temp blob: %w", err)
	}
	if err := checkUIDs(in, attrs); err != nil {
		return Result{}, reasonInvalid, err
	}
	inst := instanceOf(attrs, in, ts.UID)
	inst.ReceivedAt = time.Now().UTC()
	inst.Size, inst.SHA256, inst.BlobKey, inst.DatasetOffset = size, key, key, metaLen

	// 3. Duplicates, against the lookup started before the data arrived.
	outcome, expect := Stored, ""
	prev, err := prior.wait()
	switch {
	case errors.Is(err, ErrNotFound):
	case err != nil:
		return Result{}, reasonIO, err
	default:
		same := prev.SHA256 == key
		if !same {
			if same, err = s.sameDataset(ctx, prev, w, metaLen, size, ts.UID); err != nil {
				return Result{}, reasonIO, err
			}
		}
		if same {
			ok, err := s.blobs.Exists(ctx, prev.BlobKey)
			if err != nil {
				return Result{}, reasonIO, err
			}
			if ok {
				return Result{Outcome: DuplicateSame, Instance: prev}, "", nil
			}
			// The row outlived its blob (an interrupted run): store it again.
			s.log.Warn("store: indexed instance had no blob; storing it again", "instance", dcm.UIDRef(in.SOPInstanceUID))
			outcome, expect = DuplicateSame, prev.BlobKey
			break
		}
		switch s.cfg.Duplicates {
		case KeepFirst:
			return Result{Outcome: DuplicateKept, Instance: prev}, "", nil
		case Reject:
			return Result{}, reasonDuplicate, fmt.Errorf("%w: instance %s is stored with other content",
				ErrDuplicateRejected, dcm.UIDRef(in.SOPInstanceUID))
		}
		outcome, expect = Replaced, prev.BlobKey
	}

	// 4. Make it durable: the blob's data, then its name; and the index row.
	// Once started, finish even if the caller gives up: a half-done step
	// only leaves an orphan blob or a row to clean up.
	ictx := context.WithoutCancel(ctx)
	var orphans []string
	if outcome == Stored {
		// A new instance: the row and the blob are made durable at the same
		// time, which saves the WAL fsync's latency on every instance. Both
		// finish before the sender is told. If the blob fails, the row is
		// removed again; if the process dies in between, the row has no
		// blob and recoverUnclean removes it at the next Open.
		blobDone := make(chan error, 1)
		go func() { blobDone <- persist(ictx, w, key) }()
		orphans, err = s.index.Upsert(ictx, inst, expect)
		blobErr := <-blobDone
		if blobErr != nil {
			if err == nil {
				if rerr := s.index.Remove(ictx, inst.SOPInstanceUID, key); rerr != nil {
					s.log.Error("store: could not remove the row of a blob that failed; the next start removes it",
						"instance", dcm.UIDRef(in.SOPInstanceUID), "err", rerr)
				}
			}
			return Result{}, writeReason(blobErr), writeErr(blobErr)
		}
		if err != nil {
			return Result{}, reasonIO, err
		}
	} else {
		// Replacing (or restoring) a row: the previous row stays valid until
		// the new blob is durable, so a crash never leaves neither.
		if err := persist(ictx, w, key); err != nil {
			return Result{}, writeReason(err), writeErr(err)
		}
		if orphans, err = s.index.Upsert(ictx, inst, expect); err != nil {
			return Result{}, reasonIO, err
		}
	}
	s.m.bytes.Add(float64(size))
	s.disk.consumed(size)
	s.removeOrphans(ctx, orphans)
	return Result{Outcome: outcome, Instance: inst}, "", nil
}

// pendingLookup is an index lookup running on its own goroutine.
type pendingLookup struct {
	done chan struct{}
	prev Instance
	err  error
}

// startLookup looks up a SOP Instance UID in the background. Its goroutine
// ends by itself; wait returns its result (and may be called again).
func (s *Store) startLookup(ctx context.Context, uid string) *pendingLookup {
	p := &pendingLookup{done: make(chan struct{})}
	go func() {
		defer close(p.done)
		p.prev, p.err = s.index.Lookup(ctx, uid)
	}()
	return p
}

func (p *pendingLookup) wait() (Instance, error) {
	<-p.done
	return p.prev, p.err
}

// persist makes a written blob durable under key: fsync its data, then
// rename it into place and fsync the directory (BlobWriter.Commit).
func persist(ctx context.Context, w BlobWriter, key string) error {
	if err := w.Sync(); err != nil {
		return err
	}
	return w.Commit(ctx, key)
}

// checkUIDs enforces what the index relies on: the four identifying UIDs
// are present, and the data set is the instance the sender announced
// (PS3.4 B.2.3: a mismatch with the Affected SOP Instance/Class UID of the
// C-STORE request is an error, A900 or C000 there).
func checkUIDs(in Incoming, a dcm.Attributes) error {
	for _, t := range [...]struct {
		tag  dcm.Tag
		name string
	}{
		{dcm.SOPClassUID, "SOP Class UID"},
		{dcm.SOPInstanceUID, "SOP Instance UID"},
		{dcm.StudyInstanceUID, "Study Instance UID"},
		{dcm.SeriesInstanceUID, "Series Instance UID"},
	} {
		if a[t.tag] == "" {
			return fmt.Errorf("%w: data set lacks %s %v", ErrInvalidDataset, t.name, t.tag)
		}
	}
	if got := a[dcm.SOPInstanceUID]; got != in.SOPInstanceUID {
		return fmt.Errorf("%w: data set SOP Instance UID (%s) differs from the declared one (%s)",
			ErrInvalidDataset, dcm.UIDRef(got), dcm.UIDRef(in.SOPInstanceUID))
	}
	if got := a[dcm.SOPClassUID]; got != in.SOPClassUID {
		return fmt.Errorf("%w: data set SOP Class UID %s differs from the declared %s",
			ErrInvalidDataset, got, in.SOPClassUID)
	}
	return nil
}

// instanceOf builds the index record from the scanned attributes.
func instanceOf(a dcm.Attributes, in Incoming, tsUID string) Instance {
	return Instance{
		SOPInstanceUID:         a[dcm.SOPInstanceUID],
		SOPClassUID:            a[dcm.SOPClassUID],
		SeriesInstanceUID:      a[dcm.SeriesInstanceUID],
		StudyInstanceUID:       a[dcm.StudyInstanceUID],
		PatientID:              a[dcm.PatientID],
		PatientName:            a[dcm.PatientName],
		PatientBirthDate:       a[dcm.PatientBirthDate],
		PatientSex:             a[dcm.PatientSex],
		StudyDate:              a[dcm.StudyDate],
		StudyTime:              a[dcm.StudyTime],
		AccessionNumber:        a[dcm.AccessionNumber],
		StudyDescription:       a[dcm.StudyDescription],
		ReferringPhysicianName: a[dcm.ReferringPhysicianName],
		StudyID:                a[dcm.StudyID],
		Modality:               a[dcm.Modality],
		SeriesNumber:           strings.TrimSpace(a[dcm.SeriesNumber]),
		SeriesDescription:      a[dcm.SeriesDescription],
		BodyPartExamined:       a[dcm.BodyPartExamined],
		InstanceNumber:         strings.TrimSpace(a[dcm.InstanceNumber]),
		Rows:                   firstInt(a[dcm.Rows]),
		Columns:                firstInt(a[dcm.Columns]),
		NumberOfFrames:         firstInt(a[dcm.NumberOfFrames]),
		SpecificCharacterSet:   a[dcm.SpecificCharacterSet],
		TransferSyntaxUID:      tsUID,
		CallingAE:              in.CallingAE,
		CalledAE:               in.CalledAE,
		RemoteAddr:             in.RemoteAddr,
		Source:                 in.Source,
	}
}

// firstInt parses the first value of a US or IS attribute; 0 when absent
// or not a number.
func firstInt(s string) int {
	s, _, _ = strings.Cut(s, `\`)
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < 0 {
		return 0
	}
	return n
}

// metaAETitle is the calling AE as (0002,0016) can hold it (AE, PS3.5
// 6.2: at most 16 characters, no backslash or control characters), or ""
// when it cannot.
func metaAETitle(ae string) string {
	ae = strings.TrimSpace(ae)
	if len(ae) > 16 {
		return ""
	}
	for i := 0; i < len(ae); i++ {
		if ae[i] < 0x20 || ae[i] > 0x7E || ae[i] == '\\' {
			return ""
		}
	}
	return ae
}

// sameDataset reports whether the stored instance prev holds the data set
// just written (same transfer syntax, same bytes), differing only in its
// file meta, e.g. because another AE sent it. Only the duplicate path
// pays for this comparison.
func (s *Store) sameDataset(ctx context.Context, prev Instance, w io.ReaderAt, metaLen, size int64, tsUID string) (bool, error) {
	if prev.TransferSyntaxUID != tsUID || prev.Size-prev.DatasetOffset != size-metaLen {
		return false, nil
	}
	rc, err := s.blobs.Open(ctx, prev.BlobKey)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer rc.Close()
	if _, err := io.CopyN(io.Discard, rc, prev.DatasetOffset); err != nil {
		return false, fmt.Errorf("store: reading stored blob: %w", err)
	}
	return readersEqual(rc, io.NewSectionReader(w, metaLen, size-metaLen))
}

func readersEqual(a, b io.Reader) (bool, error) {
	const chunk = 64 << 10
	ba, bb := make([]byte, chunk), make([]byte, chunk)
	for {
		na, erra := io.ReadFull(a, ba)
		nb, errb := io.ReadFull(b, bb)
		if !bytes.Equal(ba[:na], bb[:nb]) {
			return false, nil
		}
		aDone := erra == io.EOF || erra == io.ErrUnexpectedEOF
		bDone := errb == io.EOF || errb == io.ErrUnexpectedEOF
		switch {
		case erra != nil && !aDone:
			return false, fmt.Errorf("store: comparing blobs: %w", erra)
		case errb != nil && !bDone:
			return false, fmt.Errorf("store: comparing blobs: %w", errb)
		case aDone || bDone:
			return aDone && bDone, nil
		}
	}
}

// removeOrphans deletes blobs no record references any more, then drops
// their orphan notes. A failure is logged and retried at the next Open.
func (s *Store) removeOrphans(ctx context.Context, keys []string) {
	if len(keys) == 0 {
		return
	}
	ctx = context.WithoutCancel(ctx)
	removed := keys[:0:0]
	for _, k := range keys {
		if err := s.blobs.Remove(ctx, k); err != nil {
			s.log.Warn("store: removing a replaced blob failed; retried at next start", "blob", k, "err", err)
			continue
		}
		removed = append(removed, k)
	}
	if err := s.index.ForgetOrphans(ctx, removed); err != nil {
		s.log.Warn("store: recording blob removal failed; retried at next start", "err", err)
	}
}

// Instance returns the index record of a SOP Instance UID, or an error
// wrapping ErrNotFound.
func (s *Store) Instance(ctx context.Context, sopInstanceUID string) (Instance, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return Instance{}, ErrClosed
	}
	in, err := s.index.Lookup(ctx, sopInstanceUID)
	if errors.Is(err, ErrNotFound) {
		return Instance{}, fmt.Errorf("%w: instance %s", ErrNotFound, dcm.UIDRef(sopInstanceUID))
	}
	return in, err
}

// OpenBlob returns the Part 10 file stored under key (Instance.BlobKey),
// byte for byte as Ingest wrote it. The caller closes it.
func (s *Store) OpenBlob(ctx context.Context, key string) (io.ReadCloser, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, ErrClosed
	}
	return s.blobs.Open(ctx, key)
}

// Writable is the readiness check: the data directory takes a new file,
// the index answers, and free space is above MinFreeBytes (measured now).
func (s *Store) Writable(ctx context.Context) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	if err := s.disk.check(time.Now(), true); err != nil {
		return err
	}
	if err := s.blobs.Ping(ctx); err != nil {
		return err
	}
	return s.index.Ping(ctx)
}

// CountInstances returns the number of indexed instances.
func (s *Store) CountInstances(ctx context.Context) (int64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return 0, ErrClosed
	}
	return s.index.Count(ctx)
}

func writeErr(err error) error {
	if isNoSpace(err) {
		return fmt.Errorf("%w: disk full: %w", ErrOutOfResources, err)
	}
	return fmt.Errorf("store: writing blob: %w", err)
}

func writeReason(err error) string {
	if isNoSpace(err) {
		return reasonOutOfResources
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return reasonCanceled
	}
	return reasonIO
}

func diskReason(err error) string {
	if errors.Is(err, ErrOutOfResources) {
		return reasonOutOfResources
	}
	return reasonIO
}

// diskGuard caches the free-space figure for up to diskCheckInterval, so
// the check costs one statfs(2) per second at most.
type diskGuard struct {
	path string
	min  int64

	mu   sync.Mutex
	at   time.Time
	free int64
	err  error
}

// check returns an error wrapping ErrOutOfResources when free space is
// below the threshold; fresh forces a new measurement.
func (d *diskGuard) check(now time.Time, fresh bool) error {
	if d.min <= 0 {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if fresh || d.at.IsZero() || now.Sub(d.at) >= diskCheckInterval || now.Before(d.at) {
		d.free, d.err = freeBytes(d.path)
		d.at = now
	}
	if d.err != nil {
		return d.err
	}
	if d.free < d.min {
		return fmt.Errorf("%w: %d bytes free in the data directory, below the %d-byte minimum", ErrOutOfResources, d.free, d.min)
	}
	return nil
}

// consumed lowers the cached figure by what was just written, so a burst
// within one interval cannot overshoot the threshold by more than the
// instances already in flight.
func (d *diskGuard) consumed(n int64) {
	if d.min <= 0 {
		return
	}
	d.mu.Lock()
	d.free -= n
	d.mu.Unlock()
}

// uidLocks is a lock per SOP Instance UID, created on demand and freed
// when nobody holds or waits for it.
type uidLocks struct {
	mu sync.Mutex
	m  map[string]*uidLock
}

type uidLock struct {
	sync.Mutex
	refs int // holders and waiters
}

func (l *uidLocks) lock(uid string) (unlock func()) {
	l.mu.Lock()
	if l.m == nil {
		l.m = make(map[string]*uidLock)
	}
	e := l.m[uid]
	if e == nil {
		e = new(uidLock)
		l.m[uid] = e
	}
	e.refs++
	l.mu.Unlock()
	e.Lock()
	return func() {
		e.Unlock()
		l.mu.Lock()
		if e.refs--; e.refs == 0 {
			delete(l.m, uid)
		}
		l.mu.Unlock()
	}
}
