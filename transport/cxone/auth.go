package cxone

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
	"unicode"

	"golang.org/x/sync/singleflight"

	"github.com/dtmfd/dtmfd/transport/metrics"
	"github.com/dtmfd/dtmfd/transport/token"
)

const (
	defaultRefreshBefore = 30 * time.Second

	// defaultLifetime is assumed when a reply has no positive expires_in.
	defaultLifetime = 60 * time.Second

	// maxLifetime caps expires_in, so a wrong reply cannot keep a token
	// cached for days.
	maxLifetime = 24 * time.Hour

	// maxExcerpt bounds how much of an error reply an error carries.
	maxExcerpt = 200

	// DefaultTenantClaim is the id_token claim that holds the tenant id.
	DefaultTenantClaim = "tenantId"
)

// AuthOptions configures a Source. TokenEndpoint and the four credentials
// are required.
type AuthOptions struct {
	// TokenEndpoint returns the token endpoint, usually
	// Discovery.TokenEndpoint. It is called before every request, so a
	// discovery that failed is tried again.
	TokenEndpoint func(ctx context.Context) (string, error)

	// ClientID and ClientSecret are the registered application's
	// credentials, sent as HTTP Basic auth.
	ClientID, ClientSecret string

	// AccessKeyID and AccessKeySecret are the API user's access key, sent
	// as the password grant's username and password.
	AccessKeyID, AccessKeySecret string

	// Scope, when set, is sent as the scope parameter.
	Scope string

	// TenantID, when set, is returned by TenantID instead of the id
	// token's claim.
	TenantID string

	// TenantClaim names the id_token claim holding the tenant id. Empty
	// means DefaultTenantClaim.
	TenantClaim string

	// RefreshBefore is how long before expiry a token is replaced.
	// Zero means 30s.
	RefreshBefore time.Duration

	// HTTPClient sends the requests. Nil means a client of its own with a
	// 10s timeout.
	HTTPClient *http.Client

	// Logger receives sign-in records; nil discards them.
	Logger *slog.Logger

	// Metrics counts tokens obtained and failed requests. Nil counts
	// nothing.
	Metrics *metrics.Metrics
}

// Source hands out a cached CXone access token. It signs in with the
// password grant, keeps the refresh token that comes with it, and renews
// with the refresh_token grant before it signs in again: a refresh costs
// the platform less than a sign-in and keeps working if the access key is
// rotated meanwhile. However many callers ask at once, at most one request
// to the token endpoint is in flight. Its methods are safe for concurrent
// use.
type Source struct {
	opts  AuthOptions
	log   *slog.Logger
	group singleflight.Group
	now   func() time.Time

	mu        sync.Mutex
	access    string
	refresh   string
	tenant    string
	refreshAt time.Time
	expiresAt time.Time
}

// NewSource returns a Source for opts, or an error naming the first
// required option that is missing. It sends no request until Token is
// called.
func NewSource(opts AuthOptions) (*Source, error) {
	switch {
	case opts.TokenEndpoint == nil:
		return nil, errors.New("new token source: no token endpoint")
	case opts.ClientID == "" || opts.ClientSecret == "":
		return nil, errors.New("new token source: client id and secret are required")
	case opts.AccessKeyID == "" || opts.AccessKeySecret == "":
		return nil, errors.New("new token source: access key id and secret are required")
	}
	if opts.RefreshBefore <= 0 {
		opts.RefreshBefore = defaultRefreshBefore
	}
	if opts.TenantClaim == "" {
		opts.TenantClaim = DefaultTenantClaim
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = defaultClient()
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Source{opts: opts, log: log, now: time.Now}, nil
}

// Token returns a valid access token, renewing it when none is cached or
// the cached one is due. A caller whose ctx ends stops waiting and gets
// ctx's error; the shared request goes on for the others, bounded by 30s.
func (s *Source) Token(ctx context.Context) (string, error) {
	if tok, ok := s.cached(); ok {
		return tok, nil
	}

	ch := s.group.DoChan("token", func() (any, error) {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), flightTimeout)
		defer cancel()

		tok, err := s.renew(fctx)
		if err != nil {
			return s.stillValid(err)
		}
		return tok, nil
	})
	select {
	case <-ctx.Done():
		return "", ctx.Err()
	case res := <-ch:
		if res.Err != nil {
			return "", res.Err
		}
		return res.Val.(string), nil
	}
}

