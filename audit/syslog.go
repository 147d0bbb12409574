package audit

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"

	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Forwarding limits.
const (
	// syslogFacility is authpriv (RFC 5424 6.2.1, code 10), where IHE ATNA
	// sends audit messages.
	syslogFacility  = 10
	severityWarning = 4 // a failure outcome
	severityNotice  = 5 // everything else
	syslogAppName   = "radgate"
	syslogMsgID     = "IHE+RFC-3881" // IHE ITI TF-2 3.20.6 MSGID for RFC 3881 / DICOM messages
	utf8BOM         = "\xef\xbb\xbf" // RFC 5424 6.4: MSG-UTF8 starts with a BOM

	forwardBatch     = 256 // records per write (and per cursor update)
	dialTimeout      = 10 * time.Second
	writeTimeout     = 10 * time.Second
	minBackoff       = 200 * time.Millisecond
	maxBackoff       = time.Minute
	maxHostnameBytes = 255 // RFC 5424 6.2.4
)

type forwardMetrics struct {
	sent, errs prometheus.Counter
	pending    prometheus.Gauge
}

func newForwardMetrics() forwardMetrics {
	return forwardMetrics{
		sent:    prometheus.NewCounter(prometheus.CounterOpts{Name: "radgate_audit_forwarded_total", Help: "Audit records sent to the syslog collector."}),
		errs:    prometheus.NewCounter(prometheus.CounterOpts{Name: "radgate_audit_forward_errors_total", Help: "Failed syslog connections and writes."}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{Name: "radgate_audit_forward_pending", Help: "Durable audit records not yet sent to the syslog collector."}),
	}
}

func (m forwardMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.sent, m.errs, m.pending}
}

// forwarder sends the durable trail to a syslog collector, from the seq
// after DIR/syslog.cursor. Delivery is at least once: the cursor moves
// after a write succeeds, and a write TCP accepted may still be lost with
// the connection (RFC 5425 has no acknowledgement); a restart may resend
// the last batch.
type forwarder struct {
	t        *Trail
	network  string // "tcp"
	addr     string
	tls      *tls.Config // nil for plain TCP
	hostname string
	procID   string
}

func newForwarder(t *Trail) (*forwarder, error) {
	u, err := url.Parse(t.opt.Syslog)
	if err != nil || u.Host == "" || u.Port() == "" {
		return nil, fmt.Errorf("%w: syslog %q: want tls://HOST:PORT or tcp://HOST:PORT", ErrConfig, t.opt.Syslog)
	}
	f := &forwarder{t: t, network: "tcp", addr: u.Host, procID: strconv.Itoa(os.Getpid())}
	switch u.Scheme {
	case "tcp":
	case "tls":
		// RFC 5425 with BCP 195: TLS 1.2 or later, the collector's name checked.
		f.tls = &tls.Config{MinVersion: tls.VersionTLS12, ServerName: u.Hostname()}
		if t.opt.SyslogCA != "" {
			pem, err := os.ReadFile(t.opt.SyslogCA)
			if err != nil {
				return nil, fmt.Errorf("%w: syslog CA: %v", ErrConfig, err)
			}
			f.tls.RootCAs = x509.NewCertPool()
			if !f.tls.RootCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("%w: syslog CA %s holds no PEM certificate", ErrConfig, t.opt.SyslogCA)
			}
		}
		if t.opt.SyslogCert != "" || t.opt.SyslogKey != "" {
			cert, err := tls.LoadX509KeyPair(t.opt.SyslogCert, t.opt.SyslogKey)
			if err != nil {
				return nil, fmt.Errorf("%w: syslog client certificate: %v", ErrConfig, err)
			}
			f.tls.Certificates = []tls.Certificate{cert}
		}
	default:
		return nil, fmt.Errorf("%w: syslog scheme %q: want tls or tcp", ErrConfig, u.Scheme)
	}
	f.hostname = syslogHostname(t.opt.SyslogHostname)
	return f, nil
}

