package store

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// Blobs keeps immutable Part 10 files under keys chosen by the caller (the
// Store uses the hex SHA-256 of the content). FSBlobs is the local
// implementation; an S3 one (minio-go: spool to a local temp file, then
// PutObject on Commit) fits the same contract.
type Blobs interface {
	// Create starts a new blob. Nothing is visible under any key until
	// Commit.
	Create(ctx context.Context) (BlobWriter, error)
	// Open returns a committed blob; ErrNotFound when there is none.
	Open(ctx context.Context, key string) (io.ReadCloser, error)
	// Remove deletes a blob durably; removing a missing blob is not an
	// error.
	Remove(ctx context.Context, key string) error
	// Exists reports whether a committed blob is under key.
	Exists(ctx context.Context, key string) (bool, error)
	// Ping reports whether new blobs can be written.
	Ping(ctx context.Context) error
	// Close releases what the backend holds; no call may follow.
	Close() error
}

// BlobWriter is a blob being written. The caller writes it, may read it
// back (to validate it), calls Sync and then Commit, or Abort. Abort after
// Commit does nothing, so `defer w.Abort()` is always right.
type BlobWriter interface {
	io.Writer
	// ReadAt reads back what was written (after the caller's buffers are
	// flushed).
	io.ReaderAt
	// Sync makes the written bytes durable (fsync).
	Sync() error
	// Commit publishes the blob under key, atomically and durably: once it
	// returns nil, a crash cannot lose the blob nor expose part of it. A
	// blob already under key must have the same content (keys name
	// content) and is replaced.
	Commit(ctx context.Context, key string) error
	// Abort discards the blob.
	Abort() error
}

// Layout under the data directory, shared with tools that inspect it
// (internal/peertest).
const (
	blobsDirName = "blobs"
	tmpDirName   = "tmp"
	indexName    = "index.db"
	lockName     = "lock"
	cleanName    = "clean" // present only while no radgate runs, after a clean Close
	blobExt      = ".dcm"
	partExt      = ".part"
)

// FSBlobs keeps blobs in a local directory tree:
// blobs/<k[0:2]>/<k>.dcm for a 64-hex-digit key k, written first under
// tmp/ and renamed into place. The 256 directories are all made when the
// tree is opened, so a Commit never has to create one (and fsync its
// parent) on the hot path; with htree-indexed directories (ext4, XFS) even
// ten million instances (~40,000 per directory) stay fast. Names carry no
// UID or PHI.
type FSBlobs struct {
	root string // .../blobs
	tmp  string // .../tmp

	// onFsync observes every fsync's duration (set before first use).
	onFsync func(time.Duration)

	// dirs are the blob directories, open for fsync after each rename.
	dirs [blobDirs]*os.File

	// spare holds temp files made ahead of need: creating a file (inode
	// allocation) costs a noticeable part of an instance's time, so Create
	// takes a ready one and a goroutine makes the next. wg tracks those
	// goroutines; Close waits for them.
	spare  chan *os.File
	wg     sync.WaitGroup
	mu     sync.Mutex
	closed bool
}

// spareFiles is how many temp files FSBlobs keeps ready.
const spareFiles = 4

// blobDirs is the number of directories under blobs/: three hex digits.
const blobDirs = 1 << 8

// NewFSBlobs opens (creating when needed) the blob tree under dataDir:
// dataDir/blobs with its 256 directories, and dataDir/tmp. It does not
// empty tmp; see RemovePartial.
func NewFSBlobs(dataDir string) (*FSBlobs, error) {
	b := &FSBlobs{
		root:    filepath.Join(dataDir, blobsDirName),
		tmp:     filepath.Join(dataDir, tmpDirName),
		onFsync: func(time.Duration) {},
		spare:   make(chan *os.File, spareFiles),
	}
	if err := mkdirDurable(dataDir, b.syncDir); err != nil {
		return nil, err
	}
	for _, d := range []string{b.root, b.tmp} {
		if err := mkdirDurable(d, b.syncDir); err != nil {
			return nil, err
		}
	}
	if err := b.makeDirs(); err != nil {
		return nil, err
	}
	return b, nil
}

