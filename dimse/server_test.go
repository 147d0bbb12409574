package dimse

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/radgate/radgate/dcm"
	"github.com/radgate/radgate/internal/peertest"
)

const ctImageStorage = "1.2.840.10008.5.1.4.1.1.2"

// memHandler keeps what it receives in memory: the tests check the protocol
// layer, and the real store has its own tests.
type memHandler struct {
	mu       sync.Mutex
	got      map[string][]byte
	status   uint16
	started  chan struct{}
	readErrs []error
}

func newMemHandler() *memHandler {
	return &memHandler{got: map[string][]byte{}, started: make(chan struct{}, 16)}
}

func (h *memHandler) HandleStore(ctx context.Context, req *StoreRequest, data io.Reader) Status {
	select {
	case h.started <- struct{}{}:
	default:
	}
	b, err := io.ReadAll(data)
	h.mu.Lock()
	defer h.mu.Unlock()
	if err != nil {
		h.readErrs = append(h.readErrs, err)
		return Status{Code: StatusProcessingFailure}
	}
	h.got[req.SOPInstanceUID] = b
	return Status{Code: h.status}
}

type testServer struct {
	*Server
	addr string
	h    *memHandler
	logs *bytes.Buffer
	mu   *sync.Mutex // guards logs
	done chan error
}

func startServer(t *testing.T, mod func(*Server)) *testServer {
	t.Helper()
	return startServing(t, mod, (*Server).Serve)
}

