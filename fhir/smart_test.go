package fhir

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// The token server below implements the server side of SMART Backend
// Services 2.x independently of the client code: it verifies each client
// assertion against the public key registered for the client.

const (
	testRSAClient = "radgate-rsa"
	testECClient  = "radgate-ec"
	testKID       = "radgate-2026"
	testExpiresIn = 300 // seconds, the spec's recommended token lifetime
)

var testScopes = []string{"system/ImagingStudy.write", "system/DiagnosticReport.write", "system/Patient.read"}

// Keys are made once per test binary: RSA-3072 generation is slow under -race.
var (
	testRSAKey   = sync.OnceValue(func() *rsa.PrivateKey { return must(rsa.GenerateKey(rand.Reader, 3072)) })
	testECKey    = sync.OnceValue(func() *ecdsa.PrivateKey { return must(ecdsa.GenerateKey(elliptic.P384(), rand.Reader)) })
	testOtherKey = sync.OnceValue(func() *ecdsa.PrivateKey { return must(ecdsa.GenerateKey(elliptic.P384(), rand.Reader)) })
)

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

type registeredClient struct {
	kid string
	pub crypto.PublicKey
}

// tokenServer is a SMART Backend Services authorization server.
type tokenServer struct {
	srv     *httptest.Server
	clients map[string]registeredClient
	// smartConfig is served at /.well-known/smart-configuration; set before
	// the first request.
	smartConfig map[string]any
	// now is the server's clock (default time.Now).
	now func() time.Time
	// gate, when set, holds each token request until it is closed (or the
	// request's context ends); arrived gets a value as each one comes in.
	gate, arrived chan struct{}
	// respond, when set, replaces the success answer.
	respond func(w http.ResponseWriter)

	requests atomic.Int32 // token requests received
	issued   atomic.Int32 // tokens issued

	mu   sync.Mutex
	jtis map[string]bool
}

func newTokenServer(t *testing.T) *tokenServer {
	t.Helper()
	ts := &tokenServer{
		clients: map[string]registeredClient{
			testRSAClient: {kid: testKID, pub: testRSAKey().Public()},
			testECClient:  {kid: testKID, pub: testECKey().Public()},
		},
		now:  time.Now,
		jtis: map[string]bool{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/smart-configuration", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(ts.smartConfig)
	})
	mux.HandleFunc("POST /token", ts.token)
	ts.srv = httptest.NewServer(mux)
	t.Cleanup(ts.srv.Close)
	ts.smartConfig = map[string]any{
		"token_endpoint":                                   ts.tokenURL(),
		"token_endpoint_auth_methods_supported":            []string{"private_key_jwt"},
		"token_endpoint_auth_signing_alg_values_supported": []string{"RS384", "ES384"},
		"grant_types_supported":                            []string{"client_credentials"},
		"scopes_supported":                                 testScopes,
		"capabilities":                                     []string{"client-confidential-asymmetric"},
	}
	return ts
}

func (ts *tokenServer) tokenURL() string { return ts.srv.URL + "/token" }

func (ts *tokenServer) token(w http.ResponseWriter, r *http.Request) {
	ts.requests.Add(1)
	if ts.gate != nil {
		ts.arrived <- struct{}{}
		select {
		case <-ts.gate:
		case <-r.Context().Done():
			return
		}
	}
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	if g := r.PostForm.Get("grant_type"); g != "client_credentials" {
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "grant_type "+g)
		return
	}
	if at := r.PostForm.Get("client_assertion_type"); at != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" {
		oauthError(w, http.StatusBadRequest, "invalid_request", "client_assertion_type "+at)
		return
	}
	if r.PostForm.Get("scope") == "" {
		oauthError(w, http.StatusBadRequest, "invalid_scope", "no scope")
		return
	}
	if problem := ts.checkAssertion(r.PostForm.Get("client_assertion")); problem != "" {
		oauthError(w, http.StatusUnauthorized, "invalid_client", problem)
		return
	}
	if ts.respond != nil {
		ts.respond(w)
		return
	}
	n := ts.issued.Add(1)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(map[string]any{
		"access_token": fmt.Sprintf("token-%d", n),
		"token_type":   "bearer",
		"expires_in":   testExpiresIn,
		"scope":        r.PostForm.Get("scope"),
	})
}

