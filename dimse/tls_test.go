package dimse

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/radgate/radgate/dcm"
	"github.com/radgate/radgate/internal/peertest"
	"github.com/radgate/radgate/internal/tlsconf"
)

// refusals records the TLSRefused calls a Handler gets.
type refusals struct {
	Handler
	mu   sync.Mutex
	errs []error
}

func (r *refusals) TLSRefused(_ string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, err)
}

func (r *refusals) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.errs)
}

// TestTLSWithDCMTK is the DIMSE TLS acceptance against DCMTK: echoscu and
// storescu with +tls, a test CA and client certificates, in each BCP 195
// profile DCMTK offers; plain TCP on the TLS port, an expired and an
// untrusted client certificate are refused at the handshake, logged and
// reported to the handler for the audit trail.
func TestTLSWithDCMTK(t *testing.T) {
	echoscu := peertest.RequireTool(t, "echoscu")
	storescu := peertest.RequireTool(t, "storescu")
	pki := peertest.NewPKI(t)
	src, err := tlsconf.Load(tlsconf.Files{Cert: pki.ServerCert, Key: pki.ServerKey, ClientCA: pki.CA}, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	rec := &refusals{}
	ts := startServing(t, func(s *Server) { rec.Handler = s.Handler; s.Handler = rec },
		func(s *Server, l net.Listener) error {
			return s.ServeTLS(l, src.Server(tls.RequireAndVerifyClientCert))
		})
	host, port, _ := net.SplitHostPort(ts.addr)
	ct := writeCT(t)
	tlsArgs := func(cert, key string, extra ...string) []string {
		return append([]string{"+tls", key, cert, "-pw", "+cf", pki.CA}, extra...)
	}

	for _, profile := range []string{"+py", "+px", "+pz"} { // non-downgrading (default), BCP 195, extended
		peertest.Run(t, nil, echoscu, append(tlsArgs(pki.ClientCert, pki.ClientKey, profile), "-aec", "RADGATE", host, port)...)
	}
	peertest.Run(t, nil, storescu, append(tlsArgs(pki.ClientCert, pki.ClientKey), "-aec", "RADGATE", host, port, ct)...)
	ts.h.mu.Lock()
	n := len(ts.h.got)
	ts.h.mu.Unlock()
	if n != 1 {
		t.Fatalf("stored %d instances over TLS, want 1", n)
	}

	refused := []struct {
		name string
		args []string
		want string // in the server's log line
	}{
		{"plain TCP on the TLS port", []string{"-aec", "RADGATE", host, port}, "first record does not look like a TLS handshake"},
		{"expired client certificate", append(tlsArgs(pki.ExpiredCert, pki.ExpiredKey), "-aec", "RADGATE", host, port), "expired"},
		{"untrusted client certificate", append(tlsArgs(pki.UntrustedCert, pki.UntrustedKey), "-aec", "RADGATE", host, port), "unknown authority"},
		{"no client certificate", []string{"+tla", "+cf", pki.CA, "-aec", "RADGATE", host, port}, "client didn't provide a certificate"},
	}
	for i, c := range refused {
		t.Run(c.name, func(t *testing.T) {
			out, err := exec.CommandContext(t.Context(), echoscu, c.args...).CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) {
				t.Fatalf("echoscu %v: want a failure, got %v\n%s", c.args, err, out)
			}
			waitFor(t, func() bool { return rec.count() == i+1 })
			logs := string(ts.logBytes())
			if !strings.Contains(logs, "dimse: TLS connection refused") || !strings.Contains(logs, c.want) {
				t.Fatalf("server log lacks the refusal (%q):\n%s", c.want, logs)
			}
		})
	}
	// The port still serves after the refusals.
	peertest.Run(t, nil, echoscu, append(tlsArgs(pki.ClientCert, pki.ClientKey), "-aec", "RADGATE", host, port)...)
}

// TestTLSClientToDCMTK is the SCU side (dimse+tls:// result destinations):
// radgate's client associates over TLS with DCMTK storescp +tls, which
// requires a client certificate (its default -rc), and stores a CT; a peer
// certificate from another CA and a missing client certificate fail the
// handshake.
func TestTLSClientToDCMTK(t *testing.T) {
	pki := peertest.NewPKI(t)
	dir := t.TempDir()
	scp := peertest.StartStorescpWith(t, peertest.StorescpConfig{Dir: dir, AE: "PACS", BitPreserving: true,
		Args: []string{"+tls", pki.ServerKey, pki.ServerCert, "-pw", "+cf", pki.CA}})
	src, err := tlsconf.Load(tlsconf.Files{Cert: pki.ClientCert, Key: pki.ClientKey}, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	props := []Proposal{{AbstractSyntax: ctImageStorage, TransferSyntaxes: []string{dcm.ExplicitVRLittleEndian}}}
	cfg := ClientConfig{CallingAE: "RADGATE", CalledAE: "PACS", TLS: tlsconf.Client(src, pki.Pool(t))}
	c, err := Dial(t.Context(), scp.Addr(), cfg, props)
	if err != nil {
		t.Fatal(err)
	}
	data, err := peertest.DatasetBytes(writeCT(t))
	if err != nil {
		t.Fatal(err)
	}
	if st, err := c.Store(t.Context(), ctImageStorage, "1.2.826.0.1.3680043.8.498.77", dcm.ExplicitVRLittleEndian, PriorityMedium, bytes.NewReader(data)); err != nil || st.Code != StatusSuccess {
		t.Fatalf("C-STORE over TLS: %v, %v", st, err)
	}
	if err := c.Release(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got, _ := filepath.Glob(filepath.Join(dir, "*.dcm")); len(got) != 1 {
		t.Fatalf("storescp received %d files over TLS, want 1", len(got))
	}
	for name, tc := range map[string]*tls.Config{
		"server certificate from another CA": tlsconf.Client(src, x509.NewCertPool()),
		"no client certificate":              tlsconf.Client(nil, pki.Pool(t)),
	} {
		cfg.TLS = tc
		if c, err := Dial(t.Context(), scp.Addr(), cfg, props); err == nil {
			c.Abort()
			t.Errorf("%s: the association was accepted", name)
		}
	}
}

// writeCT writes the synthetic CT slice as a Part 10 file.
func writeCT(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "ct.dcm")
	if err := os.WriteFile(p, peertest.SyntheticCT(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
