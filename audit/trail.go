package audit

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Defaults for Options.
const (
	// DefaultRetention is six years (HIPAA 45 CFR 164.316(b)(2)(i) keeps
	// documentation six years) as 6*365 days plus 2 leap days: any six
	// consecutive years hold at most two 29 Februaries, so a record is
	// never removed early.
	DefaultRetention = (6*365 + 2) * 24 * time.Hour
	// DefaultMaxFileBytes rotates a file that grows past 64 MiB within a day.
	DefaultMaxFileBytes = 64 << 20
	// DefaultCommitInterval is the longest a queued record waits for its
	// group commit (write, fsync, HEAD).
	DefaultCommitInterval = 100 * time.Millisecond

	// queueLen bounds records waiting for the writer; Record blocks (until
	// its context ends) rather than grow memory without bound.
	queueLen = 4096

	// recordOverhead is about what the JSON line adds to a message (seq,
	// time, two hashes, quoting); rotation only needs an estimate.
	recordOverhead = 256
)

// Options configures a Trail. The zero value is usable.
type Options struct {
	SourceID       string        // AuditSourceID for messages without one (default: the host name)
	Retention      time.Duration // whole files older than this are removed (default DefaultRetention)
	MaxFileBytes   int64         // rotate a file past this size (default DefaultMaxFileBytes)
	CommitInterval time.Duration // group commit period (default DefaultCommitInterval)
	Registerer     prometheus.Registerer
	Now            func() time.Time // clock (default time.Now); tests move it

	// Syslog forwards every record to a collector: "tls://host:6514"
	// (RFC 5425) or "tcp://host:514" (RFC 6587 octet counting). "" disables.
	Syslog         string
	SyslogCA       string // PEM file of CAs to trust for the collector (default: system roots)
	SyslogCert     string // PEM client certificate, for collectors that require one
	SyslogKey      string // its PEM private key
	SyslogHostname string // HOSTNAME field (default: the host name)
}

type entry struct {
	msg   []byte
	flush chan error // non-nil: a Flush marker, answered after the commit
}

// Trail is an open, append-only, hash-chained audit trail. Its methods
// are safe for concurrent use; one goroutine it owns does all writing.
type Trail struct {
	dir string
	opt Options
	log *slog.Logger
	key []byte

	mu     sync.RWMutex // guards closed against sends on queue
	closed bool
	queue  chan entry
	wg     sync.WaitGroup
	failed atomic.Pointer[error] // the first write error; the trail refuses records after it

	committed atomic.Uint64 // last seq durable on disk
	commitCh  chan struct{} // signalled after each commit (forwarder)
	stopFwd   context.CancelFunc

	records, errs prometheus.Counter
	fwdMetrics    forwardMetrics

	// Owned by the writer goroutine.
	f       *os.File
	w       *bufio.Writer
	cur     trailFile
	size    int64
	next    uint64
	prev    string
	pending bool
}

