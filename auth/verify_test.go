package auth_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/radgate/radgate/auth"
	"github.com/radgate/radgate/auth/authtest"
)

var b64 = base64.RawURLEncoding

// kidOf returns the kid in a token's header.
func kidOf(t *testing.T, tok string) string {
	t.Helper()
	hb, err := b64.DecodeString(strings.Split(tok, ".")[0])
	if err != nil {
		t.Fatal(err)
	}
	var h struct{ Kid string }
	if err := json.Unmarshal(hb, &h); err != nil {
		t.Fatal(err)
	}
	return h.Kid
}

// unsigned builds header.claims. with an arbitrary header and no valid
// signature; sign, if set, makes the signature over the input.
func unsigned(t *testing.T, header, claims map[string]any, sign func(input string) []byte) string {
	t.Helper()
	hb, _ := json.Marshal(header)
	cb, _ := json.Marshal(claims)
	input := b64.EncodeToString(hb) + "." + b64.EncodeToString(cb)
	var sig []byte
	if sign != nil {
		sig = sign(input)
	}
	return input + "." + b64.EncodeToString(sig)
}

// goodClaims are the claims of a token that should pass.
func goodClaims(iss *authtest.Issuer) map[string]any {
	return map[string]any{
		"iss": iss.Issuer(), "sub": "user-1", "aud": authtest.Audience,
		"exp": time.Now().Add(time.Hour).Unix(), "scope": auth.ScopeDICOMwebRead,
	}
}

func read(c authtest.Claims) authtest.Claims {
	if c.Scopes == nil {
		c.Scopes = []string{auth.ScopeDICOMwebRead}
	}
	return c
}

