package auth

import (
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/radgate/radgate/auth/authtest"
)

// FuzzParseJWKS: any document parses or fails with ErrJWKS, never panics,
// and a parsed set holds only keys with a kid and a key.
func FuzzParseJWKS(f *testing.F) {
	iss := authtest.NewIssuer(f)
	f.Add(iss.JWKS(f))
	f.Add([]byte(`{"keys":[]}`))
	f.Add([]byte(`{"keys":[{"kty":"RSA","kid":"a","n":"AQAB","e":"AQAB"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"EC","kid":"a","crv":"P-256","x":"AA","y":"AA"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"OKP","kid":"a","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}`))
	f.Add([]byte(`{"keys":[null,1,"x",[]]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		set, _, err := parseJWKS(data)
		if err != nil {
			if !errors.Is(err, ErrJWKS) {
				t.Fatalf("error %v does not wrap ErrJWKS", err)
			}
			return
		}
		for kid, k := range set {
			if kid == "" || k.key == nil {
				t.Fatalf("unusable key %q %+v in a parsed set", kid, k)
			}
		}
	})
}

// FuzzVerify: any token string is accepted or refused with a reason
// sentinel, never a panic.
func FuzzVerify(f *testing.F) {
	iss := authtest.NewIssuer(f)
	v, err := New(f.Context(), Config{Issuer: iss.Issuer(), Audience: authtest.Audience, JWKS: iss.URL()},
		slog.New(slog.DiscardHandler), nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { v.Close() })
	for _, alg := range []string{"RS256", "PS384", "ES256", "ES512", "EdDSA"} {
		f.Add(iss.Token(f, authtest.Claims{Alg: alg, Scopes: []string{ScopeAdmin}}))
	}
	f.Add(iss.Token(f, authtest.Claims{Expiry: time.Now().Add(-time.Hour)}))
	f.Add(iss.Token(f, authtest.Claims{Kid: "unknown"}))
	f.Add("")
	f.Add("a.b.c")
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Add("eyJhbGciOiJSUzI1NiIsImtpZCI6InJzYS0xIiwiY3JpdCI6WyJiNjQiXX0.e30.AAAA")
	f.Fuzz(func(t *testing.T, raw string) {
		p, err := v.verify(t.Context(), raw)
		if err == nil {
			if p == nil || p.Subject == "" {
				t.Fatalf("accepted with principal %+v", p)
			}
			return
		}
		if !errors.Is(err, ErrMissing) && !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrNoKeys) {
			t.Fatalf("error %v wraps no sentinel", err)
		}
	})
}