func oauthError(w http.ResponseWriter, status int, code, description string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": description})
}

// checkAssertion returns "" for a valid client assertion, otherwise why not
// (Backend Services "Signature Verification").
func (ts *tokenServer) checkAssertion(jwt string) string {
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return "assertion is not a compact JWS"
	}
	var header struct{ Alg, Kid, Typ string }
	var claims struct {
		Iss, Sub, Aud, Jti string
		Exp                int64
	}
	if err := decodeSegment(parts[0], &header); err != nil {
		return "header: " + err.Error()
	}
	if err := decodeSegment(parts[1], &claims); err != nil {
		return "claims: " + err.Error()
	}
	if header.Typ != "JWT" {
		return "typ " + header.Typ
	}
	if claims.Iss != claims.Sub {
		return "iss and sub differ"
	}
	client, ok := ts.clients[claims.Iss]
	if !ok {
		return "unknown client " + claims.Iss
	}
	if header.Kid != client.kid {
		return "no registered key with kid " + header.Kid
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return "signature encoding"
	}
	digest := sha512.Sum384([]byte(parts[0] + "." + parts[1]))
	switch pub := client.pub.(type) {
	case *rsa.PublicKey:
		if header.Alg != "RS384" || rsa.VerifyPKCS1v15(pub, crypto.SHA384, digest[:], sig) != nil {
			return "signature does not verify with the registered key"
		}
	case *ecdsa.PublicKey:
		if header.Alg != "ES384" || len(sig) != 96 ||
			!ecdsa.Verify(pub, digest[:], new(big.Int).SetBytes(sig[:48]), new(big.Int).SetBytes(sig[48:])) {
			return "signature does not verify with the registered key"
		}
	}
	now := ts.now()
	switch exp := time.Unix(claims.Exp, 0); {
	case claims.Aud != ts.tokenURL():
		return "aud " + claims.Aud
	case !exp.After(now):
		return "assertion expired"
	case exp.After(now.Add(5 * time.Minute)):
		return "exp more than five minutes ahead"
	case claims.Jti == "":
		return "no jti"
	}
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.jtis[claims.Jti] {
		return "jti replayed"
	}
	ts.jtis[claims.Jti] = true
	return ""
}

func decodeSegment(seg string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// writeKey writes key as PEM to a temporary file: "pkcs8", "pkcs1" (RSA)
// or "sec1" (EC).
func writeKey(t *testing.T, key crypto.Signer, format string) string {
	t.Helper()
	var block *pem.Block
	switch format {
	case "pkcs8":
		block = &pem.Block{Type: "PRIVATE KEY", Bytes: must(x509.MarshalPKCS8PrivateKey(key))}
	case "pkcs1":
		block = &pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key.(*rsa.PrivateKey))}
	case "sec1":
		block = &pem.Block{Type: "EC PRIVATE KEY", Bytes: must(x509.MarshalECPrivateKey(key.(*ecdsa.PrivateKey)))}
	default:
		t.Fatalf("unknown key format %q", format)
	}
	return writePEM(t, "key.pem", block)
}

func writePEM(t *testing.T, name string, blocks ...*pem.Block) string {
	t.Helper()
	var buf []byte
	for _, b := range blocks {
		buf = append(buf, pem.EncodeToMemory(b)...)
	}
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, buf, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// fakeClock is a settable clock shared by the client and the token server.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// clientConfig is a client configuration for the RSA client through discovery.
func (ts *tokenServer) clientConfig(t *testing.T) SMARTConfig {
	return SMARTConfig{
		FHIRBase: ts.srv.URL + "/",
		ClientID: testRSAClient,
		KeyFile:  writeKey(t, testRSAKey(), "pkcs8"),
		KeyID:    testKID,
		Scopes:   testScopes,
	}
}

// authorize runs Authorize on a fresh request and returns its Authorization.
func authorize(ctx context.Context, a Authorizer) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://fhir.invalid/Patient", nil)
	if err != nil {
		return "", err
	}
	err = a.Authorize(ctx, req)
	return req.Header.Get("Authorization"), err
}

