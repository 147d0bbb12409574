package dimse

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/radgate/radgate/dcm"
)

// Handler receives the data sets of C-STORE requests.
type Handler interface {
	// HandleStore consumes data (the data set, encoded in
	// req.TransferSyntaxUID) and returns the status to answer with. It must
	// return success only once the instance is durable: the C-STORE-RSP is
	// sent after it returns. A read error from data means the association
	// ended mid-transfer; nothing should be kept.
	HandleStore(ctx context.Context, req *StoreRequest, data io.Reader) Status
}

// AssociationEnder is an optional interface of a Handler: it is told when
// an established association ends, and why (EndReleased: the peer sent
// A-RELEASE-RQ, so it had nothing more to send for now).
type AssociationEnder interface {
	AssociationEnded(id uint64, reason EndReason)
}

// StoreRequest describes one C-STORE-RQ (PS3.7 9.1.1).
type StoreRequest struct {
	SOPClassUID       string
	SOPInstanceUID    string
	TransferSyntaxUID string
	Priority          Priority
	MessageID         uint16
	MoveOriginatorAE  string
	Association       AssociationInfo
}

// AssociationInfo identifies the association a request arrived on.
type AssociationInfo struct {
	ID         uint64
	CalledAE   string
	CallingAE  string
	RemoteAddr string
	// TLSPeer is the subject of the peer's verified client certificate
	// (node authentication, PS3.15 B.12); "" without TLS or without one.
	TLSPeer string
}

// TLSRefuser is an optional interface of a Handler: it is told of every
// connection on a TLS port whose handshake failed (plain TCP, an untrusted,
// expired or missing client certificate), so the refusal can be audited as
// a node authentication failure.
type TLSRefuser interface {
	TLSRefused(remoteAddr string, err error)
}

// Server is a DIMSE SCP (C-ECHO and C-STORE), after net/http.Server:
// configure the fields, call Serve with a listener, Shutdown to stop.
type Server struct {
	Policy       Policy
	Handler      Handler
	MaxPDULength uint32        // advertised; 0 = DefaultMaxPDULength
	ARTIM        time.Duration // 0 = DefaultARTIM
	IdleTimeout  time.Duration // 0 = DefaultIdleTimeout
	Logger       *slog.Logger
	Metrics      *Metrics // nil = no metrics

	mu        sync.Mutex
	listeners map[*net.Listener]struct{}
	conns     map[*Association]struct{}
	active    int // established associations
	wg        sync.WaitGroup
	closed    atomic.Bool
	nextID    atomic.Uint64
}

func (s *Server) maxAssociations() int {
	if s.Policy.MaxAssociations > 0 {
		return s.Policy.MaxAssociations
	}
	return DefaultMaxAssociations
}

// maxConnections bounds open TCP connections, associated or not: ARTIM
// bounds how long an idle one lives, this bounds how many.
func (s *Server) maxConnections() int { return 2*s.maxAssociations() + 16 }

func (s *Server) logger() *slog.Logger {
	if s.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Logger
}

// ServeTLS is Serve over TLS: each connection completes its handshake
// (within ARTIM) before any PDU is read, and one that does not is closed
// with a log line and the tls_refused end reason. cfg decides the policy
// (internal/tlsconf: BCP 195, optional client certificates).
func (s *Server) ServeTLS(l net.Listener, cfg *tls.Config) error {
	return s.Serve(tls.NewListener(l, cfg))
}

