package store

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Log is the local Blobs: Part 10 instances appended as records to segment
// files, DataDir/segments/<id>.seg (see doc.go for why, and for the crash
// argument). Each segment has at most one writer at a time; concurrent
// ingests write to different segments. Segments are made ahead of need,
// with their space allocated and their name durable, so that committing a
// record costs one fdatasync of data already in place.
type Log struct {
	dir     string
	dirFile *os.File // DataDir/segments, open for fsync
	size    int64    // nominal segment size

	// onFsync observes each record's fdatasync (set before first use).
	onFsync func(time.Duration)

	mu     sync.Mutex
	idle   []*segment          // open, not full, no writer
	sealed map[uint64]struct{} // complete: never written again
	nextID uint64
	making bool // a spare is being made
	closed bool
	spare  chan *segment
	wg     sync.WaitGroup // the spare maker
}

// segment is one open segment file.
type segment struct {
	id     uint64
	f      *os.File
	end    int64 // where the next record starts
	broken bool  // a write or sync failed: seal it
}

// Mark is a position in the log: the end of a record in a segment. The
// index stores, per segment, the mark up to which every record is indexed;
// Open replays what lies beyond.
type Mark struct {
	Segment uint64
	Offset  int64
}

// Segment and record layout. Integers are little endian.
//
// A segment starts with segHeaderLen bytes: segMagic, then the segment id.
// Records follow back to back; the first position that does not hold a
// valid record header ends the segment.
//
// A record header (recHeaderLen bytes):
//
//	0  magic "RGR1"
//	4  kind (recInstance, recTombstone, recErased), 3 bytes zero
//	8  meta length (uint32)
//	12 CRC-32C of the data
//	16 sequence number (uint64)
//	24 data length (uint64)
//	32 CRC-32C of bytes 0..32 and the meta
//	36 zero
//
// then the meta (the reception details, recordMeta) and the data (the
// Part 10 file). The header is written last, at commit, so a record whose
// commit did not complete has a zero or invalid header. A tombstone marks
// the space of an aborted record; its data is never read.
//
// Erase turns a committed record into an erased one by rewriting its kind
// byte alone (a one-byte write cannot be torn), made durable before its
// meta and data are punched out (zeros): from the first step on, the
// header's lengths still chain the walk to the next record, and nothing
// of the record is read again. An erased header is recognised by its
// magic and kind; its CRC covered the meta that is gone.
const (
	segmentsDirName = "segments"
	segmentExt      = ".seg"
	segMagic        = "RADGATE-SEGMENT1"
	segHeaderLen    = 32
	recMagic        = "RGR1"
	recHeaderLen    = 40
	recInstance     = 1
	recTombstone    = 2
	recErased       = 3
	// maxMetaLen bounds a record's meta, checked before it is read back.
	maxMetaLen = 64 << 10
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// OpenLog opens (creating when needed) the segment log under dataDir.
// Every segment already there is sealed: new records go to new segments.
func OpenLog(dataDir string, segmentSize int64) (*Log, error) {
	if segmentSize < 1<<20 {
		return nil, fmt.Errorf("store: segment size %d below 1 MiB", segmentSize)
	}
	l := &Log{
		dir:     filepath.Join(dataDir, segmentsDirName),
		size:    segmentSize,
		onFsync: func(time.Duration) {},
		sealed:  map[uint64]struct{}{},
		spare:   make(chan *segment, spareSegments),
	}
	if err := mkdirDurable(l.dir); err != nil {
		return nil, err
	}
	d, err := os.Open(l.dir)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	l.dirFile = d
	ids, err := l.segmentIDs()
	if err != nil {
		d.Close()
		return nil, err
	}
	for _, id := range ids {
		l.sealed[id] = struct{}{}
		l.nextID = max(l.nextID, id+1)
	}
	// The first instances should not wait for a segment, nor write into
	// space that is only allocated: the spares are made now.
	for len(l.spare) < cap(l.spare) {
		seg, err := l.newSegment(true)
		if err != nil {
			l.Close()
			return nil, err
		}
		l.spare <- seg
	}
	return l, nil
}

// segmentIDs lists the segment files, in id order.
func (l *Log) segmentIDs() ([]uint64, error) {
	entries, err := os.ReadDir(l.dir)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	var ids []uint64
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), segmentExt)
		if !ok || e.IsDir() {
			continue
		}
		if id, err := strconv.ParseUint(name, 16, 64); err == nil && len(name) == 16 {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids, nil
}