// TestRefusals runs each token through Verify, the HTTP middleware and
// the gRPC interceptor (each needing dicomweb.read), with a fresh Verifier
// per case so that key rotation and the unknown-kid refetch limit do not
// leak between cases.
func TestRefusals(t *testing.T) {
	iss := authtest.NewIssuer(t)
	now := time.Now()
	tok := func(c authtest.Claims) func(*testing.T) string {
		return func(t *testing.T) string { return iss.Token(t, read(c)) }
	}
	tests := []struct {
		name    string
		token   func(t *testing.T) string // built after the Verifier started
		wantErr error                     // nil: accepted
		reason  string
		http    int
		code    codes.Code
	}{
		{name: "RS256", token: tok(authtest.Claims{})},
		{name: "RS384", token: tok(authtest.Claims{Alg: "RS384"})},
		{name: "RS512", token: tok(authtest.Claims{Alg: "RS512"})},
		{name: "PS256", token: tok(authtest.Claims{Alg: "PS256"})},
		{name: "PS384", token: tok(authtest.Claims{Alg: "PS384"})},
		{name: "PS512", token: tok(authtest.Claims{Alg: "PS512"})},
		{name: "ES256", token: tok(authtest.Claims{Alg: "ES256"})},
		{name: "ES384", token: tok(authtest.Claims{Alg: "ES384"})},
		{name: "ES512", token: tok(authtest.Claims{Alg: "ES512"})},
		{name: "EdDSA", token: tok(authtest.Claims{Alg: "EdDSA"})},
		{name: "admin grants every scope", token: tok(authtest.Claims{Scopes: []string{auth.ScopeAdmin}})},
		{name: "scp array", token: tok(authtest.Claims{Scopes: []string{}, Extra: map[string]any{"scp": []string{auth.ScopeDICOMwebRead}}})},
		{name: "aud array", token: tok(authtest.Claims{Audience: []string{"other", authtest.Audience}})},
		{name: "expired within leeway", token: tok(authtest.Claims{Expiry: now.Add(-30 * time.Second)})},
		{name: "typ JWT", token: func(t *testing.T) string {
			return iss.Sign(t, map[string]any{"alg": "RS256", "typ": "JWT"}, goodClaims(iss))
		}},
		{
			name:  "rotated key",
			token: func(t *testing.T) string { iss.Rotate(t); return iss.Token(t, read(authtest.Claims{})) },
		},

		{name: "missing", token: func(*testing.T) string { return "" },
			wantErr: auth.ErrMissing, reason: auth.ReasonMissing, http: 401, code: codes.Unauthenticated},
		{name: "malformed", token: func(*testing.T) string { return "not-a-jwt" },
			wantErr: auth.ErrMalformed, reason: auth.ReasonMalformed, http: 401, code: codes.Unauthenticated},
		{name: "five parts (JWE)", token: func(*testing.T) string { return "a.b.c.d.e" },
			wantErr: auth.ErrMalformed, reason: auth.ReasonMalformed, http: 401, code: codes.Unauthenticated},
		{name: "too long", token: func(*testing.T) string { return strings.Repeat("a", 17<<10) },
			wantErr: auth.ErrMalformed, reason: auth.ReasonMalformed, http: 401, code: codes.Unauthenticated},
		{name: "crit header", token: func(t *testing.T) string {
			return iss.Sign(t, map[string]any{"alg": "RS256", "crit": []string{"exp"}}, goodClaims(iss))
		}, wantErr: auth.ErrMalformed, reason: auth.ReasonMalformed, http: 401, code: codes.Unauthenticated},
		{name: "typ of another JWT", token: func(t *testing.T) string {
			return iss.Sign(t, map[string]any{"alg": "RS256", "typ": "dpop+jwt"}, goodClaims(iss))
		}, wantErr: auth.ErrMalformed, reason: auth.ReasonMalformed, http: 401, code: codes.Unauthenticated},
		{name: "no kid", token: func(t *testing.T) string {
			return iss.Sign(t, map[string]any{"alg": "RS256", "kid": ""}, goodClaims(iss))
		}, wantErr: auth.ErrMalformed, reason: auth.ReasonMalformed, http: 401, code: codes.Unauthenticated},
		{name: "no exp", token: tok(authtest.Claims{Extra: map[string]any{"exp": nil}}),
			wantErr: auth.ErrMalformed, reason: auth.ReasonMalformed, http: 401, code: codes.Unauthenticated},
		{name: "exp a string", token: tok(authtest.Claims{Extra: map[string]any{"exp": "tomorrow"}}),
			wantErr: auth.ErrMalformed, reason: auth.ReasonMalformed, http: 401, code: codes.Unauthenticated},
		{name: "bad signature", token: func(t *testing.T) string {
			parts := strings.Split(iss.Token(t, read(authtest.Claims{})), ".")
			sig, _ := b64.DecodeString(parts[2])
			sig[len(sig)/2] ^= 1
			return parts[0] + "." + parts[1] + "." + b64.EncodeToString(sig)
		}, wantErr: auth.ErrSignature, reason: auth.ReasonSignature, http: 401, code: codes.Unauthenticated},
		{name: "claims swapped under a valid signature", token: func(t *testing.T) string {
			parts := strings.Split(iss.Token(t, read(authtest.Claims{})), ".")
			admin := strings.Split(iss.Token(t, authtest.Claims{Scopes: []string{auth.ScopeAdmin}}), ".")
			return parts[0] + "." + admin[1] + "." + parts[2]
		}, wantErr: auth.ErrSignature, reason: auth.ReasonSignature, http: 401, code: codes.Unauthenticated},
		{name: "alg none", token: func(t *testing.T) string {
			kid := kidOf(t, iss.Token(t, authtest.Claims{}))
			return unsigned(t, map[string]any{"alg": "none", "kid": kid}, goodClaims(iss), nil)
		}, wantErr: auth.ErrSignature, reason: auth.ReasonSignature, http: 401, code: codes.Unauthenticated},
		{name: "HS256 with the public key as secret", token: func(t *testing.T) string {
			kid := kidOf(t, iss.Token(t, authtest.Claims{}))
			secret := iss.JWKS(t)
			return unsigned(t, map[string]any{"alg": "HS256", "kid": kid}, goodClaims(iss), func(in string) []byte {
				m := hmac.New(sha256.New, secret)
				m.Write([]byte(in))
				return m.Sum(nil)
			})
		}, wantErr: auth.ErrSignature, reason: auth.ReasonSignature, http: 401, code: codes.Unauthenticated},
		{name: "alg does not fit the key", token: func(t *testing.T) string {
			// Signed with the P-256 key but naming the RSA key's kid.
			kid := kidOf(t, iss.Token(t, authtest.Claims{}))
			return iss.Sign(t, map[string]any{"alg": "ES256", "kid": kid}, goodClaims(iss))
		}, wantErr: auth.ErrSignature, reason: auth.ReasonSignature, http: 401, code: codes.Unauthenticated},
		{name: "unknown kid", token: tok(authtest.Claims{Kid: "no-such-key"}),
			wantErr: auth.ErrSignature, reason: auth.ReasonSignature, http: 401, code: codes.Unauthenticated},
		{name: "expired", token: tok(authtest.Claims{Expiry: now.Add(-2 * time.Minute)}),
			wantErr: auth.ErrExpired, reason: auth.ReasonExpired, http: 401, code: codes.Unauthenticated},
		{name: "nbf in the future", token: tok(authtest.Claims{NotBefore: now.Add(5 * time.Minute), Expiry: now.Add(time.Hour)}),
			wantErr: auth.ErrNotYetValid, reason: auth.ReasonNotYetValid, http: 401, code: codes.Unauthenticated},
		{name: "iat in the future", token: tok(authtest.Claims{IssuedAt: now.Add(5 * time.Minute)}),
			wantErr: auth.ErrNotYetValid, reason: auth.ReasonNotYetValid, http: 401, code: codes.Unauthenticated},
		{name: "wrong issuer", token: tok(authtest.Claims{Issuer: "https://evil.example"}),
			wantErr: auth.ErrIssuer, reason: auth.ReasonIssuer, http: 401, code: codes.Unauthenticated},
		{name: "wrong audience", token: tok(authtest.Claims{Audience: []string{"another-api"}}),
			wantErr: auth.ErrAudience, reason: auth.ReasonAudience, http: 401, code: codes.Unauthenticated},
		{name: "wrong scope", token: tok(authtest.Claims{Scopes: []string{auth.ScopeWorklistRead}}),
			wantErr: auth.ErrScope, reason: auth.ReasonScope, http: 403, code: codes.PermissionDenied},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fs := &failures{}
			log := newLogRecorder()
			v := newVerifier(t, iss, fs, log)
			raw := tc.token(t)

			// Verify (the scope is the middleware's business, not Verify's).
			p, err := v.Verify(t.Context(), raw)
			wantVerify := tc.wantErr
			if errors.Is(wantVerify, auth.ErrScope) {
				wantVerify = nil
			}
			if !errors.Is(err, wantVerify) || (wantVerify == nil) != (err == nil) {
				t.Fatalf("Verify: err %v, want %v", err, wantVerify)
			}
			if err == nil && (p.Subject != authtest.DefaultSubject || !p.Has(auth.ScopeDICOMwebRead) && tc.wantErr == nil) {
				t.Errorf("Verify: principal %+v", p)
			}
			wantF := []auth.Failure(nil)
			if wantVerify != nil {
				wantF = []auth.Failure{{Reason: tc.reason}}
			}
			if diff := cmp.Diff(wantF, fs.take()); diff != "" {
				t.Errorf("Verify failures (-want +got):\n%s", diff)
			}

			// HTTP.
			mux := http.NewServeMux()
			mux.Handle("GET /studies/{study}", v.Require(auth.ScopeDICOMwebRead, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				p, ok := auth.FromContext(r.Context())
				if !ok {
					t.Error("no principal in the handler's context")
					return
				}
				w.Write([]byte(p.Subject))
			})))
			srv := httptest.NewServer(mux)
			defer srv.Close()
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"/studies/1.2.3", nil)
			if raw != "" {
				req.Header.Set("Authorization", "Bearer "+raw)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			wantStatus := tc.http
			if wantStatus == 0 {
				wantStatus = http.StatusOK
			}
			if resp.StatusCode != wantStatus {
				t.Errorf("HTTP status %d, want %d", resp.StatusCode, wantStatus)
			}
			gotF := fs.take()
			if tc.wantErr != nil {
				if len(gotF) != 1 || gotF[0].Remote == "" {
					t.Fatalf("HTTP failures %+v, want one with a Remote", gotF)
				}
				gotF[0].Remote = ""
				want := auth.Failure{Reason: tc.reason, Scope: auth.ScopeDICOMwebRead, Method: "GET /studies/{study}"}
				if tc.reason == auth.ReasonScope {
					want.Subject = authtest.DefaultSubject
				}
				if diff := cmp.Diff(want, gotF[0]); diff != "" {
					t.Errorf("HTTP failure (-want +got):\n%s", diff)
				}
			} else if len(gotF) != 0 {
				t.Errorf("HTTP failures %+v for an accepted token", gotF)
			}

			// gRPC.
			conn := startGRPC(t, v)
			sub, err := callScoped(t.Context(), conn, raw)
			if got := status.Code(err); got != tc.code {
				t.Errorf("gRPC code %v (%v), want %v", got, err, tc.code)
			}
			if tc.wantErr == nil && sub != authtest.DefaultSubject {
				t.Errorf("gRPC handler saw subject %q", sub)
			}
			if gotF := fs.take(); tc.wantErr != nil && (len(gotF) != 1 || gotF[0].Reason != tc.reason || gotF[0].Method != scopedCheck) {
				t.Errorf("gRPC failures %+v, want one %s at %s", gotF, tc.reason, scopedCheck)
			}

			if raw != "" && strings.Contains(log.String(), raw) {
				t.Errorf("the token was logged:\n%s", log)
			}
		})
	}
}

