package dimse

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync/atomic"
	"time"
)

// I/O buffer sizes: reads go straight into the caller's buffer when it is
// larger, so these only batch small PDUs and headers.
const (
	readBufferSize  = 256 << 10
	writeBufferSize = 256 << 10
)

// errReleaseRequested is returned by the message reader when the peer
// sends A-RELEASE-RQ at a message boundary (Sta6, Evt12 → AR-2).
var errReleaseRequested = errors.New("dimse: peer requested release")

// endError carries why an association must end.
type endError struct {
	reason EndReason
	err    error
}

func (e *endError) Error() string { return fmt.Sprintf("%s: %v", e.reason, e.err) }
func (e *endError) Unwrap() error { return e.err }

func endWith(r EndReason, err error) error { return &endError{reason: r, err: err} }

// endReasonOf classifies an error that ended an association.
func endReasonOf(err error) EndReason {
	var ee *endError
	if errors.As(err, &ee) {
		return ee.reason
	}
	var ae *AbortError
	switch {
	case err == nil:
		return EndReleased
	case errors.As(err, &ae):
		return EndPeerAborted
	case errors.Is(err, ErrRejected):
		return EndRejected
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
		return EndPeerClosed
	}
	return EndLocalError
}

// presentationContext is an accepted presentation context.
type presentationContext struct {
	id             byte
	abstractSyntax string
	transferSyntax string
}

// assocConfig holds what an association needs from its server or client.
type assocConfig struct {
	maxPDULength uint32 // what we advertise (P-DATA-TF we accept)
	artim        time.Duration
	idle         time.Duration
	log          *slog.Logger
}

// Association is one DICOM association. It is owned by a single goroutine;
// only abortAsync may be called from another one.
type Association struct {
	conn net.Conn
	br   *bufio.Reader
	bw   *bufio.Writer
	cfg  assocConfig
	st   state

	maxSend  uint32 // the peer's maximum P-DATA-TF length; 0 = no limit
	contexts map[byte]presentationContext

	// P-DATA reading: bytes left in the current P-DATA-TF body and PDV value.
	pduLeft uint32
	pdvLeft uint32
	pdv     pdvHeaderInfo

	stopping atomic.Bool // set by abortAsync
	sawPDU   bool        // a PDU header has been read
	hdr      [pduHeaderLength]byte
	scratch  []byte // encoding buffer, reused
	// Sending data sets: a read-ahead reader and the fragment buffer.
	lookahead *bufio.Reader
	frag      []byte
	log       *slog.Logger
}

type pdvHeaderInfo struct {
	ctx           byte
	command, last bool
}

func newAssociation(conn net.Conn, cfg assocConfig) *Association {
	if cfg.maxPDULength == 0 {
		cfg.maxPDULength = DefaultMaxPDULength
	}
	if cfg.artim <= 0 {
		cfg.artim = DefaultARTIM
	}
	if cfg.idle <= 0 {
		cfg.idle = DefaultIdleTimeout
	}
	return &Association{
		conn:     conn,
		br:       bufio.NewReaderSize(conn, readBufferSize),
		bw:       bufio.NewWriterSize(conn, writeBufferSize),
		cfg:      cfg,
		st:       sta01,
		contexts: make(map[byte]presentationContext),
		log:      cfg.log,
	}
}

// fire applies event e to the state machine and returns the action to take.
// An event the current state does not expect yields the abort action the
// table prescribes and ok=false.
func (a *Association) fire(e event) (transition, bool) {
	t, ok := lookup(a.st, e)
	if !ok {
		a.log.Debug("dimse: event not allowed in state", "state", a.st.String(), "event", e.String(), "action", t.do.String())
	}
	a.st = t.next
	return t, ok
}

// timerFor returns the read deadline duration for the current state: the
// ARTIM timer where Table 9-10 runs it, the idle timeout elsewhere.
func (a *Association) timerFor() (time.Duration, bool) {
	switch a.st {
	case sta02, sta13, sta05, sta07:
		return a.cfg.artim, true
	}
	return a.cfg.idle, false
}

