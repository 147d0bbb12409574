package auth

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every refusal Verify returns wraps exactly one of the
// reason sentinels below; the token-level ones also wrap ErrInvalid, so a
// caller that only cares "is the token bad" tests errors.Is(err, ErrInvalid).
// No error text carries the token, its subject or any claim value beyond
// short, quoted header fields (alg, kid).
var (
	// ErrMissing: the request carries no bearer token (RFC 6750 3: answer
	// without an error attribute).
	ErrMissing = errors.New("auth: no bearer token")
	// ErrInvalid: the token is present but not acceptable (RFC 6750 3.1
	// invalid_token). The sentinels up to ErrAudience wrap it.
	ErrInvalid = errors.New("auth: invalid token")
	// ErrMalformed: not a JWS compact serialisation of a JWT we can read:
	// parts, base64url, JSON, sizes, typ, crit, missing kid/sub/exp.
	ErrMalformed = fmt.Errorf("%w: malformed", ErrInvalid)
	// ErrSignature: the signature does not verify, or cannot be checked
	// with an accepted algorithm and a key of the issuer's JWK Set.
	ErrSignature = fmt.Errorf("%w: signature not verified", ErrInvalid)
	// ErrExpired: exp is past, beyond the leeway (RFC 7519 4.1.4).
	ErrExpired = fmt.Errorf("%w: expired", ErrInvalid)
	// ErrNotYetValid: nbf or iat is in the future, beyond the leeway
	// (RFC 7519 4.1.5, 4.1.6).
	ErrNotYetValid = fmt.Errorf("%w: not yet valid", ErrInvalid)
	// ErrIssuer: iss is not the configured issuer (RFC 9068 4 step 3).
	ErrIssuer = fmt.Errorf("%w: wrong issuer", ErrInvalid)
	// ErrAudience: aud does not name this gateway (RFC 9068 4 step 4).
	ErrAudience = fmt.Errorf("%w: wrong audience", ErrInvalid)
	// ErrScope: the token is valid but lacks the scope the call needs
	// (RFC 6750 3.1 insufficient_scope).
	ErrScope = errors.New("auth: insufficient scope")
	// ErrNoKeys: no JWK Set has been loaded yet, so nothing can be
	// verified; the Verifier keeps fetching it in the background.
	ErrNoKeys = errors.New("auth: no signing keys loaded")
	// ErrJWKS: a fetched JWK Set is unusable (size, JSON, no usable key,
	// duplicate kid); the keys loaded before stay in use.
	ErrJWKS = errors.New("auth: unusable JWK Set")
	// ErrConfig: New or NewSessions was given an unusable configuration.
	ErrConfig = errors.New("auth: invalid configuration")
)

// Failure reasons: the values of Failure.Reason and of the reason label of
// radgate_auth_failures_total.
const (
	ReasonMissing     = "missing"
	ReasonMalformed   = "malformed"
	ReasonSignature   = "signature"
	ReasonExpired     = "expired"
	ReasonNotYetValid = "not_yet_valid"
	ReasonIssuer      = "issuer"
	ReasonAudience    = "audience"
	ReasonScope       = "scope"
	ReasonNoKeys      = "no_keys"
)

// Failure describes one refused request, for Config.OnFailure (the
// gateway's audit trail) and the failure metric. It never holds the token.
type Failure struct {
	// Reason is one of the Reason constants.
	Reason string
	// Scope is the scope the request needed ("" when any valid token does).
	Scope string
	// Subject is the token's sub, set only when the token itself verified
	// (a scope refusal): an unverified sub is attacker-chosen.
	Subject string
	// Method is what was called: "GET /studies/{study}" (the ServeMux
	// pattern's path, else the request path) or a gRPC full method name.
	// Empty for a bare Verify.
	Method string
	// Remote is the peer address (http.Request.RemoteAddr, gRPC peer).
	Remote string
}

// classify returns the Reason of a refusal error and the fixed text sent
// as RFC 6750 error_description / gRPC status message. The texts are ours,
// never an error string, so nothing about the token is echoed back, and
// they keep to the characters error_description allows (RFC 6750 3).
// The first match wins; anything unrecognised counts as malformed, the
// fail-closed choice.
func classify(err error) (reason, description string) {
	switch {
	case errors.Is(err, ErrMissing):
		return ReasonMissing, "a bearer token is required"
	case errors.Is(err, ErrNoKeys):
		return ReasonNoKeys, "the issuer signing keys are not available yet"
	case errors.Is(err, ErrScope):
		return ReasonScope, "the access token lacks the required scope"
	case errors.Is(err, ErrExpired):
		return ReasonExpired, "the access token expired"
	case errors.Is(err, ErrNotYetValid):
		return ReasonNotYetValid, "the access token is not valid yet"
	case errors.Is(err, ErrIssuer):
		return ReasonIssuer, "the access token is from another issuer"
	case errors.Is(err, ErrAudience):
		return ReasonAudience, "the access token is not meant for this service"
	case errors.Is(err, ErrSignature):
		return ReasonSignature, "the access token signature does not verify"
	default:
		return ReasonMalformed, "the access token is malformed"
	}
}