func (l *Log) path(id uint64) string {
	return filepath.Join(l.dir, fmt.Sprintf("%016x%s", id, segmentExt))
}

// Segments lists the sealed segments (at Open: all of them).
func (l *Log) Segments() []uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	ids := make([]uint64, 0, len(l.sealed))
	for id := range l.sealed {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// Reserve makes sure ids up to id are never reused (the index may know
// segments that are gone from disk).
func (l *Log) Reserve(id uint64) {
	l.mu.Lock()
	l.nextID = max(l.nextID, id+1)
	l.mu.Unlock()
}

// Create starts a record in an idle segment, or a new one, with meta as
// its first output (meta is not changed and must not be afterwards). The
// writer holds the segment until Close.
func (l *Log) Create(ctx context.Context, meta []byte) (BlobWriter, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(meta) > maxMetaLen {
		return nil, fmt.Errorf("store: record meta of %d bytes exceeds %d", len(meta), maxMetaLen)
	}
	seg, err := l.acquire()
	if err != nil {
		return nil, err
	}
	w := &logWriter{l: l, seg: seg, start: seg.end, pendAt: seg.end, wb: seg.end}
	w.data = w.start + recHeaderLen + int64(len(meta))
	// The header's place (zeros until Commit) and the meta start the
	// record's output.
	w.pend = append(make([]byte, recHeaderLen, 2*pageSize), meta...)
	w.meta = meta
	return w, nil
}

// acquire takes an idle segment, a spare or a new one, and starts making
// the next spare.
func (l *Log) acquire() (*segment, error) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil, ErrClosed
	}
	if n := len(l.idle); n > 0 {
		seg := l.idle[n-1]
		l.idle = l.idle[:n-1]
		l.mu.Unlock()
		return seg, nil
	}
	l.startSpareLocked()
	l.mu.Unlock()
	select {
	case seg := <-l.spare:
		return seg, nil
	default:
	}
	return l.newSegment(false)
}

// startSpareLocked starts the goroutine that tops up the spares, unless it
// runs. l.mu is held. Spares are zero-filled; a segment made on demand,
// when none is ready, is only allocated (its records then cost a journal
// commit each, which is still cheaper than waiting for the zeros).
func (l *Log) startSpareLocked() {
	if l.making || l.closed {
		return
	}
	l.making = true
	l.wg.Add(1)
	go l.makeSpares()
}

// makeSpares fills the spare channel. A failure is left for the next
// acquire to meet (it makes a segment itself and reports the error).
func (l *Log) makeSpares() {
	defer l.wg.Done()
	for {
		l.mu.Lock()
		if l.closed || len(l.spare) == cap(l.spare) {
			l.making = false
			l.mu.Unlock()
			return
		}
		l.mu.Unlock()
		seg, err := l.newSegment(true)
		if err != nil {
			l.mu.Lock()
			l.making = false
			l.mu.Unlock()
			return
		}
		select {
		case l.spare <- seg:
		default:
			l.discard(seg)
		}
	}
}

