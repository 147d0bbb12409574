package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/radgate/radgate/internal/metric"
)

// Limits, checked before the work they bound.
const (
	// maxTokenBytes bounds a whole token. Access tokens with group claims
	// reach 4-8 KiB; HTTP servers commonly cap a header line near 8 KiB.
	maxTokenBytes = 16 << 10
	// maxHeaderBytes bounds the decoded JOSE header.
	maxHeaderBytes = 4 << 10
	// maxClaimsBytes bounds the decoded claims set.
	maxClaimsBytes = 12 << 10
	// maxSignatureBytes bounds the decoded signature: an RSA-8192
	// signature is 1024 bytes, every other algorithm less.
	maxSignatureBytes = maxRSABits / 8
	// maxKidBytes bounds a kid, in a token or in a JWK.
	maxKidBytes = 256
	// maxJWKSBytes bounds a JWK Set document; real sets are a few KiB.
	maxJWKSBytes = 256 << 10
	// maxKeys bounds the keys in one set (issuers publish 2-5 during a
	// rotation).
	maxKeys = 64
	// minRSABits: RFC 7518 3.3 requires 2048-bit RSA keys or larger.
	minRSABits = 2048
	// maxRSABits bounds RSA verification cost.
	maxRSABits = 8192
	// maxNumericDate is 9999-12-31T23:59:59Z; later dates are nonsense
	// and would overflow time arithmetic.
	maxNumericDate = 253402300799

	// defaultLeeway is the clock skew allowed on exp, nbf and iat.
	defaultLeeway = 60 * time.Second
	// JWK Set refresh interval: Cache-Control max-age bounded to
	// [minRefresh, maxRefresh], defaultRefresh without one.
	minRefresh     = time.Minute
	maxRefresh     = 24 * time.Hour
	defaultRefresh = 15 * time.Minute
	// unknownKidInterval: a token with a kid we do not know triggers a
	// refetch (the issuer may have rotated, OpenID Connect Core 10.1.1),
	// at most this often, so forged kids cannot make us hammer the issuer.
	unknownKidInterval = 30 * time.Second
	// Retry backoff after a failed fetch, doubling from retryMin.
	retryMin = time.Second
	retryMax = 5 * time.Minute
	// fetchTimeout bounds one JWK Set fetch.
	fetchTimeout = 10 * time.Second
)

// Scopes of radgate's APIs. ScopeAdmin grants all of them.
const (
	ScopeDICOMwebRead  = "dicomweb.read"
	ScopeDICOMwebWrite = "dicomweb.write"
	ScopeWorklistRead  = "worklist.read"
	ScopeWorklistWrite = "worklist.write"
	ScopeModelsInfer   = "models.infer"
	ScopeAdmin         = "admin"
)

// Config configures a Verifier.
type Config struct {
	// Issuer is the exact iss the tokens must carry.
	Issuer string
	// Audience must be one of the tokens' aud values (RFC 9068 3: the
	// resource indicator of this gateway).
	Audience string
	// JWKS is where the issuer's keys are: an https:// URL (http:// only to
	// a loopback address), or a local file path.
	JWKS string
	// HTTPClient fetches the JWK Set (give one with a custom CA pool for a
	// private issuer). Nil: a client with a fetchTimeout timeout.
	HTTPClient *http.Client
	// Leeway is the clock skew allowed on exp, nbf and iat; zero means 60 s.
	Leeway time.Duration
	// OnFailure, if set, is called once for every refused token or request,
	// synchronously: the gateway writes its audit record there.
	OnFailure func(Failure)
}

// Principal is who a verified token speaks for.
type Principal struct {
	// Subject is the token's sub.
	Subject string
	// ClientID is the OAuth client the token was issued to (client_id,
	// else azp).
	ClientID string
	// Scopes are the granted scopes, sorted, without duplicates.
	Scopes []string
	// Expiry is the token's exp.
	Expiry time.Time
	// Name is preferred_username, else name: for the audit record's "who"
	// only, never for a decision or a log line.
	Name string
}

// Has reports whether p was granted scope; ScopeAdmin grants every scope
// and the empty scope is granted to every principal.
func (p *Principal) Has(scope string) bool {
	return scope == "" || slices.Contains(p.Scopes, scope) || slices.Contains(p.Scopes, ScopeAdmin)
}