// startServing is startServer with the serving call chosen (ServeTLS).
func startServing(t *testing.T, mod func(*Server), serve func(*Server, net.Listener) error) *testServer {
	t.Helper()
	baseline := runtime.NumGoroutine()
	logs := &bytes.Buffer{}
	mu := &sync.Mutex{}
	h := newMemHandler()
	s := &Server{
		Policy:  Policy{AETitle: "RADGATE"},
		Handler: h,
		ARTIM:   2 * time.Second,
		Logger:  slog.New(slog.NewTextHandler(lockedWriter{mu, logs}, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Metrics: NewMetrics(nil),
	}
	if mod != nil {
		mod(s)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{Server: s, addr: l.Addr().String(), h: h, logs: logs, mu: mu, done: make(chan error, 1)}
	go func() { ts.done <- serve(s, l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
		peertest.NoPHI(t, "DIMSE server log", string(ts.logBytes()))
		if err := <-ts.done; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v", err)
		}
		// Goroutine leak check: every association goroutine is gone.
		deadline := time.Now().Add(3 * time.Second)
		for runtime.NumGoroutine() > baseline && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if n := runtime.NumGoroutine(); n > baseline {
			buf := make([]byte, 1<<16)
			t.Errorf("%d goroutines left (baseline %d):\n%s", n, baseline, buf[:runtime.Stack(buf, true)])
		}
	})
	return ts
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func dialTest(t *testing.T, addr string, cfg ClientConfig, props ...Proposal) *Client {
	t.Helper()
	if cfg.CalledAE == "" {
		cfg.CalledAE = "RADGATE"
	}
	if cfg.CallingAE == "" {
		cfg.CallingAE = "TESTSCU"
	}
	if len(props) == 0 {
		props = []Proposal{
			{AbstractSyntax: dcm.VerificationSOPClass, TransferSyntaxes: []string{dcm.ImplicitVRLittleEndian}},
			{AbstractSyntax: ctImageStorage, TransferSyntaxes: []string{dcm.ExplicitVRLittleEndian}},
		}
	}
	c, err := Dial(context.Background(), addr, cfg, props)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestEchoAndStoreRoundTrip(t *testing.T) {
	ts := startServer(t, nil)
	for _, maxPDU := range []uint32{0, 1024, 16384} {
		// maxPDU is what the client accepts; the server fragments to it. The
		// server's own limit (4 MiB) bounds what the client sends.
		c := dialTest(t, ts.addr, ClientConfig{MaxPDULength: maxPDU})
		ctx := context.Background()
		if st, err := c.Echo(ctx); err != nil || st.Code != StatusSuccess {
			t.Fatalf("echo: %v %v", st, err)
		}
		for _, size := range []int{0, 2, 1016, 1018, 1020, 2036, 100_000, 5 << 20} { // around the 1018-byte fragment
			data := make([]byte, size)
			_, _ = rand.Read(data)
			uid := "1.2.3." + string(rune('0'+size%10)) + "." + time.Now().Format("150405.000000000")
			st, err := c.Store(ctx, ctImageStorage, uid, dcm.ExplicitVRLittleEndian, PriorityHigh, bytes.NewReader(data))
			if err != nil || st.Code != StatusSuccess {
				t.Fatalf("store %d bytes: %v %v", size, st, err)
			}
			ts.h.mu.Lock()
			got := ts.h.got[uid]
			ts.h.mu.Unlock()
			if !bytes.Equal(got, data) {
				t.Fatalf("store %d bytes: handler got %d bytes, different", size, len(got))
			}
		}
		if _, err := c.Store(ctx, ctImageStorage, "1.2", dcm.JPEGBaseline8Bit, PriorityMedium, bytes.NewReader(nil)); !errors.Is(err, ErrNoContext) {
			t.Fatalf("store without context: %v", err)
		}
		if err := c.Release(ctx); err != nil {
			t.Fatalf("release: %v", err)
		}
	}
}

func TestStoreStatusFromHandler(t *testing.T) {
	ts := startServer(t, nil)
	ts.h.status = StatusOutOfResources
	c := dialTest(t, ts.addr, ClientConfig{})
	st, err := c.Store(context.Background(), ctImageStorage, "1.2.3", dcm.ExplicitVRLittleEndian, PriorityMedium, bytes.NewReader([]byte{1, 2}))
	if err != nil || st.Code != StatusOutOfResources {
		t.Fatalf("got %v %v, want A700", st, err)
	}
	_ = c.Release(context.Background())
}

func TestAssociationRejections(t *testing.T) {
	ts := startServer(t, func(s *Server) {
		s.Policy.AllowedCallingAEs = []string{"GOODSCU"}
	})
	tests := []struct {
		name             string
		called, calling  string
		wantSrc, wantRsn byte
	}{
		{"wrong called AE", "WRONG", "GOODSCU", RejectSourceUser, RejectCalledAENotRecognized},
		{"calling AE not allowed", "RADGATE", "BADSCU", RejectSourceUser, RejectCallingAENotRecognized},
	}
	for _, tc := range tests {
		_, err := Dial(context.Background(), ts.addr, ClientConfig{CalledAE: tc.called, CallingAE: tc.calling},
			[]Proposal{{AbstractSyntax: dcm.VerificationSOPClass, TransferSyntaxes: []string{dcm.ImplicitVRLittleEndian}}})
		var rj *RejectError
		if !errors.As(err, &rj) || rj.Result != RejectPermanent || rj.Source != tc.wantSrc || rj.Reason != tc.wantRsn {
			t.Errorf("%s: err = %v", tc.name, err)
		}
	}
	c := dialTest(t, ts.addr, ClientConfig{CallingAE: "GOODSCU"})
	if _, err := c.Echo(context.Background()); err != nil {
		t.Fatal(err)
	}
	_ = c.Release(context.Background())
}

func TestLocalLimitExceeded(t *testing.T) {
	ts := startServer(t, func(s *Server) { s.Policy.MaxAssociations = 1 })
	c1 := dialTest(t, ts.addr, ClientConfig{})
	_, err := Dial(context.Background(), ts.addr, ClientConfig{CalledAE: "RADGATE", CallingAE: "X"},
		[]Proposal{{AbstractSyntax: dcm.VerificationSOPClass, TransferSyntaxes: []string{dcm.ImplicitVRLittleEndian}}})
	var rj *RejectError
	if !errors.As(err, &rj) || rj.Result != RejectTransient || rj.Source != RejectSourcePresentation || rj.Reason != RejectLocalLimitExceeded {
		t.Fatalf("second association: %v", err)
	}
	_ = c1.Release(context.Background())
	waitFor(t, func() bool { return ts.ActiveAssociations() == 0 })
	c3 := dialTest(t, ts.addr, ClientConfig{})
	_ = c3.Release(context.Background())
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// rawConn speaks bytes to the server, for faults a real peer will not make.
func rawConn(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return c
}

// expectAbortOrClose reads until the server sends A-ABORT or closes.
func expectAbortOrClose(t *testing.T, c net.Conn) {
	t.Helper()
	p, err := ReadPDU(c, 1<<20)
	if err == nil {
		if _, ok := p.(*Abort); !ok {
			t.Fatalf("got %T, want A-ABORT", p)
		}
		return
	}
	if errors.Is(err, io.EOF) {
		return
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("server neither aborted nor closed: %v", err)
	}
}

func associateRaw(t *testing.T, c net.Conn) {
	t.Helper()
	rq := &AssociateRQ{ProtocolVersion: 1, CalledAE: "RADGATE", CallingAE: "RAW", ApplicationContext: applicationContextName,
		PresentationContexts: []PresentationContextRQ{{ID: 1, AbstractSyntax: ctImageStorage, TransferSyntaxes: []string{dcm.ExplicitVRLittleEndian}}},
		UserInfo:             UserInfo{MaxLength: 16384, ImplementationClassUID: "1.2.3"}}
	if _, err := c.Write(EncodePDU(nil, rq)); err != nil {
		t.Fatal(err)
	}
	p, err := ReadPDU(c, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := p.(*AssociateAC); !ok {
		t.Fatalf("got %T", p)
	}
}

func TestFaultsAbortAndServerKeepsServing(t *testing.T) {
	ts := startServer(t, nil)
	storeCmd := EncodeCommand(nil, &Command{CommandField: CStoreRQ, MessageID: 1, AffectedSOPClassUID: ctImageStorage, AffectedSOPInstanceUID: "9.9.9", HasDataSet: true})
	faults := []struct {
		name   string
		assoc  bool
		send   []byte
		reason string
	}{
		{"garbage before association", false, []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), "unknown_pdu"},
		{"4 GB P-DATA before association", false, []byte{0x04, 0, 0xff, 0xff, 0xff, 0xff}, "pdu_too_large"},
		{"4 GB P-DATA", true, []byte{0x04, 0, 0xff, 0xff, 0xff, 0xff}, "pdu_too_large"},
		{"4 GB associate", false, []byte{0x01, 0, 0xff, 0xff, 0xff, 0xff}, "pdu_too_large"},
		{"unknown PDU type", true, []byte{0x7f, 0, 0, 0, 0, 0}, "unknown_pdu"},
		{"data before command", true, EncodePDU(nil, &PDataTF{Items: []PDV{{ContextID: 1, Last: true, Data: []byte{1, 2}}}}), "protocol_error"},
		{"unaccepted context", true, EncodePDU(nil, &PDataTF{Items: []PDV{{ContextID: 5, Command: true, Last: true, Data: storeCmd}}}), "protocol_error"},
		{"associate twice", true, EncodePDU(nil, &AssociateRQ{ProtocolVersion: 1, CalledAE: "RADGATE", CallingAE: "RAW", ApplicationContext: applicationContextName}), "unexpected_pdu"},
		{"abort mid data set", true, append(EncodePDU(nil, &PDataTF{Items: []PDV{
			{ContextID: 1, Command: true, Last: true, Data: storeCmd},
			{ContextID: 1, Data: make([]byte, 1000)}}}), EncodePDU(nil, &Abort{})...), "peer_aborted"},
	}
	for _, f := range faults {
		t.Run(f.name, func(t *testing.T) {
			c := rawConn(t, ts.addr)
			if f.assoc {
				associateRaw(t, c)
			}
			if _, err := c.Write(f.send); err != nil {
				t.Fatal(err)
			}
			if f.reason != "peer_aborted" {
				expectAbortOrClose(t, c)
			}
			waitFor(t, func() bool { return bytes.Contains(ts.logBytes(), []byte("reason="+f.reason)) })
			// The server keeps serving.
			cl := dialTest(t, ts.addr, ClientConfig{})
			if _, err := cl.Echo(context.Background()); err != nil {
				t.Fatal(err)
			}
			_ = cl.Release(context.Background())
		})
	}
	ts.h.mu.Lock()
	defer ts.h.mu.Unlock()
	if _, ok := ts.h.got["9.9.9"]; ok {
		t.Fatal("an aborted data set reached the handler as complete")
	}
	if len(ts.h.readErrs) != 1 || !errors.Is(ts.h.readErrs[0], ErrInterrupted) {
		t.Fatalf("handler read errors = %v, want one ErrInterrupted", ts.h.readErrs)
	}
}

func (ts *testServer) logBytes() []byte {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return append([]byte(nil), ts.logs.Bytes()...)
}

func TestStalledPeerClosedAfterARTIM(t *testing.T) {
	ts := startServer(t, func(s *Server) { s.ARTIM = 300 * time.Millisecond })
	c := rawConn(t, ts.addr)
	start := time.Now()
	buf := make([]byte, 1)
	if _, err := c.Read(buf); !errors.Is(err, io.EOF) {
		t.Fatalf("read = %v, want EOF (closed by ARTIM)", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("closed after %s", d)
	}
	waitFor(t, func() bool { return bytes.Contains(ts.logBytes(), []byte("reason=artim_expired")) })
}

func TestShutdownAbortsAfterGrace(t *testing.T) {
	ts := startServer(t, nil)
	c := rawConn(t, ts.addr)
	associateRaw(t, c)
	// Start a data set and stall in the middle of it.
	cmd := EncodeCommand(nil, &Command{CommandField: CStoreRQ, MessageID: 1, AffectedSOPClassUID: ctImageStorage, AffectedSOPInstanceUID: "7.7", HasDataSet: true})
	pd := EncodePDU(nil, &PDataTF{Items: []PDV{{ContextID: 1, Command: true, Last: true, Data: cmd}, {ContextID: 1, Data: []byte{1, 2, 3, 4}}}})
	if _, err := c.Write(pd); err != nil {
		t.Fatal(err)
	}
	<-ts.h.started
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := ts.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v, want deadline exceeded", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("shutdown took %s", d)
	}
	p, err := ReadPDU(c, 1<<20)
	if ab, ok := p.(*Abort); err != nil || !ok || ab.Source != AbortSourceUser {
		t.Fatalf("after shutdown got %v %v, want A-ABORT", p, err)
	}
}

// A data set of odd length (a deflated one) goes out padded with one NUL,
// as PS3.5 A.5 requires and DCMTK insists on.
func TestOddLengthDataSetPadded(t *testing.T) {
	ts := startServer(t, nil)
	c := dialTest(t, ts.addr, ClientConfig{MaxPDULength: 1024}, Proposal{AbstractSyntax: ctImageStorage, TransferSyntaxes: []string{dcm.DeflatedExplicitVRLittleEndian}})
	for _, size := range []int{1, 1017, 1019, 4303} {
		data := bytes.Repeat([]byte{7}, size)
		uid := fmt.Sprintf("1.2.3.%d", size)
		if st, err := c.Store(context.Background(), ctImageStorage, uid, dcm.DeflatedExplicitVRLittleEndian, PriorityMedium, bytes.NewReader(data)); err != nil || !st.OK() {
			t.Fatalf("%d bytes: %v %v", size, st, err)
		}
		ts.h.mu.Lock()
		got := ts.h.got[uid]
		ts.h.mu.Unlock()
		if want := append(data, 0); !bytes.Equal(got, want) {
			t.Fatalf("%d bytes: got %d bytes, want the data and one NUL", size, len(got))
		}
	}
	_ = c.Release(context.Background())
}
