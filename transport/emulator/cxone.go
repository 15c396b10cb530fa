package emulator

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// CXoneOptions configures a CXone emulator. The zero value is usable: it
// accepts any client and access key and names tenant "emulator-tenant".
type CXoneOptions struct {
	// ClientID and ClientSecret are the application credentials the
	// token endpoint expects as HTTP Basic auth. Both empty accepts any.
	ClientID, ClientSecret string

	// AccessKeyID and AccessKeySecret are the API user's access key the
	// password grant expects. Both empty accepts any.
	AccessKeyID, AccessKeySecret string

	// TenantID is the tenant the id token names and the CXone
	// configuration answers for. Empty means "emulator-tenant".
	TenantID string

	// TokenTTL is the lifetime of access tokens. Zero means 3600s.
	TokenTTL time.Duration

	// Logger receives lifecycle and per-request records; nil discards them.
	Logger *slog.Logger

	// Addr is the address Start listens on; empty means 127.0.0.1:0.
	Addr string
}

// Signal is one Signal API request the emulator accepted.
type Signal struct {
	ContactID string
	// Version is the API version segment of the path, such as "v30.0".
	Version string
	// Params holds p1, p2, ... in order, up to the highest one sent; a
	// position not sent is "".
	Params []string
	// RawQuery is the query string as sent.
	RawQuery string
	At       time.Time
}

// CXone is an HTTP server that plays the parts of the real CXone platform
// dtmfd's cxone profile uses: OpenID and CXone discovery, the token
// endpoint with the password and refresh_token grants, and the Signal
// API. Tests read back the signals it accepted and inject faults. Its
// methods are safe for concurrent use.
type CXone struct {
	opts CXoneOptions
	log  *slog.Logger
	mux  *http.ServeMux
	now  func() time.Time

	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every change
	closed  bool
	srv     *server // nil until Start

	access   map[string]time.Time // access token to expiry
	refresh  map[string]bool      // live refresh tokens
	signals  []Signal
	rejected map[string]int // contact id to status

	failTokens, failDiscovery, failSignals failure

	// region is the path segment of the API endpoint discovery names,
	// "" for the emulator's root; MoveAPI changes it.
	region string

	passwordGrants, refreshGrants, tokenRequests int
	discoveryRequests, signalRequests            int
}

// NewCXone returns a CXone emulator that is not yet listening. Call Start,
// or mount Handler on a server of your own; either way, call Close.
func NewCXone(opts CXoneOptions) *CXone {
	if opts.TenantID == "" {
		opts.TenantID = "emulator-tenant"
	}
	if opts.TokenTTL <= 0 {
		opts.TokenTTL = 3600 * time.Second
	}
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}

	c := &CXone{
		opts:     opts,
		log:      log,
		mux:      http.NewServeMux(),
		now:      time.Now,
		changed:  make(chan struct{}),
		access:   make(map[string]time.Time),
		refresh:  make(map[string]bool),
		rejected: make(map[string]int),
	}
	c.mux.HandleFunc("GET /.well-known/openid-configuration", c.serveOpenID)
	c.mux.HandleFunc("GET /.well-known/cxone-configuration", c.serveConfiguration)
	c.mux.HandleFunc("POST /auth/token", c.serveToken)
	const signal = "/inContactAPI/services/{version}/interactions/{id}/signal"
	c.mux.HandleFunc("POST "+signal, c.serveSignal)
	c.mux.HandleFunc("POST /region/{region}"+signal, c.serveSignal)
	return c
}

// Start listens on CXoneOptions.Addr and serves until Close.
func (c *CXone) Start() error {
	c.mu.Lock()
	defer c.mu.Unlock()

	if c.closed {
		return fmt.Errorf("start cxone emulator: %w", errClosed)
	}
	if c.srv != nil {
		return errors.New("start cxone emulator: already started")
	}
	srv, err := serve(c.opts.Addr, c.mux, c.log)
	if err != nil {
		return err
	}
	c.srv = srv
	c.log.Info("cxone emulator listening", "url", srv.url())
	return nil
}

// URL returns the base URL the emulator serves on, which is also its
// issuer and API endpoint, or "" before Start.
func (c *CXone) URL() string {
	c.mu.Lock()
	defer c.mu.Unlock()

	return c.srv.url()
}

// Handler returns the emulator's routes, for mounting on another server.
// Discovery documents then point at the host the request came to.
func (c *CXone) Handler() http.Handler { return c.mux }

// TenantID returns the tenant the emulator answers for.
func (c *CXone) TenantID() string { return c.opts.TenantID }

