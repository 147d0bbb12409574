package store

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/radgate/radgate/dcm"
)

// Config configures a Store.
type Config struct {
	// DataDir holds segments/ (the log of Part 10 files) and index.db (the
	// SQLite index).
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
	// SegmentSize is the nominal log segment size (0: DefaultSegmentSize).
	SegmentSize int64
	// Keys, when set, seals every new log record: AES-256-GCM under a
	// fresh data key wrapped by Keys' current key-encryption key (see
	// doc.go, Encryption at rest). Once a data directory holds sealed
	// records, Open refuses it without Keys (ErrKeysRequired); records
	// written before sealing was turned on stay readable. nil: plaintext
	// records. Open applies it; New takes its Blobs as given.
	Keys KeyProvider
}

// Store keeps received instances durably: a Part 10 record in Blobs and a
// row in the Index. Its methods are safe for concurrent use.
type Store struct {
	cfg      Config
	log      *slog.Logger
	blobs    Blobs
	index    Index
	ix       *indexer
	m        *metrics
	disk     diskGuard
	locks    uidLocks
	open     openBlobs     // the blobs OpenBlob's readers hold
	seq      atomic.Uint64 // the last sequence number given to a record
	lockFile *os.File      // flock on DataDir/lock, held until Close

	mu     sync.RWMutex // Ingest and the readers hold it shared; Close exclusive
	closed bool

	// Per-ingest scratch, reused: a 256 KiB copy buffer and a dcm.Scanner
	// (its 64 KiB read buffer).
	chunks   sync.Pool
	scanners sync.Pool
}

// Layout under the data directory, shared with tools that inspect it
// (internal/peertest).
const (
	indexName = "index.db"
	lockName  = "lock"
	// oldBlobsDirName is where development builds before the log kept
	// content-addressed files; Open refuses such a directory.
	oldBlobsDirName = "blobs"
)

// Open opens (creating when needed) the store in cfg.DataDir with the
// embedded backends, Log and SQLiteIndex. It takes the data directory's
// lock and replays the log records the index lacks (see New). Metrics are
// registered on reg unless it is nil.
func Open(ctx context.Context, cfg Config, log *slog.Logger, reg prometheus.Registerer) (*Store, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("store: no data directory configured")
	}
	if err := os.MkdirAll(cfg.DataDir, dirMode); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir, oldBlobsDirName)); err == nil {
		return nil, fmt.Errorf("store: %s holds blobs/ from a development build that predates the segment log; move it away and start with an empty data directory", cfg.DataDir)
	}
	lf, err := lockDataDir(filepath.Join(cfg.DataDir, lockName))
	if err != nil {
		return nil, err
	}
	size := cfg.SegmentSize
	if size == 0 {
		size = DefaultSegmentSize
	}
	lg, err := OpenLog(cfg.DataDir, size)
	if err != nil {
		lf.Close()
		return nil, err
	}
	blobs, err := sealLog(ctx, cfg.DataDir, lg, cfg.Keys, true)
	if err != nil {
		lg.Close()
		lf.Close()
		return nil, err
	}
	index, err := OpenSQLiteIndex(ctx, filepath.Join(cfg.DataDir, indexName))
	if err != nil {
		blobs.Close()
		lf.Close()
		return nil, err
	}
	s, err := New(ctx, cfg, blobs, index, log, reg)
	if err != nil {
		index.Close()
		blobs.Close()
		lf.Close()
		return nil, err
	}
	s.lockFile = lf
	return s, nil
}