// makeDirs creates whichever of the blob directories are missing, then
// fsyncs blobs/ once, which makes their names durable. It runs at every
// open, so a crash of an earlier run between a mkdir and that fsync is
// covered too.
func (b *FSBlobs) makeDirs() error {
	for i := range blobDirs {
		dir := filepath.Join(b.root, fmt.Sprintf("%02x", i))
		if err := os.Mkdir(dir, dirMode); err != nil && !errors.Is(err, fs.ErrExist) {
			b.closeDirs()
			return fmt.Errorf("store: %w", err)
		}
		d, err := os.Open(dir)
		if err != nil {
			b.closeDirs()
			return fmt.Errorf("store: %w", err)
		}
		b.dirs[i] = d
	}
	if err := b.syncDir(b.root); err != nil {
		b.closeDirs()
		return err
	}
	return nil
}

func (b *FSBlobs) closeDirs() {
	for i, d := range b.dirs {
		if d != nil {
			_ = d.Close()
			b.dirs[i] = nil
		}
	}
}

// Close implements Blobs: it waits for spare files being made, removes
// the unused ones and closes the directories.
func (b *FSBlobs) Close() error {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	b.wg.Wait()
	var errs []error
	for {
		select {
		case f := <-b.spare:
			errs = append(errs, f.Close(), os.Remove(f.Name()))
			continue
		default:
		}
		break
	}
	b.closeDirs()
	return errors.Join(errs...)
}

// mkdirDurable creates dir (and missing parents) and fsyncs the parent of
// each directory it created.
func mkdirDurable(dir string, syncDir func(string) error) error {
	if fi, err := os.Stat(dir); err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("store: %s is not a directory", dir)
		}
		return nil
	}
	parent := filepath.Dir(dir)
	if parent != dir {
		if err := mkdirDurable(parent, syncDir); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, dirMode); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("store: %w", err)
	}
	return syncDir(parent)
}

// RemovePartial deletes every file under tmp: blobs whose writer crashed
// or was killed before Commit. Call it only while no writer is active (the
// Store does, at Open, holding the data directory lock).
func (b *FSBlobs) RemovePartial() (int, error) {
	entries, err := os.ReadDir(b.tmp)
	if err != nil {
		return 0, fmt.Errorf("store: %w", err)
	}
	n := 0
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		if err := os.Remove(filepath.Join(b.tmp, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return n, fmt.Errorf("store: %w", err)
		}
		n++
	}
	return n, nil
}

// Create returns a new temp file: a spare one when ready, and starts
// making its replacement.
func (b *FSBlobs) Create(ctx context.Context) (BlobWriter, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var f *os.File
	select {
	case f = <-b.spare:
	default:
		var err error
		if f, err = b.newTemp(); err != nil {
			return nil, err
		}
	}
	b.mu.Lock()
	if !b.closed {
		b.wg.Add(1)
		go b.makeSpare()
	}
	b.mu.Unlock()
	return &fsWriter{b: b, f: f, name: f.Name()}, nil
}

// newTemp creates a temp file, O_EXCL so two writers never share one.
func (b *FSBlobs) newTemp() (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(b.tmp, rand.Text()+partExt), os.O_RDWR|os.O_CREATE|os.O_EXCL, fileMode)
	if err != nil {
		return nil, fmt.Errorf("store: create temp blob: %w", err)
	}
	return f, nil
}

// makeSpare adds a temp file to the spares unless enough are ready. A
// failure is left for the next Create to meet and report.
func (b *FSBlobs) makeSpare() {
	defer b.wg.Done()
	if len(b.spare) >= spareFiles {
		return
	}
	f, err := b.newTemp()
	if err != nil {
		return
	}
	select {
	case b.spare <- f:
	default:
		_ = f.Close()
		_ = os.Remove(f.Name())
	}
}

// Open opens the blob under key.
func (b *FSBlobs) Open(ctx context.Context, key string) (io.ReadCloser, error) {
	if !validKey(key) {
		return nil, fmt.Errorf("%w: blob key %q", ErrNotFound, key)
	}
	f, err := os.Open(b.path(key))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: blob %s", ErrNotFound, key)
	}
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	return f, nil
}

// Remove deletes the blob under key and fsyncs its directory, so that a
// removal recorded as done in the index cannot be undone by a crash.
func (b *FSBlobs) Remove(ctx context.Context, key string) error {
	if !validKey(key) {
		return fmt.Errorf("store: invalid blob key %q", key)
	}
	p := b.path(key)
	if err := os.Remove(p); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("store: %w", err)
	}
	return b.syncDir(filepath.Dir(p))
}

