package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
)

// JWK key types and curves we verify with (RFC 7518 6.1, RFC 8037 2).
const (
	ktyRSA = "RSA"
	ktyEC  = "EC"
	ktyOKP = "OKP"

	crvP256    = "P-256"
	crvP384    = "P-384"
	crvP521    = "P-521"
	crvEd25519 = "Ed25519"
)

// publicKey is one verification key of the issuer's JWK Set.
type publicKey struct {
	kty string
	crv string // "" for RSA
	// alg is the JWK's "alg" (RFC 7517 4.4); "" lets any algorithm of the
	// key's type use it.
	alg string
	key crypto.PublicKey // *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey
}

// keySet maps kid to key.
type keySet map[string]publicKey

// jwk is the wire form of one JWK (RFC 7517 4, RFC 7518 6).
type jwk struct {
	Kty    string   `json:"kty"`
	Kid    string   `json:"kid"`
	Use    string   `json:"use"`
	KeyOps []string `json:"key_ops"`
	Alg    string   `json:"alg"`
	N      string   `json:"n"`
	E      string   `json:"e"`
	Crv    string   `json:"crv"`
	X      string   `json:"x"`
	Y      string   `json:"y"`
	D      string   `json:"d"`
}

// parseJWKS reads a JWK Set (RFC 7517 5). Keys we cannot or must not use
// are skipped, as RFC 7517 5 asks for unknown key types; skipped says why,
// for the log. A set that is not JSON, too large, holds a duplicate kid or
// no usable key at all is an error wrapping ErrJWKS.
func parseJWKS(data []byte) (keySet, []string, error) {
	if len(data) > maxJWKSBytes {
		return nil, nil, fmt.Errorf("%w: %d bytes exceeds %d", ErrJWKS, len(data), maxJWKSBytes)
	}
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrJWKS, err)
	}
	if len(doc.Keys) > maxKeys {
		return nil, nil, fmt.Errorf("%w: %d keys exceeds %d", ErrJWKS, len(doc.Keys), maxKeys)
	}
	set := make(keySet, len(doc.Keys))
	var skipped []string
	for i, raw := range doc.Keys {
		var j jwk
		if err := json.Unmarshal(raw, &j); err != nil {
			skipped = append(skipped, fmt.Sprintf("key %d: %v", i, err))
			continue
		}
		k, err := j.publicKey()
		if err != nil {
			skipped = append(skipped, fmt.Sprintf("key %d (kid %s): %v", i, short(j.Kid), err))
			continue
		}
		// RFC 7517 4.5 lets two keys share a kid if their kty differs; a
		// token names only kid, so we could not tell which one it meant.
		if _, dup := set[j.Kid]; dup {
			return nil, nil, fmt.Errorf("%w: duplicate kid %s", ErrJWKS, short(j.Kid))
		}
		set[j.Kid] = k
	}
	if len(set) == 0 {
		return nil, skipped, fmt.Errorf("%w: no usable signature key (%s)", ErrJWKS, strings.Join(skipped, "; "))
	}
	return set, skipped, nil
}

// publicKey checks one JWK and builds its key.
func (j *jwk) publicKey() (publicKey, error) {
	switch {
	case j.Kid == "":
		return publicKey{}, errors.New("no kid (tokens are matched to keys by kid)")
	case len(j.Kid) > maxKidBytes:
		return publicKey{}, fmt.Errorf("kid longer than %d bytes", maxKidBytes)
	case j.Use != "" && j.Use != "sig":
		return publicKey{}, fmt.Errorf("use %s, not sig", short(j.Use))
	case j.KeyOps != nil && !slices.Contains(j.KeyOps, "verify"):
		return publicKey{}, errors.New("key_ops without verify")
	case j.D != "":
		// A published private key is compromised: anyone could sign with it.
		return publicKey{}, errors.New("holds private key material")
	}
	if j.Alg != "" {
		a, ok := lookupAlg(j.Alg)
		if !ok {
			return publicKey{}, fmt.Errorf("alg %s is not accepted", short(j.Alg))
		}
		if a.kty != j.Kty || (a.crv != "" && a.crv != j.Crv) {
			return publicKey{}, fmt.Errorf("alg %s does not fit kty %s crv %s", j.Alg, short(j.Kty), short(j.Crv))
		}
	}
	pk := publicKey{kty: j.Kty, crv: j.Crv, alg: j.Alg}
	var err error
	switch j.Kty {
	case ktyRSA:
		pk.crv = ""
		pk.key, err = rsaKey(j.N, j.E)
	case ktyEC:
		pk.key, err = ecKey(j.Crv, j.X, j.Y)
	case ktyOKP:
		pk.key, err = okpKey(j.Crv, j.X)
	default:
		err = fmt.Errorf("kty %s is not supported", short(j.Kty))
	}
	return pk, err
}