// TestChallenges checks the RFC 6750 3 WWW-Authenticate headers exactly,
// and what counts as bearer credentials.
func TestChallenges(t *testing.T) {
	iss := authtest.NewIssuer(t)
	v := newVerifier(t, iss, nil, nil)
	srv := httptest.NewServer(v.Require(auth.ScopeDICOMwebWrite, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})))
	defer srv.Close()
	good := iss.Token(t, authtest.Claims{Scopes: []string{auth.ScopeDICOMwebWrite}})
	tests := []struct {
		name   string
		header []string // Authorization values
		query  string
		status int
		want   string
	}{
		{name: "valid", header: []string{"Bearer " + good}, status: 200},
		{name: "scheme is case-insensitive", header: []string{"bearer " + good}, status: 200},
		{name: "missing", status: 401, want: `Bearer realm="radgate"`},
		{name: "token in the query string is not read", query: "?access_token=" + good, status: 401, want: `Bearer realm="radgate"`},
		{name: "Basic credentials", header: []string{"Basic dXNlcjpwYXNz"}, status: 401, want: `Bearer realm="radgate"`},
		{name: "Bearer without a token", header: []string{"Bearer "}, status: 401,
			want: `Bearer realm="radgate", error="invalid_token", error_description="the access token is malformed"`},
		{name: "two Authorization headers", header: []string{"Bearer " + good, "Bearer " + good}, status: 401,
			want: `Bearer realm="radgate", error="invalid_token", error_description="the access token is malformed"`},
		{name: "expired", header: []string{"Bearer " + iss.Token(t, authtest.Claims{Scopes: []string{auth.ScopeDICOMwebWrite}, Expiry: time.Now().Add(-time.Hour)})},
			status: 401, want: `Bearer realm="radgate", error="invalid_token", error_description="the access token expired"`},
		{name: "insufficient scope", header: []string{"Bearer " + iss.Token(t, authtest.Claims{Scopes: []string{auth.ScopeDICOMwebRead}})},
			status: 403, want: `Bearer realm="radgate", error="insufficient_scope", scope="dicomweb.write", error_description="the access token lacks the required scope"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+"/studies"+tc.query, nil)
			for _, h := range tc.header {
				req.Header.Add("Authorization", h)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Errorf("status %d, want %d", resp.StatusCode, tc.status)
			}
			if got := resp.Header.Get("WWW-Authenticate"); got != tc.want {
				t.Errorf("WWW-Authenticate\n got %s\nwant %s", got, tc.want)
			}
		})
	}
}

// TestUnreachableAtStart: New succeeds without the JWK Set, tokens are
// refused with no_keys (HTTP 503, gRPC Unavailable), and the background
// retry loads the set once the issuer is back.
func TestUnreachableAtStart(t *testing.T) {
	iss := authtest.NewIssuer(t)
	iss.SetDown(true)
	fs := &failures{}
	log := newLogRecorder()
	v := newVerifier(t, iss, fs, log)
	tok := iss.Token(t, read(authtest.Claims{}))

	if _, err := v.Verify(t.Context(), tok); !errors.Is(err, auth.ErrNoKeys) {
		t.Fatalf("Verify while down: %v, want ErrNoKeys", err)
	}
	srv := httptest.NewServer(v.Require(auth.ScopeDICOMwebRead, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})))
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("HTTP while down: %d, want 503", resp.StatusCode)
	}
	if _, err := callScoped(t.Context(), startGRPC(t, v), tok); status.Code(err) != codes.Unavailable {
		t.Errorf("gRPC while down: %v, want Unavailable", err)
	}
	for _, f := range fs.take() {
		if f.Reason != auth.ReasonNoKeys {
			t.Errorf("failure %+v, want reason no_keys", f)
		}
	}

	iss.SetDown(false)
	select {
	case <-log.loaded:
	case <-time.After(30 * time.Second):
		t.Fatalf("the JWK Set never loaded; log:\n%s", log)
	}
	if _, err := v.Verify(t.Context(), tok); err != nil {
		t.Fatalf("Verify after the issuer came back: %v", err)
	}
}

// TestUnknownKidRefetchIsRateLimited: one refetch per unknownKidInterval,
// however many unknown kids arrive.
func TestUnknownKidRefetchIsRateLimited(t *testing.T) {
	iss := authtest.NewIssuer(t)
	v := newVerifier(t, iss, nil, nil)
	if n := iss.JWKSRequests(); n != 1 {
		t.Fatalf("%d JWK Set requests after New, want 1", n)
	}
	for i, kid := range []string{"forged-1", "forged-2", "forged-3"} {
		if _, err := v.Verify(t.Context(), iss.Token(t, authtest.Claims{Kid: kid})); !errors.Is(err, auth.ErrSignature) {
			t.Fatalf("kid %s: %v, want ErrSignature", kid, err)
		}
		if n := iss.JWKSRequests(); n != 2 {
			t.Fatalf("after %d unknown kids: %d JWK Set requests, want 2", i+1, n)
		}
	}
}

// TestJWKSFile reads the keys from a file, and honours a JWK's alg.
func TestJWKSFile(t *testing.T) {
	iss := authtest.NewIssuer(t)
	var set struct{ Keys []map[string]any }
	if err := json.Unmarshal(iss.JWKS(t), &set); err != nil {
		t.Fatal(err)
	}
	for _, k := range set.Keys {
		if k["kty"] == "RSA" {
			k["alg"] = "RS256" // this key may sign RS256 only
		}
	}
	data, _ := json.Marshal(set)
	path := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	v, err := auth.New(t.Context(), auth.Config{Issuer: iss.Issuer(), Audience: authtest.Audience, JWKS: path}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	for alg, want := range map[string]error{"RS256": nil, "RS384": auth.ErrSignature, "PS256": auth.ErrSignature, "ES256": nil} {
		_, err := v.Verify(t.Context(), iss.Token(t, authtest.Claims{Alg: alg}))
		if !errors.Is(err, want) || (want == nil) != (err == nil) {
			t.Errorf("%s: %v, want %v", alg, err, want)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	good := auth.Config{Issuer: "https://idp.example", Audience: "radgate", JWKS: "https://idp.example/jwks"}
	tests := []struct {
		name string
		edit func(*auth.Config)
	}{
		{"no issuer", func(c *auth.Config) { c.Issuer = "" }},
		{"no audience", func(c *auth.Config) { c.Audience = "" }},
		{"no JWKS", func(c *auth.Config) { c.JWKS = "" }},
		{"http to a remote host", func(c *auth.Config) { c.JWKS = "http://idp.example/jwks" }},
		{"ftp", func(c *auth.Config) { c.JWKS = "ftp://idp.example/jwks" }},
		{"negative leeway", func(c *auth.Config) { c.Leeway = -time.Second }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := good
			tc.edit(&cfg)
			if _, err := auth.New(t.Context(), cfg, nil, nil); !errors.Is(err, auth.ErrConfig) {
				t.Errorf("New: %v, want ErrConfig", err)
			}
		})
	}
}

// TestMetrics counts refusals by reason in radgate_auth_failures_total.
func TestMetrics(t *testing.T) {
	iss := authtest.NewIssuer(t)
	reg := prometheus.NewRegistry()
	v, err := auth.New(t.Context(), auth.Config{Issuer: iss.Issuer(), Audience: authtest.Audience, JWKS: iss.URL()}, nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	v.Verify(t.Context(), "")
	v.Verify(t.Context(), iss.Token(t, authtest.Claims{Expiry: time.Now().Add(-time.Hour)}))
	v.Verify(t.Context(), iss.Token(t, authtest.Claims{Expiry: time.Now().Add(-time.Hour)}))
	v.Verify(t.Context(), iss.Token(t, authtest.Claims{}))
	want := `
# HELP radgate_auth_failures_total Refused bearer tokens and sessions by reason.
# TYPE radgate_auth_failures_total counter
radgate_auth_failures_total{reason="audience"} 0
radgate_auth_failures_total{reason="expired"} 2
radgate_auth_failures_total{reason="issuer"} 0
radgate_auth_failures_total{reason="malformed"} 0
radgate_auth_failures_total{reason="missing"} 1
radgate_auth_failures_total{reason="no_keys"} 0
radgate_auth_failures_total{reason="not_yet_valid"} 0
radgate_auth_failures_total{reason="scope"} 0
radgate_auth_failures_total{reason="signature"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "radgate_auth_failures_total"); err != nil {
		t.Error(err)
	}
}

// TestPrincipal checks the claims that become the Principal.
func TestPrincipal(t *testing.T) {
	iss := authtest.NewIssuer(t)
	v := newVerifier(t, iss, nil, nil)
	exp := time.Now().Add(10 * time.Minute).Truncate(time.Second)
	tok := iss.Token(t, authtest.Claims{
		Subject: "dr-who", Scopes: []string{"worklist.read", "dicomweb.read", "worklist.read"}, Expiry: exp, Name: "who",
		Extra: map[string]any{"azp": "the-azp", "scp": []string{"models.infer"}},
	})
	p, err := v.Verify(t.Context(), tok)
	if err != nil {
		t.Fatal(err)
	}
	want := &auth.Principal{Subject: "dr-who", ClientID: "the-azp", Scopes: []string{"dicomweb.read", "models.infer", "worklist.read"}, Expiry: exp, Name: "who"}
	if diff := cmp.Diff(want, p); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	for scope, want := range map[string]bool{"dicomweb.read": true, "models.infer": true, "dicomweb.write": false, "admin": false} {
		if got := p.Has(scope); got != want {
			t.Errorf("Has(%s) = %v, want %v", scope, got, want)
		}
	}
	ctx := auth.NewContext(t.Context(), p)
	if got, ok := auth.FromContext(ctx); !ok || got != p {
		t.Errorf("FromContext after NewContext: %v, %v", got, ok)
	}
	if _, ok := auth.FromContext(t.Context()); ok {
		t.Error("FromContext of a bare context found a principal")
	}
}