// Serve accepts connections on l, one goroutine per association, until
// Shutdown. It returns ErrServerClosed after Shutdown.
func (s *Server) Serve(l net.Listener) error {
	if s.Handler == nil {
		return errors.New("dimse: Server.Handler is nil")
	}
	if s.closed.Load() {
		return ErrServerClosed
	}
	s.mu.Lock()
	if s.listeners == nil {
		s.listeners = make(map[*net.Listener]struct{})
		s.conns = make(map[*Association]struct{})
	}
	s.listeners[&l] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, &l)
		s.mu.Unlock()
	}()

	var backoff time.Duration
	for {
		conn, err := l.Accept()
		if err != nil {
			if s.closed.Load() {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				// Temporary (out of file descriptors): back off as net/http does.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.logger().Warn("dimse: accept failed; retrying", "err", err, "backoff", backoff)
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		if !s.track(conn) {
			continue
		}
	}
}

// track starts the goroutine that owns conn, or refuses it when too many
// connections are open.
func (s *Server) track(conn net.Conn) bool {
	log := s.logger()
	a := newAssociation(conn, assocConfig{
		maxPDULength: s.MaxPDULength, artim: s.ARTIM, idle: s.IdleTimeout, log: log,
	})
	s.mu.Lock()
	if len(s.conns) >= s.maxConnections() {
		s.mu.Unlock()
		log.Warn("dimse: connection refused: too many open connections", "peer", conn.RemoteAddr().String(), "limit", s.maxConnections())
		s.Metrics.associationEnded(EndRejected)
		_ = conn.Close()
		return false
	}
	s.conns[a] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		defer func() {
			s.mu.Lock()
			delete(s.conns, a)
			s.mu.Unlock()
		}()
		s.serveAssociation(a)
	}()
	return true
}

// Shutdown stops accepting, lets established associations finish until ctx
// is done, then aborts those still open and waits for their goroutines.
func (s *Server) Shutdown(ctx context.Context) error {
	s.closed.Store(true)
	s.mu.Lock()
	for l := range s.listeners {
		_ = (*l).Close()
	}
	s.mu.Unlock()

	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	s.mu.Lock()
	n := len(s.conns)
	for a := range s.conns {
		a.abortAsync()
	}
	s.mu.Unlock()
	s.logger().Warn("dimse: shutdown deadline reached; aborting associations", "open", n)
	<-done
	return ctx.Err()
}

// ActiveAssociations returns the number of established associations.
func (s *Server) ActiveAssociations() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.active
}

