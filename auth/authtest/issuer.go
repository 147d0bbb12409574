// Package authtest simulates, for tests, the OAuth 2 authorization server
// radgate trusts: an [Issuer] on 127.0.0.1 that publishes a JWK Set (RSA
// 2048, EC P-256/P-384/P-521 and Ed25519 keys), mints signed access tokens
// ([Issuer.Token], [Issuer.Sign]) and runs the authorization code flow with
// PKCE ([Issuer.AuthorizeURL], [Issuer.TokenURL]).
//
// No real authorization server (Keycloak, Dex, …) can be installed on the
// build machines — none is packaged in Debian — so the issuer is simulated;
// the verifier under test is always the real one.
package authtest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	// Audience is the aud tokens carry unless Claims.Audience says otherwise.
	Audience = "radgate"
	// ClientID is the client the authorization endpoint knows: the
	// radiologist's page.
	ClientID = "radgate-page"
	// DefaultSubject is the sub of tokens whose Claims leave it empty.
	DefaultSubject = "user-1"
	// DefaultLifetime is how long a token lives unless Claims.Expiry is set.
	DefaultLifetime = 5 * time.Minute
)

// Claims describes a token to mint. Zero fields take the defaults named.
type Claims struct {
	Subject   string    // "": DefaultSubject
	Issuer    string    // "": the Issuer's own Issuer()
	Audience  []string  // nil: [Audience]
	Scopes    []string  // the space-separated "scope" claim; nil: none
	Expiry    time.Time // zero: now + DefaultLifetime
	NotBefore time.Time // zero: no nbf
	IssuedAt  time.Time // zero: now
	ClientID  string    // client_id; "": none
	Name      string    // preferred_username; "": none
	// Alg signs the token: RS256/384/512 and PS256/384/512 with the RSA
	// key, ES256/384/512 with the P-256/384/521 key, EdDSA with Ed25519.
	// "": RS256.
	Alg string
	// Kid overrides the header's kid (to name a key the set lacks).
	Kid string
	// Extra claims, added last (they override the ones above).
	Extra map[string]any
}

// key is one signing key and its public JWK.
type key struct {
	kid    string
	signer crypto.Signer
	jwk    map[string]any
}

// Issuer is a simulated authorization server on 127.0.0.1.
type Issuer struct {
	srv *httptest.Server

	mu        sync.Mutex
	current   map[string]*key // by family: RSA, P-256, P-384, P-521, Ed25519
	published []*key          // every key in the JWK Set, rotated-out ones too
	down      bool
	requests  int
	nextKid   int
	login     Claims
	codes     map[string]grant
}

// grant is an authorization code waiting to be exchanged.
type grant struct {
	challenge, redirect, scope string
}

// NewIssuer starts an Issuer; it stops when t ends.
func NewIssuer(t testing.TB) *Issuer {
	t.Helper()
	i := &Issuer{current: map[string]*key{}, codes: map[string]grant{}}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatalf("authtest: %v", err)
	}
	i.add("RSA", rsaKey)
	for _, c := range []elliptic.Curve{elliptic.P256(), elliptic.P384(), elliptic.P521()} {
		k, err := ecdsa.GenerateKey(c, rand.Reader)
		if err != nil {
			t.Fatalf("authtest: %v", err)
		}
		i.add(c.Params().Name, k)
	}
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatalf("authtest: %v", err)
	}
	i.add("Ed25519", ed)

	mux := http.NewServeMux()
	mux.HandleFunc("GET /jwks", i.serveJWKS)
	mux.HandleFunc("GET /authorize", i.serveAuthorize)
	mux.HandleFunc("POST /token", i.serveToken)
	i.srv = httptest.NewServer(mux)
	t.Cleanup(i.srv.Close)
	return i
}

// add publishes k as the current key of its family. Call with mu held
// (or before the server starts).
func (i *Issuer) add(family string, s crypto.Signer) {
	i.nextKid++
	k := &key{kid: fmt.Sprintf("%s-%d", strings.ToLower(family), i.nextKid), signer: s}
	b64 := base64.RawURLEncoding.EncodeToString
	switch pub := s.Public().(type) {
	case *rsa.PublicKey:
		// No "alg": the key serves RS* and PS* alike.
		k.jwk = map[string]any{"kty": "RSA", "n": b64(pub.N.Bytes()), "e": b64([]byte{1, 0, 1})}
	case *ecdsa.PublicKey:
		size := (pub.Curve.Params().BitSize + 7) / 8
		raw, _ := pub.Bytes() // 0x04 || X || Y, each size bytes
		k.jwk = map[string]any{"kty": "EC", "crv": family, "x": b64(raw[1 : 1+size]), "y": b64(raw[1+size:])}
	case ed25519.PublicKey:
		k.jwk = map[string]any{"kty": "OKP", "crv": "Ed25519", "x": b64(pub), "alg": "EdDSA"}
	}
	k.jwk["kid"] = k.kid
	k.jwk["use"] = "sig"
	i.current[family] = k
	i.published = append(i.published, k)
}