// newSegment creates a segment file: its header, its space (written with
// zeros when zero is set, else only allocated), then fsync of the file and
// of the directory, so its name and size need no journal commit when a
// record is committed.
func (l *Log) newSegment(zero bool) (*segment, error) {
	l.mu.Lock()
	id := l.nextID
	l.nextID++
	l.mu.Unlock()
	p := l.path(id)
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|os.O_EXCL, fileMode)
	if err != nil {
		return nil, fmt.Errorf("store: create segment: %w", err)
	}
	fail := func(err error) (*segment, error) {
		f.Close()
		os.Remove(p)
		return nil, fmt.Errorf("store: create segment: %w", err)
	}
	// The first page holds the header (and zeros): the rest is then
	// page-aligned for zeroFill.
	hdr := make([]byte, directAlign)
	copy(hdr, segMagic)
	binary.LittleEndian.PutUint64(hdr[16:], id)
	if _, err := f.WriteAt(hdr, 0); err != nil {
		return fail(err)
	}
	if zero {
		err = zeroFill(f, directAlign, l.size)
	} else {
		err = allocate(f, l.size)
	}
	if err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := l.dirFile.Sync(); err != nil {
		return fail(err)
	}
	return &segment{id: id, f: f, end: segHeaderLen}, nil
}

// zeroBlock is what zeroFill writes at a time; directAlign the alignment
// O_DIRECT wants of offsets, lengths and buffers.
const (
	zeroBlock   = 1 << 20
	directAlign = 4096
)

// zeroFillBuffered writes zeros over [from, size) of f, through the page
// cache.
func zeroFillBuffered(f *os.File, from, size int64) error {
	z := make([]byte, zeroBlock)
	for off := from; off < size; {
		n := min(int64(len(z))-off%zeroBlock, size-off)
		if _, err := f.WriteAt(z[:n], off); err != nil {
			return err
		}
		off += n
	}
	return nil
}

// discard deletes an unused segment.
func (l *Log) discard(seg *segment) {
	seg.f.Close()
	os.Remove(l.path(seg.id))
}

// release returns a segment after a record: idle again, or sealed when it
// is full or broken (then trimmed to its records).
func (l *Log) release(seg *segment) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.closed && !seg.broken && seg.end < l.size {
		l.idle = append(l.idle, seg)
		return
	}
	l.sealLocked(seg)
}

func (l *Log) sealLocked(seg *segment) {
	if !seg.broken {
		// Frees the allocation past the last record; losing this to a
		// crash only leaves zeros, which end the segment anyway.
		_ = seg.f.Truncate(seg.end)
	}
	seg.f.Close()
	l.sealed[seg.id] = struct{}{}
}

// Open returns the Part 10 bytes of the record under key.
func (l *Log) Open(ctx context.Context, key string) (io.ReadCloser, error) {
	id, off, n, ok := parseKey(key)
	if !ok {
		return nil, fmt.Errorf("%w: blob key %q", ErrNotFound, key)
	}
	return openRecord(l.path(id), off, n)
}

func openRecord(path string, off, n int64) (io.ReadCloser, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: segment %s", ErrNotFound, filepath.Base(path))
	}
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	return &recordReader{io.NewSectionReader(f, off, n), f}, nil
}

// OpenBlobFile reads the blob under key from the data directory dataDir
// without opening its Store, for tools and tests; radgate may be running.
// keys opens sealed records; without keys, a sealed data directory fails
// with ErrKeysRequired.
func OpenBlobFile(dataDir, key string, keys KeyProvider) (io.ReadCloser, error) {
	ctx := context.Background()
	b, err := sealLog(ctx, dataDir, &Log{dir: filepath.Join(dataDir, segmentsDirName)}, keys, false)
	if err != nil {
		return nil, err
	}
	return b.Open(ctx, key)
}

type recordReader struct {
	*io.SectionReader
	f *os.File
}

func (r *recordReader) Close() error { return r.f.Close() }

// blobKey names a record's data: segment id, offset and length, in hex.
func blobKey(id uint64, off, n int64) string {
	return fmt.Sprintf("%016x-%x-%x", id, off, n)
}

// parseKey is blobKey's inverse.
func parseKey(key string) (id uint64, off, n int64, ok bool) {
	a, rest, ok1 := strings.Cut(key, "-")
	b, c, ok2 := strings.Cut(rest, "-")
	if !ok1 || !ok2 || len(a) != 16 {
		return 0, 0, 0, false
	}
	id, e1 := strconv.ParseUint(a, 16, 64)
	o, e2 := strconv.ParseInt(b, 16, 64)
	m, e3 := strconv.ParseInt(c, 16, 64)
	if e1 != nil || e2 != nil || e3 != nil || o < segHeaderLen || m < 0 {
		return 0, 0, 0, false
	}
	return id, o, m, true
}