// Verifier checks OAuth 2 access tokens (RFC 9068 JWTs) against an
// issuer's JWK Set, which it keeps fresh in a goroutine of its own until
// Close. It is safe for concurrent use.
type Verifier struct {
	issuer, audience string
	leeway           time.Duration
	source           string
	remote           bool // source is a URL, not a file
	http             *http.Client
	onFailure        func(Failure)
	log              *slog.Logger
	failures         *prometheus.CounterVec

	// fetchMu makes JWK Set fetches one at a time, so a burst of tokens
	// with a new kid costs one fetch.
	fetchMu sync.Mutex

	mu           sync.RWMutex
	keys         keySet    // nil until a set has loaded
	lastKidFetch time.Time // last refetch for an unknown kid

	stop      context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// New checks cfg, fetches the JWK Set once within ctx and starts the
// goroutine that refreshes it. An unreachable or unusable set is not an
// error: New logs it and returns a Verifier that refuses every token with
// ErrNoKeys until a retry succeeds. Errors wrap ErrConfig, or come from
// registering radgate_auth_failures_total on reg (nil: not registered).
// The goroutine outlives ctx; Close stops it.
func New(ctx context.Context, cfg Config, log *slog.Logger, reg prometheus.Registerer) (*Verifier, error) {
	remote, err := cfg.check()
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	v := &Verifier{
		issuer:    cfg.Issuer,
		audience:  cfg.Audience,
		leeway:    cfg.Leeway,
		source:    cfg.JWKS,
		remote:    remote,
		http:      cfg.HTTPClient,
		onFailure: cfg.OnFailure,
		log:       log.With("jwks", cfg.JWKS),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "radgate_auth_failures_total",
			Help: "Refused bearer tokens and sessions by reason.",
		}, []string{"reason"}),
	}
	if v.leeway == 0 {
		v.leeway = defaultLeeway
	}
	if v.http == nil {
		v.http = &http.Client{Timeout: fetchTimeout}
	}
	for _, r := range []string{ReasonMissing, ReasonMalformed, ReasonSignature, ReasonExpired,
		ReasonNotYetValid, ReasonIssuer, ReasonAudience, ReasonScope, ReasonNoKeys} {
		v.failures.WithLabelValues(r) // export zeroes, so rate() sees the first failure
	}
	if err := metric.Register(reg, v.failures); err != nil {
		return nil, fmt.Errorf("auth: metrics: %w", err)
	}
	next, err := v.refresh(ctx)
	if err != nil {
		next = retryMin
	}
	runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	v.stop = stop
	v.wg.Add(1)
	go v.refresher(runCtx, next)
	return v, nil
}