// Invalidate drops the cached access token if it is still token, the one
// the platform refused with 401. The refresh token is kept, so the next
// Token tries a refresh before a new sign-in.
func (s *Source) Invalidate(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()

	if token != "" && s.access == token {
		s.access = ""
	}
}

// Ready reports whether an unexpired access token is cached. It sends no
// request.
func (s *Source) Ready() bool {
	s.mu.Lock()
	defer s.mu.Unlock()

	return s.access != "" && s.now().Before(s.expiresAt)
}

// TenantID returns the configured tenant id or, failing that, the one in
// the id token of the last sign-in, signing in first if need be.
func (s *Source) TenantID(ctx context.Context) (string, error) {
	if s.opts.TenantID != "" {
		return s.opts.TenantID, nil
	}
	if id := s.cachedTenant(); id != "" {
		return id, nil
	}
	if _, err := s.Token(ctx); err != nil {
		return "", err
	}
	if id := s.cachedTenant(); id != "" {
		return id, nil
	}
	return "", fmt.Errorf("find tenant: the id token has no %s claim; set the tenant id",
		s.opts.TenantClaim)
}

// stillValid returns the cached access token when a renewal failed but
// the token has not expired and was not refused: the platform takes it
// for a while yet, and the next call tries the renewal again.
func (s *Source) stillValid(err error) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()

	if s.access == "" || !s.now().Before(s.expiresAt) {
		return "", err
	}
	s.log.Warn("token renewal failed; using the current token until it expires",
		"expiresIn", s.expiresAt.Sub(s.now()).Round(time.Second).String(), "error", err)
	return s.access, nil
}

func (s *Source) cachedTenant() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tenant
}

// cached returns the access token if it is not yet due for renewal.
func (s *Source) cached() (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()

	if s.access == "" || !s.now().Before(s.refreshAt) {
		return "", false
	}
	return s.access, true
}

// renew runs inside the single flight. A refresh token is tried first; if
// the endpoint rejects it, the refresh token is dropped and the access key
// signs in again. Any other failure of the refresh is returned as is, so
// an endpoint that is down is not asked twice per attempt.
func (s *Source) renew(ctx context.Context) (string, error) {
	if tok, ok := s.cached(); ok {
		return tok, nil
	}

	if rt := s.refreshToken(); rt != "" {
		tok, err := s.grant(ctx, url.Values{
			"grant_type":    {"refresh_token"},
			"refresh_token": {rt},
		})
		var se *token.StatusError
		if err == nil || !errors.As(err, &se) || (se.Code != 400 && se.Code != 401) {
			return tok, err
		}
		s.log.Info("refresh token rejected; signing in with the access key again",
			"status", se.Code)
		s.dropRefresh(rt)
	}

	form := url.Values{
		"grant_type": {"password"},
		"username":   {s.opts.AccessKeyID},
		"password":   {s.opts.AccessKeySecret},
	}
	if s.opts.Scope != "" {
		form.Set("scope", s.opts.Scope)
	}
	return s.grant(ctx, form)
}

func (s *Source) refreshToken() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refresh
}

func (s *Source) dropRefresh(rt string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.refresh == rt {
		s.refresh = ""
	}
}

// grant sends one token request and caches its result.
func (s *Source) grant(ctx context.Context, form url.Values) (string, error) {
	start := s.now()
	r, err := s.post(ctx, form)
	if err != nil {
		s.opts.Metrics.TokenFailed()
		return "", err
	}
	s.opts.Metrics.TokenRefreshed()

	tenant := ""
	if r.IDToken != "" {
		tenant, err = tenantFromIDToken(r.IDToken, s.opts.TenantClaim)
		if err != nil {
			s.log.Warn("id token unreadable; tenant id unknown", "error", err)
		}
	}
	first := s.store(r, tenant, start)
	if first {
		s.log.Info("signed in to CXone", "grant", form.Get("grant_type"), "tenantId", tenant)
	} else {
		s.log.Debug("access token renewed", "grant", form.Get("grant_type"))
	}
	return r.AccessToken, nil
}

