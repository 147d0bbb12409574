package peertest

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// PKI is a throw-away certificate authority for TLS tests, written as PEM
// files DCMTK, grpcurl and Go all read: a CA, a server certificate for
// 127.0.0.1/localhost, a client certificate it signed, an expired one it
// signed, and one from an unrelated CA. RSA 2048, because DCMTK's BCP 195
// profiles offer ECDHE_RSA suites.
type PKI struct {
	Dir           string
	CA            string // the CA certificate
	ServerCert    string
	ServerKey     string
	ClientCert    string
	ClientKey     string
	ExpiredCert   string
	ExpiredKey    string
	UntrustedCert string
	UntrustedKey  string

	caCert *x509.Certificate
	caKey  *rsa.PrivateKey
}

// NewPKI makes the CA and the certificates in a fresh temporary folder.
func NewPKI(t testing.TB) *PKI {
	t.Helper()
	p := &PKI{Dir: t.TempDir()}
	p.caKey = rsaKey(t)
	p.caCert, p.CA = p.issue(t, "ca", &x509.Certificate{
		Subject: pkix.Name{CommonName: "radgate test CA", Organization: []string{"radgate tests"}},
		IsCA:    true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}, p.caKey, nil, nil)
	now := time.Now()
	p.ServerCert, p.ServerKey = p.Leaf(t, "server", "radgate", now.Add(-time.Hour), now.Add(24*time.Hour))
	p.ClientCert, p.ClientKey = p.Leaf(t, "client", "MODALITY1", now.Add(-time.Hour), now.Add(24*time.Hour))
	p.ExpiredCert, p.ExpiredKey = p.Leaf(t, "expired", "OLDMODALITY", now.Add(-48*time.Hour), now.Add(-24*time.Hour))

	otherKey := rsaKey(t)
	other, _ := p.issue(t, "other-ca", &x509.Certificate{
		Subject: pkix.Name{CommonName: "someone else's CA"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign,
	}, otherKey, nil, nil)
	key := rsaKey(t)
	_, p.UntrustedCert = p.issue(t, "untrusted", leafTemplate("STRANGER", now.Add(-time.Hour), now.Add(24*time.Hour)), key, other, otherKey)
	p.UntrustedKey = writeKey(t, p.Dir, "untrusted", key)
	return p
}

// Pool is a certificate pool holding the CA, for clients.
func (p *PKI) Pool(t testing.TB) *x509.CertPool {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(p.caCert)
	return pool
}

// Leaf issues a certificate from the CA, valid for both server and client
// use, and returns its certificate and key files.
func (p *PKI) Leaf(t testing.TB, name, cn string, from, to time.Time) (cert, key string) {
	t.Helper()
	k := rsaKey(t)
	_, cert = p.issue(t, name, leafTemplate(cn, from, to), k, p.caCert, p.caKey)
	return cert, writeKey(t, p.Dir, name, k)
}

func leafTemplate(cn string, from, to time.Time) *x509.Certificate {
	return &x509.Certificate{
		Subject:     pkix.Name{CommonName: cn, Organization: []string{"radgate tests"}},
		NotBefore:   from,
		NotAfter:    to,
		DNSNames:    []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
}

// issue signs tmpl (self-signed when parent is nil) and writes NAME.pem.
func (p *PKI) issue(t testing.TB, name string, tmpl *x509.Certificate, key *rsa.PrivateKey, parent *x509.Certificate, parentKey *rsa.PrivateKey) (*x509.Certificate, string) {
	t.Helper()
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl.SerialNumber = serial
	if tmpl.NotBefore.IsZero() {
		tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(48*time.Hour)
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(p.Dir, name+".pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	return c, path
}

func rsaKey(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// writeKey writes an unencrypted PKCS#1 key (DCMTK with -pw reads it).
func writeKey(t testing.TB, dir, name string, k *rsa.PrivateKey) string {
	t.Helper()
	path := filepath.Join(dir, name+".key")
	b := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)})
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