// Open opens (creating if needed) the trail in dir and resumes its chain
// from the last valid record. A partial last line — a write a crash cut
// short, never acknowledged by Flush — is cut off (and logged); any other
// damage makes Open fail, so a broken trail is looked at (radgate audit
// verify) rather than silently continued.
func Open(dir string, opt Options, log *slog.Logger) (*Trail, error) {
	if opt.Retention <= 0 {
		opt.Retention = DefaultRetention
	}
	if opt.MaxFileBytes <= 0 {
		opt.MaxFileBytes = DefaultMaxFileBytes
	}
	if opt.CommitInterval <= 0 {
		opt.CommitInterval = DefaultCommitInterval
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.SourceID == "" {
		opt.SourceID, _ = os.Hostname()
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	key, err := loadKey(dir, true)
	if err != nil {
		return nil, err
	}
	t := &Trail{
		dir: dir, opt: opt, log: log, key: key,
		queue:    make(chan entry, queueLen),
		commitCh: make(chan struct{}, 1),
		records:  prometheus.NewCounter(prometheus.CounterOpts{Name: "radgate_audit_records_total", Help: "Audit records appended to the trail."}),
		errs:     prometheus.NewCounter(prometheus.CounterOpts{Name: "radgate_audit_errors_total", Help: "Audit trail write, commit and prune errors."}),
	}
	t.fwdMetrics = newForwardMetrics()
	if err := t.resume(); err != nil {
		return nil, err
	}
	var fwd *forwarder
	if opt.Syslog != "" {
		if fwd, err = newForwarder(t); err != nil {
			t.closeFile()
			return nil, err
		}
	}
	if r := opt.Registerer; r != nil {
		for _, c := range append([]prometheus.Collector{t.records, t.errs}, t.fwdMetrics.collectors()...) {
			if err := r.Register(c); err != nil {
				t.closeFile()
				return nil, fmt.Errorf("audit: metrics: %w", err)
			}
		}
	}
	// The writer stops the forwarder when it ends, so stopFwd is set
	// before either goroutine starts.
	var fwdCtx context.Context
	if fwd != nil {
		fwdCtx, t.stopFwd = context.WithCancel(context.Background())
	}
	t.wg.Add(1)
	go t.run()
	if fwd != nil {
		t.wg.Add(1)
		go func() {
			defer t.wg.Done()
			fwd.run(fwdCtx)
		}()
	}
	return t, nil
}

// resume finds the chain's end: the newest file holding records, checked
// line by line, its partial tail (if any) cut, and HEAD not ahead of it.
func (t *Trail) resume() error {
	files, err := listFiles(t.dir)
	if err != nil {
		return err
	}
	t.next, t.prev = 1, zeroHash
	if a, ok, err := readMark(t.dir, anchorFile, t.key); err != nil {
		return err
	} else if ok {
		t.next, t.prev = a.Seq, a.Hash
	}
	for i := len(files) - 1; i >= 0; i-- {
		f := files[i]
		c := chain{key: t.key, next: f.First}
		end, brk, err := c.scanFile(t.dir, f, nil)
		if err != nil {
			return err
		}
		if brk != nil {
			if i != len(files)-1 || !errors.Is(brk, ErrTruncated) {
				return brk
			}
			path := filepath.Join(t.dir, f.Name)
			t.log.Warn("audit: cutting a partial record left by a crash", "file", f.Name, "line", brk.Line, "offset", end)
			if err := os.Truncate(path, end); err != nil {
				return err
			}
		}
		if c.next > f.First {
			t.next, t.prev = c.next, c.prev
			break
		}
	}
	if h, ok, err := readMark(t.dir, headFile, t.key); err != nil {
		return err
	} else if ok && h.Seq >= t.next {
		return &BreakError{File: headFile, Seq: t.next, Err: ErrTruncated,
			Reason: fmt.Sprintf("HEAD committed seq %d but the trail ends at %d", h.Seq, t.next-1)}
	}
	t.committed.Store(t.next - 1)
	if len(files) > 0 {
		last := files[len(files)-1]
		f, err := os.OpenFile(filepath.Join(t.dir, last.Name), os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return err
		}
		st, err := f.Stat()
		if err != nil {
			f.Close()
			return err
		}
		t.f, t.w, t.cur, t.size = f, bufio.NewWriter(f), last, st.Size()
	}
	return nil
}

// Record queues m for the trail and returns once it is queued (not yet
// durable: Flush waits for that). A zero EventDateTime is set to now and
// an empty AuditSourceID to Options.SourceID.
func (t *Trail) Record(ctx context.Context, m Message) error {
	if m.Event.DateTime.IsZero() {
		m.Event.DateTime = t.opt.Now()
	}
	if m.Source.SourceID == "" {
		m.Source.SourceID = t.opt.SourceID
	}
	doc, err := m.Marshal()
	if err != nil {
		return err
	}
	// The JSON around the message (seq, time, hashes, escapes) fits in the
	// margin unless the message escapes heavily; append checks exactly.
	if len(doc) > MaxRecordBytes/2 {
		return fmt.Errorf("%w: message of %d bytes, limit %d", ErrInvalid, len(doc), MaxRecordBytes/2)
	}
	return t.enqueue(ctx, entry{msg: doc})
}

// Flush waits until every record queued before it is written, fsynced and
// in HEAD.
func (t *Trail) Flush(ctx context.Context) error {
	done := make(chan error, 1)
	if err := t.enqueue(ctx, entry{flush: done}); err != nil {
		return err
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (t *Trail) enqueue(ctx context.Context, e entry) error {
	if p := t.failed.Load(); p != nil {
		return *p
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	if t.closed {
		return ErrClosed
	}
	select {
	case t.queue <- e:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close commits what is queued, stops the writer and the forwarder (which
// resumes from its cursor at the next Open) and closes the files.
func (t *Trail) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return ErrClosed
	}
	t.closed = true
	close(t.queue)
	t.mu.Unlock()
	t.wg.Wait()
	if p := t.failed.Load(); p != nil {
		return *p
	}
	return nil
}

// Started records Application Start and, when fingerprint differs from the
// one stored at the previous start (or none was), a Software
// Configuration Security Alert; then it stores fingerprint in DIR/CONFIG.
func (t *Trail) Started(ctx context.Context, a AppEvent, fingerprint string) error {
	if err := t.Record(ctx, ApplicationStart(a)); err != nil {
		return err
	}
	path := filepath.Join(t.dir, configFile)
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if strings.TrimSpace(string(old)) == fingerprint {
		return nil
	}
	if err := t.Record(ctx, ConfigurationChanged(a, fingerprint)); err != nil {
		return err
	}
	return writeAtomic(t.dir, configFile, []byte(fingerprint+"\n"))
}

// run is the writer goroutine: it appends queued records and commits them
// as a group at most every CommitInterval, or when a Flush asks.
func (t *Trail) run() {
	defer t.wg.Done()
	defer t.closeFile()
	if t.stopFwd != nil {
		defer t.stopFwd()
	}
	t.prune()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	armed := false
	for {
		select {
		case e, ok := <-t.queue:
			if !ok {
				t.commit()
				return
			}
			if e.flush != nil {
				e.flush <- t.commit()
				continue
			}
			t.append(e.msg)
			if !armed {
				timer.Reset(t.opt.CommitInterval)
				armed = true
			}
		case <-timer.C:
			armed = false
			t.commit()
		}
	}
}

// fail makes err sticky: after a failed write the file's end is unknown,
// so the trail stops taking records rather than chain onto a torn line.
func (t *Trail) fail(err error) {
	err = fmt.Errorf("%w: %v", ErrFailed, err)
	t.failed.CompareAndSwap(nil, &err)
	t.errs.Inc()
	t.log.Error("audit: trail write failed; refusing further records", "err", err)
}

func (t *Trail) append(msg []byte) {
	if t.failed.Load() != nil {
		return
	}
	now := t.opt.Now().UTC()
	// Rotate first: a rotation may prune, and the prune appends its own
	// record, so seq and prev are read only after it.
	if err := t.rotate(now, int64(len(msg))+recordOverhead); err != nil {
		t.fail(err)
		return
	}
	r := record{Seq: t.next, Time: now.Format(timeLayout), Prev: t.prev, Msg: string(msg)}
	r.Hash = sum(t.key, r.Seq, r.Time, r.Prev, r.Msg)
	line := r.encode()
	if len(line) > MaxRecordBytes {
		t.errs.Inc()
		t.log.Error("audit: record over the size limit dropped", "bytes", len(line))
		return
	}
	if _, err := t.w.Write(line); err != nil {
		t.fail(err)
		return
	}
	t.next, t.prev, t.size, t.pending = r.Seq+1, r.Hash, t.size+int64(len(line)), true
	t.records.Inc()
}

// commit makes every appended record durable and moves HEAD to the last.
func (t *Trail) commit() error {
	if p := t.failed.Load(); p != nil {
		return *p
	}
	if !t.pending {
		return nil
	}
	err := t.w.Flush()
	if err == nil {
		err = t.f.Sync()
	}
	if err == nil {
		err = writeMark(t.dir, headFile, t.key, t.next-1, t.prev)
	}
	if err != nil {
		t.fail(err)
		return *t.failed.Load()
	}
	t.pending = false
	t.committed.Store(t.next - 1)
	select {
	case t.commitCh <- struct{}{}:
	default:
	}
	return nil
}

// rotate starts a new file when the day (UTC) changes or the current file
// would pass MaxFileBytes, and then prunes by retention.
func (t *Trail) rotate(now time.Time, n int64) error {
	day := now.Truncate(24 * time.Hour)
	if t.f != nil && t.cur.Date.Equal(day) && (t.size == 0 || t.size+n <= t.opt.MaxFileBytes) {
		return nil
	}
	if t.f != nil {
		if err := t.commit(); err != nil {
			return err
		}
		t.closeFile()
	}
	name := fileName(now, t.next)
	f, err := os.OpenFile(filepath.Join(t.dir, name), os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	if err := syncDir(t.dir); err != nil {
		f.Close()
		return err
	}
	t.f, t.w, t.size = f, bufio.NewWriter(f), 0
	t.cur, _ = parseFileName(name)
	t.prune()
	return nil
}

func (t *Trail) closeFile() {
	if t.f != nil {
		t.f.Close()
		t.f, t.w = nil, nil
	}
}

// prune removes whole files whose day ended more than Retention ago,
// oldest first and never the current one. It first moves ANCHOR to the
// first kept record (its seq and prev), so an interrupted prune leaves
// files Verify recognises as leftovers, and then records the prune itself
// as an Audit Log Used message with action D.
func (t *Trail) prune() {
	files, err := listFiles(t.dir)
	if err != nil {
		t.errs.Inc()
		t.log.Error("audit: prune: listing files", "err", err)
		return
	}
	cutoff := t.opt.Now().Add(-t.opt.Retention)
	k := 0
	for k < len(files)-1 && files[k].Name != t.cur.Name && !files[k].Date.Add(24*time.Hour).After(cutoff) {
		k++
	}
	if k == 0 {
		return
	}
	keep := files[k]
	seq, prev := t.next, t.prev
	if keep.Name != t.cur.Name || t.size > 0 {
		if seq, prev, err = firstRecord(t.dir, keep); err != nil {
			t.errs.Inc()
			t.log.Error("audit: prune: reading the first kept record", "file", keep.Name, "err", err)
			return
		}
	}
	if err := writeMark(t.dir, anchorFile, t.key, seq, prev); err != nil {
		t.errs.Inc()
		t.log.Error("audit: prune: writing ANCHOR", "err", err)
		return
	}
	for _, f := range files[:k] {
		if err := os.Remove(filepath.Join(t.dir, f.Name)); err != nil {
			t.errs.Inc()
			t.log.Error("audit: prune: removing a file", "file", f.Name, "err", err)
		}
	}
	if err := syncDir(t.dir); err != nil {
		t.errs.Inc()
	}
	desc := fmt.Sprintf("removed %d files %s..%s (records before seq %d), retention %s",
		k, files[0].Name, files[k-1].Name, seq, t.opt.Retention)
	t.log.Info("audit: pruned by retention", "files", k, "first_kept_seq", seq)
	abs, _ := filepath.Abs(t.dir)
	m := auditLogPruned(LogUseEvent{
		Header: Header{Source: t.opt.SourceID, Time: t.opt.Now()},
		User:   Node{ID: "radgate", Alt: fmt.Sprint(os.Getpid())},
		Log:    "file://" + filepath.ToSlash(abs),
	}, desc)
	doc, err := m.Marshal()
	if err != nil {
		t.errs.Inc()
		return
	}
	t.append(doc)
}

// firstRecord returns the seq and prev of a file's first record.
func firstRecord(dir string, f trailFile) (uint64, string, error) {
	fh, err := os.Open(filepath.Join(dir, f.Name))
	if err != nil {
		return 0, "", err
	}
	defer fh.Close()
	line, err := bufio.NewReaderSize(fh, MaxRecordBytes).ReadSlice('\n')
	if err != nil {
		return 0, "", fmt.Errorf("%w: %s: no complete first record", ErrMalformed, f.Name)
	}
	r, err := parseRecord(line)
	if err != nil {
		return 0, "", err
	}
	return r.Seq, r.Prev, nil
}