func (s *Server) serveAssociation(a *Association) {
	id := s.nextID.Add(1)
	peer := a.conn.RemoteAddr().String()
	log := s.logger().With("assoc", id, "peer", peer)
	a.log = log
	start := time.Now()
	established := false
	var err error
	defer func() {
		if p := recover(); p != nil {
			err = endWith(EndHandlerPanic, fmt.Errorf("panic: %v", p))
			log.Error("dimse: panic serving association; aborting it", "panic", p, "stack", string(debug.Stack()))
			a.abort(AbortSourceProvider, EndHandlerPanic)
		}
		_ = a.conn.Close()
		reason := endReasonOf(err)
		s.Metrics.associationEnded(reason)
		if established {
			s.mu.Lock()
			s.active--
			s.mu.Unlock()
			s.Metrics.activeDelta(-1)
			if e, ok := s.Handler.(AssociationEnder); ok {
				e.AssociationEnded(id, reason)
			}
		}
		attrs := []any{"reason", reason.String(), "duration", time.Since(start).Round(time.Millisecond)}
		switch reason {
		case EndReleased:
			log.Debug("dimse: association released", attrs...)
		case EndRejected, EndTLSRefused:
			// Logged where the decision was made.
		case EndPeerClosed:
			if !established && !a.sawPDU {
				// A TCP connect and close with nothing sent: a health check
				// or port probe, not a DICOM peer.
				log.Debug("dimse: connection closed before any PDU", attrs...)
				break
			}
			log.Warn("dimse: association ended abnormally", append(attrs, "err", err)...)
		default:
			log.Warn("dimse: association ended abnormally", append(attrs, "err", err)...)
		}
	}()

	tlsPeer := ""
	if tc, ok := a.conn.(*tls.Conn); ok {
		if tlsPeer, err = s.handshake(tc); err != nil {
			log.Warn("dimse: TLS connection refused", "err", err)
			if r, ok := s.Handler.(TLSRefuser); ok {
				r.TLSRefused(peer, err)
			}
			err = endWith(EndTLSRefused, err)
			return
		}
		if tlsPeer != "" {
			log = log.With("tls_peer", tlsPeer)
			a.log = log
		}
	}
	a.fire(evt05) // AE-5: transport connection indication, ARTIM started
	r := a.recv()
	if r.ev != evt06 {
		err = a.handleUnexpected(r)
		return
	}
	rq := r.pdu.(*AssociateRQ)
	a.fire(evt06) // AE-6: ARTIM stopped, A-ASSOCIATE indication → Sta3
	log = log.With("calling_ae", rq.CallingAE, "called_ae", rq.CalledAE)
	a.log = log

	peerAddr := netip.Addr{}
	if ap, perr := netip.ParseAddrPort(peer); perr == nil {
		peerAddr = ap.Addr()
	}
	rj, why := s.Policy.rejectFor(rq, peerAddr)
	if rj == nil && !s.reserve() {
		rj, why = &AssociateRJ{RejectTransient, RejectSourcePresentation, RejectLocalLimitExceeded}, "too many concurrent associations"
	}
	if rj != nil {
		log.Warn("dimse: association rejected", "why", why, "result", describeReject(rj.Result, rj.Source, rj.Reason))
		s.Metrics.associationRequested("rejected")
		a.fire(evt08) // AE-8: send A-ASSOCIATE-RJ, start ARTIM → Sta13
		if e := a.send(rj); e == nil {
			a.awaitClose()
		}
		err = endWith(EndRejected, ErrRejected)
		return
	}
	established = true
	s.Metrics.activeDelta(1)

	acCtx, accepted := negotiateContexts(rq.PresentationContexts)
	a.contexts = accepted
	if rq.UserInfo.MaxLength != 0 {
		a.maxSend = rq.UserInfo.MaxLength
	}
	ac := &AssociateAC{
		ProtocolVersion:      protocolVersion,
		CalledAE:             rq.CalledAE,
		CallingAE:            rq.CallingAE,
		ApplicationContext:   applicationContextName,
		PresentationContexts: acCtx,
		UserInfo:             answerUserInfo(&rq.UserInfo, a.cfg.maxPDULength),
	}
	a.fire(evt07) // AE-7: send A-ASSOCIATE-AC → Sta6
	if err = a.send(ac); err != nil {
		err = endWith(EndLocalError, err)
		return
	}
	s.Metrics.associationRequested("accepted")
	log.Debug("dimse: association accepted", "contexts_proposed", len(rq.PresentationContexts), "contexts_accepted", len(accepted), "peer_max_pdu", rq.UserInfo.MaxLength)
	if len(accepted) == 0 {
		log.Warn("dimse: association accepted with no usable presentation context", "contexts_proposed", len(rq.PresentationContexts))
	}
	info := AssociationInfo{ID: id, CalledAE: rq.CalledAE, CallingAE: rq.CallingAE, RemoteAddr: peer, TLSPeer: tlsPeer}
	err = s.serveMessages(a, info, log)
}

// handshake completes TLS within ARTIM (a peer that connects and stays
// silent holds nothing longer than one that skips A-ASSOCIATE-RQ) and
// returns the verified client certificate's subject, if any.
func (s *Server) handshake(tc *tls.Conn) (string, error) {
	artim := s.ARTIM
	if artim <= 0 {
		artim = DefaultARTIM
	}
	ctx, cancel := context.WithTimeout(context.Background(), artim)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		return "", err
	}
	if certs := tc.ConnectionState().PeerCertificates; len(certs) > 0 {
		return certs[0].Subject.String(), nil
	}
	return "", nil
}

// reserve counts a new established association if the limit allows.
func (s *Server) reserve() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.active >= s.maxAssociations() {
		return false
	}
	s.active++
	return true
}