// checkError fails t unless err is nil (want "") or wraps sentinel and
// says want.
func checkError(t *testing.T, err, sentinel error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Fatalf("Authorize: %v", err)
	case want != "" && (!errors.Is(err, sentinel) || !strings.Contains(err.Error(), want)):
		t.Fatalf("Authorize: %v, want %v saying %q", err, sentinel, want)
	}
}

func newSMART(t *testing.T, cfg SMARTConfig) *SMARTAuthorizer {
	t.Helper()
	a, err := NewSMART(cfg)
	if err != nil {
		t.Fatalf("NewSMART: %v", err)
	}
	return a
}

func TestSMARTTokenKeys(t *testing.T) {
	ts := newTokenServer(t)
	tests := []struct {
		name, client, format string
		key                  crypto.Signer
		discovery            bool
	}{
		{"RS384 PKCS#8 discovered", testRSAClient, "pkcs8", testRSAKey(), true},
		{"RS384 PKCS#1", testRSAClient, "pkcs1", testRSAKey(), false},
		{"ES384 PKCS#8", testECClient, "pkcs8", testECKey(), false},
		{"ES384 SEC 1 discovered", testECClient, "sec1", testECKey(), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := SMARTConfig{
				ClientID: tt.client,
				KeyFile:  writeKey(t, tt.key, tt.format),
				KeyID:    testKID,
				Scopes:   testScopes,
			}
			if tt.discovery {
				cfg.FHIRBase = ts.srv.URL
			} else {
				cfg.TokenURL = ts.tokenURL()
			}
			before := ts.issued.Load()
			got, err := authorize(t.Context(), newSMART(t, cfg))
			if err != nil {
				t.Fatalf("Authorize: %v", err)
			}
			if want := fmt.Sprintf("Bearer token-%d", before+1); got != want {
				t.Errorf("Authorization %q, want %q", got, want)
			}
		})
	}
}

func TestSMARTTokenCachedAndRenewed(t *testing.T) {
	ts := newTokenServer(t)
	clock := &fakeClock{t: time.Now()}
	ts.now = clock.Now
	cfg := ts.clientConfig(t)
	cfg.Now = clock.Now
	a := newSMART(t, cfg)

	var got []string
	step := func(advance time.Duration) {
		t.Helper()
		clock.Advance(advance)
		h, err := authorize(t.Context(), a)
		if err != nil {
			t.Fatalf("Authorize after %v: %v", advance, err)
		}
		got = append(got, fmt.Sprintf("%s after %d requests", h, ts.requests.Load()))
	}
	// A 300 s token is renewed a tenth of its lifetime early: at 270 s.
	const renewAt = testExpiresIn * time.Second * 9 / 10
	step(0)
	step(0)                     // cached: no request
	step(renewAt - time.Second) // still cached
	step(time.Second)           // renewed
	a.Invalidate()              // as after a 401 from the FHIR server
	step(0)
	want := []string{
		"Bearer token-1 after 1 requests",
		"Bearer token-1 after 1 requests",
		"Bearer token-1 after 1 requests",
		"Bearer token-2 after 2 requests",
		"Bearer token-3 after 3 requests",
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("Authorization headers (-want +got):\n%s", d)
	}
}

