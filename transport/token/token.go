// Package token obtains OAuth 2.0 access tokens with the client credentials
// grant (RFC 6749, section 4.4) and caches each one until shortly before it
// expires.
//
// A Source is shared by everything that talks to the platform: the voice
// stream fetches a token for every handshake and each writer for every
// request. However many of them ask at once, at most one request to the
// token endpoint is in flight.
package token

import (
	"context"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/dtmfd/dtmfd/transport/metrics"
)

const (
	defaultRefreshBefore = 30 * time.Second
	defaultHTTPTimeout   = 10 * time.Second

	// fetchTimeout bounds one shared request even when the HTTP client has
	// no timeout of its own, so a request that every caller gave up on
	// still ends.
	fetchTimeout = 30 * time.Second

	defaultFailureBackoff = 250 * time.Millisecond
	maxFailureBackoff     = 30 * time.Second
)

// Options configures a Source. Only URL, ClientID and ClientSecret are
// required.
type Options struct {
	// URL is the full token endpoint, such as https://host/oauth/token.
	URL string

	// ClientID and ClientSecret are the client's credentials.
	ClientID, ClientSecret string

	// Form sends the request form-encoded as RFC 6749 specifies. The default
	// is a JSON object with the same three fields.
	Form bool

	// RefreshBefore is how long before expiry a token is replaced.
	// Zero means 30s.
	RefreshBefore time.Duration

	// HTTPClient sends the requests. Nil means a client with a 10s timeout.
	HTTPClient *http.Client

	// Metrics counts tokens obtained and failed requests. Nil counts nothing.
	Metrics *metrics.Metrics

	// FailureBackoff is the pause after a failed request before the next
	// one; it doubles with each failure in a row, up to 30s, with jitter.
	// Callers during the pause get the last error at once. Zero means
	// 250ms.
	FailureBackoff time.Duration
}

// Source hands out a cached access token and fetches a new one when the
// cached one is about to expire or was rejected. Its methods are safe for
// concurrent use.
type Source struct {
	opts  Options
	group singleflight.Group

	mu        sync.Mutex
	token     string
	refreshAt time.Time
	expiresAt time.Time

	// failures counts failed requests in a row; until retryAt, callers
	// get lastErr instead of a new request, so that many writers waiting
	// on a token endpoint that is down do not hammer it.
	failures int
	retryAt  time.Time
	lastErr  error
}

// New returns a Source for opts. It sends no request until Token is called.
func New(opts Options) *Source {
	if opts.RefreshBefore <= 0 {
		opts.RefreshBefore = defaultRefreshBefore
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Timeout: defaultHTTPTimeout}
	}
	if opts.FailureBackoff <= 0 {
		opts.FailureBackoff = defaultFailureBackoff
	}
	return &Source{opts: opts}
}

// Token returns a valid access token, fetching one if none is cached or the
// cached one is due for refresh.
//
// Concurrent callers share a single request. A caller whose ctx ends stops
// waiting and gets ctx's error, but the request goes on for the others; it
// is bounded by the HTTP client's timeout and by 30s.
//
// After a failed request the source backs off: callers get the last error
// at once until the pause ends. A refresh that fails while the cached
// token is still unexpired returns that token instead of the error.
func (s *Source) Token(ctx context.Context) (string, error) {
	now := time.Now()
	if tok, ok := s.cached(now); ok {
		return tok, nil
	}
	if err := s.pausing(now); err != nil {
		return s.fallback(err)
	}

	ch := s.group.DoChan("token", func() (any, error) {
		return s.refresh(context.WithoutCancel(ctx))
	})
	select {
	case <-ctx.Done():
		return "", ctx.Err()
	case res := <-ch:
		if res.Err != nil {
			return s.fallback(res.Err)
		}
		return res.Val.(string), nil
	}
}

// pausing returns the last error while the backoff after it lasts.
func (s *Source) pausing(now time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()

	if s.lastErr != nil && now.Before(s.retryAt) {
		return s.lastErr
	}
	return nil
}

// fallback returns the cached token if it is still unexpired, else err.
func (s *Source) fallback(err error) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()

	if s.token != "" && time.Now().Before(s.expiresAt) {
		return s.token, nil
	}
	return "", err
}

// failed records a failed request and the pause before the next one:
// FailureBackoff doubled for each failure in a row, up to 30s, with equal
// jitter so that several dtmfd replicas do not retry in step.
func (s *Source) failed(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()

	s.failures++
	d := s.opts.FailureBackoff << min(s.failures-1, 16)
	d = min(d, maxFailureBackoff)
	d = d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
	s.retryAt = time.Now().Add(d)
	s.lastErr = err
}

// Invalidate drops the cached token if it is still token. Callers pass the
// token the platform rejected with 401; comparing it first means that many
// callers rejected with the same token cause one new request, and a caller
// holding an older token cannot drop a newer one.
func (s *Source) Invalidate(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()

	if token != "" && s.token == token {
		s.token = ""
	}
}

// Ready reports whether a token has been obtained and is cached, unexpired
// and not invalidated. It sends no request, so a readiness probe can call it
// as often as it likes.
func (s *Source) Ready() bool {
	s.mu.Lock()
	defer s.mu.Unlock()

	return s.token != "" && time.Now().Before(s.expiresAt)
}

// cached returns the cached token if it is not yet due for refresh at now.
func (s *Source) cached(now time.Time) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()

	if s.token == "" || !now.Before(s.refreshAt) {
		return "", false
	}
	return s.token, true
}

// refresh runs inside the single flight. It checks the cache again first:
// a caller that missed the cache just before another's request finished
// must not send a second one.
func (s *Source) refresh(ctx context.Context) (string, error) {
	if tok, ok := s.cached(time.Now()); ok {
		return tok, nil
	}

	ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()

	start := time.Now()
	tok, lifetime, err := s.fetch(ctx)
	if err != nil {
		s.opts.Metrics.TokenFailed()
		s.failed(err)
		return "", err
	}
	s.opts.Metrics.TokenRefreshed()

	s.store(tok, start, lifetime)
	return tok, nil
}

// store caches tok. Its lifetime counts from when the request was sent, not
// when the reply came, so a slow reply cannot make it outlive its expiry.
// A lifetime no longer than RefreshBefore is refreshed at half its age
// instead, so a short-lived token is not fetched again on every call.
func (s *Source) store(tok string, start time.Time, lifetime time.Duration) {
	refreshIn := lifetime - s.opts.RefreshBefore
	if refreshIn <= 0 {
		refreshIn = lifetime / 2
	}

	s.mu.Lock()
	defer s.mu.Unlock()

	s.token = tok
	s.refreshAt = start.Add(refreshIn)
	s.expiresAt = start.Add(lifetime)
	s.failures, s.lastErr = 0, nil
}