// serveMessages runs the DIMSE loop of an established association until
// it is released, aborted or fails. A nil error means an orderly release.
func (s *Server) serveMessages(a *Association, info AssociationInfo, log *slog.Logger) error {
	ctx := context.Background()
	for {
		cmd, pc, err := a.readCommand()
		if errors.Is(err, errReleaseRequested) {
			a.fire(evt14) // AR-4: send A-RELEASE-RP, start ARTIM → Sta13
			if err := a.send(&ReleaseRP{}); err != nil {
				return endWith(EndLocalError, err)
			}
			a.awaitClose()
			return nil
		}
		if err != nil {
			return err
		}
		if cmd.IsResponse() {
			return a.protocolAbort(EndProtocolError, fmt.Errorf("%w: unexpected response 0x%04x", ErrProtocol, cmd.CommandField))
		}
		var rsp *Command
		switch cmd.CommandField {
		case CEchoRQ:
			rsp = &Command{CommandField: CEchoRSP, AffectedSOPClassUID: cmd.AffectedSOPClassUID, Status: StatusSuccess}
			s.Metrics.message("C-ECHO", "success", 0)
		case CStoreRQ:
			rsp, err = s.serveStore(ctx, a, cmd, pc, info, log)
			if err != nil {
				return err
			}
		case CCancelRQ:
			continue // nothing is pending: C-CANCEL needs no answer (PS3.7 9.3.2.3)
		default:
			if cmd.HasDataSet {
				if err := (&dataReader{a: a, ctx: pc.id}).drain(); err != nil {
					return err
				}
			}
			log.Warn("dimse: unsupported DIMSE command", "command_field", fmt.Sprintf("0x%04x", cmd.CommandField))
			rsp = &Command{CommandField: cmd.CommandField | responseBit, AffectedSOPClassUID: cmd.AffectedSOPClassUID, Status: StatusUnrecognizedOperation}
			s.Metrics.message("other", "failure", 0)
		}
		rsp.MessageIDBeingRespondedTo = cmd.MessageID
		if err := a.writeMessage(pc, rsp, nil); err != nil {
			return endWith(EndLocalError, err)
		}
	}
}

// serveStore runs one C-STORE (PS3.4 B.2): the data set streams to the
// handler; the response is built from its status once it returns.
func (s *Server) serveStore(ctx context.Context, a *Association, cmd *Command, pc presentationContext, info AssociationInfo, log *slog.Logger) (*Command, error) {
	if !cmd.HasDataSet {
		return nil, a.protocolAbort(EndProtocolError, fmt.Errorf("%w: C-STORE-RQ without a data set", ErrProtocol))
	}
	start := time.Now()
	dr := &dataReader{a: a, ctx: pc.id}
	cr := &countingReader{r: dr}
	var st Status
	switch {
	case pc.abstractSyntax == dcm.VerificationSOPClass || cmd.AffectedSOPClassUID != pc.abstractSyntax:
		// PS3.4 B.2.3: the SOP class must match the presentation context.
		st = Status{Code: StatusSOPClassNotSupported, Comment: "SOP class does not match the presentation context"}
	default:
		st = s.Handler.HandleStore(ctx, &StoreRequest{
			SOPClassUID:       cmd.AffectedSOPClassUID,
			SOPInstanceUID:    cmd.AffectedSOPInstanceUID,
			TransferSyntaxUID: pc.transferSyntax,
			Priority:          cmd.Priority,
			MessageID:         cmd.MessageID,
			MoveOriginatorAE:  cmd.MoveOriginatorAE,
			Association:       info,
		}, cr)
	}
	if dr.err != nil { // the association ended mid-data set
		return nil, dr.err
	}
	if err := dr.drain(); err != nil {
		return nil, err
	}
	s.Metrics.message("C-STORE", st.Class(), cr.n)
	s.Metrics.observeStore(time.Since(start))
	if !st.OK() || st.Class() == "warning" {
		log.Warn("dimse: C-STORE not fully successful", "status", st.String(), "sop_instance", dcm.UIDRef(cmd.AffectedSOPInstanceUID), "sop_class", dcm.UIDName(cmd.AffectedSOPClassUID))
	}
	return &Command{
		CommandField:           CStoreRSP,
		AffectedSOPClassUID:    cmd.AffectedSOPClassUID,
		AffectedSOPInstanceUID: cmd.AffectedSOPInstanceUID,
		Status:                 st.Code,
		ErrorComment:           st.Comment,
	}, nil
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