func TestSMARTTokenRefused(t *testing.T) {
	ts := newTokenServer(t)
	tests := []struct {
		name   string
		change func(*SMARTConfig)
		want   []string // in the error message
	}{
		{
			name:   "expired assertion",
			change: func(c *SMARTConfig) { c.Now = func() time.Time { return time.Now().Add(-24 * time.Hour) } },
			want:   []string{"401", "invalid_client", "assertion expired"},
		},
		{
			name:   "assertion too far ahead",
			change: func(c *SMARTConfig) { c.Now = func() time.Time { return time.Now().Add(time.Hour) } },
			want:   []string{"invalid_client", "exp more than five minutes ahead"},
		},
		{
			name:   "key not registered",
			change: func(c *SMARTConfig) { c.KeyFile = writeKey(t, testOtherKey(), "pkcs8"); c.ClientID = testECClient },
			want:   []string{"invalid_client", "signature does not verify with the registered key"},
		},
		{
			name:   "EC key for the RSA client",
			change: func(c *SMARTConfig) { c.KeyFile = writeKey(t, testECKey(), "sec1") },
			want:   []string{"invalid_client", "signature does not verify with the registered key"},
		},
		{
			name:   "wrong kid",
			change: func(c *SMARTConfig) { c.KeyID = "retired" },
			want:   []string{"invalid_client", "no registered key with kid retired"},
		},
		{
			name:   "unknown client",
			change: func(c *SMARTConfig) { c.ClientID = "stranger" },
			want:   []string{"invalid_client", "unknown client stranger"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := ts.clientConfig(t)
			tt.change(&cfg)
			h, err := authorize(t.Context(), newSMART(t, cfg))
			if !errors.Is(err, ErrAuth) {
				t.Fatalf("Authorize: %v, want ErrAuth", err)
			}
			if h != "" {
				t.Errorf("Authorization set to %q on failure", h)
			}
			t.Logf("Authorize: %v", err)
			msg := err.Error()
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not say %q", msg, w)
				}
			}
			// "eyJ" starts every base64url JSON object: the assertion must
			// not travel in the message.
			if strings.Contains(msg, "eyJ") {
				t.Errorf("error %q carries the assertion", msg)
			}
		})
	}
}

func TestSMARTTokenResponse(t *testing.T) {
	tests := []struct {
		name string
		body string
		want string // in the error message; "" for success
	}{
		{"token_type case-insensitive", `{"access_token":"a","token_type":"Bearer","expires_in":300}`, ""},
		{"expires_in as string", `{"access_token":"a","token_type":"BEARER","expires_in":"300"}`, ""},
		{"no access_token", `{"token_type":"bearer","expires_in":300}`, "no access_token"},
		{"not bearer", `{"access_token":"a","token_type":"mac","expires_in":300}`, `token_type "mac"`},
		{"not JSON", `<html>`, "not a JSON token"},
	}
	ts := newTokenServer(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts.respond = func(w http.ResponseWriter) {
				w.Header().Set("Content-Type", "application/json")
				fmt.Fprint(w, tt.body)
			}
			_, err := authorize(t.Context(), newSMART(t, ts.clientConfig(t)))
			checkError(t, err, ErrAuth, tt.want)
		})
	}
}

func TestSMARTTokenServerError(t *testing.T) {
	ts := newTokenServer(t)
	ts.respond = func(w http.ResponseWriter) { w.WriteHeader(http.StatusServiceUnavailable) }
	_, err := authorize(t.Context(), newSMART(t, ts.clientConfig(t)))
	if err == nil || errors.Is(err, ErrAuth) || !strings.Contains(err.Error(), "503") {
		t.Fatalf("Authorize: %v, want a retriable error naming 503, not ErrAuth", err)
	}
}

func TestSMARTDiscovery(t *testing.T) {
	tests := []struct {
		name   string
		change func(conf map[string]any)
		want   string // in the error message; "" for success
	}{
		{"optional fields absent", func(c map[string]any) {
			delete(c, "token_endpoint_auth_methods_supported")
			delete(c, "token_endpoint_auth_signing_alg_values_supported")
			delete(c, "grant_types_supported")
		}, ""},
		{"no private_key_jwt", func(c map[string]any) {
			c["token_endpoint_auth_methods_supported"] = []string{"client_secret_basic"}
		}, `token_endpoint_auth_methods_supported ["client_secret_basic"] does not include private_key_jwt`},
		{"no RS384", func(c map[string]any) {
			c["token_endpoint_auth_signing_alg_values_supported"] = []string{"ES384"}
		}, "does not include RS384"},
		{"no client_credentials", func(c map[string]any) {
			c["grant_types_supported"] = []string{"authorization_code"}
		}, "does not include client_credentials"},
		{"no token_endpoint", func(c map[string]any) { delete(c, "token_endpoint") }, "is not an absolute http(s) URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := newTokenServer(t)
			tt.change(ts.smartConfig)
			_, err := authorize(t.Context(), newSMART(t, ts.clientConfig(t)))
			checkError(t, err, ErrDiscovery, tt.want)
			if n := ts.requests.Load(); tt.want != "" && n != 0 {
				t.Errorf("%d token requests after failed discovery", n)
			}
		})
	}
}