// New composes a Store from backends (Open uses Log and SQLiteIndex). The
// Store owns them from here on: Close closes both. cfg.DataDir is where
// free space is measured. New first replays the log records the index
// lacks, in sequence order, and deletes the segments no record of which is
// referenced; then it starts indexing.
func New(ctx context.Context, cfg Config, blobs Blobs, index Index, log *slog.Logger, reg prometheus.Registerer) (*Store, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Duplicates < KeepFirst || cfg.Duplicates > Reject {
		return nil, fmt.Errorf("store: invalid duplicate policy %v", cfg.Duplicates)
	}
	s := &Store{
		cfg:   cfg,
		log:   log,
		blobs: blobs,
		index: index,
		disk:  diskGuard{path: cfg.DataDir, min: cfg.MinFreeBytes},
	}
	s.chunks.New = func() any { b := make([]byte, chunkSize); return &b }
	s.scanners.New = func() any { return new(dcm.Scanner) }
	if err := s.recover(ctx); err != nil {
		return nil, err
	}
	s.ix = newIndexer(index, log, s.digest, s.reclaim)
	m, err := newMetrics(reg, s.ix.depth)
	if err != nil {
		s.ix.close()
		return nil, err
	}
	s.m = m
	if lg, ok := logOf(blobs); ok {
		lg.onFsync = func(d time.Duration) { m.fsyncSeconds.Observe(d.Seconds()) }
	}
	if si, ok := index.(*SQLiteIndex); ok {
		si.onCommit = func(d time.Duration) { m.commitSeconds.Observe(d.Seconds()) }
	}
	return s, nil
}

// Close waits for Ingest calls in progress, indexes what is queued, then
// closes the backends and releases the data directory. Later calls fail
// with ErrClosed.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.ix.close()
	err := errors.Join(s.index.Close(), s.blobs.Close())
	if s.lockFile != nil {
		err = errors.Join(err, s.lockFile.Close())
	}
	return err
}

// recordMeta is what a log record keeps besides the Part 10 file: enough
// to rebuild its index row.
type recordMeta struct {
	Incoming
	ReceivedAt    time.Time
	DatasetOffset int64 // the file meta's length
}

// recover indexes the committed records past each segment's mark (a crash
// or power loss came before their index transaction was durable), then
// reclaims unreferenced segments.
func (s *Store) recover(ctx context.Context) error {
	states, err := s.index.Segments(ctx)
	if err != nil {
		return err
	}
	marks := make(map[uint64]int64, len(states))
	for _, st := range states {
		marks[st.ID] = st.IndexedTo
		s.blobs.Reserve(st.ID)
	}
	var ops []IndexOp
	unreadable := map[uint64]bool{}
	err = s.blobs.Replay(ctx, marks, func(r Recovered, data io.Reader) error {
		inst, err := s.reindex(r, data)
		if err != nil {
			// Committed only after validation, so this is damage or a
			// bug: keep the segment, say so, and go on.
			unreadable[r.Mark.Segment] = true
			s.log.Error("store: a log record could not be indexed; its segment is kept", "blob", r.Key, "err", err)
			return nil
		}
		ops = append(ops, IndexOp{Instance: inst, End: r.Mark})
		return nil
	})
	if err != nil {
		return err
	}
	slices.SortFunc(ops, func(a, b IndexOp) int { return cmp.Compare(a.Instance.Seq, b.Instance.Seq) })
	for b := range slices.Chunk(ops, maxIndexBatch) {
		if _, err := s.index.Apply(ctx, b); err != nil {
			return err
		}
	}
	last, err := s.index.MaxSeq(ctx)
	if err != nil {
		return err
	}
	for _, op := range ops {
		last = max(last, op.Instance.Seq)
	}
	s.seq.Store(last)
	if len(ops) > 0 {
		s.log.Warn("store: indexed instances from the log that an interrupted run had acknowledged but not indexed", "instances", len(ops))
	}

	// A purge committed before a crash erased its records.
	erasures, err := s.index.Erasures(ctx)
	if err != nil {
		return err
	}
	s.erase(ctx, erasures)

	if states, err = s.index.Segments(ctx); err != nil {
		return err
	}
	live := make(map[uint64]int64, len(states))
	for _, st := range states {
		live[st.ID] = st.Live
	}
	var free []uint64
	for _, id := range s.blobs.Segments() {
		if live[id] == 0 && !unreadable[id] {
			free = append(free, id)
		}
	}
	s.reclaim(ctx, free)
	return nil
}

