package fhir

// SMART App Launch 2.x "Backend Services" (hl7.org/fhir/smart-app-launch/backend-services.html):
// the node authenticates to the EHR's token endpoint with a JWT signed by its
// own private key (RFC 7523 client assertion, "private_key_jwt") and gets a
// short-lived bearer token for the system/ scopes it was registered with.

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
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"
)

var (
	// ErrAuth: the token endpoint refused the client (RFC 6749 5.2 error
	// response, e.g. invalid_client) or answered without a usable bearer
	// token. Errors wrap it with the OAuth error code and description.
	ErrAuth = errors.New("fhir: authorization failed")
	// ErrDiscovery: {FHIRBase}/.well-known/smart-configuration is missing,
	// malformed, or says the server cannot do what Backend Services needs
	// (private_key_jwt with our signing algorithm).
	ErrDiscovery = errors.New("fhir: SMART discovery failed")
)

const (
	// assertionLifetime: Backend Services 2.x "exp … no more than five
	// minutes in the future"; we use the whole window.
	assertionLifetime = 5 * time.Minute
	// tokenRefreshMargin: a cached token is renewed this long before its
	// expires_in runs out (or a tenth of its lifetime, if that is shorter),
	// so a request signed just before expiry still arrives in time.
	tokenRefreshMargin = 60 * time.Second
	// maxAuthResponse bounds the discovery document and the token response
	// we read; both are small JSON objects.
	maxAuthResponse = 1 << 20
	// maxErrorDescription bounds how much of a server's error_description
	// travels into our error messages.
	maxErrorDescription = 256
	// minRSABits: Backend Services requires RSA keys of at least 2048 bits.
	minRSABits = 2048

	wellKnownSMART      = "/.well-known/smart-configuration"
	clientAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
	authPrivateKeyJWT   = "private_key_jwt"
	grantClientCreds    = "client_credentials"
	algRS384            = "RS384"
	algES384            = "ES384"
	es384FieldBytes     = 48 // RFC 7518 3.4: R and S each 48 octets for P-384
)

// SMARTConfig configures a Backend Services client.
type SMARTConfig struct {
	// FHIRBase is used for discovery: GET {FHIRBase}/.well-known/smart-configuration
	// gives the token_endpoint. Ignored when TokenURL is set.
	FHIRBase string
	// TokenURL overrides discovery.
	TokenURL string
	// ClientID is the client_id the EHR registered for this node; it is the
	// assertion's iss and sub.
	ClientID string
	// KeyFile is a PEM private key: RSA (PKCS#1 or PKCS#8) signs RS384,
	// EC P-384 (SEC 1 or PKCS#8) signs ES384.
	KeyFile string
	// KeyID is the JWS "kid": the key's id in the JWK Set registered with
	// the EHR (required by Backend Services).
	KeyID string
	// Scopes requested, e.g. system/ImagingStudy.write system/Patient.read.
	Scopes []string
	// HTTPClient talks to discovery and the token endpoint (MutualTLS builds
	// one that presents a client certificate). Nil: a client with a 30 s timeout.
	HTTPClient *http.Client
	// Now is the clock for assertions and token expiry. Nil: time.Now.
	Now func() time.Time
}

var _ Authorizer = (*SMARTAuthorizer)(nil)

// SMARTAuthorizer obtains, caches and renews Backend Services access tokens.
// It is safe for concurrent use; concurrent callers that find no valid token
// share one token request.
type SMARTAuthorizer struct {
	clientID string
	kid      string
	alg      string
	key      crypto.Signer
	scope    string
	fhirBase string
	http     *http.Client
	now      func() time.Time

	mu       sync.Mutex
	tokenURL string    // TokenURL, or token_endpoint once discovered
	token    string    // cached access token; "" when none
	expiry   time.Time // renew at or after this instant
	flight   *tokenFlight
}