// Reclaim deletes a sealed segment no record of which is referenced any
// more. It reports whether the file is gone.
func (l *Log) Reclaim(id uint64) (bool, error) {
	l.mu.Lock()
	_, sealed := l.sealed[id]
	if sealed {
		delete(l.sealed, id)
	}
	l.mu.Unlock()
	if !sealed {
		return false, nil
	}
	if err := os.Remove(l.path(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("store: reclaim segment: %w", err)
	}
	if err := l.dirFile.Sync(); err != nil {
		return false, fmt.Errorf("store: reclaim segment: %w", err)
	}
	return true, nil
}

// Erase implements Blobs. Per segment, it finds the records by walking
// their headers (not their data), marks them erased and makes that
// durable, then punches their meta and data out and makes that durable.
func (l *Log) Erase(ctx context.Context, keys []string) error {
	bySeg := map[uint64]map[int64]bool{}
	for _, k := range keys {
		id, off, _, ok := parseKey(k)
		if !ok {
			return fmt.Errorf("%w: blob key %q", ErrNotFound, k)
		}
		if bySeg[id] == nil {
			bySeg[id] = map[int64]bool{}
		}
		bySeg[id][off] = true
	}
	for id, data := range bySeg {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := l.eraseIn(id, data); err != nil {
			return err
		}
	}
	return nil
}

// eraseIn erases the records of segment id whose data starts at an offset
// in data.
func (l *Log) eraseIn(id uint64, data map[int64]bool) error {
	f, err := os.OpenFile(l.path(id), os.O_RDWR, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // reclaimed: nothing of it is left
	}
	if err != nil {
		return fmt.Errorf("store: erase: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("store: erase: %w", err)
	}
	type span struct{ from, to int64 }
	var holes []span
	for off := int64(segHeaderLen); ; {
		rec, next, ok := readRecord(f, off, fi.Size(), false)
		if !ok {
			break
		}
		if data[rec.data] && rec.kind != recTombstone {
			if rec.kind == recInstance {
				if _, err := f.WriteAt([]byte{recErased}, off+4); err != nil {
					return fmt.Errorf("store: erase: %w", err)
				}
			}
			holes = append(holes, span{off + recHeaderLen, next})
		}
		off = next
	}
	if len(holes) == 0 {
		return nil
	}
	if err := fdatasync(f); err != nil {
		return fmt.Errorf("store: erase: %w", err)
	}
	for _, h := range holes {
		if err := punchHole(f, h.from, h.to-h.from); err != nil {
			return fmt.Errorf("store: erase: %w", err)
		}
	}
	if err := fdatasync(f); err != nil {
		return fmt.Errorf("store: erase: %w", err)
	}
	return nil
}

// Recovered is a committed record found by Replay.
type Recovered struct {
	Seq  uint64
	Key  string
	Size int64  // of the data (the Part 10 file)
	Mark Mark   // the record's end
	Meta []byte // as given to Create
}

// Replay walks every sealed segment from its mark in marks (from the
// start when absent), calling fn for each committed record, in log order
// within a segment. It verifies each record's checksums; the first
// position without a valid record ends the segment, which is trimmed
// there (what follows was never acknowledged). fn's data reader is valid
// only during the call.
func (l *Log) Replay(ctx context.Context, marks map[uint64]int64, fn func(Recovered, io.Reader) error) error {
	for _, id := range l.Segments() {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := l.replaySegment(id, marks[id], fn); err != nil {
			return err
		}
	}
	return nil
}

func (l *Log) replaySegment(id uint64, from int64, fn func(Recovered, io.Reader) error) error {
	f, err := os.OpenFile(l.path(id), os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("store: replay: %w", err)
	}
	defer f.Close()
	end, size, err := walkSegment(f, id, from, fn)
	if err != nil {
		return err
	}
	if end < size {
		if err := f.Truncate(end); err != nil {
			return fmt.Errorf("store: replay: trim segment: %w", err)
		}
	}
	return nil
}

// walkSegment calls fn for each committed instance record of segment id
// (open as f) from offset from on, and returns where the valid records end
// and the file's size. A segment whose header is not whole (its creation
// was cut short) ends at 0.
func walkSegment(f *os.File, id uint64, from int64, fn func(Recovered, io.Reader) error) (end, size int64, err error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, 0, fmt.Errorf("store: %w", err)
	}
	size = fi.Size()
	hdr := make([]byte, segHeaderLen)
	if _, err := f.ReadAt(hdr, 0); err != nil || string(hdr[:16]) != segMagic || binary.LittleEndian.Uint64(hdr[16:]) != id {
		return 0, size, nil
	}
	off := max(from, segHeaderLen)
	for {
		rec, next, ok := readRecord(f, off, size, true)
		if !ok {
			return off, size, nil
		}
		if rec.kind == recInstance {
			r := Recovered{Seq: rec.seq, Key: blobKey(id, rec.data, rec.n), Size: rec.n, Mark: Mark{id, next}, Meta: rec.meta}
			if err := fn(r, io.NewSectionReader(f, rec.data, rec.n)); err != nil {
				return off, size, err
			}
		}
		off = next
	}
}

// LogRecords lists the blob keys of every committed record in the log of
// the data directory dataDir, read-only and without opening its Store, for
// tools and tests (radgate may be running).
func LogRecords(dataDir string) ([]string, error) {
	l := &Log{dir: filepath.Join(dataDir, segmentsDirName)}
	ids, err := l.segmentIDs()
	if err != nil {
		return nil, err
	}
	var keys []string
	for _, id := range ids {
		f, err := os.Open(l.path(id))
		if errors.Is(err, fs.ErrNotExist) {
			continue // reclaimed meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		_, _, err = walkSegment(f, id, 0, func(r Recovered, _ io.Reader) error {
			keys = append(keys, r.Key)
			return nil
		})
		f.Close()
		if err != nil {
			return nil, err
		}
	}
	return keys, nil
}

