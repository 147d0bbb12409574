package auth_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/radgate/radgate/auth"
	"github.com/radgate/radgate/auth/authtest"
	"github.com/radgate/radgate/internal/peertest"
)

// pageEnv is a gateway with page sessions in front of a worklist page.
type pageEnv struct {
	iss *authtest.Issuer
	srv *httptest.Server
	clk *peertest.Clock
	fs  *failures
	log *logRecorder
}

func newPageEnv(t *testing.T, idle time.Duration) *pageEnv {
	t.Helper()
	e := &pageEnv{iss: authtest.NewIssuer(t), clk: peertest.NewClock(time.Now()), fs: &failures{}, log: newLogRecorder()}
	v := newVerifier(t, e.iss, e.fs, e.log)
	mux := http.NewServeMux()
	e.srv = httptest.NewServer(mux)
	t.Cleanup(e.srv.Close)
	s := auth.NewSessions(v, auth.SessionConfig{
		Idle: idle, AuthorizeURL: e.iss.AuthorizeURL(), TokenURL: e.iss.TokenURL(), ClientID: authtest.ClientID,
		RedirectURL: e.srv.URL + "/login/callback", Scopes: []string{auth.ScopeWorklistRead}, Now: e.clk.Now,
	}, slog.New(e.log))
	s.Register(mux)
	page := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := auth.FromContext(r.Context())
		io.WriteString(w, "worklist for "+p.Subject)
	})
	mux.Handle("GET /worklist", s.Require(auth.ScopeWorklistRead, page))
	mux.Handle("POST /worklist/priority", s.Require(auth.ScopeWorklistWrite, page))
	return e
}

// browser is a cookie-keeping client that does not follow redirects, so
// each step of the flow can be checked.
func browser(t *testing.T) *http.Client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func get(t *testing.T, c *http.Client, u string, header ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func body(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// startLogin follows an HTML GET of /worklist to /login and through the
// issuer; it returns the callback URL the issuer sent the browser to.
func (e *pageEnv) startLogin(t *testing.T, c *http.Client) string {
	t.Helper()
	resp := get(t, c, e.srv.URL+"/worklist", "Accept", "text/html")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/login?next=%2Fworklist" {
		t.Fatalf("page without a session: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp = get(t, c, e.srv.URL+resp.Header.Get("Location"))
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || loc.Query().Get("code_challenge_method") != "S256" || len(loc.Query().Get("state")) != 43 {
		t.Fatalf("/login: %d to %s", resp.StatusCode, loc)
	}
	resp = get(t, c, loc.String())
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("authorize: %d %s", resp.StatusCode, body(t, resp))
	}
	return resp.Header.Get("Location")
}

// login runs the whole flow and checks the session cookie.
func (e *pageEnv) login(t *testing.T, c *http.Client) {
	t.Helper()
	resp := get(t, c, e.startLogin(t, c))
	b := body(t, resp)
	if resp.StatusCode != http.StatusOK || !strings.Contains(b, `url=/worklist"`) {
		t.Fatalf("callback: %d %s", resp.StatusCode, b)
	}
	var sc *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == "radgate_session" {
			sc = ck
		}
	}
	if sc == nil || !sc.HttpOnly || sc.SameSite != http.SameSiteStrictMode || sc.Path != "/" || len(sc.Value) != 43 {
		t.Fatalf("session cookie %+v", sc)
	}
	if strings.Contains(b, "eyJ") || strings.Contains(sc.Value, ".") {
		t.Fatal("the access token reached the browser")
	}
}

func (e *pageEnv) page(t *testing.T, c *http.Client) *http.Response {
	t.Helper()
	return get(t, c, e.srv.URL+"/worklist", "Accept", "text/html")
}

func TestSessionLoginAndIdle(t *testing.T) {
	e := newPageEnv(t, 2*time.Minute)
	e.iss.SetLogin(authtest.Claims{Subject: "radiologist-1", Expiry: time.Now().Add(time.Hour)})
	c := browser(t)
	e.login(t, c)
	if resp := e.page(t, c); resp.StatusCode != 200 || body(t, resp) != "worklist for radiologist-1" {
		t.Fatalf("page after login: %d", resp.StatusCode)
	}
	// Activity keeps the session alive past Idle in total…
	for range 2 {
		e.clk.Add(100 * time.Second)
		if resp := e.page(t, c); resp.StatusCode != 200 {
			t.Fatalf("page after 100 s: %d", resp.StatusCode)
		}
	}
	// …Idle without a request ends it.
	e.fs.take()
	e.clk.Add(2*time.Minute + time.Second)
	if resp := e.page(t, c); resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/login") {
		t.Fatalf("page after idling: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if got := e.fs.take(); len(got) != 1 || got[0].Reason != auth.ReasonExpired || got[0].Method != "GET /worklist" {
		t.Errorf("idle failures %+v", got)
	}
	// An API call without a session gets 401, not a redirect.
	if resp := get(t, c, e.srv.URL+"/worklist"); resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") != `Bearer realm="radgate"` {
		t.Errorf("non-HTML without a session: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	if strings.Contains(e.log.String(), "eyJ") {
		t.Errorf("a token was logged:\n%s", e.log)
	}
}

func TestSessionEndsAtTokenExpiry(t *testing.T) {
	e := newPageEnv(t, 0) // default Idle, 15 min
	e.iss.SetLogin(authtest.Claims{Expiry: time.Now().Add(3 * time.Minute)})
	c := browser(t)
	e.login(t, c)
	e.clk.Add(2 * time.Minute)
	if resp := e.page(t, c); resp.StatusCode != 200 {
		t.Fatalf("page before expiry: %d", resp.StatusCode)
	}
	e.clk.Add(2 * time.Minute)
	if resp := e.page(t, c); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("page after the token expired: %d", resp.StatusCode)
	}
}

