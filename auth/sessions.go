package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Page session limits and names.
const (
	// defaultIdle ends a session after this long without a request.
	defaultIdle = 15 * time.Minute
	// maxSessions bounds the live sessions held in memory.
	maxSessions = 10000
	// maxPendingLogins bounds logins between /login and the callback.
	maxPendingLogins = 1000
	// loginTimeout is how long a started login may take at the issuer.
	loginTimeout = 10 * time.Minute
	// sweepInterval: ended sessions and stale logins are dropped at most
	// this often (and whenever a table is full).
	sweepInterval = time.Minute
	// maxTokenResponse bounds the token endpoint's answer (RFC 6749 5.1).
	maxTokenResponse = 64 << 10
	// maxNextBytes bounds the page a login returns to.
	maxNextBytes = 2048
	// secretBytes: session ids, state and PKCE verifiers are 256 random
	// bits (RFC 7636 7.1 recommends 32 octets for the verifier).
	secretBytes = 32

	sessionCookie = "radgate_session"
	// hostPrefix pins a Secure cookie to this host and path "/" (RFC 6265bis
	// 4.1.3.2), so a sibling subdomain cannot plant or overwrite it.
	hostPrefix  = "__Host-"
	loginCookie = "radgate_login"
)

// The sign-in routes Register adds; they are open (the sign-in itself).
const (
	LoginPath    = "/login"
	CallbackPath = "/login/callback"
	LogoutPath   = "/logout"
)

// SessionConfig configures page sessions: the OAuth 2 authorization code
// flow with PKCE (RFC 6749 4.1, RFC 7636) for a public client.
type SessionConfig struct {
	// Idle ends a session after this long without a request; zero: 15 min.
	Idle time.Duration
	// AuthorizeURL and TokenURL are the issuer's endpoints (RFC 6749 3.1, 3.2).
	AuthorizeURL, TokenURL string
	// ClientID is the page's client registration at the issuer.
	ClientID string
	// RedirectURL is this gateway's absolute …/login/callback URL, as
	// registered with the issuer.
	RedirectURL string
	// Scopes requested at login.
	Scopes []string
	// Secure sets the cookies' Secure flag (and the __Host- prefix on the
	// session cookie); leave it false only for plain-HTTP tests.
	Secure bool
	// Now is the clock for idle and expiry; nil: time.Now.
	Now func() time.Time
}

// Sessions are server-side login sessions for the radiologist's browser
// page, which cannot attach bearer headers itself. The browser holds only
// a random session id in an HttpOnly, SameSite=Strict cookie; the access
// token stays on the server (and is not even kept: the verified Principal
// is). Sessions live in memory, so a restart logs everyone out, and each
// replica has its own. Safe for concurrent use.
type Sessions struct {
	v      *Verifier
	cfg    SessionConfig
	log    *slog.Logger
	cookie string // session cookie name

	mu        sync.Mutex
	sessions  map[[sha256.Size]byte]*session // by SHA-256 of the id, so the table holds no usable id
	pending   map[string]pendingLogin        // by state
	lastSweep time.Time
}

type session struct {
	p        *Principal
	lastSeen time.Time
}

// pendingLogin is a login between /login and its callback.
type pendingLogin struct {
	verifier string // PKCE code_verifier
	next     string // local page to return to
	started  time.Time
}