// store caches a reply. Lifetimes count from when the request was sent. A
// lifetime no longer than RefreshBefore is renewed at half its age. It
// reports whether this is the first token of the process.
func (s *Source) store(r tokenReply, tenant string, start time.Time) bool {
	life := lifetime(r.ExpiresIn)
	refreshIn := life - s.opts.RefreshBefore
	if refreshIn <= 0 {
		refreshIn = life / 2
	}

	s.mu.Lock()
	defer s.mu.Unlock()

	first := s.expiresAt.IsZero()
	s.access = r.AccessToken
	s.refreshAt = start.Add(refreshIn)
	s.expiresAt = start.Add(life)
	if r.RefreshToken != "" {
		s.refresh = r.RefreshToken
	}
	if tenant != "" {
		s.tenant = tenant
	}
	return first
}

// post sends form to the token endpoint with the client's Basic auth and
// decodes a 200 reply. No error it returns carries a secret or a token.
func (s *Source) post(ctx context.Context, form url.Values) (tokenReply, error) {
	endpoint, err := s.opts.TokenEndpoint(ctx)
	if err != nil {
		return tokenReply{}, fmt.Errorf("find token endpoint: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint,
		strings.NewReader(form.Encode()))
	if err != nil {
		return tokenReply{}, fmt.Errorf("build token request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.SetBasicAuth(url.QueryEscape(s.opts.ClientID), url.QueryEscape(s.opts.ClientSecret))

	resp, err := s.opts.HTTPClient.Do(req)
	if err != nil {
		return tokenReply{}, fmt.Errorf("request token: %w", err)
	}
	defer resp.Body.Close()

	body, err := io.ReadAll(io.LimitReader(resp.Body, maxReply))
	if err != nil {
		return tokenReply{}, fmt.Errorf("read token reply: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return tokenReply{}, &token.StatusError{
			Code: resp.StatusCode,
			Body: excerpt(body, s.opts.ClientSecret, s.opts.AccessKeySecret, form.Get("refresh_token")),
		}
	}
	return parseTokenReply(body)
}

// tokenReply holds the fields of a token reply that dtmfd uses.
type tokenReply struct {
	AccessToken  string      `json:"access_token"`
	RefreshToken string      `json:"refresh_token"`
	IDToken      string      `json:"id_token"`
	ExpiresIn    json.Number `json:"expires_in"`
}

// parseTokenReply decodes a 200 reply; one without an access token is an
// error.
func parseTokenReply(body []byte) (tokenReply, error) {
	var r tokenReply
	if err := json.Unmarshal(body, &r); err != nil {
		return tokenReply{}, fmt.Errorf("decode token reply: %w", err)
	}
	if r.AccessToken == "" {
		return tokenReply{}, errors.New("decode token reply: no access_token")
	}
	return r, nil
}

// lifetime turns expires_in, in seconds, into a duration within
// (0, maxLifetime].
func lifetime(n json.Number) time.Duration {
	secs, err := n.Float64()
	if err != nil || math.IsNaN(secs) || secs <= 0 {
		return defaultLifetime
	}
	if secs >= maxLifetime.Seconds() {
		return maxLifetime
	}
	return max(time.Duration(secs*float64(time.Second)), time.Second)
}

// tenantFromIDToken reads claim from the payload of a JWT. The signature
// is not checked: the token came over TLS from the token endpoint, and the
// tenant id it names only chooses which API host dtmfd asks, where the
// access token is verified.
func tenantFromIDToken(jwt, claim string) (string, error) {
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return "", errors.New("read id token: not three dot-separated parts")
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return "", fmt.Errorf("read id token: %w", err)
	}

	var claims map[string]any
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	if err := dec.Decode(&claims); err != nil {
		return "", fmt.Errorf("read id token claims: %w", err)
	}
	switch v := claims[claim].(type) {
	case string:
		return v, nil
	case json.Number:
		return v.String(), nil
	case nil:
		return "", nil
	}
	return "", fmt.Errorf("read id token: claim %s is not a string", claim)
}

// excerpt returns the start of an error reply for an error message, with
// every secret, raw or form-encoded, replaced and control characters
// turned into spaces.
func excerpt(body []byte, secrets ...string) string {
	s := string(body)
	for _, secret := range secrets {
		if secret == "" {
			continue
		}
		for _, form := range []string{secret, url.QueryEscape(secret)} {
			s = strings.ReplaceAll(s, form, "[redacted]")
		}
	}

	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	s = strings.TrimSpace(s)
	if len(s) > maxExcerpt {
		s = strings.ToValidUTF8(s[:maxExcerpt], "") + "..."
	}
	return s
}