func TestSessionLogout(t *testing.T) {
	e := newPageEnv(t, 0)
	c := browser(t)
	e.login(t, c)
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, e.srv.URL+"/logout", nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("logout: %d", resp.StatusCode)
	}
	if resp := e.page(t, c); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("page after logout: %d", resp.StatusCode)
	}
}

func TestSessionScopeAndBearer(t *testing.T) {
	e := newPageEnv(t, 0)
	c := browser(t)
	e.login(t, c) // worklist.read only
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, e.srv.URL+"/worklist/priority", nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("session without worklist.write: %d, want 403", resp.StatusCode)
	}

	api := e.srv.Client()
	tok := e.iss.Token(t, authtest.Claims{Subject: "reverse-proxy", Scopes: []string{auth.ScopeWorklistRead}})
	if resp := get(t, api, e.srv.URL+"/worklist", "Authorization", "Bearer "+tok); resp.StatusCode != 200 || body(t, resp) != "worklist for reverse-proxy" {
		t.Errorf("bearer: %d", resp.StatusCode)
	}
	bad := e.iss.Token(t, authtest.Claims{Expiry: time.Now().Add(-time.Hour), Scopes: []string{auth.ScopeWorklistRead}})
	if resp := get(t, api, e.srv.URL+"/worklist", "Authorization", "Bearer "+bad, "Accept", "text/html"); resp.StatusCode != 401 {
		t.Errorf("expired bearer: %d, want 401", resp.StatusCode)
	}
}

func TestSessionStateMismatch(t *testing.T) {
	e := newPageEnv(t, 0)
	tests := []struct {
		name string
		edit func(t *testing.T, callback string) (string, *http.Client)
	}{
		{"tampered state", func(t *testing.T, cb string) (string, *http.Client) {
			u, _ := url.Parse(cb)
			q := u.Query()
			q.Set("state", strings.Repeat("A", 43))
			u.RawQuery = q.Encode()
			return u.String(), nil
		}},
		{"another browser's callback", func(t *testing.T, cb string) (string, *http.Client) {
			return cb, browser(t) // no login cookie: login CSRF
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := browser(t)
			cb, other := tc.edit(t, e.startLogin(t, c))
			if other != nil {
				c = other
			}
			if resp := get(t, c, cb); resp.StatusCode != http.StatusBadRequest {
				t.Errorf("callback: %d, want 400", resp.StatusCode)
			}
			if resp := e.page(t, c); resp.StatusCode != http.StatusSeeOther {
				t.Errorf("page after a refused callback: %d", resp.StatusCode)
			}
		})
	}
	t.Run("callback replayed", func(t *testing.T) {
		c := browser(t)
		cb := e.startLogin(t, c)
		if resp := get(t, c, cb); resp.StatusCode != 200 {
			t.Fatalf("first callback: %d", resp.StatusCode)
		}
		if resp := get(t, c, cb); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("replayed callback: %d, want 400", resp.StatusCode)
		}
	})
}