// Issuer is the iss the tokens carry: the server's base URL.
func (i *Issuer) Issuer() string { return i.srv.URL }

// URL is the JWK Set URL.
func (i *Issuer) URL() string { return i.srv.URL + "/jwks" }

// AuthorizeURL is the authorization endpoint (RFC 6749 3.1).
func (i *Issuer) AuthorizeURL() string { return i.srv.URL + "/authorize" }

// TokenURL is the token endpoint (RFC 6749 3.2).
func (i *Issuer) TokenURL() string { return i.srv.URL + "/token" }

// Client is an HTTP client for the issuer's server.
func (i *Issuer) Client() *http.Client { return i.srv.Client() }

// SetDown makes the JWK Set endpoint answer 503 (down) or serve again.
func (i *Issuer) SetDown(down bool) {
	i.mu.Lock()
	i.down = down
	i.mu.Unlock()
}

// JWKSRequests counts the JWK Set requests served so far, 503s included.
func (i *Issuer) JWKSRequests() int {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.requests
}

// JWKS returns the JWK Set document as served.
func (i *Issuer) JWKS(t testing.TB) []byte {
	t.Helper()
	i.mu.Lock()
	defer i.mu.Unlock()
	b, err := i.jwksLocked()
	if err != nil {
		t.Fatalf("authtest: %v", err)
	}
	return b
}

func (i *Issuer) jwksLocked() ([]byte, error) {
	keys := make([]map[string]any, len(i.published))
	for n, k := range i.published {
		keys[n] = k.jwk
	}
	return json.Marshal(map[string]any{"keys": keys})
}

// Rotate publishes a new RSA key and signs RS*/PS* tokens with it from now
// on; the old key stays in the set, as issuers do during a rotation. It
// returns the new kid.
func (i *Issuer) Rotate(t testing.TB) string {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatalf("authtest: %v", err)
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	i.add("RSA", k)
	return i.current["RSA"].kid
}

// SetLogin sets the claims of the tokens the authorization code flow
// issues. Their Scopes, if nil, are the scopes the client asked for.
func (i *Issuer) SetLogin(c Claims) {
	i.mu.Lock()
	i.login = c
	i.mu.Unlock()
}

// Token mints a signed access token (RFC 9068) described by c.
func (i *Issuer) Token(t testing.TB, c Claims) string {
	t.Helper()
	tok, err := i.token(c)
	if err != nil {
		t.Fatalf("authtest: %v", err)
	}
	return tok
}

func (i *Issuer) token(c Claims) (string, error) {
	alg := c.Alg
	if alg == "" {
		alg = "RS256"
	}
	now := time.Now()
	cl := map[string]any{
		"iss": c.Issuer,
		"sub": c.Subject,
		"aud": c.Audience,
		"exp": c.Expiry.Unix(),
		"iat": now.Unix(),
		"jti": rand.Text(),
	}
	if c.Issuer == "" {
		cl["iss"] = i.Issuer()
	}
	if c.Subject == "" {
		cl["sub"] = DefaultSubject
	}
	if c.Audience == nil {
		cl["aud"] = Audience
	}
	if c.Expiry.IsZero() {
		cl["exp"] = now.Add(DefaultLifetime).Unix()
	}
	if !c.IssuedAt.IsZero() {
		cl["iat"] = c.IssuedAt.Unix()
	}
	if !c.NotBefore.IsZero() {
		cl["nbf"] = c.NotBefore.Unix()
	}
	if c.Scopes != nil {
		cl["scope"] = strings.Join(c.Scopes, " ")
	}
	if c.ClientID != "" {
		cl["client_id"] = c.ClientID
	}
	if c.Name != "" {
		cl["preferred_username"] = c.Name
	}
	maps.Copy(cl, c.Extra)
	h := map[string]any{"alg": alg, "typ": "at+jwt"}
	if c.Kid != "" {
		h["kid"] = c.Kid
	}
	return i.sign(h, cl)
}

// Sign signs claims under header as given, for crafted tokens (an odd typ,
// a crit member…), with the current key of the family header's alg names;
// header gets that key's kid unless it has one.
func (i *Issuer) Sign(t testing.TB, header, claims map[string]any) string {
	t.Helper()
	tok, err := i.sign(header, claims)
	if err != nil {
		t.Fatalf("authtest: %v", err)
	}
	return tok
}