// NewSessions returns page sessions whose tokens v verifies. A config
// without the login endpoints still serves bearer clients; /login then
// answers 503 (and the problem is logged here).
func NewSessions(v *Verifier, cfg SessionConfig, log *slog.Logger) *Sessions {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Idle <= 0 {
		cfg.Idle = defaultIdle
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Sessions{
		v: v, cfg: cfg, log: log, cookie: sessionCookie,
		sessions: map[[sha256.Size]byte]*session{},
		pending:  map[string]pendingLogin{},
	}
	if cfg.Secure {
		s.cookie = hostPrefix + sessionCookie
	}
	if err := cfg.check(); err != nil {
		log.Error("auth: page login disabled", "err", err)
	}
	return s
}

func (cfg *SessionConfig) check() error {
	for name, u := range map[string]string{"AuthorizeURL": cfg.AuthorizeURL, "TokenURL": cfg.TokenURL, "RedirectURL": cfg.RedirectURL} {
		if p, err := url.Parse(u); err != nil || !p.IsAbs() {
			return fmt.Errorf("%w: %s must be an absolute URL", ErrConfig, name)
		}
	}
	if cfg.ClientID == "" {
		return fmt.Errorf("%w: ClientID is required", ErrConfig)
	}
	return nil
}

// Register adds GET /login, GET /login/callback and POST /logout to mux.
func (s *Sessions) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET "+LoginPath, s.login)
	mux.HandleFunc("GET "+CallbackPath, s.callback)
	mux.HandleFunc("POST "+LogoutPath, s.logout)
}

// Require serves next to requests with a bearer token (checked as
// Verifier.Require does) or, without an Authorization header, a live
// session, either holding scope. A request with neither is sent to /login
// if it is a GET for an HTML page, and answered 401 otherwise.
func (s *Sessions) Require(scope string, next http.Handler) http.Handler {
	bearer := s.v.Require(scope, next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.Header.Values("Authorization")) > 0 {
			bearer.ServeHTTP(w, r)
			return
		}
		p, err := s.lookup(r)
		if err == nil && !p.Has(scope) {
			err = fmt.Errorf("%w: %s", ErrScope, scope)
		}
		if err != nil {
			f := httpFailure(r)
			f.Scope = scope
			if p != nil {
				f.Subject = p.Subject
			}
			s.v.refuse(f, err)
			if p == nil && r.Method == http.MethodGet && strings.Contains(r.Header.Get("Accept"), "text/html") {
				http.Redirect(w, r, LoginPath+"?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			challenge(w, scope, err)
			return
		}
		next.ServeHTTP(w, r.WithContext(NewContext(r.Context(), p)))
	})
}

// lookup finds the request's live session and marks it used. It returns
// ErrMissing without one, ErrExpired-wrapped when it just ended.
func (s *Sessions) lookup(r *http.Request) (*Principal, error) {
	c, err := r.Cookie(s.cookie)
	if err != nil {
		return nil, ErrMissing
	}
	id, err := base64.RawURLEncoding.DecodeString(c.Value)
	if err != nil || len(id) != secretBytes {
		return nil, ErrMissing
	}
	key := sha256.Sum256(id)
	now := s.cfg.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	// Swept after the lookup, so that this session's own end is reported
	// as such rather than as a missing session.
	defer s.sweepLocked(now, false)
	sess, ok := s.sessions[key]
	if !ok {
		return nil, ErrMissing
	}
	if s.ended(sess, now) {
		delete(s.sessions, key)
		return nil, fmt.Errorf("%w: session ended", ErrExpired)
	}
	sess.lastSeen = now
	return sess.p, nil
}

// ended: a session ends when its token expires or after Idle unused.
func (s *Sessions) ended(sess *session, now time.Time) bool {
	return !now.Before(sess.p.Expiry) || now.Sub(sess.lastSeen) >= s.cfg.Idle
}

// sweepLocked drops ended sessions and stale logins, at most every
// sweepInterval unless force. Call with mu held.
func (s *Sessions) sweepLocked(now time.Time, force bool) {
	if !force && now.Sub(s.lastSweep) < sweepInterval {
		return
	}
	s.lastSweep = now
	for k, sess := range s.sessions {
		if s.ended(sess, now) {
			delete(s.sessions, k)
		}
	}
	for k, pl := range s.pending {
		if now.Sub(pl.started) > loginTimeout {
			delete(s.pending, k)
		}
	}
}

