package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func rsaJWK(t *testing.T, bits int, kid string) map[string]any {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		t.Fatal(err)
	}
	b64 := base64.RawURLEncoding.EncodeToString
	return map[string]any{"kty": "RSA", "kid": kid, "n": b64(k.N.Bytes()), "e": "AQAB"}
}

func ecJWK(t *testing.T, kid string) map[string]any {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := k.PublicKey.Bytes()
	b64 := base64.RawURLEncoding.EncodeToString
	return map[string]any{"kty": "EC", "crv": "P-256", "kid": kid, "x": b64(raw[1:33]), "y": b64(raw[33:])}
}

func with(k map[string]any, kv ...any) map[string]any {
	c := make(map[string]any, len(k))
	for n, v := range k {
		c[n] = v
	}
	for i := 0; i < len(kv); i += 2 {
		c[kv[i].(string)] = kv[i+1]
	}
	return c
}

func TestParseJWKS(t *testing.T) {
	rsa2048 := rsaJWK(t, 2048, "r")
	rsa1024 := rsaJWK(t, 1024, "small")
	ec := ecJWK(t, "e")
	offCurve := with(ec, "y", ec["x"])
	set := func(keys ...map[string]any) []byte {
		b, _ := json.Marshal(map[string]any{"keys": keys})
		return b
	}
	tests := []struct {
		name    string
		data    []byte
		kids    []string // usable keys
		skipped int
		wantErr bool
	}{
		{name: "RSA and EC", data: set(rsa2048, ec), kids: []string{"e", "r"}},
		{name: "RSA under 2048 bits skipped", data: set(rsa1024, ec), kids: []string{"e"}, skipped: 1},
		{name: "only a small RSA key", data: set(rsa1024), skipped: 1, wantErr: true},
		{name: "point off the curve", data: set(offCurve, rsa2048), kids: []string{"r"}, skipped: 1},
		{name: "unknown kty skipped", data: set(map[string]any{"kty": "oct", "kid": "h", "k": "c2VjcmV0"}, ec), kids: []string{"e"}, skipped: 1},
		{name: "encryption key skipped", data: set(with(ec, "use", "enc"), rsa2048), kids: []string{"r"}, skipped: 1},
		{name: "private key material skipped", data: set(with(ec, "d", "AAAA"), rsa2048), kids: []string{"r"}, skipped: 1},
		{name: "no kid skipped", data: set(with(ec, "kid", ""), rsa2048), kids: []string{"r"}, skipped: 1},
		{name: "alg that does not fit the kty", data: set(with(ec, "alg", "RS256"), rsa2048), kids: []string{"r"}, skipped: 1},
		{name: "HS256 alg refused", data: set(with(rsa2048, "alg", "HS256"), ec), kids: []string{"e"}, skipped: 1},
		{name: "even exponent", data: set(with(rsa2048, "e", "Ag"), ec), kids: []string{"e"}, skipped: 1},
		{name: "duplicate kid", data: set(rsa2048, with(ec, "kid", "r")), wantErr: true},
		{name: "no keys", data: []byte(`{"keys":[]}`), wantErr: true},
		{name: "not JSON", data: []byte(`{"keys":`), wantErr: true},
		{name: "too large", data: []byte(`{"keys":[],"x":"` + strings.Repeat("a", maxJWKSBytes) + `"}`), wantErr: true},
		{name: "too many keys", data: []byte(`{"keys":[` + strings.Repeat(`{},`, maxKeys) + `{}]}`), wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, skipped, err := parseJWKS(tc.data)
			if (err != nil) != tc.wantErr || (err != nil && !errors.Is(err, ErrJWKS)) {
				t.Fatalf("err %v, want error %v (ErrJWKS)", err, tc.wantErr)
			}
			var kids []string
			for kid := range got {
				kids = append(kids, kid)
			}
			slices.Sort(kids)
			if diff := cmp.Diff(tc.kids, kids); diff != "" {
				t.Errorf("kids (-want +got):\n%s", diff)
			}
			if !tc.wantErr && len(skipped) != tc.skipped {
				t.Errorf("skipped %q, want %d", skipped, tc.skipped)
			}
		})
	}
}

func TestMaxAge(t *testing.T) {
	tests := map[string]time.Duration{
		"":                        defaultRefresh,
		"no-cache":                defaultRefresh,
		"public, max-age=300":     5 * time.Minute,
		"MAX-AGE=3600":            time.Hour,
		"max-age=5":               minRefresh,
		"max-age=9999999999999":   maxRefresh,
		"max-age=-1":              defaultRefresh,
		"max-age=abc, max-age=60": defaultRefresh,
		`max-age="120"`:           2 * time.Minute,
	}
	for cc, want := range tests {
		if got := maxAge(cc); got != want {
			t.Errorf("maxAge(%q) = %v, want %v", cc, got, want)
		}
	}
}

func TestClassifyEverySentinel(t *testing.T) {
	for err, want := range map[error]string{
		ErrMissing: ReasonMissing, ErrMalformed: ReasonMalformed, ErrSignature: ReasonSignature,
		ErrExpired: ReasonExpired, ErrNotYetValid: ReasonNotYetValid, ErrIssuer: ReasonIssuer,
		ErrAudience: ReasonAudience, ErrScope: ReasonScope, ErrNoKeys: ReasonNoKeys,
		ErrInvalid: ReasonMalformed, errors.New("other"): ReasonMalformed,
	} {
		if got, desc := classify(fmt.Errorf("wrapped: %w", err)); got != want || strings.ContainsAny(desc, "\"\\") {
			t.Errorf("classify(%v) = %s %q, want %s", err, got, desc, want)
		}
	}
}