type recordInfo struct {
	kind     byte
	seq      uint64
	meta     []byte
	data, n  int64 // offset and length of the data
	checksum uint32
}

// readRecord reads and checks the record at off, its data too when
// checkData is set. ok is false where no valid record starts (the end of
// the segment).
func readRecord(f *os.File, off, size int64, checkData bool) (rec recordInfo, next int64, ok bool) {
	if off+recHeaderLen > size {
		return rec, 0, false
	}
	h := make([]byte, recHeaderLen)
	if _, err := f.ReadAt(h, off); err != nil || string(h[:4]) != recMagic {
		return rec, 0, false
	}
	rec.kind = h[4]
	metaLen := int64(binary.LittleEndian.Uint32(h[8:]))
	rec.checksum = binary.LittleEndian.Uint32(h[12:])
	rec.seq = binary.LittleEndian.Uint64(h[16:])
	rec.n = int64(binary.LittleEndian.Uint64(h[24:]))
	rec.data = off + recHeaderLen + metaLen
	if (rec.kind != recInstance && rec.kind != recTombstone && rec.kind != recErased) || metaLen > maxMetaLen ||
		rec.n < 0 || rec.n > size || rec.data+rec.n > size {
		return rec, 0, false
	}
	if rec.kind == recErased {
		return rec, rec.data + rec.n, true
	}
	rec.meta = make([]byte, metaLen)
	if _, err := f.ReadAt(rec.meta, off+recHeaderLen); err != nil {
		return rec, 0, false
	}
	if headerCRC(h, rec.meta) != binary.LittleEndian.Uint32(h[32:]) {
		return rec, 0, false
	}
	if rec.kind == recInstance && checkData {
		c := crc32.New(castagnoli)
		if _, err := io.Copy(c, io.NewSectionReader(f, rec.data, rec.n)); err != nil || c.Sum32() != rec.checksum {
			return rec, 0, false
		}
	}
	return rec, rec.data + rec.n, true
}