func (i *Issuer) sign(header, claims map[string]any) (string, error) {
	alg, _ := header["alg"].(string)
	family, hash, pss, err := scheme(alg)
	if err != nil {
		return "", err
	}
	i.mu.Lock()
	k := i.current[family]
	i.mu.Unlock()
	header = maps.Clone(header)
	if _, ok := header["kid"]; !ok {
		header["kid"] = k.kid
	}
	hb, err := json.Marshal(header)
	if err != nil {
		return "", err
	}
	cb, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	b64 := base64.RawURLEncoding.EncodeToString
	input := b64(hb) + "." + b64(cb)
	var sig []byte
	switch s := k.signer.(type) {
	case *rsa.PrivateKey:
		d := digest(hash, input)
		if pss {
			sig, err = rsa.SignPSS(rand.Reader, s, hash, d, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
		} else {
			sig, err = rsa.SignPKCS1v15(rand.Reader, s, hash, d)
		}
	case *ecdsa.PrivateKey:
		size := (s.Curve.Params().BitSize + 7) / 8
		var r, ss *big.Int
		if r, ss, err = ecdsa.Sign(rand.Reader, s, digest(hash, input)); err == nil {
			sig = make([]byte, 2*size) // RFC 7518 3.4: R || S
			r.FillBytes(sig[:size])
			ss.FillBytes(sig[size:])
		}
	case ed25519.PrivateKey:
		sig = ed25519.Sign(s, []byte(input))
	}
	if err != nil {
		return "", err
	}
	return input + "." + b64(sig), nil
}

// scheme maps a JWS alg to the key family, hash and padding that sign it.
func scheme(alg string) (family string, hash crypto.Hash, pss bool, err error) {
	hashes := map[string]crypto.Hash{"256": crypto.SHA256, "384": crypto.SHA384, "512": crypto.SHA512}
	curves := map[string]string{"256": "P-256", "384": "P-384", "512": "P-521"}
	if alg == "EdDSA" {
		return "Ed25519", 0, false, nil
	}
	if len(alg) == 5 {
		h, ok := hashes[alg[2:]]
		switch {
		case ok && alg[:2] == "RS":
			return "RSA", h, false, nil
		case ok && alg[:2] == "PS":
			return "RSA", h, true, nil
		case ok && alg[:2] == "ES":
			return curves[alg[2:]], h, false, nil
		}
	}
	return "", 0, false, fmt.Errorf("authtest: cannot sign alg %q", alg)
}

func digest(h crypto.Hash, input string) []byte {
	switch h {
	case crypto.SHA256:
		d := sha256.Sum256([]byte(input))
		return d[:]
	case crypto.SHA384:
		d := sha512.Sum384([]byte(input))
		return d[:]
	}
	d := sha512.Sum512([]byte(input))
	return d[:]
}

func (i *Issuer) serveJWKS(w http.ResponseWriter, _ *http.Request) {
	i.mu.Lock()
	i.requests++
	down := i.down
	b, err := i.jwksLocked()
	i.mu.Unlock()
	if down || err != nil {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/jwk-set+json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	w.Write(b)
}

// serveAuthorize is the authorization endpoint (RFC 6749 4.1.1, RFC 7636
// 4.3). It logs everyone in at once, as the SetLogin user, and redirects
// back with a code and the client's state (RFC 6749 4.1.2).
func (i *Issuer) serveAuthorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("response_type") != "code" || q.Get("client_id") != ClientID ||
		q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" || q.Get("state") == "" {
		http.Error(w, "bad authorization request", http.StatusBadRequest)
		return
	}
	back, err := url.Parse(q.Get("redirect_uri"))
	if err != nil || !back.IsAbs() {
		http.Error(w, "bad redirect_uri", http.StatusBadRequest)
		return
	}
	code := rand.Text()
	i.mu.Lock()
	i.codes[code] = grant{challenge: q.Get("code_challenge"), redirect: q.Get("redirect_uri"), scope: q.Get("scope")}
	i.mu.Unlock()
	bq := back.Query()
	bq.Set("code", code)
	bq.Set("state", q.Get("state"))
	back.RawQuery = bq.Encode()
	http.Redirect(w, r, back.String(), http.StatusFound)
}

// serveToken is the token endpoint for the authorization_code grant of a
// public client (RFC 6749 4.1.3-4.1.4, RFC 7636 4.6).
func (i *Issuer) serveToken(w http.ResponseWriter, r *http.Request) {
	oauthError := func(code string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		json.NewEncoder(w).Encode(map[string]string{"error": code})
	}
	if err := r.ParseForm(); err != nil || r.PostForm.Get("grant_type") != "authorization_code" {
		oauthError("unsupported_grant_type")
		return
	}
	f := r.PostForm
	i.mu.Lock()
	g, ok := i.codes[f.Get("code")]
	delete(i.codes, f.Get("code")) // single use (RFC 6749 4.1.2)
	login := i.login
	i.mu.Unlock()
	sum := sha256.Sum256([]byte(f.Get("code_verifier")))
	switch {
	case !ok, f.Get("redirect_uri") != g.redirect:
		oauthError("invalid_grant")
		return
	case f.Get("client_id") != ClientID:
		oauthError("invalid_client")
		return
	case base64.RawURLEncoding.EncodeToString(sum[:]) != g.challenge:
		oauthError("invalid_grant")
		return
	}
	if login.Scopes == nil {
		login.Scopes = strings.Fields(g.scope)
	}
	if login.ClientID == "" {
		login.ClientID = ClientID
	}
	tok, err := i.token(login)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	expiresIn := int64(DefaultLifetime / time.Second)
	if !login.Expiry.IsZero() {
		expiresIn = int64(time.Until(login.Expiry) / time.Second)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(map[string]any{"access_token": tok, "token_type": "Bearer", "expires_in": expiresIn})
}