func TestSMARTTokenConcurrent(t *testing.T) {
	const callers = 16
	ts := newTokenServer(t)
	ts.gate, ts.arrived = make(chan struct{}), make(chan struct{}, callers)
	a := newSMART(t, ts.clientConfig(t))

	var started, done sync.WaitGroup
	got := make([]string, callers)
	errs := make([]error, callers)
	started.Add(callers)
	for i := range callers {
		done.Go(func() {
			started.Done()
			got[i], errs[i] = authorize(t.Context(), a)
		})
	}
	started.Wait()
	<-ts.arrived // one request is out and held; the rest pile up behind it
	close(ts.gate)
	done.Wait()
	for i := range callers {
		if errs[i] != nil || got[i] != "Bearer token-1" {
			t.Errorf("caller %d: %q, %v", i, got[i], errs[i])
		}
	}
	if n := ts.requests.Load(); n != 1 {
		t.Errorf("%d token requests, want 1", n)
	}
}

// A caller that gives up while its token request is out leaves no state
// behind: the next caller sends its own request.
func TestSMARTTokenLeaderCanceled(t *testing.T) {
	ts := newTokenServer(t)
	ts.gate, ts.arrived = make(chan struct{}), make(chan struct{}, 2)
	a := newSMART(t, ts.clientConfig(t))

	ctx, cancel := context.WithCancel(t.Context())
	res := make(chan error, 1)
	go func() {
		_, err := authorize(ctx, a)
		res <- err
	}()
	<-ts.arrived
	cancel()
	if err := <-res; !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled Authorize: %v, want context.Canceled", err)
	}
	close(ts.gate)
	if h, err := authorize(t.Context(), a); err != nil || !strings.HasPrefix(h, "Bearer token-") {
		t.Fatalf("Authorize after a canceled one: %q, %v", h, err)
	}
	if n := ts.requests.Load(); n != 2 {
		t.Errorf("%d token requests, want 2", n)
	}
}

func TestSMARTConfigErrors(t *testing.T) {
	p256 := must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader))
	garbage := writePEM(t, "garbage.pem", &pem.Block{Type: "PRIVATE KEY", Bytes: []byte("secret-key-bytes")})
	missing := filepath.Join(t.TempDir(), "missing.pem")
	good := SMARTConfig{TokenURL: "https://ehr.invalid/token", ClientID: "c", KeyID: "k", Scopes: testScopes}
	tests := []struct {
		name   string
		change func(*SMARTConfig)
		want   []string
	}{
		{"missing file", func(c *SMARTConfig) { c.KeyFile = missing }, []string{missing}},
		{"not a key", func(c *SMARTConfig) { c.KeyFile = garbage }, []string{garbage, "PRIVATE KEY block"}},
		{"no PEM", func(c *SMARTConfig) {
			c.KeyFile = writePEM(t, "cert.pem", &pem.Block{Type: "CERTIFICATE", Bytes: []byte{1}})
		}, []string{"cert.pem", "no private key PEM block"}},
		{"P-256", func(c *SMARTConfig) { c.KeyFile = writeKey(t, p256, "pkcs8") }, []string{"need P-384"}},
		{"no kid", func(c *SMARTConfig) { c.KeyFile = writeKey(t, testECKey(), "sec1"); c.KeyID = "" }, []string{"KeyID"}},
		{"no endpoint", func(c *SMARTConfig) { c.KeyFile = writeKey(t, testECKey(), "sec1"); c.TokenURL = "" }, []string{"FHIRBase or TokenURL"}},
		{"bad scope", func(c *SMARTConfig) {
			c.KeyFile = writeKey(t, testECKey(), "sec1")
			c.Scopes = []string{"system/Patient.read system/Device.write"}
		}, []string{"whitespace"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := good
			tt.change(&cfg)
			_, err := NewSMART(cfg)
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("NewSMART: %v, want ErrConfig", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "secret-key-bytes") {
				t.Errorf("error %q carries key material", err)
			}
		})
	}
}