// rsaKey builds an RSA key from RFC 7518 6.3.1 n and e, refusing keys
// under minRSABits (RFC 7518 3.3: 2048 bits or larger MUST be used) and
// over maxRSABits (verification cost grows with the modulus).
func rsaKey(n, e string) (*rsa.PublicKey, error) {
	nb, err := b64Field("n", n, maxRSABits/8)
	if err != nil {
		return nil, err
	}
	eb, err := b64Field("e", e, 4)
	if err != nil {
		return nil, err
	}
	mod := new(big.Int).SetBytes(nb)
	if bits := mod.BitLen(); bits < minRSABits {
		return nil, fmt.Errorf("RSA key of %d bits, need at least %d", bits, minRSABits)
	}
	exp := int(new(big.Int).SetBytes(eb).Int64())
	if exp < 3 || exp%2 == 0 {
		return nil, fmt.Errorf("RSA exponent %d is not an odd number of at least 3", exp)
	}
	return &rsa.PublicKey{N: mod, E: exp}, nil
}

// ecKey builds an EC key from RFC 7518 6.2.1 crv, x and y; the point must
// lie on the curve.
func ecKey(crv, x, y string) (*ecdsa.PublicKey, error) {
	curve, size, ok := ecCurve(crv)
	if !ok {
		return nil, fmt.Errorf("EC crv %s is not supported", short(crv))
	}
	xb, err := b64Field("x", x, size)
	if err != nil {
		return nil, err
	}
	yb, err := b64Field("y", y, size)
	if err != nil {
		return nil, err
	}
	// RFC 7518 6.2.1.2: x and y are the full coordinate size, zero-padded.
	if len(xb) != size || len(yb) != size {
		return nil, fmt.Errorf("EC coordinates of %d and %d bytes, want %d", len(xb), len(yb), size)
	}
	point := make([]byte, 0, 1+2*size)
	point = append(append(append(point, 4), xb...), yb...) // SEC 1 2.3.3 uncompressed
	return ecdsa.ParseUncompressedPublicKey(curve, point)
}

// okpKey builds an Ed25519 key (RFC 8037 2); Ed448 is not supported.
func okpKey(crv, x string) (ed25519.PublicKey, error) {
	if crv != crvEd25519 {
		return nil, fmt.Errorf("OKP crv %s is not supported", short(crv))
	}
	xb, err := b64Field("x", x, ed25519.PublicKeySize)
	if err != nil {
		return nil, err
	}
	if len(xb) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("Ed25519 key of %d bytes, want %d", len(xb), ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(xb), nil
}

// ecCurve maps a JWK crv to its curve and coordinate size in bytes.
func ecCurve(crv string) (elliptic.Curve, int, bool) {
	switch crv {
	case crvP256:
		return elliptic.P256(), 32, true
	case crvP384:
		return elliptic.P384(), 48, true
	case crvP521:
		return elliptic.P521(), 66, true
	}
	return nil, 0, false
}

// b64Field decodes a base64url JWK member of at most limit bytes, checking
// the length before decoding. Trailing "=" padding, which RFC 7515 2 rules
// out but some servers send, is tolerated.
func b64Field(name, s string, limit int) ([]byte, error) {
	s = strings.TrimRight(s, "=")
	if s == "" {
		return nil, fmt.Errorf("%s is missing", name)
	}
	if len(s) > base64.RawURLEncoding.EncodedLen(limit) {
		return nil, fmt.Errorf("%s longer than %d bytes", name, limit)
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%s is not base64url", name)
	}
	return b, nil
}

// short quotes a peer-supplied string for an error or log message: Go
// syntax escapes control characters, and at most 64 bytes are kept.
func short(s string) string {
	const max = 64
	if len(s) > max {
		return fmt.Sprintf("%q…", strings.ToValidUTF8(s[:max], ""))
	}
	return fmt.Sprintf("%q", s)
}