// login starts the authorization code flow (RFC 6749 4.1.1) with PKCE
// S256 (RFC 7636 4.1-4.3) and a state bound to this browser by a cookie
// (RFC 6749 10.12), then redirects to the issuer.
func (s *Sessions) login(w http.ResponseWriter, r *http.Request) {
	if err := s.cfg.check(); err != nil {
		http.Error(w, "page login is not configured", http.StatusServiceUnavailable)
		return
	}
	state, verifier := randomString(), randomString()
	now := s.cfg.Now()
	s.mu.Lock()
	if len(s.pending) >= maxPendingLogins {
		s.sweepLocked(now, true)
	}
	full := len(s.pending) >= maxPendingLogins
	if !full {
		s.pending[state] = pendingLogin{verifier: verifier, next: localPath(r.URL.Query().Get("next")), started: now}
	}
	s.mu.Unlock()
	if full {
		http.Error(w, "too many logins in progress", http.StatusServiceUnavailable)
		return
	}
	// SameSite=Lax, not Strict: the cookie must come back on the issuer's
	// cross-site redirect to the callback.
	http.SetCookie(w, &http.Cookie{Name: loginCookie, Value: state, Path: CallbackPath, MaxAge: int(loginTimeout / time.Second),
		HttpOnly: true, Secure: s.cfg.Secure, SameSite: http.SameSiteLaxMode})
	sum := sha256.Sum256([]byte(verifier))
	u, _ := url.Parse(s.cfg.AuthorizeURL) // checked above
	q := u.Query()
	q.Set("response_type", "code")
	q.Set("client_id", s.cfg.ClientID)
	q.Set("redirect_uri", s.cfg.RedirectURL)
	q.Set("scope", strings.Join(s.cfg.Scopes, " "))
	q.Set("state", state)
	q.Set("code_challenge", base64.RawURLEncoding.EncodeToString(sum[:]))
	q.Set("code_challenge_method", "S256")
	u.RawQuery = q.Encode()
	http.Redirect(w, r, u.String(), http.StatusFound)
}

// callback finishes the flow (RFC 6749 4.1.2-4.1.4): it checks state,
// exchanges the code with the PKCE verifier, verifies the access token and
// starts a session.
func (s *Sessions) callback(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	state := q.Get("state")
	http.SetCookie(w, &http.Cookie{Name: loginCookie, Path: CallbackPath, MaxAge: -1, HttpOnly: true, Secure: s.cfg.Secure})
	c, cerr := r.Cookie(loginCookie)
	now := s.cfg.Now()
	s.mu.Lock()
	pl, ok := s.pending[state]
	delete(s.pending, state) // single use, whatever follows
	s.mu.Unlock()
	if cerr != nil || !ok || subtle.ConstantTimeCompare([]byte(c.Value), []byte(state)) != 1 || now.Sub(pl.started) > loginTimeout {
		s.log.Warn("auth: login callback with an unknown or foreign state", "remote", r.RemoteAddr)
		http.Error(w, "login state mismatch; start again at "+LoginPath, http.StatusBadRequest)
		return
	}
	if e := q.Get("error"); e != "" {
		// RFC 6749 4.1.2.1: the issuer refused (access_denied, …).
		s.log.Info("auth: login refused by the issuer", "error", short(e), "remote", r.RemoteAddr)
		http.Error(w, "login refused by the authorization server", http.StatusUnauthorized)
		return
	}
	tok, err := s.exchange(r, q.Get("code"), pl.verifier)
	if err != nil {
		s.log.Warn("auth: login code exchange failed", "err", err, "remote", r.RemoteAddr)
		http.Error(w, "login failed at the token endpoint", http.StatusBadGateway)
		return
	}
	p, err := s.v.verify(r.Context(), tok)
	if err != nil {
		s.v.refuse(Failure{Method: r.Method + " " + CallbackPath, Remote: r.RemoteAddr}, err)
		http.Error(w, "the issued access token was refused", http.StatusUnauthorized)
		return
	}
	id := make([]byte, secretBytes)
	rand.Read(id)
	s.mu.Lock()
	if len(s.sessions) >= maxSessions {
		s.sweepLocked(now, true)
	}
	full := len(s.sessions) >= maxSessions
	if !full {
		s.sessions[sha256.Sum256(id)] = &session{p: p, lastSeen: now}
	}
	s.mu.Unlock()
	if full {
		http.Error(w, "too many sessions", http.StatusServiceUnavailable)
		return
	}
	s.log.Info("auth: session started", "subject", p.Subject, "expiry", p.Expiry)
	http.SetCookie(w, &http.Cookie{Name: s.cookie, Value: base64.RawURLEncoding.EncodeToString(id), Path: "/", Expires: p.Expiry,
		HttpOnly: true, Secure: s.cfg.Secure, SameSite: http.SameSiteStrictMode})
	// A page that moves on, not a redirect: the navigation that reached the
	// callback started at the issuer (cross-site), and browsers keep
	// SameSite=Strict cookies off every redirect of it, which would send
	// the user straight back to /login. The refresh is a new, same-site
	// navigation.
	next := html.EscapeString(pl.next)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	fmt.Fprintf(w, `<!doctype html><meta http-equiv="refresh" content="0;url=%s"><a href="%s">Continue</a>`, next, next)
}