// check validates the configuration; remote says JWKS is a URL.
func (cfg *Config) check() (remote bool, err error) {
	switch {
	case cfg.Issuer == "":
		return false, fmt.Errorf("%w: Issuer is required", ErrConfig)
	case cfg.Audience == "":
		return false, fmt.Errorf("%w: Audience is required", ErrConfig)
	case cfg.JWKS == "":
		return false, fmt.Errorf("%w: JWKS (URL or file) is required", ErrConfig)
	case cfg.Leeway < 0:
		return false, fmt.Errorf("%w: negative Leeway", ErrConfig)
	}
	if !strings.Contains(cfg.JWKS, "://") {
		return false, nil
	}
	u, err := url.Parse(cfg.JWKS)
	if err != nil {
		return false, fmt.Errorf("%w: JWKS URL: %v", ErrConfig, err)
	}
	switch {
	case u.Scheme == "https" && u.Host != "":
		return true, nil
	case u.Scheme == "http" && isLoopback(u.Hostname()):
		// Keys fetched in the clear could be swapped on the way; only a
		// loopback issuer (tests, a sidecar) may skip TLS.
		return true, nil
	}
	return false, fmt.Errorf("%w: JWKS URL must be https:// (http:// only to a loopback address)", ErrConfig)
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Close stops the refresh goroutine and waits for it. Verify keeps working
// with the keys already loaded.
func (v *Verifier) Close() error {
	v.closeOnce.Do(func() {
		v.stop()
		v.wg.Wait()
	})
	return nil
}

// Verify checks a compact-serialised access token (RFC 9068 4) and returns
// its Principal. Refusals wrap one of the reason sentinels, count in the
// failure metric and go to Config.OnFailure. ctx bounds the JWK Set
// refetch an unknown kid may cause.
func (v *Verifier) Verify(ctx context.Context, raw string) (*Principal, error) {
	p, err := v.verify(ctx, raw)
	if err != nil {
		v.refuse(Failure{}, err)
	}
	return p, err
}

// refuse reports a refusal: metric, debug log, OnFailure. f.Reason is set
// from err. The log line leaves out Method, which may be a raw request
// path with UIDs in it; the audit record (OnFailure) is where it belongs.
func (v *Verifier) refuse(f Failure, err error) {
	f.Reason, _ = classify(err)
	v.failures.WithLabelValues(f.Reason).Inc()
	v.log.Debug("auth: refused", "reason", f.Reason, "scope", f.Scope, "subject", f.Subject, "remote", f.Remote)
	if v.onFailure != nil {
		v.onFailure(f)
	}
}

// verify is Verify without the reporting.
func (v *Verifier) verify(ctx context.Context, raw string) (*Principal, error) {
	if raw == "" {
		return nil, ErrMissing
	}
	if len(raw) > maxTokenBytes {
		return nil, fmt.Errorf("%w: token of %d bytes exceeds %d", ErrMalformed, len(raw), maxTokenBytes)
	}
	// RFC 7515 7.1: BASE64URL(header) . BASE64URL(payload) . BASE64URL(sig).
	// Five parts would be a JWE (RFC 7516 7.1), which we do not accept.
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return nil, fmt.Errorf("%w: %d dot-separated parts, want 3 (JWS compact)", ErrMalformed, len(parts))
	}
	hb, err := decodePart("header", parts[0], maxHeaderBytes)
	if err != nil {
		return nil, err
	}
	var h header
	if err := json.Unmarshal(hb, &h); err != nil {
		return nil, fmt.Errorf("%w: header is not a JSON object", ErrMalformed)
	}
	alg, ok := lookupAlg(h.Alg)
	if !ok {
		return nil, fmt.Errorf("%w: alg %s is not accepted", ErrSignature, short(h.Alg))
	}
	if err := h.check(); err != nil {
		return nil, err
	}
	sig, err := decodePart("signature", parts[2], maxSignatureBytes)
	if err != nil {
		return nil, err
	}
	key, err := v.key(ctx, h.Kid)
	if err != nil {
		return nil, err
	}
	if err := verifySignature(h.Alg, alg, key, raw[:len(parts[0])+1+len(parts[1])], sig); err != nil {
		return nil, err
	}
	// The claims are read only once the signature has verified.
	cb, err := decodePart("claims", parts[1], maxClaimsBytes)
	if err != nil {
		return nil, err
	}
	var c claims
	if err := json.Unmarshal(cb, &c); err != nil {
		return nil, fmt.Errorf("%w: claims: %v", ErrMalformed, jsonProblem(err))
	}
	return c.principal(v.issuer, v.audience, time.Now(), v.leeway)
}

// jsonProblem reduces a JSON error to its kind, so that a claim value
// (which a type error would quote) never reaches an error string.
func jsonProblem(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return "claim " + te.Field + " has the wrong type"
	}
	return "not a JSON object"
}

// key returns the key for kid, refetching the set once if kid is unknown.
func (v *Verifier) key(ctx context.Context, kid string) (publicKey, error) {
	if k, ok, _ := v.lookup(kid); ok {
		return k, nil
	}
	v.refetchFor(ctx, kid)
	k, ok, loaded := v.lookup(kid)
	switch {
	case ok:
		return k, nil
	case !loaded:
		return publicKey{}, ErrNoKeys
	}
	return publicKey{}, fmt.Errorf("%w: kid %s is not in the issuer's key set", ErrSignature, short(kid))
}

// lookup returns the key for kid; loaded says whether any set is loaded.
func (v *Verifier) lookup(kid string) (k publicKey, ok, loaded bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	k, ok = v.keys[kid]
	return k, ok, v.keys != nil
}

