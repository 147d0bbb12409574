package auth

import (
	"cmp"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	_ "crypto/sha256" // registers SHA-256 for crypto.Hash.New
	_ "crypto/sha512" // registers SHA-384 and SHA-512
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"slices"
	"strings"
	"time"
)

// algorithm is a JWS "alg" we accept (RFC 7518 3.1, RFC 8037 3.1) and the
// key it needs. Everything else is refused, "none" and the HMAC family
// above all: with HS256 and a public key as the "secret" anyone could sign.
type algorithm struct {
	kty  string
	crv  string // required curve; "" for RSA
	hash crypto.Hash
	pss  bool // RSASSA-PSS rather than PKCS #1 v1.5
}

func lookupAlg(name string) (algorithm, bool) {
	switch name {
	case "RS256":
		return algorithm{kty: ktyRSA, hash: crypto.SHA256}, true
	case "RS384":
		return algorithm{kty: ktyRSA, hash: crypto.SHA384}, true
	case "RS512":
		return algorithm{kty: ktyRSA, hash: crypto.SHA512}, true
	case "PS256":
		return algorithm{kty: ktyRSA, hash: crypto.SHA256, pss: true}, true
	case "PS384":
		return algorithm{kty: ktyRSA, hash: crypto.SHA384, pss: true}, true
	case "PS512":
		return algorithm{kty: ktyRSA, hash: crypto.SHA512, pss: true}, true
	case "ES256":
		return algorithm{kty: ktyEC, crv: crvP256, hash: crypto.SHA256}, true
	case "ES384":
		return algorithm{kty: ktyEC, crv: crvP384, hash: crypto.SHA384}, true
	case "ES512":
		return algorithm{kty: ktyEC, crv: crvP521, hash: crypto.SHA512}, true
	case "EdDSA":
		return algorithm{kty: ktyOKP, crv: crvEd25519}, true
	}
	return algorithm{}, false
}

// verifySignature checks sig over input (RFC 7515 5.2 step 8) with key,
// after checking that the key may be used with alg: its kty and curve
// must fit and, if the JWK names an alg, it must be this one.
func verifySignature(name string, alg algorithm, key publicKey, input string, sig []byte) error {
	if key.kty != alg.kty || key.crv != alg.crv || (key.alg != "" && key.alg != name) {
		return fmt.Errorf("%w: alg %s does not fit the key (kty %s, crv %s, alg %s)", ErrSignature, name, key.kty, key.crv, key.alg)
	}
	var digest []byte
	if alg.hash != 0 {
		h := alg.hash.New()
		h.Write([]byte(input))
		digest = h.Sum(nil)
	}
	var ok bool
	switch k := key.key.(type) {
	case *rsa.PublicKey:
		if alg.pss {
			// RFC 7518 3.5: the salt is as long as the hash output.
			ok = rsa.VerifyPSS(k, alg.hash, digest, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}) == nil
		} else {
			ok = rsa.VerifyPKCS1v15(k, alg.hash, digest, sig) == nil
		}
	case *ecdsa.PublicKey:
		// RFC 7518 3.4: R || S, each the curve's size, big-endian; not ASN.1.
		size := (k.Curve.Params().BitSize + 7) / 8
		if len(sig) == 2*size {
			r := new(big.Int).SetBytes(sig[:size])
			s := new(big.Int).SetBytes(sig[size:])
			ok = ecdsa.Verify(k, digest, r, s)
		}
	case ed25519.PublicKey:
		// RFC 8037 3.1: EdDSA signs the input itself, no prehash.
		ok = ed25519.Verify(k, []byte(input), sig)
	}
	if !ok {
		return fmt.Errorf("%w: signature does not verify with kid's key", ErrSignature)
	}
	return nil
}

// header is the JOSE header members we read (RFC 7515 4.1). jku, x5u, jwk
// and x5c are ignored on purpose: keys come only from the configured JWK
// Set, never from the token that is to be verified.
type header struct {
	Alg  string          `json:"alg"`
	Kid  string          `json:"kid"`
	Typ  string          `json:"typ"`
	Crit json.RawMessage `json:"crit"`
}

// check refuses headers we must not process.
func (h *header) check() error {
	if h.Crit != nil {
		// RFC 7515 4.1.11: a recipient that does not understand a listed
		// extension MUST reject the JWS; we understand none.
		return fmt.Errorf("%w: crit header present", ErrMalformed)
	}
	// RFC 9068 4 asks for typ "at+jwt"; widely deployed servers (Keycloak,
	// Entra ID) send "JWT" or nothing, so those pass too. Any other typ is
	// some other kind of JWT (logout token, DPoP proof…) and is refused;
	// ID tokens are kept out by the audience check.
	switch strings.ToLower(h.Typ) {
	case "", "jwt", "at+jwt", "application/at+jwt":
	default:
		return fmt.Errorf("%w: typ %s is not an access token", ErrMalformed, short(h.Typ))
	}
	if h.Kid == "" {
		return fmt.Errorf("%w: no kid in the header", ErrMalformed)
	}
	if len(h.Kid) > maxKidBytes {
		return fmt.Errorf("%w: kid longer than %d bytes", ErrMalformed, maxKidBytes)
	}
	return nil
}