// testCA issues certificates for the mutual TLS test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  *pem.Block
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key := must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader))
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "radgate test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der := must(x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key))
	return &testCA{cert: must(x509.ParseCertificate(der)), key: key, pem: &pem.Block{Type: "CERTIFICATE", Bytes: der}}
}

// issue returns a leaf certificate for cn with the given extended usage.
func (ca *testCA) issue(t *testing.T, cn string, usage x509.ExtKeyUsage) (tls.Certificate, *pem.Block, *pem.Block) {
	t.Helper()
	key := must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader))
	tmpl := &x509.Certificate{
		SerialNumber: must(rand.Int(rand.Reader, big.NewInt(1<<62))),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der := must(x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key))
	keyPEM := &pem.Block{Type: "PRIVATE KEY", Bytes: must(x509.MarshalPKCS8PrivateKey(key))}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, &pem.Block{Type: "CERTIFICATE", Bytes: der}, keyPEM
}

func TestSMARTMutualTLS(t *testing.T) {
	ca := newTestCA(t)
	serverCert, _, _ := ca.issue(t, "ehr.test", x509.ExtKeyUsageServerAuth)
	_, clientCertPEM, clientKeyPEM := ca.issue(t, "radgate-node-1", x509.ExtKeyUsageClientAuth)
	caFile := writePEM(t, "ca.pem", ca.pem)
	certFile := writePEM(t, "client.pem", clientCertPEM)
	keyFile := writePEM(t, "client-key.pem", clientKeyPEM)

	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %s", r.TLS.PeerCertificates[0].Subject.CommonName)
	}))
	srv.TLS = &tls.Config{
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
		Certificates: []tls.Certificate{serverCert},
	}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake below
	srv.StartTLS()
	t.Cleanup(srv.Close)

	client, err := MutualTLS(certFile, keyFile, caFile)
	if err != nil {
		t.Fatalf("MutualTLS: %v", err)
	}
	t.Cleanup(client.CloseIdleConnections)
	if v := client.Transport.(*http.Transport).TLSClientConfig.MinVersion; v < tls.VersionTLS12 {
		t.Errorf("MinVersion %x, want TLS 1.2 or later", v)
	}
	resp, err := client.Get(srv.URL)
	if err != nil {
		t.Fatalf("GET with client certificate: %v", err)
	}
	body := make([]byte, 64)
	n, _ := resp.Body.Read(body)
	resp.Body.Close()
	if got, want := string(body[:n]), "hello radgate-node-1"; got != want {
		t.Errorf("server saw %q, want %q", got, want)
	}

	// The same server refuses a client that trusts it but has no certificate.
	noCert := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	t.Cleanup(noCert.CloseIdleConnections)
	if resp, err := noCert.Get(srv.URL); err == nil {
		resp.Body.Close()
		t.Error("GET without a client certificate succeeded")
	}

	t.Run("errors name the file", func(t *testing.T) {
		missing := filepath.Join(t.TempDir(), "missing-ca.pem")
		noCerts := writePEM(t, "empty-ca.pem", clientKeyPEM)
		for _, tc := range []struct{ cert, key, ca, want string }{
			{certFile, keyFile, missing, missing},
			{certFile, keyFile, noCerts, noCerts},
			{certFile, caFile, "", caFile},
		} {
			if _, err := MutualTLS(tc.cert, tc.key, tc.ca); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("MutualTLS(%s, %s, %s): %v, want an error naming %s", tc.cert, tc.key, tc.ca, err, tc.want)
			}
		}
	})
}