// Exists implements Blobs.
func (b *FSBlobs) Exists(ctx context.Context, key string) (bool, error) {
	if !validKey(key) {
		return false, fmt.Errorf("store: invalid blob key %q", key)
	}
	_, err := os.Stat(b.path(key))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	}
	return false, fmt.Errorf("store: %w", err)
}

// Ping creates and removes a file under tmp.
func (b *FSBlobs) Ping(ctx context.Context) error {
	f, err := os.CreateTemp(b.tmp, "ping-*"+partExt)
	if err != nil {
		return fmt.Errorf("store: data directory not writable: %w", err)
	}
	name := f.Name()
	_, werr := f.Write([]byte{0})
	cerr := f.Close()
	rerr := os.Remove(name)
	if err := errors.Join(werr, cerr, rerr); err != nil {
		return fmt.Errorf("store: data directory not writable: %w", err)
	}
	return nil
}

func (b *FSBlobs) path(key string) string {
	return filepath.Join(b.root, key[0:2], key+blobExt)
}

// validKey accepts what the Store produces: 64 lower-case hex digits. It
// also keeps keys from naming anything outside the tree.
func validKey(key string) bool {
	return len(key) == 64 && validKeyChars(key)
}

func validKeyChars(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// syncDir fsyncs a directory, making the names in it durable.
func (b *FSBlobs) syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	err = b.timedSync(d)
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("store: fsync directory: %w", err)
	}
	return nil
}

// syncBlobDir fsyncs the directory of key through its open handle.
func (b *FSBlobs) syncBlobDir(key string) error {
	i, err := strconv.ParseUint(key[:2], 16, 8)
	if err != nil || b.dirs[i] == nil {
		return fmt.Errorf("store: no blob directory for key %q", key)
	}
	if err := b.timedSync(b.dirs[i]); err != nil {
		return fmt.Errorf("store: fsync directory: %w", err)
	}
	return nil
}

func (b *FSBlobs) timedSync(f *os.File) error {
	start := time.Now()
	err := f.Sync()
	b.onFsync(time.Since(start))
	return err
}

// fsWriter is a temp file under tmp/.
type fsWriter struct {
	b    *FSBlobs
	f    *os.File
	name string
	done bool  // committed or aborted
	off  int64 // bytes written
	wb   int64 // bytes handed to early writeback
}

// writebackChunk is how much written data accumulates before writeback to
// the disk is started (see startWriteback): the fsync at the end then has
// little left to wait for.
const writebackChunk = 256 << 10

func (w *fsWriter) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.off += int64(n)
	if w.off-w.wb >= writebackChunk {
		startWriteback(w.f, w.wb, w.off-w.wb)
		w.wb = w.off
	}
	return n, err
}

func (w *fsWriter) ReadAt(p []byte, off int64) (int, error) { return w.f.ReadAt(p, off) }

func (w *fsWriter) Sync() error {
	if err := w.b.timedSync(w.f); err != nil {
		return fmt.Errorf("store: fsync blob: %w", err)
	}
	return nil
}

// Commit renames the temp file to its final name and fsyncs the final
// directory. The caller has fsync'd the content (Sync) first: rename
// before the data is durable could expose an empty or partial file after
// a power loss on file systems that do not order data before metadata.
func (w *fsWriter) Commit(ctx context.Context, key string) error {
	if w.done {
		return errors.New("store: blob writer already finished")
	}
	if !validKey(key) {
		return fmt.Errorf("store: invalid blob key %q", key)
	}
	if err := w.f.Close(); err != nil {
		_ = w.Abort()
		return fmt.Errorf("store: close temp blob: %w", err)
	}
	final := w.b.path(key)
	if err := os.Rename(w.name, final); err != nil {
		_ = w.Abort()
		return fmt.Errorf("store: publish blob: %w", err)
	}
	w.done = true
	return w.b.syncBlobDir(key)
}

func (w *fsWriter) Abort() error {
	if w.done {
		return nil
	}
	w.done = true
	cerr := w.f.Close()
	if errors.Is(cerr, os.ErrClosed) {
		cerr = nil
	}
	rerr := os.Remove(w.name)
	if errors.Is(rerr, fs.ErrNotExist) {
		rerr = nil
	}
	return errors.Join(cerr, rerr)
}