// syslogHostname is a valid RFC 5424 HOSTNAME (PRINTUSASCII, 1..255) or NILVALUE.
func syslogHostname(h string) string {
	if h == "" {
		h, _ = os.Hostname()
	}
	if h == "" || len(h) > maxHostnameBytes {
		return "-"
	}
	for i := 0; i < len(h); i++ {
		if h[i] < 33 || h[i] > 126 {
			return "-"
		}
	}
	return h
}

func (f *forwarder) run(ctx context.Context) {
	t := f.t
	cursor := readCursor(t.dir)
	rd := &seqReader{dir: t.dir}
	defer rd.close()
	var conn, raw net.Conn // raw is conn's TCP connection (the same for tcp://)
	defer func() {
		if conn != nil {
			conn.Close()
		}
	}()
	backoff := minBackoff
	wait := func() bool {
		f.t.fwdMetrics.errs.Inc()
		select {
		case <-time.After(backoff):
			backoff = min(2*backoff, maxBackoff)
			return true
		case <-ctx.Done():
			return false
		}
	}
	var buf bytes.Buffer
	for {
		committed := t.committed.Load()
		t.fwdMetrics.pending.Set(float64(committed - min(cursor, committed)))
		if cursor >= committed {
			select {
			case <-t.commitCh:
				continue
			case <-ctx.Done():
				return
			}
		}
		if conn != nil && !alive(raw) {
			conn.Close()
			conn = nil
		}
		if conn == nil {
			c, r, err := f.dial(ctx)
			if err != nil {
				if ctx.Err() == nil {
					t.log.Warn("audit: syslog collector unreachable; will retry", "addr", f.addr, "err", err, "backoff", backoff)
				}
				if !wait() {
					return
				}
				continue
			}
			conn, raw = c, r
			context.AfterFunc(ctx, func() { c.Close() })
		}
		buf.Reset()
		last, n := cursor, 0
		for last < committed && n < forwardBatch {
			r, err := rd.read(last + 1)
			var gone *prunedError
			if errors.As(err, &gone) {
				t.log.Warn("audit: records pruned before they were forwarded", "from", last+1, "to", gone.first-1)
				last = gone.first - 1
				continue
			}
			if err != nil {
				t.log.Error("audit: reading the trail to forward", "seq", last+1, "err", err)
				break
			}
			f.frame(&buf, r)
			last, n = r.Seq, n+1
		}
		if last == cursor {
			if !wait() {
				return
			}
			continue
		}
		if buf.Len() > 0 {
			conn.SetWriteDeadline(time.Now().Add(writeTimeout))
			if _, err := conn.Write(buf.Bytes()); err != nil {
				conn.Close()
				conn = nil
				if ctx.Err() == nil {
					t.log.Warn("audit: syslog write failed; will resend", "err", err)
				}
				if !wait() {
					return
				}
				continue
			}
		}
		cursor, backoff = last, minBackoff
		t.fwdMetrics.sent.Add(float64(n))
		if err := writeAtomic(t.dir, cursorFile, []byte(strconv.FormatUint(cursor, 10)+"\n")); err != nil {
			t.log.Error("audit: writing the syslog cursor", "err", err)
		}
	}
}

// dial connects and, for tls://, completes the handshake. It returns the
// raw TCP connection too, for alive.
func (f *forwarder) dial(ctx context.Context) (conn, raw net.Conn, err error) {
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	var d net.Dialer
	raw, err = d.DialContext(ctx, f.network, f.addr)
	if err != nil || f.tls == nil {
		return raw, raw, err
	}
	tc := tls.Client(raw, f.tls)
	if err := tc.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, nil, err
	}
	return tc, raw, nil
}