func headerCRC(h, meta []byte) uint32 {
	c := crc32.Update(0, castagnoli, h[:32])
	return crc32.Update(c, castagnoli, meta)
}

// Ping creates and removes a file in the segments folder.
func (l *Log) Ping(ctx context.Context) error {
	p := filepath.Join(l.dir, "ping-"+rand.Text())
	f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, fileMode)
	if err != nil {
		return fmt.Errorf("store: data directory not writable: %w", err)
	}
	_, werr := f.Write([]byte{0})
	if err := errors.Join(werr, f.Close(), os.Remove(p)); err != nil {
		return fmt.Errorf("store: data directory not writable: %w", err)
	}
	return nil
}

// Close waits for the spare maker, deletes unused spares and seals the
// idle segments. No writer may be active.
func (l *Log) Close() error {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	l.wg.Wait()
	for {
		select {
		case seg := <-l.spare:
			l.discard(seg)
			continue
		default:
		}
		break
	}
	l.mu.Lock()
	for _, seg := range l.idle {
		l.sealLocked(seg)
	}
	l.idle = nil
	l.mu.Unlock()
	err := l.dirFile.Sync()
	return errors.Join(err, l.dirFile.Close())
}

// logWriter writes one record. Its output goes to the segment (the page
// cache) in whole pages only: a partial page is held in pend until the
// bytes that complete it arrive, and the record's last page is padded with
// zeros (space past the record is zeros anyway). A write that covered part
// of a page not in the page cache would make the kernel read that block
// from disk first, synchronously; every page the writer starts in is one
// it wrote itself (or the previous record's last, or the segment header's).
type logWriter struct {
	l      *Log
	seg    *segment
	start  int64  // the record's header
	data   int64  // where the data starts
	meta   []byte // for the header CRC
	crc    uint32
	n      int64  // data bytes accepted
	pend   []byte // output not yet written, from pendAt; less than a page past a boundary
	pendAt int64
	wb     int64 // writeback started up to here
	ended  bool  // the last page is written: no more data
	done   bool  // committed or aborted
}

// pageSize is the unit of the writer's output.
const pageSize = directAlign

// zeroPage pads a record's last page; read only.
var zeroPage [pageSize]byte

