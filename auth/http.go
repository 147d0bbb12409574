package auth

import (
	"context"
	"fmt"
	"net/http"
	"strings"
)

// realm is the RFC 6750 3 realm of every challenge we send.
const realm = "radgate"

// ctxKey keys the Principal in a context.
type ctxKey struct{}

// NewContext returns ctx carrying p.
func NewContext(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, ctxKey{}, p)
}

// FromContext returns the Principal that Require, the gRPC interceptors or
// Sessions.Require put in ctx.
func FromContext(ctx context.Context) (*Principal, bool) {
	p, ok := ctx.Value(ctxKey{}).(*Principal)
	return p, ok && p != nil
}

// Require serves next only to requests with a valid bearer token that
// holds scope ("" : any valid token), with the Principal in the request's
// context. Others get 401 or 403 with an RFC 6750 3 challenge, or 503
// while no JWK Set has loaded (the token may be fine; retry later).
func (v *Verifier) Require(scope string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := v.authorize(r.Context(), r.Header.Values("Authorization"), scope, httpFailure(r))
		if err != nil {
			challenge(w, scope, err)
			return
		}
		next.ServeHTTP(w, r.WithContext(NewContext(r.Context(), p)))
	})
}

// httpFailure fills the Failure fields an HTTP request knows.
func httpFailure(r *http.Request) Failure {
	path := r.URL.Path
	if r.Pattern != "" {
		// A ServeMux pattern is "[METHOD ][HOST]/PATH"; keep the path.
		path = r.Pattern
		if i := strings.IndexByte(path, '/'); i >= 0 {
			path = path[i:]
		}
	}
	return Failure{Method: r.Method + " " + path, Remote: r.RemoteAddr}
}

// authorize verifies the bearer credentials among values (the
// Authorization header or gRPC metadata) and checks scope, reporting a
// refusal described by f.
func (v *Verifier) authorize(ctx context.Context, values []string, scope string, f Failure) (*Principal, error) {
	f.Scope = scope
	raw, err := bearerToken(values)
	var p *Principal
	if err == nil {
		p, err = v.verify(ctx, raw)
	}
	if err == nil && !p.Has(scope) {
		f.Subject = p.Subject
		err = fmt.Errorf("%w: %s", ErrScope, scope)
	}
	if err != nil {
		v.refuse(f, err)
		return nil, err
	}
	return p, nil
}

// bearerToken takes the token out of RFC 6750 2.1 credentials
// ("Bearer" 1*SP b64token; the scheme is case-insensitive, RFC 9110 11.1).
// Tokens in a query string (RFC 6750 2.3) are never read: URLs end up in
// logs and browser history. Credentials of another scheme count as
// missing, which answers with a plain challenge.
func bearerToken(values []string) (string, error) {
	switch len(values) {
	case 0:
		return "", ErrMissing
	case 1:
	default:
		return "", fmt.Errorf("%w: %d Authorization values", ErrMalformed, len(values))
	}
	scheme, tok, _ := strings.Cut(values[0], " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", ErrMissing
	}
	tok = strings.TrimLeft(tok, " ")
	if tok == "" || strings.ContainsAny(tok, " \t") {
		return "", fmt.Errorf("%w: Bearer credentials are not one token", ErrMalformed)
	}
	return tok, nil
}

// challenge writes the refusal of err (RFC 6750 3, 3.1).
func challenge(w http.ResponseWriter, scope string, err error) {
	reason, desc := classify(err)
	var code int
	switch reason {
	case ReasonMissing:
		// RFC 6750 3: no error attribute when no credentials came.
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm=%q`, realm))
		code = http.StatusUnauthorized
	case ReasonNoKeys:
		w.Header().Set("Retry-After", "5")
		code = http.StatusServiceUnavailable
	case ReasonScope:
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm=%q, error="insufficient_scope", scope="%s", error_description=%q`,
			realm, quotable(scope), desc))
		code = http.StatusForbidden
	default:
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm=%q, error="invalid_token", error_description=%q`, realm, desc))
		code = http.StatusUnauthorized
	}
	http.Error(w, http.StatusText(code), code)
}

// quotable keeps the characters RFC 6750 3 allows in a scope attribute
// (%x21 / %x23-5B / %x5D-7E, and the space between scopes).
func quotable(s string) string {
	return strings.Map(func(r rune) rune {
		if r == ' ' || (r >= 0x21 && r <= 0x7e && r != '"' && r != '\\') {
			return r
		}
		return -1
	}, s)
}