// refetchFor fetches the set again for an unknown kid, unless another
// caller just did or one did within unknownKidInterval.
func (v *Verifier) refetchFor(ctx context.Context, kid string) {
	v.fetchMu.Lock()
	defer v.fetchMu.Unlock()
	if _, ok, _ := v.lookup(kid); ok {
		return // fetched while we waited for fetchMu
	}
	v.mu.Lock()
	if time.Since(v.lastKidFetch) < unknownKidInterval {
		v.mu.Unlock()
		return
	}
	v.lastKidFetch = time.Now()
	v.mu.Unlock()
	v.log.Info("auth: unknown kid, refetching the JWK Set", "kid", short(kid))
	// Failures are logged there; the caller sees the outcome in lookup.
	_, _ = v.refreshLocked(ctx)
}

// refresher refreshes the set when it is due and retries failures with
// backoff, until ctx ends.
func (v *Verifier) refresher(ctx context.Context, delay time.Duration) {
	defer v.wg.Done()
	backoff := retryMin
	t := time.NewTimer(delay)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		next, err := v.refresh(ctx)
		if err != nil {
			backoff = min(2*backoff, retryMax)
			next = backoff
		} else {
			backoff = retryMin
		}
		t.Reset(next)
	}
}

// refresh fetches and installs the set; it returns when to refresh next.
func (v *Verifier) refresh(ctx context.Context) (time.Duration, error) {
	v.fetchMu.Lock()
	defer v.fetchMu.Unlock()
	return v.refreshLocked(ctx)
}

// refreshLocked is refresh with fetchMu held. A failed fetch leaves the
// keys we have in place: an issuer outage must not lock everyone out.
func (v *Verifier) refreshLocked(ctx context.Context) (time.Duration, error) {
	data, maxAge, err := v.fetch(ctx)
	var set keySet
	var skipped []string
	if err == nil {
		set, skipped, err = parseJWKS(data)
	}
	if len(skipped) > 0 {
		v.log.Warn("auth: JWK Set keys skipped", "skipped", skipped)
	}
	v.mu.Lock()
	had := v.keys != nil
	if err == nil {
		v.keys = set
	}
	v.mu.Unlock()
	switch {
	case err != nil && had:
		v.log.Warn("auth: JWK Set refresh failed; keeping the keys loaded before", "err", err)
		return 0, err
	case err != nil:
		v.log.Warn("auth: JWK Set unavailable; every token is refused until it loads", "err", err)
		return 0, err
	}
	v.log.Info("auth: JWK Set loaded", "keys", len(set), "next_refresh", maxAge)
	return maxAge, nil
}

// fetch reads the set from its URL or file and says how long it may be
// cached (RFC 9111 5.2.2.1 max-age, bounded).
func (v *Verifier) fetch(ctx context.Context) ([]byte, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	if !v.remote {
		f, err := os.Open(v.source)
		if err != nil {
			return nil, 0, fmt.Errorf("auth: JWK Set file: %w", err)
		}
		defer f.Close()
		data, err := readLimited(f, maxJWKSBytes)
		return data, defaultRefresh, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, v.source, nil)
	if err != nil {
		return nil, 0, fmt.Errorf("auth: JWK Set request: %w", err)
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := v.http.Do(req)
	if err != nil {
		return nil, 0, fmt.Errorf("auth: JWK Set fetch: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, 0, fmt.Errorf("auth: JWK Set fetch: HTTP %d", resp.StatusCode)
	}
	data, err := readLimited(resp.Body, maxJWKSBytes)
	return data, maxAge(resp.Header.Get("Cache-Control")), err
}

// readLimited reads at most limit bytes and fails if there are more.
func readLimited(r io.Reader, limit int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("auth: reading the JWK Set: %w", err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrJWKS, limit)
	}
	return data, nil
}

// maxAge reads max-age from a Cache-Control value, bounded to
// [minRefresh, maxRefresh]; defaultRefresh if there is none.
func maxAge(cacheControl string) time.Duration {
	for _, d := range strings.Split(cacheControl, ",") {
		name, val, ok := strings.Cut(strings.TrimSpace(d), "=")
		if !ok || !strings.EqualFold(name, "max-age") {
			continue
		}
		secs, err := strconv.ParseInt(strings.Trim(val, `"`), 10, 64)
		if err != nil || secs < 0 {
			break
		}
		return min(max(time.Duration(min(secs, int64(maxRefresh/time.Second)))*time.Second, minRefresh), maxRefresh)
	}
	return defaultRefresh
}