func (w *logWriter) Write(p []byte) (int, error) {
	if w.ended {
		return 0, errors.New("store: record already finished")
	}
	w.crc = crc32.Update(w.crc, castagnoli, p)
	w.n += int64(len(p))
	if err := w.put(p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// put appends p to the record's output, writing whole pages.
func (w *logWriter) put(p []byte) error {
	if at := w.pendAt + int64(len(w.pend)); at%pageSize != 0 {
		take := min(int(pageSize-at%pageSize), len(p))
		w.pend = append(w.pend, p[:take]...)
		p = p[take:]
		if len(p) == 0 && (at+int64(take))%pageSize != 0 {
			return nil
		}
	}
	if len(w.pend) > 0 {
		if err := w.out(w.pend); err != nil {
			return err
		}
		w.pend = w.pend[:0]
	}
	if whole := len(p) &^ (pageSize - 1); whole > 0 {
		if err := w.out(p[:whole]); err != nil {
			return err
		}
		p = p[whole:]
	}
	w.pend = append(w.pend, p...)
	return nil
}

// out writes b at pendAt and advances it, starting writeback every
// writebackChunk.
func (w *logWriter) out(b []byte) error {
	if _, err := w.seg.f.WriteAt(b, w.pendAt); err != nil {
		w.seg.broken = true
		return fmt.Errorf("store: writing record: %w", err)
	}
	w.pendAt += int64(len(b))
	if w.pendAt-w.wb >= writebackChunk {
		startWriteback(w.seg.f, w.wb, w.pendAt-w.wb)
		w.wb = w.pendAt
	}
	return nil
}

// end writes the last page, padded with zeros.
func (w *logWriter) end() error {
	if w.ended {
		return nil
	}
	w.ended = true
	if len(w.pend) == 0 {
		return nil
	}
	if r := (w.pendAt + int64(len(w.pend))) % pageSize; r != 0 {
		w.pend = append(w.pend, zeroPage[:pageSize-r]...)
	}
	return w.out(w.pend)
}

// ReadAt reads back the data written so far; no Write may follow.
func (w *logWriter) ReadAt(p []byte, off int64) (int, error) {
	if err := w.end(); err != nil {
		return 0, err
	}
	if off < 0 || off >= w.n {
		return 0, io.EOF
	}
	short := int64(len(p)) > w.n-off
	if short {
		p = p[:w.n-off]
	}
	n, err := w.seg.f.ReadAt(p, w.data+off)
	if err == nil && short {
		err = io.EOF
	}
	return n, err
}

// Commit writes the record's header and makes the record durable
// (fdatasync: the data, the meta and the header are in space the segment
// already owns, so no file system metadata has to be committed). It
// returns the blob key and the record's end.
func (w *logWriter) Commit(ctx context.Context, seq uint64) (string, Mark, error) {
	if w.done {
		return "", Mark{}, errors.New("store: record already finished")
	}
	w.done = true
	if err := w.end(); err != nil {
		return "", Mark{}, err
	}
	h := w.header(recInstance, seq)
	if _, err := w.seg.f.WriteAt(h, w.start); err != nil {
		w.seg.broken = true
		return "", Mark{}, fmt.Errorf("store: writing record: %w", err)
	}
	start := time.Now()
	err := fdatasync(w.seg.f)
	w.l.onFsync(time.Since(start))
	if err != nil {
		// What reached the disk is unknown: seal the segment. The record
		// may survive and be indexed at the next Open; it was never
		// acknowledged, so that only stores an instance its sender will
		// send again.
		w.seg.broken = true
		return "", Mark{}, fmt.Errorf("store: fdatasync segment: %w", err)
	}
	w.seg.end = w.data + w.n
	return blobKey(w.seg.id, w.data, w.n), Mark{w.seg.id, w.seg.end}, nil
}

func (w *logWriter) header(kind byte, seq uint64) []byte {
	h := make([]byte, recHeaderLen)
	copy(h, recMagic)
	h[4] = kind
	binary.LittleEndian.PutUint32(h[8:], uint32(len(w.meta)))
	binary.LittleEndian.PutUint32(h[12:], w.crc)
	binary.LittleEndian.PutUint64(h[16:], seq)
	binary.LittleEndian.PutUint64(h[24:], uint64(w.n))
	binary.LittleEndian.PutUint32(h[32:], headerCRC(h, w.meta))
	return h
}

// Abort gives the record's space up: a tombstone header covers what was
// written, so the next record starts after it and no byte of the aborted
// data can ever be read as a header. The tombstone needs no fsync: until
// it is durable, the zero header in its place ends the segment there, and
// the next commit's fdatasync makes it durable with that record.
func (w *logWriter) Abort() error {
	if w.done {
		return nil
	}
	w.done = true
	if err := w.end(); err != nil {
		return err
	}
	if _, err := w.seg.f.WriteAt(w.header(recTombstone, 0), w.start); err != nil {
		w.seg.broken = true
		return fmt.Errorf("store: writing record: %w", err)
	}
	w.seg.end = w.data + w.n
	return nil
}

// Close aborts an unfinished record and hands the segment back.
func (w *logWriter) Close() error {
	err := w.Abort()
	if w.seg != nil {
		w.l.release(w.seg)
		w.seg = nil
	}
	return err
}

// mkdirDurable creates dir (and missing parents) and fsyncs the parent of
// each directory it created.
func mkdirDurable(dir string) error {
	if fi, err := os.Stat(dir); err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("store: %s is not a directory", dir)
		}
		return nil
	}
	parent := filepath.Dir(dir)
	if parent != dir {
		if err := mkdirDurable(parent); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, dirMode); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("store: %w", err)
	}
	return syncDirPath(parent)
}
