package auth_test

import (
	"context"
	"testing"

	"github.com/radgate/radgate/auth"
	"github.com/radgate/radgate/auth/authtest"
)

// BenchmarkVerify is what a request pays for its token, per algorithm
// family the issuer may use.
func BenchmarkVerify(b *testing.B) {
	iss := authtest.NewIssuer(b)
	v, err := auth.New(context.Background(), auth.Config{Issuer: iss.Issuer(), Audience: authtest.Audience, JWKS: iss.URL()}, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer v.Close()
	for _, alg := range []string{"RS256", "PS256", "ES256", "EdDSA"} {
		tok := iss.Token(b, authtest.Claims{Alg: alg, Scopes: []string{auth.ScopeDICOMwebRead}})
		if _, err := v.Verify(context.Background(), tok); err != nil {
			b.Fatalf("%s: %v", alg, err)
		}
		b.Run(alg, func(b *testing.B) {
			for b.Loop() {
				if _, err := v.Verify(context.Background(), tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