// reindex rebuilds a record's index row from the record: its meta, and a
// walk of its data set.
func (s *Store) reindex(r Recovered, data io.Reader) (Instance, error) {
	var m recordMeta
	if err := json.Unmarshal(r.Meta, &m); err != nil {
		return Instance{}, fmt.Errorf("record meta: %w", err)
	}
	ts, ok := dcm.LookupTransferSyntax(m.TransferSyntaxUID)
	if !ok {
		return Instance{}, fmt.Errorf("%w: %q", ErrUnknownTransferSyntax, m.TransferSyntaxUID)
	}
	h := sha256.New()
	tee := io.TeeReader(data, h)
	if _, err := io.CopyN(io.Discard, tee, m.DatasetOffset); err != nil {
		return Instance{}, err
	}
	attrs, err := dcm.ScanDataset(tee, ts, scanTags)
	if err != nil {
		return Instance{}, err
	}
	if _, err := io.Copy(io.Discard, tee); err != nil {
		return Instance{}, err
	}
	inst := instanceOf(attrs, m.Incoming, ts.UID)
	inst.ReceivedAt = m.ReceivedAt
	inst.Size, inst.SHA256, inst.BlobKey, inst.DatasetOffset, inst.Seq = r.Size, hex.EncodeToString(h.Sum(nil)), r.Key, m.DatasetOffset, r.Seq
	return inst, nil
}

