package dimse

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/radgate/radgate/dcm"
)

// ClientConfig configures an SCU association.
type ClientConfig struct {
	CallingAE    string
	CalledAE     string
	MaxPDULength uint32        // what we accept; 0 = DefaultMaxPDULength
	ARTIM        time.Duration // connect and response timeout; 0 = DefaultARTIM
	IdleTimeout  time.Duration // per-operation I/O timeout; 0 = DefaultIdleTimeout
	Logger       *slog.Logger
	// TLS, when set, runs the association over TLS (PS3.15 B.12): the
	// handshake completes within ARTIM before A-ASSOCIATE-RQ is sent.
	TLS *tls.Config
}

// Proposal is a presentation context to propose: one abstract syntax with
// the transfer syntaxes we can send it in.
type Proposal struct {
	AbstractSyntax   string
	TransferSyntaxes []string
}

// Client is an established association as requestor (SCU). Its methods
// must be called from one goroutine.
type Client struct {
	a     *Association
	msgID uint16
}

// Dial opens a TCP connection to addr and negotiates an association with
// the given proposals (at most 128).
func Dial(ctx context.Context, addr string, cfg ClientConfig, proposals []Proposal) (*Client, error) {
	if len(proposals) == 0 || len(proposals) > maxPresentationContexts {
		return nil, fmt.Errorf("dimse: %d presentation contexts proposed; want 1 to %d", len(proposals), maxPresentationContexts)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	artim := cfg.ARTIM
	if artim <= 0 {
		artim = DefaultARTIM
	}
	d := net.Dialer{Timeout: artim}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dimse: connect %s: %w", addr, err)
	}
	if cfg.TLS != nil {
		if conn, err = clientTLS(ctx, conn, addr, cfg.TLS, artim); err != nil {
			return nil, err
		}
	}
	a := newAssociation(conn, assocConfig{maxPDULength: cfg.MaxPDULength, artim: cfg.ARTIM, idle: cfg.IdleTimeout, log: log})
	stop := context.AfterFunc(ctx, a.abortAsync)
	defer stop()

	a.fire(evt01) // AE-1 → Sta4
	a.fire(evt02) // transport confirmed; AE-2: send A-ASSOCIATE-RQ → Sta5
	rq := &AssociateRQ{
		ProtocolVersion:    protocolVersion,
		CalledAE:           cfg.CalledAE,
		CallingAE:          cfg.CallingAE,
		ApplicationContext: applicationContextName,
		UserInfo: UserInfo{
			MaxLength:                 a.cfg.maxPDULength,
			ImplementationClassUID:    dcm.ImplementationClassUID,
			ImplementationVersionName: dcm.ImplementationVersionName,
		},
	}
	for i, p := range proposals {
		rq.PresentationContexts = append(rq.PresentationContexts, PresentationContextRQ{
			ID: byte(2*i + 1), AbstractSyntax: p.AbstractSyntax, TransferSyntaxes: p.TransferSyntaxes,
		})
	}
	if err := a.send(rq); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("dimse: send A-ASSOCIATE-RQ: %w", err)
	}
	r := a.recv()
	switch r.ev {
	case evt03:
		a.fire(evt03) // AE-3 → Sta6
	case evt04:
		a.fire(evt04) // AE-4: close → Sta1
		_ = conn.Close()
		rj := r.pdu.(*AssociateRJ)
		return nil, &RejectError{Result: rj.Result, Source: rj.Source, Reason: rj.Reason}
	default:
		return nil, ctxErr(ctx, a.handleUnexpected(r))
	}
	ac := r.pdu.(*AssociateAC)
	for _, pc := range ac.PresentationContexts {
		if pc.Result != ResultAcceptance || pc.ID%2 == 0 || int(pc.ID/2) >= len(proposals) {
			continue
		}
		a.contexts[pc.ID] = presentationContext{id: pc.ID, abstractSyntax: proposals[pc.ID/2].AbstractSyntax, transferSyntax: pc.TransferSyntax}
	}
	a.maxSend = ac.UserInfo.MaxLength
	if a.maxSend != 0 && a.maxSend < minPeerPDULength {
		a.Abort()
		return nil, fmt.Errorf("%w: peer maximum PDU length %d is below %d", ErrProtocol, a.maxSend, minPeerPDULength)
	}
	return &Client{a: a}, nil
}

// ctxErr prefers the context's error when it caused the failure.
func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%w (%v)", ctx.Err(), err)
	}
	return err
}

// context returns the accepted presentation context for an abstract syntax
// in a transfer syntax ("" = any).
func (c *Client) context(abstract, ts string) (presentationContext, bool) {
	// Lowest ID first, so the choice is deterministic.
	for id := 1; id < 2*maxPresentationContexts; id += 2 {
		pc, ok := c.a.contexts[byte(id)]
		if ok && pc.abstractSyntax == abstract && (ts == "" || pc.transferSyntax == ts) {
			return pc, true
		}
	}
	return presentationContext{}, false
}

// Accepts reports whether the peer accepted abstract in transfer syntax ts.
func (c *Client) Accepts(abstract, ts string) bool {
	_, ok := c.context(abstract, ts)
	return ok
}