// received is one PDU read from the peer. For P-DATA-TF only the header is
// read; the body is then consumed PDV by PDV (a.pduLeft).
type received struct {
	ev  event
	pdu PDU
	err error // set for Evt17, Evt18, Evt19 and local timeouts
	end EndReason
}

// recv reads the next PDU and classifies it as an event.
func (a *Association) recv() received {
	d, artim := a.timerFor()
	if a.readDeadline(d) {
		return received{ev: evt15, err: ErrServerClosed, end: EndShutdown}
	}
	typ, n, err := readPDUHeader(a.br, &a.hdr)
	if err != nil {
		return a.readFailure(err, artim)
	}
	a.sawPDU = true
	if typ < pduAssociateRQ || typ > pduAbort {
		return received{ev: evt19, err: fmt.Errorf("%w: 0x%02x", ErrUnknownPDU, typ), end: EndUnknownPDU}
	}
	if lim := pduLimit(typ, a.cfg.maxPDULength); n > lim {
		return received{ev: evt19, err: fmt.Errorf("%w: type 0x%02x declares %d bytes, limit %d", ErrPDUTooLarge, typ, n, lim), end: EndPDUTooLarge}
	}
	if typ == pduPDataTF {
		if n < 6 { // one PDV item needs at least 4+2 bytes
			return received{ev: evt19, err: fmt.Errorf("%w: P-DATA-TF of %d bytes", ErrMalformedPDU, n), end: EndMalformedPDU}
		}
		a.pduLeft = n
		return received{ev: evt10}
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(a.br, body); err != nil {
		return a.readFailure(err, artim)
	}
	p, err := DecodePDU(typ, body)
	if err != nil {
		return received{ev: evt19, err: err, end: EndMalformedPDU}
	}
	return received{ev: pduEvent(typ), pdu: p}
}

func (a *Association) readFailure(err error, artim bool) received {
	if a.stopping.Load() {
		return received{ev: evt15, err: ErrServerClosed, end: EndShutdown}
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		if artim {
			return received{ev: evt18, err: fmt.Errorf("%w: ARTIM expired after %s", ErrTimeout, a.cfg.artim), end: EndARTIMExpired}
		}
		// No event of Table 9-10 covers an idle peer: we act as the local
		// user and abort (Evt15).
		return received{ev: evt15, err: fmt.Errorf("%w: idle for %s", ErrTimeout, a.cfg.idle), end: EndIdleTimeout}
	}
	return received{ev: evt17, err: err, end: EndPeerClosed}
}

// send writes a whole PDU and flushes it.
func (a *Association) send(p PDU) error {
	a.scratch = EncodePDU(a.scratch[:0], p)
	_ = a.conn.SetWriteDeadline(time.Now().Add(a.cfg.idle))
	if _, err := a.bw.Write(a.scratch); err != nil {
		return err
	}
	return a.bw.Flush()
}

// abort sends A-ABORT (best effort), then waits in Sta13 for the peer to
// close, at most ARTIM, and closes the transport.
func (a *Association) abort(source byte, r EndReason) {
	var reason byte // not significant when the service user aborts (PS3.8 9.3.8)
	if source == AbortSourceProvider {
		reason = r.abortReason()
	}
	_ = a.send(&Abort{Source: source, Reason: reason})
	a.awaitClose()
}

// awaitClose runs Sta13: PDUs are ignored (AA-6) or answered with A-ABORT
// (AA-7) until the peer closes (Evt17) or ARTIM expires (Evt18).
func (a *Association) awaitClose() {
	a.st = sta13
	for a.st == sta13 {
		r := a.recv()
		if r.ev == evt10 {
			// Discard the P-DATA-TF body without allocating it.
			if _, err := a.br.Discard(int(a.pduLeft)); err != nil {
				r.ev = evt17
			}
			a.pduLeft = 0
		}
		if r.ev == evt15 || r.ev == evt19 {
			// Shutdown or idle while waiting, or more garbage after we
			// aborted: close rather than answer each invalid PDU with an
			// A-ABORT (AA-7), which would let a peer make us send without
			// bound.
			break
		}
		t, _ := a.fire(r.ev)
		if t.do == aa7 {
			_ = a.send(&Abort{Source: AbortSourceProvider, Reason: AbortReasonUnexpectedPDU})
		}
	}
	a.st = sta01
	_ = a.conn.Close()
}

// handleUnexpected acts on a received event that has no normal meaning at
// this point (an abort, a close, an invalid PDU) and returns the error that
// ends the association.
func (a *Association) handleUnexpected(r received) error {
	if r.ev == evt10 && a.pduLeft > 0 {
		// A P-DATA-TF we will not process: skip its body so what follows is
		// read as the next PDU, not as PDUs made of its data.
		if _, err := a.br.Discard(int(a.pduLeft)); err != nil {
			r = a.readFailure(err, true)
		}
		a.pduLeft = 0
	}
	if r.ev == evt16 && r.err == nil {
		r.end, r.err = EndPeerAborted, ErrAborted
	}
	if r.err == nil {
		// A well-formed PDU this state does not expect.
		r.end, r.err = EndUnexpectedPDU, fmt.Errorf("%w: %s received in %s", ErrProtocol, pduName(r.ev), a.st)
	}
	t, _ := a.fire(r.ev)
	switch t.do {
	case aa3: // peer A-ABORT
		_ = a.conn.Close()
		ab, _ := r.pdu.(*Abort)
		if ab == nil {
			ab = &Abort{}
		}
		return &AbortError{Source: ab.Source, Reason: ab.Reason}
	case aa4, aa5, aa2: // transport closed, or ARTIM expired
		_ = a.conn.Close()
		return endWith(r.end, r.err)
	case aa1: // local abort request (idle, shutdown) or a bad PDU in Sta2
		a.abort(AbortSourceUser, r.end)
		return endWith(r.end, r.err)
	}
	// AA-8 and blank cells: a PDU this state does not expect.
	a.abort(AbortSourceProvider, r.end)
	return endWith(r.end, r.err)
}

// pduName names the PDU behind a receive event, for errors and logs.
func pduName(e event) string {
	switch e {
	case evt03:
		return "A-ASSOCIATE-AC"
	case evt04:
		return "A-ASSOCIATE-RJ"
	case evt06:
		return "A-ASSOCIATE-RQ"
	case evt10:
		return "P-DATA-TF"
	case evt12:
		return "A-RELEASE-RQ"
	case evt13:
		return "A-RELEASE-RP"
	case evt16:
		return "A-ABORT"
	}
	return "PDU (" + e.String() + ")"
}

// Abort ends the association with A-ABORT from the service user.
func (a *Association) Abort() {
	if a.st == sta01 {
		return
	}
	a.fire(evt15)
	a.abort(AbortSourceUser, EndLocalError)
}

// readDeadline arms the read deadline and reports whether a shutdown is
// under way. The check comes after arming, so an abortAsync racing with it
// is never lost.
func (a *Association) readDeadline(d time.Duration) (stopping bool) {
	_ = a.conn.SetReadDeadline(time.Now().Add(d))
	return a.stopping.Load()
}

// abortAsync interrupts the owning goroutine, which then aborts (server
// shutdown past its deadline). Safe from any goroutine.
func (a *Association) abortAsync() {
	a.stopping.Store(true)
	_ = a.conn.SetDeadline(time.Now())
}

// nextPDV makes the next PDV item current, reading a new P-DATA-TF PDU when
// the current one is used up. At a message boundary (atBoundary) an
// A-RELEASE-RQ returns errReleaseRequested.
func (a *Association) nextPDV(atBoundary bool) error {
	for a.pduLeft == 0 {
		r := a.recv()
		if r.ev == evt10 {
			if _, ok := a.fire(evt10); !ok {
				return a.handleUnexpected(received{ev: evt19, err: fmt.Errorf("%w: P-DATA-TF in %s", ErrProtocol, a.st), end: EndUnexpectedPDU})
			}
			break
		}
		if r.ev == evt12 && atBoundary && a.st == sta06 {
			a.fire(evt12) // AR-2: A-RELEASE indication → Sta8
			return errReleaseRequested
		}
		return a.handleUnexpected(r)
	}
	if a.pduLeft < 6 {
		return a.protocolAbort(EndMalformedPDU, fmt.Errorf("%w: %d stray bytes in P-DATA-TF", ErrMalformedPDU, a.pduLeft))
	}
	var h [6]byte
	if a.readDeadline(a.cfg.idle) {
		return a.handleUnexpected(received{ev: evt15, err: ErrServerClosed, end: EndShutdown})
	}
	if _, err := io.ReadFull(a.br, h[:]); err != nil {
		return a.handleUnexpected(a.readFailure(err, false))
	}
	n := binary.BigEndian.Uint32(h[:4])
	if n < 2 || n > a.pduLeft-4 {
		return a.protocolAbort(EndMalformedPDU, fmt.Errorf("%w: PDV length %d in a P-DATA-TF with %d bytes left", ErrMalformedPDU, n, a.pduLeft-4))
	}
	a.pduLeft -= 4 + n
	a.pdvLeft = n - 2
	a.pdv = pdvHeaderInfo{ctx: h[4], command: h[5]&0x01 != 0, last: h[5]&0x02 != 0}
	if h[5]&^0x03 != 0 {
		return a.protocolAbort(EndMalformedPDU, fmt.Errorf("%w: reserved bits set in PDV header 0x%02x", ErrMalformedPDU, h[5]))
	}
	if _, ok := a.contexts[a.pdv.ctx]; !ok {
		return a.protocolAbort(EndProtocolError, fmt.Errorf("%w: PDV for presentation context %d that was not accepted", ErrProtocol, a.pdv.ctx))
	}
	return nil
}

// protocolAbort aborts as the service provider (AA-8) for a violation found
// inside a PDU.
func (a *Association) protocolAbort(r EndReason, err error) error {
	a.fire(evt19)
	a.abort(AbortSourceProvider, r)
	return endWith(r, err)
}

// readCommand reads the next DIMSE command set. It returns
// errReleaseRequested when the peer releases instead.
func (a *Association) readCommand() (*Command, presentationContext, error) {
	var buf []byte
	var ctx byte
	for first := true; ; first = false {
		if err := a.nextPDV(first); err != nil {
			return nil, presentationContext{}, err
		}
		if !a.pdv.command {
			return nil, presentationContext{}, a.protocolAbort(EndProtocolError, fmt.Errorf("%w: data set fragment where a command was expected", ErrProtocol))
		}
		if first {
			ctx = a.pdv.ctx
		} else if a.pdv.ctx != ctx {
			return nil, presentationContext{}, a.protocolAbort(EndProtocolError, fmt.Errorf("%w: command fragments on contexts %d and %d", ErrProtocol, ctx, a.pdv.ctx))
		}
		if uint64(len(buf))+uint64(a.pdvLeft) > maxCommandLength {
			return nil, presentationContext{}, a.protocolAbort(EndProtocolError, fmt.Errorf("%w: command set over %d bytes", ErrMalformedCommand, maxCommandLength))
		}
		start := len(buf)
		buf = append(buf, make([]byte, a.pdvLeft)...)
		if _, err := io.ReadFull(a.br, buf[start:]); err != nil {
			return nil, presentationContext{}, a.handleUnexpected(a.readFailure(err, false))
		}
		a.pdvLeft = 0
		if a.pdv.last {
			break
		}
	}
	cmd, err := DecodeCommand(buf)
	if err != nil {
		return nil, presentationContext{}, a.protocolAbort(EndProtocolError, err)
	}
	return cmd, a.contexts[ctx], nil
}

// dataReader streams one data set from the PDVs that follow a command.
type dataReader struct {
	a    *Association
	ctx  byte
	done bool
	err  error
}

func (r *dataReader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	a := r.a
	for a.pdvLeft == 0 {
		if r.done {
			return 0, io.EOF
		}
		if err := a.nextPDV(false); err != nil {
			r.err = fmt.Errorf("%w: %w", ErrInterrupted, err)
			return 0, r.err
		}
		if a.pdv.command || a.pdv.ctx != r.ctx {
			r.err = fmt.Errorf("%w: %w", ErrInterrupted, a.protocolAbort(EndProtocolError, fmt.Errorf("%w: expected a data set fragment on context %d", ErrProtocol, r.ctx)))
			return 0, r.err
		}
		r.done = a.pdv.last
	}
	if uint32(len(p)) > a.pdvLeft {
		p = p[:a.pdvLeft]
	}
	if a.readDeadline(a.cfg.idle) {
		r.err = fmt.Errorf("%w: %w", ErrInterrupted, a.handleUnexpected(received{ev: evt15, err: ErrServerClosed, end: EndShutdown}))
		return 0, r.err
	}
	n, err := a.br.Read(p)
	a.pdvLeft -= uint32(n)
	if err != nil {
		r.err = fmt.Errorf("%w: %w", ErrInterrupted, a.handleUnexpected(a.readFailure(err, false)))
		return n, r.err
	}
	return n, nil
}

// drain consumes what the handler left of the data set so the next
// command can be read.
func (r *dataReader) drain() error {
	_, err := io.Copy(io.Discard, r)
	return err
}

// maxFragment is the largest PDV value we put in one P-DATA-TF PDU.
func (a *Association) maxFragment() uint32 {
	m := a.maxSend
	if m == 0 || m > DefaultMaxPDULength {
		m = DefaultMaxPDULength
	}
	// PDV item length field (4), context ID and header (2); even, so that
	// every fragment but an odd data set's last has even length.
	return (m - 6) &^ 1
}

// writeMessage sends a command and, when data is not nil, the data set read
// from data to its end, fragmented to the peer's limit. One fragment is read
// ahead so the last one can be flagged without knowing the size in advance.
func (a *Association) writeMessage(pc presentationContext, cmd *Command, data io.Reader) error {
	cmd.HasDataSet = data != nil
	a.scratch = EncodeCommand(a.scratch[:0], cmd)
	enc := a.scratch
	_ = a.conn.SetWriteDeadline(time.Now().Add(a.cfg.idle))
	frag := a.maxFragment()
	for len(enc) > 0 {
		n := min(uint32(len(enc)), frag)
		if err := a.writePDVHeader(pc.id, true, n == uint32(len(enc)), n); err != nil {
			return err
		}
		if _, err := a.bw.Write(enc[:n]); err != nil {
			return err
		}
		enc = enc[n:]
	}
	if data != nil {
		if a.lookahead == nil {
			a.lookahead = bufio.NewReaderSize(data, 64<<10)
		} else {
			a.lookahead.Reset(data)
		}
		if uint32(cap(a.frag)) < frag {
			a.frag = make([]byte, frag)
		}
		buf := a.frag[:frag]
		var total int64
		for {
			n, err := io.ReadFull(a.lookahead, buf)
			total += int64(n)
			last := err == io.EOF || err == io.ErrUnexpectedEOF
			if err != nil && !last {
				return err
			}
			if !last {
				if _, perr := a.lookahead.Peek(1); perr == io.EOF {
					last = true
				} else if perr != nil {
					return perr
				}
			}
			if last && total%2 == 1 {
				// Data sets have even length; a deflated one is padded with
				// one trailing NUL (PS3.5 A.5). n < frag here, as frag is even.
				a.frag[n] = 0
				n++
			}
			if err := a.writePDVHeader(pc.id, false, last, uint32(n)); err != nil {
				return err
			}
			_ = a.conn.SetWriteDeadline(time.Now().Add(a.cfg.idle))
			if _, err := a.bw.Write(buf[:n]); err != nil {
				return err
			}
			if last {
				break
			}
		}
		a.lookahead.Reset(nil)
	}
	return a.bw.Flush()
}

// writePDVHeader writes the P-DATA-TF header and one PDV item header for a
// value of n bytes.
func (a *Association) writePDVHeader(ctx byte, command, last bool, n uint32) error {
	t, ok := lookup(a.st, evt09) // DT-1 in Sta6, AR-7 in Sta8
	if !ok {
		return fmt.Errorf("%w: P-DATA request in %s", ErrProtocol, a.st)
	}
	a.st = t.next
	var h [12]byte
	h[0] = pduPDataTF
	binary.BigEndian.PutUint32(h[2:], n+6)
	binary.BigEndian.PutUint32(h[6:], n+2)
	h[10] = ctx
	h[11] = pdvHeader(command, last)
	_, err := a.bw.Write(h[:])
	return err
}