// alive says whether an idle connection still stands. A collector never
// sends after the handshake, so anything readable — EOF, a reset, a TLS
// close_notify — means it has gone; without this check the first write
// after a collector restart lands in a dead socket and is lost. It reads
// the raw TCP connection so the TLS state is untouched.
func alive(raw net.Conn) bool {
	raw.SetReadDeadline(time.Now().Add(time.Millisecond))
	defer raw.SetReadDeadline(time.Time{})
	var b [1]byte
	_, err := raw.Read(b[:])
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// frame appends one RFC 5424 message, octet-counted (RFC 5425 4.3,
// RFC 6587 3.4.1): "LEN SP <PRI>1 TIMESTAMP HOSTNAME APP PROCID MSGID - BOM XML".
func (f *forwarder) frame(buf *bytes.Buffer, r record) {
	sev := severityNotice
	var probe struct {
		Event struct {
			Outcome int `xml:"EventOutcomeIndicator,attr"`
		} `xml:"EventIdentification"`
	}
	if xml.Unmarshal([]byte(r.Msg), &probe) == nil && probe.Event.Outcome != 0 {
		sev = severityWarning
	}
	ts := r.Time
	if t, err := time.Parse(timeLayout, r.Time); err == nil {
		ts = t.UTC().Format("2006-01-02T15:04:05.000000Z07:00") // RFC 5424 6.2.3: at most 6 fraction digits
	}
	msg := fmt.Sprintf("<%d>1 %s %s %s %s %s - %s%s",
		syslogFacility*8+sev, ts, f.hostname, syslogAppName, f.procID, syslogMsgID, utf8BOM, r.Msg)
	buf.WriteString(strconv.Itoa(len(msg)))
	buf.WriteByte(' ')
	buf.WriteString(msg)
}

func readCursor(dir string) uint64 {
	b, err := os.ReadFile(filepath.Join(dir, cursorFile))
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseUint(string(bytes.TrimSpace(b)), 10, 64)
	return n
}

// prunedError says the wanted seq is older than the oldest kept file.
type prunedError struct{ first uint64 }

func (e *prunedError) Error() string {
	return fmt.Sprintf("audit: records before seq %d pruned", e.first)
}

// seqReader reads committed records in seq order across files, keeping
// its place so forwarding is one sequential read.
type seqReader struct {
	dir  string
	f    *os.File
	br   *bufio.Reader
	next uint64
}

func (s *seqReader) close() {
	if s.f != nil {
		s.f.Close()
		s.f = nil
	}
}

// read returns record seq, which must be committed (so its line is whole).
func (s *seqReader) read(seq uint64) (record, error) {
	if s.f == nil || seq != s.next {
		if err := s.seek(seq); err != nil {
			return record{}, err
		}
	}
	reopened := false
	for {
		line, err := s.br.ReadSlice('\n')
		if errors.Is(err, io.EOF) && len(line) == 0 && !reopened {
			// The file ended: seq is the first record of a later file.
			if err := s.seek(seq); err != nil {
				return record{}, err
			}
			reopened = true
			continue
		}
		if err != nil {
			return record{}, fmt.Errorf("%w: seq %d not found: %v", ErrMalformed, seq, err)
		}
		r, err := parseRecord(line)
		if err != nil {
			return record{}, err
		}
		if r.Seq < seq {
			continue
		}
		if r.Seq != seq {
			return record{}, fmt.Errorf("%w: seq %d where %d belongs", ErrTampered, r.Seq, seq)
		}
		s.next = seq + 1
		return r, nil
	}
}

// seek opens the file that holds seq: the last one starting at or before it.
func (s *seqReader) seek(seq uint64) error {
	s.close()
	files, err := listFiles(s.dir)
	if err != nil {
		return err
	}
	if len(files) == 0 || files[0].First > seq {
		first := seq + 1
		if len(files) > 0 {
			first = files[0].First
		}
		return &prunedError{first: first}
	}
	i := len(files) - 1
	for files[i].First > seq {
		i--
	}
	f, err := os.Open(filepath.Join(s.dir, files[i].Name))
	if err != nil {
		return err
	}
	s.f, s.br, s.next = f, bufio.NewReaderSize(f, MaxRecordBytes), seq
	return nil
}
