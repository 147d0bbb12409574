// Package auth authenticates radgate's callers with OAuth 2 bearer tokens:
// JWT access tokens (RFC 9068) signed by the organisation's authorization
// server, whose keys come from its JWK Set (RFC 7517), carrying scopes
// that gate each API.
//
// Entry points:
//
//   - [New] returns a [Verifier] for one issuer and audience. It fetches
//     the JWK Set at start, refreshes it (Cache-Control max-age, 1 min…24 h)
//     and on an unknown kid (key rotation, at most every 30 s) in a
//     goroutine it owns until [Verifier.Close]. [Verifier.Verify] checks a
//     JWS compact token (RFC 7515 7.1): RS*/PS*/ES* (RFC 7518 3) or EdDSA
//     (RFC 8037), never "none" or HS*, the alg fitting the JWK; iss, aud,
//     exp, nbf and iat (RFC 7519 4.1) with a clock-skew leeway; and returns
//     a [Principal] with the scopes of "scope" (RFC 8693 4.2) or "scp".
//   - [Verifier.Require] is HTTP middleware: "Authorization: Bearer" only
//     (RFC 6750 2.1), 401/403 with RFC 6750 3 challenges.
//   - [Verifier.ServerOptions] are gRPC interceptors: Unauthenticated or
//     PermissionDenied; [OpenHealth] leaves the health service open.
//   - [NewSessions] gives the radiologist's page server-side sessions
//     through the authorization code flow with PKCE (RFC 6749 4.1,
//     RFC 7636); [Sessions.Require] accepts a session or a bearer token.
//     Sessions are held in memory: a restart logs everyone out.
//   - [FromContext] / [NewContext] carry the Principal to handlers.
//
// Every refusal wraps a sentinel ([ErrMissing], [ErrInvalid] and its
// kinds, [ErrScope], [ErrNoKeys]), is counted in
// radgate_auth_failures_total{reason} and handed to Config.OnFailure as a
// [Failure] for the audit trail. Tokens are never logged or echoed;
// responses carry fixed descriptions, not error strings.
//
// Package authtest simulates an issuer for tests.
package auth
