// Package variables writes IVR decisions back to a call as interaction
// variables on the platform, one HTTP attempt at a time, and classifies each
// failed attempt so that a caller can tell whether and when to try again.
//
// The package neither sleeps nor loops. The retry schedule belongs to the
// caller, which passes each failure to Decide and arms its own timer with the
// verdict; the waiting then lives in one place that can be cancelled and
// observed.
package variables

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/dtmfd/dtmfd/transport/metrics"
)

const (
	// defaultTimeout bounds one attempt when Options.HTTPClient is nil. It
	// is far below any sensible delivery deadline, so a hung connection
	// costs one attempt rather than the whole write.
	defaultTimeout = 10 * time.Second

	// maxExcerpt is the most of a reply body kept in Error.Body.
	maxExcerpt = 256

	// maxDrain is how much of a reply body is read and discarded so that
	// its connection can be reused. A longer body is closed unread and
	// costs a new connection, which is cheaper than reading it.
	maxDrain = 64 << 10
)

// Variable is one name and value set on an interaction.
type Variable struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Options configures a Client. BaseURL and Token are required.
type Options struct {
	// BaseURL is the API base, such as https://tenant.cxone.com. A path
	// prefix is kept; trailing slashes are ignored.
	BaseURL string

	// Token returns the bearer token for one attempt. It is called on
	// every attempt, so a token refreshed after a 401 is picked up.
	Token func(ctx context.Context) (string, error)

	// HTTPClient sends the requests. Nil means a client with a 10 s
	// timeout on http.DefaultTransport.
	HTTPClient *http.Client

	// Metrics counts requests by status. Nil counts nothing.
	Metrics *metrics.Metrics
}

// Client makes single write attempts. It holds no per-write state and is
// safe for concurrent use.
type Client struct {
	base    string
	token   func(context.Context) (string, error)
	hc      *http.Client
	metrics *metrics.Metrics
	now     func() time.Time

	// invalid is a configuration error. New has no error result, so every
	// Write reports it instead, as a failure Decide does not retry.
	invalid error
}

// New returns a Client for opts. A missing token source or a BaseURL that
// is not an absolute http or https URL does not fail here: each Write then
// returns an *Error that Decide treats as permanent, so the mistake shows
// up in the dead-letter file and the logs instead of in endless retries.
func New(opts Options) *Client {
	c := &Client{
		base:    strings.TrimRight(opts.BaseURL, "/"),
		token:   opts.Token,
		hc:      opts.HTTPClient,
		metrics: opts.Metrics,
		now:     time.Now,
		invalid: checkOptions(opts),
	}
	if c.hc == nil {
		c.hc = &http.Client{Timeout: defaultTimeout}
	}
	return c
}

// checkOptions reports the first required option that is missing or
// malformed. It never echoes BaseURL, which may carry a password.
func checkOptions(opts Options) error {
	if opts.Token == nil {
		return errors.New("no token source configured")
	}

	u, err := url.Parse(opts.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("base URL is not an absolute http or https URL")
	}
	return nil
}

// Write makes one attempt to set vars on the interaction: a POST of the
// JSON array to {BaseURL}/api/v2/interactions/{id}/variables with bearer
// auth. It returns nil on any 2xx reply and otherwise an *Error whose
// fields Decide classifies. The reply body is always drained and closed.
//
// Write does not retry. A token that cannot be obtained yields an *Error
// with Status 0, which Decide retries like a network failure.
func (c *Client) Write(ctx context.Context, interactionID string, vars []Variable) error {
	req, err := c.newRequest(ctx, interactionID, vars)
	if err != nil {
		return &Error{op: "build request", Err: err, invalid: true}
	}

	token, err := c.token(ctx)
	if err == nil && token == "" {
		err = errors.New("token source returned an empty token")
	}
	if err != nil {
		return &Error{op: "get token", Err: err}
	}
	req.Header.Set("Authorization", "Bearer "+token)

	resp, err := c.hc.Do(req)
	if err != nil {
		c.metrics.WriteAttempt(0)
		return &Error{op: "post", Token: token, Err: err}
	}
	defer drainClose(resp.Body)

	c.metrics.WriteAttempt(resp.StatusCode)
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	return c.statusError(resp, token)
}

// newRequest builds the request for one attempt, without credentials.
func (c *Client) newRequest(
	ctx context.Context, id string, vars []Variable,
) (*http.Request, error) {
	if c.invalid != nil {
		return nil, c.invalid
	}
	if id == "" || id == "." || id == ".." {
		// PathEscape leaves dots alone, and a dot segment would address
		// a different resource once a server cleans the path.
		return nil, fmt.Errorf("invalid interaction id %q", id)
	}

	if vars == nil {
		vars = []Variable{}
	}
	body, err := encodeVariables(vars)
	if err != nil {
		return nil, fmt.Errorf("encode variables: %w", err)
	}

	u := c.base + "/api/v2/interactions/" + url.PathEscape(id) + "/variables"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	return req, nil
}

// statusError describes a non-2xx reply. It reads the start of the body;
// the caller drains and closes the rest.
func (c *Client) statusError(resp *http.Response, token string) *Error {
	e := &Error{
		Status: resp.StatusCode,
		Token:  token,
		Body:   excerpt(resp.Body, token),
	}
	e.RetryAfter, _ = ParseRetryAfter(resp.Header.Get("Retry-After"), c.now())
	return e
}

// excerpt returns the first maxExcerpt bytes of r as trimmed UTF-8, with
// any copy of token masked. It reads len(token) bytes beyond the limit so
// that a token straddling the cut is masked whole, not half printed.
func excerpt(r io.Reader, token string) string {
	b, _ := io.ReadAll(io.LimitReader(r, int64(maxExcerpt+len(token))))

	s := string(b)
	if token != "" {
		s = strings.ReplaceAll(s, token, "[token]")
	}
	if len(s) > maxExcerpt {
		s = s[:maxExcerpt]
	}
	return strings.TrimSpace(strings.ToValidUTF8(s, ""))
}

// drainClose reads what is left of a reply body, up to maxDrain, and
// closes it, so the connection goes back to the pool.
func drainClose(body io.ReadCloser) {
	io.Copy(io.Discard, io.LimitReader(body, maxDrain))
	body.Close()
}