// exchange redeems an authorization code at the token endpoint (RFC 6749
// 4.1.3, RFC 7636 4.5) and returns the access token. The token never
// appears in an error.
func (s *Sessions) exchange(r *http.Request, code, verifier string) (string, error) {
	if code == "" {
		return "", errors.New("no code in the callback")
	}
	form := url.Values{
		"grant_type":    {"authorization_code"},
		"code":          {code},
		"redirect_uri":  {s.cfg.RedirectURL},
		"client_id":     {s.cfg.ClientID},
		"code_verifier": {verifier},
	}
	req, err := http.NewRequestWithContext(r.Context(), http.MethodPost, s.cfg.TokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := s.v.http.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := readLimited(resp.Body, maxTokenResponse)
	if err != nil {
		return "", err
	}
	var t struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
		Error       string `json:"error"`
	}
	if err := json.Unmarshal(body, &t); err != nil {
		return "", fmt.Errorf("token endpoint answered %d without JSON", resp.StatusCode)
	}
	switch {
	case resp.StatusCode != http.StatusOK:
		return "", fmt.Errorf("token endpoint answered %d %s", resp.StatusCode, short(t.Error))
	case t.AccessToken == "" || !strings.EqualFold(t.TokenType, "bearer"):
		return "", fmt.Errorf("token endpoint answered without a bearer access_token (token_type %s)", short(t.TokenType))
	}
	return t.AccessToken, nil
}

// logout ends the session and clears its cookie. SameSite=Strict keeps
// other sites from posting here with the cookie.
func (s *Sessions) logout(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(s.cookie); err == nil {
		if id, err := base64.RawURLEncoding.DecodeString(c.Value); err == nil {
			s.mu.Lock()
			delete(s.sessions, sha256.Sum256(id))
			s.mu.Unlock()
		}
	}
	http.SetCookie(w, &http.Cookie{Name: s.cookie, Path: "/", MaxAge: -1, HttpOnly: true, Secure: s.cfg.Secure, SameSite: http.SameSiteStrictMode})
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	fmt.Fprint(w, `<!doctype html><p>Signed out. <a href="`+LoginPath+`">Sign in again</a></p>`)
}

// randomString is secretBytes random bits, base64url: valid as state and
// as a PKCE code_verifier (43 unreserved characters, RFC 7636 4.1).
func randomString() string {
	b := make([]byte, secretBytes)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// localPath returns next if it is a path on this server, else "/", so a
// crafted login link cannot bounce the user to another site.
func localPath(next string) string {
	u, err := url.Parse(next)
	if err != nil || len(next) > maxNextBytes || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") ||
		strings.ContainsAny(next, "\\\r\n") || u.Scheme != "" || u.Host != "" {
		return "/"
	}
	return next
}
