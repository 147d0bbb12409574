package gateway

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/radgate/radgate/auth"
	"github.com/radgate/radgate/config"
	"github.com/radgate/radgate/dicomweb"
	"github.com/radgate/radgate/internal/tlsconf"
)

// newAuth builds the token verifier (and the page's sign-in) from the
// settings; without auth_jwks authentication is off, which the banner and
// a warning at every start say.
func (g *Gateway) newAuth(ctx context.Context, cfg *config.Config) error {
	if cfg.AuthJWKS == "" {
		g.log.Warn("radgate: authentication is OFF (auth_jwks is empty): every HTTP and gRPC endpoint is open; never run so with patient data")
		return nil
	}
	client := &http.Client{Timeout: 10 * time.Second}
	pool, err := certPool("auth_ca", cfg.AuthCA)
	if err != nil {
		return err
	}
	if pool != nil {
		tc := tlsconf.Policy()
		tc.RootCAs = pool
		client.Transport = &http.Transport{TLSClientConfig: tc, Proxy: http.ProxyFromEnvironment}
	}
	v, err := auth.New(ctx, auth.Config{
		Issuer: cfg.AuthIssuer, Audience: cfg.AuthAudience, JWKS: cfg.AuthJWKS, HTTPClient: client,
		OnFailure: g.authFailed,
	}, g.log, g.reg)
	if err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	g.verifier = v
	if cfg.AuthAuthorizeURL != "" {
		g.sessions = auth.NewSessions(v, auth.SessionConfig{
			Idle: cfg.AuthIdleTimeout, AuthorizeURL: cfg.AuthAuthorizeURL, TokenURL: cfg.AuthTokenURL,
			ClientID: cfg.AuthClientID, RedirectURL: g.publicURL() + auth.CallbackPath,
			Scopes: []string{"openid", auth.ScopeWorklistRead, auth.ScopeWorklistWrite},
			Secure: strings.HasPrefix(g.publicURL(), "https:"),
		}, g.log)
	}
	return nil
}

// publicURL is radgate's HTTP base URL as others reach it: public_url, or
// this host's name and the bound port.
func (g *Gateway) publicURL() string {
	if g.cfg.PublicURL != "" {
		return g.cfg.PublicURL
	}
	host, _ := os.Hostname()
	_, port, _ := net.SplitHostPort(g.HTTPAddr().String())
	scheme := "http"
	if g.tls != nil {
		scheme = "https"
	}
	return scheme + "://" + net.JoinHostPort(host, port)
}

// httpScope is the scope an HTTP request needs; open ones need none:
// health (orchestrators probe it) and the sign-in itself.
func httpScope(r *http.Request) (scope string, open bool) {
	p := r.URL.Path
	read := r.Method == http.MethodGet || r.Method == http.MethodHead
	pick := func(rd, wr string) (string, bool) {
		if read {
			return rd, false
		}
		return wr, false
	}
	switch {
	case p == "/healthz" || p == "/readyz" || p == auth.LoginPath || p == auth.CallbackPath || p == auth.LogoutPath:
		return "", true
	case p == "/metrics":
		return auth.ScopeAdmin, false
	case r.Method == http.MethodDelete && strings.HasPrefix(p, dicomweb.Prefix+"/studies/"):
		return auth.ScopeAdmin, false // a study purged on request
	case strings.HasPrefix(p, dicomweb.Prefix+"/workitems") || strings.HasPrefix(p, dicomweb.Prefix+"/subscribers/"):
		return pick(auth.ScopeWorklistRead, auth.ScopeWorklistWrite)
	case strings.HasPrefix(p, dicomweb.Prefix+"/"):
		return pick(auth.ScopeDICOMwebRead, auth.ScopeDICOMwebWrite)
	}
	return pick(auth.ScopeWorklistRead, auth.ScopeWorklistWrite) // the worklist page
}

// isPage reports whether a path belongs to the browser page (sessions),
// not the APIs (bearer tokens only).
func isPage(path string) bool {
	return !strings.HasPrefix(path, dicomweb.Prefix+"/") && path != "/metrics"
}

// protect puts every route but the open ones behind its scope.
func (g *Gateway) protect(h http.Handler) http.Handler {
	if g.verifier == nil {
		return h
	}
	scopes := []string{auth.ScopeDICOMwebRead, auth.ScopeDICOMwebWrite, auth.ScopeWorklistRead, auth.ScopeWorklistWrite, auth.ScopeAdmin}
	api, page := map[string]http.Handler{}, map[string]http.Handler{}
	for _, s := range scopes {
		api[s] = g.verifier.Require(s, h)
		page[s] = api[s]
		if g.sessions != nil {
			page[s] = g.sessions.Require(s, h)
		}
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scope, open := httpScope(r)
		switch {
		case open:
			h.ServeHTTP(w, r)
		case isPage(r.URL.Path):
			page[scope].ServeHTTP(w, r)
		default:
			api[scope].ServeHTTP(w, r)
		}
	})
}

// grpcScope is the scope a gRPC method needs: the health service is open;
// the inference APIs (and reflection, which ML engineers' grpcurl uses)
// need models.infer; watching the worklist needs worklist.read.
func grpcScope(method string) (string, bool) {
	switch {
	case strings.HasPrefix(method, "/grpc.health.v1.Health/"):
		return "", true
	case method == "/radgate.v1.Gateway/WatchWorklist":
		return auth.ScopeWorklistRead, false
	case strings.HasPrefix(method, "/inference.GRPCInferenceService/"),
		strings.HasPrefix(method, "/radgate.v1.Gateway/"),
		strings.HasPrefix(method, "/grpc.reflection."):
		return auth.ScopeModelsInfer, false
	}
	return auth.ScopeAdmin, false
}