// Echo sends C-ECHO-RQ and returns the response status (PS3.7 9.1.5).
func (c *Client) Echo(ctx context.Context) (Status, error) {
	pc, ok := c.context(dcm.VerificationSOPClass, "")
	if !ok {
		return Status{}, fmt.Errorf("%w: Verification", ErrNoContext)
	}
	return c.request(ctx, pc, &Command{CommandField: CEchoRQ, AffectedSOPClassUID: dcm.VerificationSOPClass}, nil)
}

// Store sends one C-STORE-RQ with the data set read from data to its end,
// encoded in ts, and returns the response status (PS3.7 9.1.1).
func (c *Client) Store(ctx context.Context, sopClass, sopInstance, ts string, prio Priority, data io.Reader) (Status, error) {
	pc, ok := c.context(sopClass, ts)
	if !ok {
		return Status{}, fmt.Errorf("%w: %s in %s", ErrNoContext, dcm.UIDName(sopClass), dcm.UIDName(ts))
	}
	return c.request(ctx, pc, &Command{
		CommandField:           CStoreRQ,
		AffectedSOPClassUID:    sopClass,
		AffectedSOPInstanceUID: sopInstance,
		Priority:               prio,
	}, data)
}

func (c *Client) request(ctx context.Context, pc presentationContext, cmd *Command, data io.Reader) (Status, error) {
	stop := context.AfterFunc(ctx, c.a.abortAsync)
	defer stop()
	c.msgID++
	cmd.MessageID = c.msgID
	if err := c.a.writeMessage(pc, cmd, data); err != nil {
		c.a.Abort()
		return Status{}, ctxErr(ctx, fmt.Errorf("dimse: send %s: %w", commandName(cmd.CommandField), err))
	}
	rsp, rpc, err := c.a.readCommand()
	if err != nil {
		return Status{}, ctxErr(ctx, fmt.Errorf("dimse: await %s response: %w", commandName(cmd.CommandField), err))
	}
	if rsp.HasDataSet {
		if err := (&dataReader{a: c.a, ctx: rpc.id}).drain(); err != nil {
			return Status{}, err
		}
	}
	if rsp.CommandField != cmd.CommandField|responseBit || rsp.MessageIDBeingRespondedTo != cmd.MessageID {
		err := fmt.Errorf("%w: response 0x%04x to message %d, want 0x%04x to %d", ErrProtocol,
			rsp.CommandField, rsp.MessageIDBeingRespondedTo, cmd.CommandField|responseBit, cmd.MessageID)
		c.a.Abort()
		return Status{}, err
	}
	return Status{Code: rsp.Status, Comment: rsp.ErrorComment}, nil
}

func commandName(f uint16) string {
	switch f &^ responseBit {
	case CStoreRQ:
		return "C-STORE"
	case CEchoRQ:
		return "C-ECHO"
	}
	return fmt.Sprintf("command 0x%04x", f)
}

// Release ends the association in an orderly way (PS3.8 7.2): A-RELEASE-RQ,
// then wait for A-RELEASE-RP, answering a release collision as requestor.
func (c *Client) Release(ctx context.Context) error {
	a := c.a
	stop := context.AfterFunc(ctx, a.abortAsync)
	defer stop()
	defer a.conn.Close()
	a.fire(evt11) // AR-1 → Sta7
	if err := a.send(&ReleaseRQ{}); err != nil {
		return fmt.Errorf("dimse: send A-RELEASE-RQ: %w", err)
	}
	for {
		r := a.recv()
		switch {
		case r.ev == evt13 && (a.st == sta07 || a.st == sta11):
			a.fire(evt13) // AR-3: release confirmation, close → Sta1
			return nil
		case r.ev == evt10 && a.st == sta07:
			a.fire(evt10) // AR-6: P-DATA indication; nothing is pending, discard
			if _, err := a.br.Discard(int(a.pduLeft)); err != nil {
				return err
			}
			a.pduLeft = 0
		case r.ev == evt12 && a.st == sta07:
			a.fire(evt12) // AR-8: collision → Sta9; we answer at once
			a.fire(evt14) // AR-9: send A-RELEASE-RP → Sta11
			if err := a.send(&ReleaseRP{}); err != nil {
				return err
			}
		default:
			return ctxErr(ctx, a.handleUnexpected(r))
		}
	}
}

// Abort ends the association with A-ABORT.
func (c *Client) Abort() { c.a.Abort() }

// clientTLS completes a TLS handshake on conn within artim, naming the
// server by addr's host unless tc names it.
func clientTLS(ctx context.Context, conn net.Conn, addr string, tc *tls.Config, artim time.Duration) (net.Conn, error) {
	tc = tc.Clone()
	if tc.ServerName == "" {
		tc.ServerName, _, _ = net.SplitHostPort(addr)
	}
	hctx, cancel := context.WithTimeout(ctx, artim)
	defer cancel()
	c := tls.Client(conn, tc)
	if err := c.HandshakeContext(hctx); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("dimse: TLS with %s: %w", addr, err)
	}
	return c, nil
}