// digest is the hex SHA-256 of a blob, read back (from the page cache, as
// a rule: the indexer digests what was just written).
func (s *Store) digest(ctx context.Context, key string, buf []byte) (string, error) {
	rc, err := s.blobs.Open(ctx, key)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	h := sha256.New()
	if _, err := io.CopyBuffer(h, rc, buf); err != nil {
		return "", fmt.Errorf("store: reading blob %s: %w", key, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// reclaim deletes sealed segments that no index row references, then
// their index rows. A failure is logged; the next Open tries again.
func (s *Store) reclaim(ctx context.Context, ids []uint64) {
	for _, id := range ids {
		ok, err := s.blobs.Reclaim(id)
		if err == nil && ok {
			err = s.index.ForgetSegment(ctx, id)
		}
		if err != nil {
			s.log.Warn("store: reclaiming an unreferenced segment failed; retried at next start", "segment", id, "err", err)
		}
	}
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
// It returns once the instance's log record is fdatasync'd: a nil error
// means the instance survives a crash or power loss, so the sender may be
// told so. Its index row follows within milliseconds (the Store's own
// readers see it at once).
//
// The blob is the Part 10 file radgate writes: a file meta built from in
// (PS3.10 7.1; SourceApplicationEntityTitle is the calling AE) followed by
// the data set bytes exactly as received.
//
// Errors wrap ErrUnknownTransferSyntax, ErrInvalidDataset,
// ErrOutOfResources, ErrTooLarge, ErrDuplicateRejected or ErrClosed, or
// the error of dataset itself (the sender went away); in every failure
// case nothing is kept.
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
// Order (see doc.go for the crash-safety argument): stream the file meta
// and the data set into a log record, walk the data set back (validating
// it and picking the indexed attributes), decide duplicates, and only for
// content that will be kept: commit the record (one fdatasync) and hand it
// to the indexer. Rejected, invalid and duplicate data sets cost no fsync;
// their space is given up.
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

	// The per-UID lock makes lookup .. enqueue atomic for one SOP Instance
	// UID (the indexer's pending records make an acknowledged instance
	// visible to the next lookup at once). The declared UID is known
	// before the data set arrives, so the lookup runs while it streams in.
	unlock := s.locks.lock(in.SOPInstanceUID)
	defer unlock()
	prior := s.startLookup(ctx, in.SOPInstanceUID)
	defer prior.wait()

	meta := dcm.FileMeta{
		MediaStorageSOPClassUID:      in.SOPClassUID,
		MediaStorageSOPInstanceUID:   in.SOPInstanceUID,
		TransferSyntaxUID:            ts.UID,
		ImplementationClassUID:       dcm.ImplementationClassUID,
		ImplementationVersionName:    dcm.ImplementationVersionName,
		SourceApplicationEntityTitle: metaAETitle(in.CallingAE),
	}
	var mb bytes.Buffer
	if err := dcm.WriteFileMeta(&mb, meta); err != nil {
		if errors.Is(err, dcm.ErrInvalidFileMeta) {
			return Result{}, reasonInvalid, fmt.Errorf("%w: %w", ErrInvalidDataset, err)
		}
		return Result{}, reasonIO, writeErr(err)
	}
	metaLen := int64(mb.Len())
	received := time.Now().UTC()
	rm, err := json.Marshal(recordMeta{Incoming: in, ReceivedAt: received, DatasetOffset: metaLen})
	if err != nil {
		return Result{}, reasonIO, err
	}
	w, err := s.blobs.Create(ctx, rm)
	if err != nil {
		return Result{}, writeReason(err), writeErr(err)
	}
	defer w.Close() // aborts unless committed

	// 1. Stream meta + data set into the record.
	if _, err := w.Write(mb.Bytes()); err != nil {
		return Result{}, writeReason(err), writeErr(err)
	}
	buf := s.chunks.Get().(*[]byte)
	n, rerr, werr := copyData(w, dataset, s.cfg.MaxInstanceBytes, *buf)
	s.chunks.Put(buf)
	if rerr != nil {
		return Result{}, reasonRead, fmt.Errorf("store: reading data set: %w", rerr)
	}
	if werr != nil {
		return Result{}, writeReason(werr), writeErr(werr)
	}
	if s.cfg.MaxInstanceBytes > 0 && n > s.cfg.MaxInstanceBytes {
		return Result{}, reasonTooLarge, fmt.Errorf("%w: data set exceeds %d bytes", ErrTooLarge, s.cfg.MaxInstanceBytes)
	}
	if err := ctx.Err(); err != nil {
		return Result{}, reasonCanceled, err
	}

	// 2. Validate: walk the data set back from the page cache, seeking
	// over pixel data and other large values.
	stored := io.NewSectionReader(w, metaLen, n)
	sc := s.scanners.Get().(*dcm.Scanner)
	attrs, err := sc.Scan(stored, ts, scanTags)
	s.scanners.Put(sc)
	if err != nil {
		if errors.Is(err, dcm.ErrMalformed) {
			return Result{}, reasonInvalid, fmt.Errorf("%w: %w", ErrInvalidDataset, err)
		}
		return Result{}, reasonIO, fmt.Errorf("store: reading back the record: %w", err)
	}
	if err := checkUIDs(in, attrs); err != nil {
		return Result{}, reasonInvalid, err
	}
	inst := instanceOf(attrs, in, ts.UID)
	inst.ReceivedAt = received
	inst.Size, inst.DatasetOffset = metaLen+n, metaLen

	// 3. Duplicates, against the lookup started before the data arrived.
	outcome := Stored
	prev, err := prior.wait()
	switch {
	case errors.Is(err, ErrNotFound):
	case err != nil:
		return Result{}, reasonIO, err
	default:
		same, err := s.sameDataset(ctx, prev, io.NewSectionReader(w, metaLen, n), n, ts.UID)
		if err != nil {
			return Result{}, reasonIO, err
		}
		if same {
			return Result{Outcome: DuplicateSame, Instance: prev}, "", nil
		}
		switch s.cfg.Duplicates {
		case KeepFirst:
			return Result{Outcome: DuplicateKept, Instance: prev}, "", nil
		case Reject:
			return Result{}, reasonDuplicate, fmt.Errorf("%w: instance %s is stored with other content",
				ErrDuplicateRejected, dcm.UIDRef(in.SOPInstanceUID))
		}
		outcome = Replaced
	}

	// 4. Make it durable: one fdatasync. Once started, finish even if the
	// caller gives up.
	inst.Seq = s.seq.Add(1)
	key, end, err := w.Commit(context.WithoutCancel(ctx), inst.Seq)
	if err != nil {
		return Result{}, writeReason(err), writeErr(err)
	}
	inst.BlobKey = key
	s.ix.enqueue(IndexOp{Instance: inst, End: end})
	s.m.bytes.Add(float64(inst.Size))
	s.disk.consumed(inst.Size)
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
		p.prev, p.err = s.ix.lookup(ctx, uid)
	}()
	return p
}

func (p *pendingLookup) wait() (Instance, error) {
	<-p.done
	return p.prev, p.err
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
	if got := a[dcm.StudyInstanceUID]; in.StudyInstanceUID != "" && got != in.StudyInstanceUID {
		return fmt.Errorf("%w: data set Study Instance UID (%s) is not the addressed study (%s)",
			ErrStudyMismatch, dcm.UIDRef(got), dcm.UIDRef(in.StudyInstanceUID))
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
		RequestPriority:        in.RequestPriority,
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
func (s *Store) sameDataset(ctx context.Context, prev Instance, dataset io.Reader, n int64, tsUID string) (bool, error) {
	if prev.TransferSyntaxUID != tsUID || prev.Size-prev.DatasetOffset != n {
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
	return readersEqual(rc, dataset)
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

// Instance returns the index record of a SOP Instance UID, or an error
// wrapping ErrNotFound.
func (s *Store) Instance(ctx context.Context, sopInstanceUID string) (Instance, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return Instance{}, ErrClosed
	}
	in, err := s.ix.lookup(ctx, sopInstanceUID)
	if errors.Is(err, ErrNotFound) {
		return Instance{}, fmt.Errorf("%w: instance %s", ErrNotFound, dcm.UIDRef(sopInstanceUID))
	}
	return in, err
}

// OpenBlob returns the Part 10 file stored under key (Instance.BlobKey),
// byte for byte as Ingest wrote it. The caller closes it. A purge of its
// study meanwhile waits for the Close to erase it.
func (s *Store) OpenBlob(ctx context.Context, key string) (io.ReadCloser, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, ErrClosed
	}
	s.open.opened(key)
	rc, err := s.blobs.Open(ctx, key)
	if err != nil {
		if s.open.closed(key) {
			s.erase(context.WithoutCancel(ctx), []string{key})
		}
		return nil, err
	}
	return &blobReader{ReadCloser: rc, s: s, key: key}, nil
}

// Writable is the readiness check: the data directory takes a new file,
// the index answers and is not failing, and free space is above
// MinFreeBytes (measured now).
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
	if err := s.ix.err(); err != nil {
		return err
	}
	return s.index.Ping(ctx)
}

// CountInstances returns the number of stored instances, once those
// acknowledged before the call are indexed.
func (s *Store) CountInstances(ctx context.Context) (int64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return 0, ErrClosed
	}
	if err := s.ix.flush(); err != nil {
		return 0, err
	}
	return s.index.Count(ctx)
}

// Work is the study, job and outbox state kept beside the instances (see
// Work). Its methods fail once the Store is closed.
func (s *Store) Work() Work { return s.index }

// Worklist is the reading worklist's rows.
func (s *Store) Worklist() Worklist { return s.index }

// syncDirPath fsyncs a directory, making the names in it durable.
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

// Describe reads a DICOM Part 10 file, without storing it, into the
// record Ingest would index for it (no blob, size or digest): for work on
// instances that are not kept, such as a study sent only to be analysed.
// The meta must agree with the data set, as for Ingest.
func Describe(part10 io.Reader) (Instance, error) {
	meta, data, err := dcm.OpenPart10(part10)
	if err != nil {
		return Instance{}, err
	}
	ts, ok := dcm.LookupTransferSyntax(meta.TransferSyntaxUID)
	if !ok {
		return Instance{}, fmt.Errorf("%w: %q", ErrUnknownTransferSyntax, meta.TransferSyntaxUID)
	}
	attrs, err := dcm.ScanDataset(data, ts, scanTags)
	if err != nil {
		return Instance{}, fmt.Errorf("%w: %w", ErrInvalidDataset, err)
	}
	in := Incoming{SOPClassUID: meta.MediaStorageSOPClassUID, SOPInstanceUID: meta.MediaStorageSOPInstanceUID, TransferSyntaxUID: ts.UID}
	if err := checkUIDs(in, attrs); err != nil {
		return Instance{}, err
	}
	return instanceOf(attrs, in, ts.UID), nil
}