// Close stops the server. Closing twice is harmless.
func (c *CXone) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.broadcastLocked()
	srv := c.srv
	c.mu.Unlock()

	if srv == nil {
		return nil
	}
	err := srv.close()
	c.log.Info("cxone emulator closed")
	return err
}

func (c *CXone) broadcastLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// waitFor blocks until ready, called with c.mu held, reports true.
func (c *CXone) waitFor(ctx context.Context, ready func() bool) error {
	for {
		c.mu.Lock()
		ok, closed, ch := ready(), c.closed, c.changed
		c.mu.Unlock()

		switch {
		case ok:
			return nil
		case closed:
			return errClosed
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// baseURL is the URL documents point at: the listener's, or the host of
// the request when the routes are mounted elsewhere.
func (c *CXone) baseURL(r *http.Request) string {
	if u := c.URL(); u != "" {
		return u
	}
	return "http://" + r.Host
}

func (c *CXone) serveOpenID(w http.ResponseWriter, r *http.Request) {
	if c.discoveryFault(w) {
		return
	}
	base := c.baseURL(r)
	replyJSON(w, http.StatusOK, map[string]any{
		"issuer":                                base,
		"token_endpoint":                        base + "/auth/token",
		"grant_types_supported":                 []string{"password", "refresh_token"},
		"token_endpoint_auth_methods_supported": []string{"client_secret_basic"},
	})
}

func (c *CXone) serveConfiguration(w http.ResponseWriter, r *http.Request) {
	if c.discoveryFault(w) {
		return
	}
	if r.URL.Query().Get("tenantId") != c.opts.TenantID {
		replyError(w, http.StatusNotFound, "unknown_tenant")
		return
	}
	replyJSON(w, http.StatusOK, map[string]any{
		"tenantId":     c.opts.TenantID,
		"area":         "emulator",
		"api_endpoint": c.baseURL(r) + c.apiPath(),
	})
}

// apiPath is the path of the API endpoint under the base URL.
func (c *CXone) apiPath() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.region == "" {
		return ""
	}
	return "/region/" + c.region
}

// MoveAPI moves the tenant's API endpoint to {URL}/region/{region}, as a
// tenant moved to another data centre: discovery names the new endpoint
// from now on, and the Signal API at any other one answers 404.
func (c *CXone) MoveAPI(region string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.region = region
}

func (c *CXone) discoveryFault(w http.ResponseWriter) bool {
	c.mu.Lock()
	c.discoveryRequests++
	status, header, failed := c.failDiscovery.take()
	c.mu.Unlock()

	if failed {
		replyFault(w, status, header)
	}
	return failed
}

// serveToken answers the password and refresh_token grants. The client
// authenticates with HTTP Basic, its id and secret form-encoded first as
// RFC 6749 section 2.3.1 asks.
func (c *CXone) serveToken(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	c.tokenRequests++
	status, header, failed := c.failTokens.take()
	c.mu.Unlock()
	if failed {
		replyFault(w, status, header)
		return
	}

	form, err := readTokenForm(w, r)
	if err != nil {
		c.log.Debug("bad token request", "err", err)
		replyError(w, http.StatusBadRequest, "invalid_request")
		return
	}
	if !c.validClient(r) {
		w.Header().Set("WWW-Authenticate", `Basic realm="cxone emulator"`)
		replyError(w, http.StatusUnauthorized, "invalid_client")
		return
	}

	switch form.Get("grant_type") {
	case "password":
		c.passwordGrant(w, form)
	case "refresh_token":
		c.refreshGrant(w, form)
	default:
		replyError(w, http.StatusBadRequest, "unsupported_grant_type")
	}
}

func (c *CXone) passwordGrant(w http.ResponseWriter, form url.Values) {
	c.mu.Lock()
	c.passwordGrants++
	c.mu.Unlock()

	if !c.validKey(form.Get("username"), form.Get("password")) {
		replyError(w, http.StatusBadRequest, "invalid_grant")
		return
	}
	c.issue(w)
}

// refreshGrant takes a live refresh token once: each use issues a new one
// and retires the old, so a client must keep the latest.
func (c *CXone) refreshGrant(w http.ResponseWriter, form url.Values) {
	rt := form.Get("refresh_token")

	c.mu.Lock()
	c.refreshGrants++
	live := c.refresh[rt]
	delete(c.refresh, rt)
	c.mu.Unlock()

	if !live {
		replyError(w, http.StatusBadRequest, "invalid_grant")
		return
	}
	c.issue(w)
}

// issue answers with a new access token, refresh token and id token.
func (c *CXone) issue(w http.ResponseWriter) {
	access, refresh := rand.Text(), rand.Text()
	now := c.now()

	c.mu.Lock()
	for t, exp := range c.access {
		if !now.Before(exp) {
			delete(c.access, t)
		}
	}
	c.access[access] = now.Add(c.opts.TokenTTL)
	c.refresh[refresh] = true
	c.mu.Unlock()

	w.Header().Set("Cache-Control", "no-store")
	replyJSON(w, http.StatusOK, map[string]any{
		"access_token":  access,
		"token_type":    "bearer",
		"expires_in":    int64(c.opts.TokenTTL / time.Second),
		"refresh_token": refresh,
		"id_token":      c.idToken(now),
	})
}

// idToken is an unsigned JWT ("alg":"none") naming the tenant; dtmfd
// reads the tenant from it without checking a signature.
func (c *CXone) idToken(now time.Time) string {
	enc := base64.RawURLEncoding
	header, _ := json.Marshal(map[string]string{"alg": "none", "typ": "JWT"})
	claims, _ := json.Marshal(map[string]any{
		"iss":      "cxone-emulator",
		"sub":      c.opts.AccessKeyID,
		"tenantId": c.opts.TenantID,
		"iat":      now.Unix(),
		"exp":      now.Add(c.opts.TokenTTL).Unix(),
	})
	return enc.EncodeToString(header) + "." + enc.EncodeToString(claims) + "."
}

// validClient checks Basic auth in constant time.
func (c *CXone) validClient(r *http.Request) bool {
	id, secret, ok := r.BasicAuth()
	if !ok {
		return false
	}
	if c.opts.ClientID == "" && c.opts.ClientSecret == "" {
		return true
	}
	return equal(formUnescape(id), c.opts.ClientID) &&
		equal(formUnescape(secret), c.opts.ClientSecret)
}

func (c *CXone) validKey(id, secret string) bool {
	if c.opts.AccessKeyID == "" && c.opts.AccessKeySecret == "" {
		return id != "" && secret != ""
	}
	return equal(id, c.opts.AccessKeyID) && equal(secret, c.opts.AccessKeySecret)
}

func equal(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// readTokenForm reads a form-encoded token request, refusing repeated
// parameters as RFC 6749 section 3.2 requires.
func readTokenForm(w http.ResponseWriter, r *http.Request) (url.Values, error) {
	media, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || media != "application/x-www-form-urlencoded" {
		return nil, fmt.Errorf("content type %q is not a form", r.Header.Get("Content-Type"))
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		return nil, fmt.Errorf("read token request: %w", err)
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, fmt.Errorf("parse token request: %w", err)
	}
	for k, vs := range form {
		if len(vs) > 1 {
			return nil, fmt.Errorf("parameter %s repeated", k)
		}
	}
	return form, nil
}

// authorized reports whether r carries a live access token.
func (c *CXone) authorized(r *http.Request) bool {
	tok, ok := bearer(r.Header.Get("Authorization"))
	if !ok {
		return false
	}

	c.mu.Lock()
	exp, ok := c.access[tok]
	c.mu.Unlock()
	return ok && c.now().Before(exp)
}

// ExpireTokens revokes every access token issued so far; refresh tokens
// stay valid, as when access tokens time out on the platform.
func (c *CXone) ExpireTokens() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.access)
}

// ExpireRefreshTokens revokes every refresh token, so the next renewal
// must sign in with the access key again.
func (c *CXone) ExpireRefreshTokens() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.refresh)
}

// FailTokens makes the next n token requests answer status.
func (c *CXone) FailTokens(n, status int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.failTokens = failure{n: n, status: status}
}

// FailDiscovery makes the next n requests for either discovery document
// answer status, as when the issuer is down.
func (c *CXone) FailDiscovery(n, status int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.failDiscovery = failure{n: n, status: status}
}

// PasswordGrants returns how many password grant requests arrived with a
// valid client, accepted or not.
func (c *CXone) PasswordGrants() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.passwordGrants
}

// RefreshGrants returns how many refresh_token grant requests arrived
// with a valid client, accepted or not.
func (c *CXone) RefreshGrants() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.refreshGrants
}

// TokenRequests returns how many requests reached the token endpoint.
func (c *CXone) TokenRequests() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.tokenRequests
}

// DiscoveryRequests returns how many requests reached either discovery
// document, failed ones included.
func (c *CXone) DiscoveryRequests() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.discoveryRequests
}
