package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net"
	"os"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/radgate/radgate/internal/peertest"
)

// serve answers TLS handshakes on 127.0.0.1 with cfg until the test ends.
func serve(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	l, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_ = c.(*tls.Conn).Handshake()
			_ = c.Close()
		}
	}()
	return l.Addr().String()
}

// start loads a test PKI's server identity and serves it.
func start(t *testing.T, reg prometheus.Registerer) (*peertest.PKI, *Source, string) {
	t.Helper()
	pki := peertest.NewPKI(t)
	src, err := Load(Files{Cert: pki.ServerCert, Key: pki.ServerKey}, slog.New(slog.DiscardHandler), reg)
	if err != nil {
		t.Fatal(err)
	}
	return pki, src, serve(t, src.Server(tls.NoClientCert))
}

// served dials addr and returns the server certificate's common name and
// the negotiated version.
func served(t *testing.T, addr string, pool *x509.CertPool, maxVersion uint16) (string, uint16, error) {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{RootCAs: pool, MaxVersion: maxVersion, ServerName: "127.0.0.1"})
	if err != nil {
		return "", 0, err
	}
	defer c.Close()
	st := c.ConnectionState()
	return st.PeerCertificates[0].Subject.CommonName, st.Version, nil
}

func TestReloadOnChangeAndKeepOnBadFiles(t *testing.T) {
	reg := prometheus.NewRegistry()
	pki, src, addr := start(t, reg)
	pool := pki.Pool(t)

	if cn, _, err := served(t, addr, pool, 0); err != nil || cn != "radgate" {
		t.Fatalf("before renewal: %q, %v", cn, err)
	}
	// Renew: new files copied over the old ones, as certbot or an operator would.
	now := time.Now()
	cert, key := pki.Leaf(t, "renewed", "radgate-renewed", now.Add(-time.Minute), now.Add(90*24*time.Hour))
	copyFile(t, cert, pki.ServerCert)
	copyFile(t, key, pki.ServerKey)
	src.mu.Lock()
	src.checked = time.Time{} // as if the recheck interval had passed
	src.mu.Unlock()
	if cn, _, err := served(t, addr, pool, 0); err != nil || cn != "radgate-renewed" {
		t.Fatalf("after renewal: %q, %v (want the renewed certificate without a restart)", cn, err)
	}
	if got := gauge(t, reg, "radgate_tls_certificate_expiry_timestamp_seconds"); int64(got) != now.Add(90*24*time.Hour).Unix() {
		t.Errorf("expiry gauge %v, want the renewed certificate's", got)
	}

	// A half-written renewal: the key no longer matches. The previous
	// certificate stays in service and the failure shows in the gauge.
	other, _ := pki.Leaf(t, "mismatch", "mismatch", now, now.Add(time.Hour))
	copyFile(t, other, pki.ServerCert)
	if err := src.Reload(); err == nil {
		t.Fatal("Reload of a certificate with the wrong key succeeded")
	}
	if cn, _, err := served(t, addr, pool, 0); err != nil || cn != "radgate-renewed" {
		t.Fatalf("after a bad renewal: %q, %v (want the previous certificate kept)", cn, err)
	}
	if got := gauge(t, reg, "radgate_tls_reload_failing"); got != 1 {
		t.Errorf("reload_failing = %v, want 1", got)
	}
}

func TestPolicyRefusesOldVersionsAndWeakSuites(t *testing.T) {
	pki, _, addr := start(t, nil)
	pool := pki.Pool(t)
	if _, v, err := served(t, addr, pool, tls.VersionTLS12); err != nil || v != tls.VersionTLS12 {
		t.Fatalf("TLS 1.2: %x, %v", v, err)
	}
	if _, _, err := served(t, addr, pool, tls.VersionTLS11); err == nil {
		t.Fatal("TLS 1.1 was accepted")
	}
	// A TLS 1.2 client offering only a CBC suite without forward secrecy.
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, MaxVersion: tls.VersionTLS12, ServerName: "127.0.0.1",
		CipherSuites: []uint16{tls.TLS_RSA_WITH_AES_128_CBC_SHA}})
	if err == nil {
		c.Close()
		t.Fatal("a static-RSA CBC suite was accepted")
	}
}

func TestLoadNeedsCertAndKey(t *testing.T) {
	if _, err := Load(Files{Cert: "x.pem"}, slog.New(slog.DiscardHandler), nil); err != ErrNoCert {
		t.Fatalf("got %v, want ErrNoCert", err)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// gauge reads one registered gauge.
func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no gauge %s", name)
	return 0
}
