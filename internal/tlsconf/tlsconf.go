// Package tlsconf builds radgate's TLS server configurations — one policy
// for the DIMSE TLS port, HTTP and gRPC — from certificate files that are
// reloaded when they change on disk, so an operator renews a certificate
// without a restart.
//
// The policy is the BCP 195 TLS Secure Transport Connection Profile of
// PS3.15 B.12 (and so the Non-downgrading and Extended BCP 195 profiles of
// B.13 and B.14 a DCMTK peer asks for by default): TLS 1.2 or later; for
// TLS 1.2 only AEAD cipher suites with forward secrecy (RFC 9325 4.2: the
// ECDHE AES-GCM suites, plus ChaCha20-Poly1305); TLS 1.3 with its own
// suites. No SSL, TLS 1.0/1.1, RC4, 3DES, CBC, static RSA key exchange or
// renegotiation.
//
// Entry type: Source (Load, Server, Reload); Client for radgate's own
// connections.
package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ErrNoCert is returned when a certificate or key file is named without
// the other.
var ErrNoCert = errors.New("tlsconf: a certificate needs both tls_cert and tls_key")

// recheck is how often, at most, a handshake looks at the files' modification
// times: renewal is noticed within seconds without a stat per connection.
const recheck = 2 * time.Second

// cipherSuites are the TLS 1.2 suites of the policy (TLS 1.3 suites are not
// configurable in Go and all qualify).
var cipherSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// Files names the PEM files of a server identity.
type Files struct {
	Cert     string // certificate chain, leaf first
	Key      string // its private key
	ClientCA string // CA certificates that sign client certificates ("": none)
}

// Source holds the current certificate and client CA pool, reloading them
// when the files change. A reload that fails keeps the previous identity
// (and logs why), so a half-copied renewal never takes a port down.
type Source struct {
	files Files
	log   *slog.Logger

	mu        sync.Mutex
	cert      *tls.Certificate
	pool      *x509.CertPool
	stamp     string // the files' sizes and modification times when loaded
	checked   time.Time
	notAfter  time.Time
	loadError error
}

// Load reads the files once; an error here stops the start.
func Load(f Files, log *slog.Logger, reg prometheus.Registerer) (*Source, error) {
	if (f.Cert == "") != (f.Key == "") {
		return nil, ErrNoCert
	}
	s := &Source{files: f, log: log}
	if err := s.load(); err != nil {
		return nil, err
	}
	if reg != nil {
		if err := reg.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "radgate_tls_certificate_expiry_timestamp_seconds",
			Help: "When the server certificate in use expires (Unix time).",
		}, func() float64 {
			s.mu.Lock()
			defer s.mu.Unlock()
			return float64(s.notAfter.Unix())
		})); err != nil {
			return nil, err
		}
		if err := reg.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "radgate_tls_reload_failing",
			Help: "1 while the certificate files on disk could not be loaded (the previous certificate is still served).",
		}, func() float64 {
			s.mu.Lock()
			defer s.mu.Unlock()
			if s.loadError != nil {
				return 1
			}
			return 0
		})); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// stamp describes the files' current state, to notice a change.
func (f Files) stamp() string {
	var b []byte
	for _, p := range []string{f.Cert, f.Key, f.ClientCA} {
		if p == "" {
			continue
		}
		if fi, err := os.Stat(p); err == nil {
			b = fmt.Appendf(b, "%s:%d:%d;", p, fi.Size(), fi.ModTime().UnixNano())
		} else {
			b = fmt.Appendf(b, "%s:missing;", p)
		}
	}
	return string(b)
}

// load reads the files and replaces the identity if they are valid.
func (s *Source) load() error {
	stamp := s.files.stamp()
	cert, err := tls.LoadX509KeyPair(s.files.Cert, s.files.Key)
	if err != nil {
		return fmt.Errorf("tlsconf: server certificate: %w", err)
	}
	var pool *x509.CertPool
	if s.files.ClientCA != "" {
		pem, err := os.ReadFile(s.files.ClientCA)
		if err != nil {
			return fmt.Errorf("tlsconf: client CA: %w", err)
		}
		pool = x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("tlsconf: client CA %s: no PEM certificate in it", s.files.ClientCA)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cert, s.pool, s.stamp, s.loadError = &cert, pool, stamp, nil
	s.notAfter = cert.Leaf.NotAfter
	return nil
}

// Reload re-reads the files now (radgate serve does it on SIGHUP).
func (s *Source) Reload() error {
	err := s.load()
	s.mu.Lock()
	s.loadError = err
	s.checked = time.Now()
	s.mu.Unlock()
	return err
}

// current returns the identity, reloading it first if the files changed.
func (s *Source) current() (*tls.Certificate, *x509.CertPool) {
	s.mu.Lock()
	due := time.Since(s.checked) >= recheck
	if due {
		s.checked = time.Now()
	}
	stale := due && s.files.stamp() != s.stamp
	s.mu.Unlock()
	if stale {
		if err := s.load(); err != nil {
			s.mu.Lock()
			first := s.loadError == nil
			s.loadError = err
			s.mu.Unlock()
			if first {
				s.log.Error("tls: the changed certificate files could not be loaded; still serving the previous certificate", "err", err)
			}
		} else {
			s.log.Info("tls: certificate reloaded", "cert", s.files.Cert, "not_after", s.notAfter.UTC().Format(time.RFC3339))
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cert, s.pool
}

// Policy is the BCP 195 base configuration, without an identity: the one
// place the versions and suites are chosen (clients use it too).
func Policy() *tls.Config {
	return &tls.Config{
		MinVersion:    tls.VersionTLS12,
		CipherSuites:  cipherSuites,
		Renegotiation: tls.RenegotiateNever,
	}
}

// Server returns a server configuration that serves the current
// certificate and, when clientAuth asks for it, verifies client
// certificates against the client CA pool. nextProtos is the ALPN list
// ("h2", "http/1.1" for HTTP; gRPC's credentials add "h2" themselves).
func (s *Source) Server(clientAuth tls.ClientAuthType, nextProtos ...string) *tls.Config {
	base := Policy()
	base.NextProtos = nextProtos
	base.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		cert, pool := s.current()
		c := Policy()
		c.NextProtos = nextProtos
		c.Certificates = []tls.Certificate{*cert}
		c.ClientAuth = clientAuth
		c.ClientCAs = pool
		return c, nil
	}
	return base
}

// Client is the policy for connections radgate makes (dimse+tls://
// destinations): the peer verified against roots (nil: the system's), and
// s's certificate, reloaded as the server's is, for a peer that asks for
// one (s nil: none).
func Client(s *Source, roots *x509.CertPool) *tls.Config {
	c := Policy()
	c.RootCAs = roots
	if s != nil {
		c.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			cert, _ := s.current()
			return cert, nil
		}
	}
	return c
}

// HasClientCA reports whether client certificates can be verified.
func (s *Source) HasClientCA() bool { return s.files.ClientCA != "" }