// tokenFlight is one token request that the callers arriving while it is
// out wait for instead of sending their own.
type tokenFlight struct {
	done chan struct{}
	// Set before done is closed.
	token string
	err   error
	// leaderGone: the request failed because the caller that sent it gave
	// up (its context ended); a waiter whose own context is live retries.
	leaderGone bool
}

// NewSMART checks cfg and reads the private key; its errors wrap ErrConfig
// and name the key file, never its contents. It sends nothing: discovery and
// the first token request happen on the first Authorize, whose errors wrap
// ErrDiscovery (the server cannot do Backend Services for us), ErrAuth (the
// token endpoint refused us) or neither (network, 5xx: retriable).
func NewSMART(cfg SMARTConfig) (*SMARTAuthorizer, error) {
	switch {
	case cfg.ClientID == "":
		return nil, fmt.Errorf("%w: SMART: ClientID is required", ErrConfig)
	case cfg.KeyID == "":
		return nil, fmt.Errorf("%w: SMART: KeyID is required (JWS kid)", ErrConfig)
	case cfg.KeyFile == "":
		return nil, fmt.Errorf("%w: SMART: KeyFile is required", ErrConfig)
	case cfg.TokenURL == "" && cfg.FHIRBase == "":
		return nil, fmt.Errorf("%w: SMART: FHIRBase or TokenURL is required", ErrConfig)
	case len(cfg.Scopes) == 0:
		return nil, fmt.Errorf("%w: SMART: at least one scope is required", ErrConfig)
	}
	for _, s := range cfg.Scopes {
		if s == "" || strings.ContainsAny(s, " \t\r\n") {
			return nil, fmt.Errorf("%w: SMART: scope %q is empty or has whitespace", ErrConfig, s)
		}
	}
	key, alg, err := readSigningKey(cfg.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	a := &SMARTAuthorizer{
		clientID: cfg.ClientID,
		kid:      cfg.KeyID,
		alg:      alg,
		key:      key,
		scope:    strings.Join(cfg.Scopes, " "),
		fhirBase: strings.TrimRight(cfg.FHIRBase, "/"),
		tokenURL: cfg.TokenURL,
		http:     cfg.HTTPClient,
		now:      cfg.Now,
	}
	if a.http == nil {
		a.http = &http.Client{Timeout: defaultTimeout}
	}
	if a.now == nil {
		a.now = time.Now
	}
	return a, nil
}

// Authorize sets "Authorization: Bearer <token>" on req, requesting a token
// first when none is cached or the cached one is about to expire.
func (a *SMARTAuthorizer) Authorize(ctx context.Context, req *http.Request) error {
	tok, err := a.accessToken(ctx)
	if err != nil {
		return err
	}
	if req.Header == nil {
		req.Header = make(http.Header)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	return nil
}

// Invalidate drops the cached token, so the next Authorize requests a new
// one. Call it when the FHIR server answers 401 to a request that carried it.
func (a *SMARTAuthorizer) Invalidate() {
	a.mu.Lock()
	a.token, a.expiry = "", time.Time{}
	a.mu.Unlock()
}

// accessToken returns the cached token or takes part in one token request.
func (a *SMARTAuthorizer) accessToken(ctx context.Context) (string, error) {
	for {
		a.mu.Lock()
		if a.token != "" && a.now().Before(a.expiry) {
			tok := a.token
			a.mu.Unlock()
			return tok, nil
		}
		if f := a.flight; f != nil {
			a.mu.Unlock()
			select {
			case <-f.done:
				if f.leaderGone && ctx.Err() == nil {
					continue
				}
				return f.token, f.err
			case <-ctx.Done():
				return "", ctx.Err()
			}
		}
		f := &tokenFlight{done: make(chan struct{})}
		a.flight = f
		a.mu.Unlock()

		tok, expiry, err := a.requestToken(ctx)

		a.mu.Lock()
		a.flight = nil
		if err == nil {
			a.token, a.expiry = tok, expiry
		}
		f.token, f.err, f.leaderGone = tok, err, err != nil && ctx.Err() != nil
		close(f.done)
		a.mu.Unlock()
		return tok, err
	}
}

// requestToken discovers the token endpoint if need be and runs the
// client_credentials grant (Backend Services "Obtaining an access token").
func (a *SMARTAuthorizer) requestToken(ctx context.Context) (string, time.Time, error) {
	tokenURL, err := a.tokenEndpoint(ctx)
	if err != nil {
		return "", time.Time{}, err
	}
	now := a.now()
	assertion, err := a.assertion(tokenURL, now)
	if err != nil {
		return "", time.Time{}, err
	}
	form := url.Values{
		"grant_type":            {grantClientCreds},
		"scope":                 {a.scope},
		"client_assertion_type": {clientAssertionType},
		"client_assertion":      {assertion},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, tokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return "", time.Time{}, fmt.Errorf("fhir: SMART token request to %s: %w", tokenURL, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	status, body, err := a.send(req)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("fhir: SMART token request to %s: %w", tokenURL, err)
	}
	switch {
	case status == http.StatusOK:
		return parseTokenResponse(tokenURL, body, now)
	case status == http.StatusBadRequest || status == http.StatusUnauthorized || status == http.StatusForbidden:
		// RFC 6749 5.2: a refusal; retrying with the same key will not help.
		var e struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
		}
		if json.Unmarshal(body, &e) != nil || e.Error == "" {
			return "", time.Time{}, fmt.Errorf("%w: token endpoint %s answered %d without an OAuth error", ErrAuth, tokenURL, status)
		}
		return "", time.Time{}, fmt.Errorf("%w: token endpoint %s answered %d %s: %s",
			ErrAuth, tokenURL, status, printable(e.Error), printable(e.Description))
	default:
		// 5xx and the like: the server's trouble, worth a retry later.
		return "", time.Time{}, fmt.Errorf("fhir: SMART token endpoint %s answered %d", tokenURL, status)
	}
}

// parseTokenResponse checks an RFC 6749 5.1 response and computes when the
// token should be renewed.
func parseTokenResponse(tokenURL string, body []byte, now time.Time) (string, time.Time, error) {
	var r struct {
		AccessToken string      `json:"access_token"`
		TokenType   string      `json:"token_type"`
		ExpiresIn   json.Number `json:"expires_in"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return "", time.Time{}, fmt.Errorf("%w: token endpoint %s: response is not a JSON token: %v", ErrAuth, tokenURL, err)
	}
	if r.AccessToken == "" {
		return "", time.Time{}, fmt.Errorf("%w: token endpoint %s: response has no access_token", ErrAuth, tokenURL)
	}
	if !strings.EqualFold(r.TokenType, "bearer") {
		return "", time.Time{}, fmt.Errorf("%w: token endpoint %s: token_type %q, want bearer", ErrAuth, tokenURL, printable(r.TokenType))
	}
	// Without a usable expires_in the token serves this request only.
	expiry := now
	if secs, err := r.ExpiresIn.Int64(); err == nil && secs > 0 {
		ttl := time.Duration(secs) * time.Second
		expiry = now.Add(ttl - min(tokenRefreshMargin, ttl/10))
	}
	return r.AccessToken, expiry, nil
}

// tokenEndpoint returns TokenURL or the discovered token_endpoint, fetching
// the SMART configuration once it has succeeded.
func (a *SMARTAuthorizer) tokenEndpoint(ctx context.Context) (string, error) {
	a.mu.Lock()
	u := a.tokenURL
	a.mu.Unlock()
	if u != "" {
		return u, nil
	}
	u, err := a.discover(ctx)
	if err != nil {
		return "", err
	}
	a.mu.Lock()
	a.tokenURL = u
	a.mu.Unlock()
	return u, nil
}

// discover reads the SMART configuration (SMART App Launch 2.x "Conformance",
// smart-configuration fields) and checks that Backend Services with our
// algorithm is on offer where the server says what it offers.
func (a *SMARTAuthorizer) discover(ctx context.Context) (string, error) {
	where := a.fhirBase + wellKnownSMART
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, where, nil)
	if err != nil {
		return "", fmt.Errorf("%w: %s: %v", ErrDiscovery, where, err)
	}
	req.Header.Set("Accept", "application/json")
	status, body, err := a.send(req)
	if err != nil {
		return "", fmt.Errorf("fhir: SMART discovery at %s: %w", where, err)
	}
	if status != http.StatusOK {
		return "", fmt.Errorf("%w: %s answered %d", ErrDiscovery, where, status)
	}
	var c struct {
		TokenEndpoint string   `json:"token_endpoint"`
		AuthMethods   []string `json:"token_endpoint_auth_methods_supported"`
		SigningAlgs   []string `json:"token_endpoint_auth_signing_alg_values_supported"`
		GrantTypes    []string `json:"grant_types_supported"`
	}
	if err := json.Unmarshal(body, &c); err != nil {
		return "", fmt.Errorf("%w: %s is not a JSON SMART configuration: %v", ErrDiscovery, where, err)
	}
	tu, err := url.Parse(c.TokenEndpoint)
	if c.TokenEndpoint == "" || err != nil || !tu.IsAbs() || (tu.Scheme != "https" && tu.Scheme != "http") {
		return "", fmt.Errorf("%w: %s: token_endpoint %q is not an absolute http(s) URL", ErrDiscovery, where, printable(c.TokenEndpoint))
	}
	offers := func(field string, have []string, want string) error {
		if have == nil || containsFold(have, want) {
			return nil
		}
		return fmt.Errorf("%w: %s: %s %q does not include %s", ErrDiscovery, where, field, have, want)
	}
	if err := errors.Join(
		offers("token_endpoint_auth_methods_supported", c.AuthMethods, authPrivateKeyJWT),
		offers("token_endpoint_auth_signing_alg_values_supported", c.SigningAlgs, a.alg),
		offers("grant_types_supported", c.GrantTypes, grantClientCreds),
	); err != nil {
		return "", err
	}
	return c.TokenEndpoint, nil
}

// send runs req and returns the status and at most maxAuthResponse bytes of
// the body.
func (a *SMARTAuthorizer) send(req *http.Request) (int, []byte, error) {
	resp, err := a.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAuthResponse+1))
	if err != nil {
		return 0, nil, err
	}
	if len(body) > maxAuthResponse {
		return 0, nil, fmt.Errorf("response larger than %d bytes", maxAuthResponse)
	}
	return resp.StatusCode, body, nil
}

// assertion builds the signed client assertion (Backend Services "Protocol
// details": JWT header alg, kid, typ; claims iss, sub, aud, exp, jti).
func (a *SMARTAuthorizer) assertion(aud string, now time.Time) (string, error) {
	header, err := json.Marshal(struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
		Typ string `json:"typ"`
	}{a.alg, a.kid, "JWT"})
	if err != nil {
		return "", err
	}
	claims, err := json.Marshal(struct {
		Iss string `json:"iss"`
		Sub string `json:"sub"`
		Aud string `json:"aud"`
		Exp int64  `json:"exp"`
		Iat int64  `json:"iat"`
		Jti string `json:"jti"`
	}{
		Iss: a.clientID,
		Sub: a.clientID,
		Aud: aud,
		Exp: now.Add(assertionLifetime).Unix(),
		Iat: now.Unix(),
		Jti: rand.Text(), // 128 random bits: the server rejects a replayed jti
	})
	if err != nil {
		return "", err
	}
	b64 := base64.RawURLEncoding
	input := b64.EncodeToString(header) + "." + b64.EncodeToString(claims)
	sig, err := a.sign(input)
	if err != nil {
		return "", fmt.Errorf("fhir: SMART: signing the client assertion: %w", err)
	}
	return input + "." + b64.EncodeToString(sig), nil
}

// sign makes the JWS signature over input (RFC 7515 5.1) with SHA-384.
func (a *SMARTAuthorizer) sign(input string) ([]byte, error) {
	digest := sha512.Sum384([]byte(input))
	switch k := a.key.(type) {
	case *rsa.PrivateKey:
		// RFC 7518 3.3: RSASSA-PKCS1-v1_5.
		return rsa.SignPKCS1v15(rand.Reader, k, crypto.SHA384, digest[:])
	case *ecdsa.PrivateKey:
		// RFC 7518 3.4: R and S as fixed-width big-endian octets, not ASN.1.
		r, s, err := ecdsa.Sign(rand.Reader, k, digest[:])
		if err != nil {
			return nil, err
		}
		sig := make([]byte, 2*es384FieldBytes)
		r.FillBytes(sig[:es384FieldBytes])
		s.FillBytes(sig[es384FieldBytes:])
		return sig, nil
	}
	return nil, fmt.Errorf("unsupported key type %T", a.key)
}

// readSigningKey reads the first private key in a PEM file and picks its JWS
// algorithm. Errors name the file and the problem, never the key.
func readSigningKey(path string) (crypto.Signer, string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, "", fmt.Errorf("SMART key: %w", err)
	}
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, "", fmt.Errorf("SMART key %s: no private key PEM block", path)
		}
		var key any
		switch block.Type {
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(block.Bytes)
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case "ENCRYPTED PRIVATE KEY":
			return nil, "", fmt.Errorf("SMART key %s: encrypted keys are not supported", path)
		default:
			continue // e.g. "EC PARAMETERS" ahead of the key
		}
		if err != nil {
			return nil, "", fmt.Errorf("SMART key %s: %s block: %w", path, block.Type, err)
		}
		switch k := key.(type) {
		case *rsa.PrivateKey:
			if bits := k.N.BitLen(); bits < minRSABits {
				return nil, "", fmt.Errorf("SMART key %s: RSA key of %d bits, need at least %d", path, bits, minRSABits)
			}
			return k, algRS384, nil
		case *ecdsa.PrivateKey:
			if k.Curve != elliptic.P384() {
				return nil, "", fmt.Errorf("SMART key %s: EC curve %s, need P-384 for ES384", path, k.Curve.Params().Name)
			}
			return k, algES384, nil
		default:
			return nil, "", fmt.Errorf("SMART key %s: %T keys are not supported (RSA or EC P-384)", path, key)
		}
	}
}

// MutualTLS builds an HTTP client that presents the certificate in certFile
// (with its key in keyFile) to servers that authenticate the node by client
// certificate, and trusts only the CAs in caFile when it is given (otherwise
// the system roots). TLS 1.2 is the minimum.
func MutualTLS(certFile, keyFile, caFile string) (*http.Client, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("fhir: client certificate %s / key %s: %w", certFile, keyFile, err)
	}
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
	}
	if caFile != "" {
		pemData, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("fhir: CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pemData) {
			return nil, fmt.Errorf("fhir: CA file %s: no PEM certificates", caFile)
		}
		cfg.RootCAs = pool
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = cfg
	return &http.Client{Transport: tr, Timeout: defaultTimeout}, nil
}

// containsFold reports whether list holds want, ignoring case (algorithm and
// method names are case-sensitive in the spec, but servers vary).
func containsFold(list []string, want string) bool {
	for _, s := range list {
		if strings.EqualFold(s, want) {
			return true
		}
	}
	return false
}

// printable trims a server-supplied string for an error message: no control
// characters, at most maxErrorDescription bytes.
func printable(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return -1
		}
		return r
	}, s)
	if len(s) > maxErrorDescription {
		s = strings.ToValidUTF8(s[:maxErrorDescription], "") + "…"
	}
	return s
}