// claims are the JWT claims we read (RFC 7519 4.1, RFC 9068 2.2, RFC 8693
// 4.2 scope, RFC 8693 4.3 client_id).
type claims struct {
	Iss               string       `json:"iss"`
	Sub               string       `json:"sub"`
	Aud               audience     `json:"aud"`
	Exp               *numericDate `json:"exp"`
	Nbf               *numericDate `json:"nbf"`
	Iat               *numericDate `json:"iat"`
	Scope             scopeList    `json:"scope"`
	Scp               scopeList    `json:"scp"`
	ClientID          string       `json:"client_id"`
	Azp               string       `json:"azp"`
	PreferredUsername string       `json:"preferred_username"`
	Name              string       `json:"name"`
}

// audience is RFC 7519 4.1.3 aud: one string or an array of strings.
type audience []string

func (a *audience) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*a = audience{s}
		return nil
	}
	return json.Unmarshal(b, (*[]string)(a))
}

// scopeList is a scope claim: RFC 8693 4.2 "scope" is one space-separated
// string; "scp" is an array in most servers and a string in some (Entra
// ID), so both forms are read for either claim.
type scopeList []string

func (s *scopeList) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var v string
		if err := json.Unmarshal(b, &v); err != nil {
			return err
		}
		*s = strings.Fields(v)
		return nil
	}
	return json.Unmarshal(b, (*[]string)(s))
}

// numericDate is RFC 7519 2 NumericDate: seconds since the epoch, possibly
// fractional.
type numericDate struct{ time.Time }

func (d *numericDate) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		return errors.New("NumericDate is a string, want a number")
	}
	var f float64
	if err := json.Unmarshal(b, &f); err != nil {
		return err
	}
	if f < 0 || f > maxNumericDate {
		return fmt.Errorf("NumericDate %g out of range", f)
	}
	sec, frac := math.Modf(f)
	d.Time = time.Unix(int64(sec), int64(frac*1e9))
	return nil
}

// principal checks the claims against the verifier's expectations at now
// (RFC 9068 4 steps 3-5, RFC 7519 4.1.4-4.1.6) and builds the Principal.
func (c *claims) principal(iss, aud string, now time.Time, leeway time.Duration) (*Principal, error) {
	switch {
	case c.Iss != iss:
		return nil, fmt.Errorf("%w: iss %s", ErrIssuer, short(c.Iss))
	case !slices.Contains(c.Aud, aud):
		return nil, fmt.Errorf("%w: aud does not contain %s", ErrAudience, short(aud))
	case c.Exp == nil:
		return nil, fmt.Errorf("%w: no exp claim", ErrMalformed)
	case !now.Before(c.Exp.Add(leeway)):
		return nil, fmt.Errorf("%w: exp %s", ErrExpired, c.Exp.UTC().Format(time.RFC3339))
	case c.Nbf != nil && c.Nbf.After(now.Add(leeway)):
		return nil, fmt.Errorf("%w: nbf %s", ErrNotYetValid, c.Nbf.UTC().Format(time.RFC3339))
	case c.Iat != nil && c.Iat.After(now.Add(leeway)):
		return nil, fmt.Errorf("%w: iat %s", ErrNotYetValid, c.Iat.UTC().Format(time.RFC3339))
	case c.Sub == "":
		// RFC 9068 2.2: sub is REQUIRED; without it there is no "who".
		return nil, fmt.Errorf("%w: no sub claim", ErrMalformed)
	}
	scopes := slices.Concat(c.Scope, c.Scp)
	slices.Sort(scopes)
	p := &Principal{
		Subject:  c.Sub,
		ClientID: cmp.Or(c.ClientID, c.Azp),
		Scopes:   slices.Compact(scopes),
		Expiry:   c.Exp.Time,
		Name:     cmp.Or(c.PreferredUsername, c.Name),
	}
	return p, nil
}

// decodePart decodes one base64url JWS part (RFC 7515 2: no padding) of at
// most limit decoded bytes, checking the length before decoding.
func decodePart(what, s string, limit int) ([]byte, error) {
	if base64.RawURLEncoding.DecodedLen(len(s)) > limit {
		return nil, fmt.Errorf("%w: %s longer than %d bytes", ErrMalformed, what, limit)
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%w: %s is not base64url", ErrMalformed, what)
	}
	return b, nil
}
