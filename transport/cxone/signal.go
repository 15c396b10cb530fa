package cxone

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/dtmfd/dtmfd/actors"
	"github.com/dtmfd/dtmfd/ivrspec"
	"github.com/dtmfd/dtmfd/transport/metrics"
	"github.com/dtmfd/dtmfd/transport/variables"
)

const (
	// DefaultAPIVersion is the REST API version of the Signal path.
	DefaultAPIVersion = 30

	// MaxSignalParams is how many values one signal carries, p1 to p9.
	MaxSignalParams = 9

	// maxErrorBody is the most of a refused signal's reply kept for logs.
	maxErrorBody = 256

	// maxDrain is how much of a reply is read so its connection is reused.
	maxDrain = 64 << 10
)

// SignalOptions configures a Signal. API, Token and Params are required.
type SignalOptions struct {
	// API returns the tenant's API endpoint, usually
	// Discovery.APIEndpointFor. It is called on every attempt.
	API func(ctx context.Context) (string, error)

	// Token returns the bearer token for one attempt.
	Token func(ctx context.Context) (string, error)

	// Invalidate drops a token the platform refused with 401.
	Invalidate func(token string)

	// Forget drops an API endpoint that could not be reached or answered
	// 404, so the next attempt discovers it again; usually
	// Discovery.ForgetAPIEndpoint. Nil keeps every endpoint.
	Forget func(endpoint string)

	// Version is the REST API version in the path. Zero means 30.
	Version int

	// Params names the decision variables sent as p1, p2, ... in order.
	// A variable not named here is not sent; a named one the decision
	// lacks is sent empty, so each position always means the same thing
	// to the script. At most nine.
	Params []string

	// Policy bounds the backoff between attempts.
	Policy variables.Policy

	// HTTPClient sends the requests. Nil means a client of its own with a
	// 10s timeout.
	HTTPClient *http.Client

	// Logger receives per-write detail at Debug; nil discards it.
	Logger *slog.Logger

	// Metrics counts attempts by status. Nil counts nothing.
	Metrics *metrics.Metrics
}

// Signal delivers decisions to a running Studio script through the Signal
// API. It implements actors.Sink; it holds no per-write state and is safe
// for concurrent use.
type Signal struct {
	opts   SignalOptions
	log    *slog.Logger
	params map[string]int // variable name to 0-based position
	now    func() time.Time
}

var _ actors.Sink = (*Signal)(nil)

// NewSignal returns a Signal for opts, or an error naming what is wrong
// with them.
func NewSignal(opts SignalOptions) (*Signal, error) {
	if opts.API == nil || opts.Token == nil {
		return nil, errors.New("new signal sink: API and Token are required")
	}
	params, err := paramPositions(opts.Params)
	if err != nil {
		return nil, fmt.Errorf("new signal sink: %w", err)
	}
	if opts.Version == 0 {
		opts.Version = DefaultAPIVersion
	}
	if opts.Version < 1 {
		return nil, fmt.Errorf("new signal sink: API version %d is not positive", opts.Version)
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = defaultClient()
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Signal{opts: opts, log: log, params: params, now: time.Now}, nil
}

// ParseParams splits a comma-separated list of variable names, as a
// setting gives it, and checks it as NewSignal would.
func ParseParams(list string) ([]string, error) {
	var names []string
	for name := range strings.SplitSeq(list, ",") {
		names = append(names, strings.TrimSpace(name))
	}
	if _, err := paramPositions(names); err != nil {
		return nil, err
	}
	return names, nil
}

func paramPositions(names []string) (map[string]int, error) {
	if len(names) == 0 {
		return nil, errors.New("no signal parameters named")
	}
	if len(names) > MaxSignalParams {
		return nil, fmt.Errorf("%d signal parameters named; the Signal API takes at most %d",
			len(names), MaxSignalParams)
	}
	pos := make(map[string]int, len(names))
	for i, name := range names {
		if name == "" {
			return nil, fmt.Errorf("signal parameter p%d has no variable name", i+1)
		}
		if j, dup := pos[name]; dup {
			return nil, fmt.Errorf("variable %s named for both p%d and p%d", name, j+1, i+1)
		}
		pos[name] = i
	}
	return pos, nil
}

// Write makes one attempt to signal contactID with vars. It returns nil
// on any 2xx reply and otherwise an error Retry classifies. It does not
// retry.
func (s *Signal) Write(ctx context.Context, contactID string, vars []ivrspec.Variable) error {
	if err := checkContactID(contactID); err != nil {
		// Not a *variables.Error: Retry leaves it alone, as no attempt
		// can fix it.
		return fmt.Errorf("signal contact: %w", err)
	}
	query := s.query(contactID, vars)

	tok, err := s.opts.Token(ctx)
	if err == nil && tok == "" {
		err = errors.New("token source returned an empty token")
	}
	if err != nil {
		return &variables.Error{Err: fmt.Errorf("get token: %w", err)}
	}
	base, err := s.opts.API(ctx)
	if err != nil {
		return &variables.Error{Err: fmt.Errorf("discover API endpoint: %w", err)}
	}

	u := base + "/inContactAPI/services/v" + strconv.Itoa(s.opts.Version) +
		".0/interactions/" + url.PathEscape(contactID) + "/signal?" + query
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, http.NoBody)
	if err != nil {
		return fmt.Errorf("build signal request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Accept", "application/json")

	resp, err := s.opts.HTTPClient.Do(req)
	if err != nil {
		s.opts.Metrics.WriteAttempt(0)
		s.forget(base, contactID)
		return &variables.Error{Token: tok, Err: err}
	}
	defer drainClose(resp.Body)

	s.opts.Metrics.WriteAttempt(resp.StatusCode)
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		s.log.Debug("signal delivered", "callId", contactID, "status", resp.StatusCode)
		return nil
	}
	if resp.StatusCode == http.StatusNotFound {
		s.forget(base, contactID)
	}
	return s.statusError(resp, tok)
}

// forget drops the API endpoint base after a failure that says the
// tenant's API may have moved, so that the next attempt, of this signal
// or another, discovers it again.
func (s *Signal) forget(base, contactID string) {
	if s.opts.Forget == nil {
		return
	}
	s.log.Debug("API endpoint dropped; the next signal discovers it again",
		"callId", contactID, "endpoint", base)
	s.opts.Forget(base)
}

// Retry implements actors.Sink with variables.Decide, so signals are
// retried exactly as variable writes are, with one exception: a first 404
// is tried once more when Forget is set, as the tenant's API may have
// moved and the next attempt goes to the endpoint discovered again. A
// second 404 fails as any other. A 401 drops the refused token before the
// next attempt.
func (s *Signal) Retry(err error, attempt int) actors.Verdict {
	var nf *variables.Error
	if s.opts.Forget != nil && attempt == 1 && errors.As(err, &nf) &&
		nf.Status == http.StatusNotFound {
		return actors.Verdict{Retry: true, Reason: "404: API endpoint discovered again"}
	}
	v := variables.Decide(err, attempt, s.opts.Policy, nil)
	var e *variables.Error
	if v.RefreshToken && errors.As(err, &e) && s.opts.Invalidate != nil {
		s.opts.Invalidate(e.Token)
	}
	return actors.Verdict{Retry: v.Retry, After: v.After, Reason: v.Reason}
}

// query places vars by the configured names. Values are percent-encoded
// with %20 for a space, as browsers' encodeURIComponent does, so a server
// that does not read '+' as a space still gets the value intact.
func (s *Signal) query(contactID string, vars []ivrspec.Variable) string {
	values := make([]string, len(s.params))
	for _, v := range vars {
		i, ok := s.params[v.Name]
		if !ok {
			s.log.Debug("variable not mapped to a signal parameter; not sent",
				"callId", contactID, "variable", v.Name)
			continue
		}
		values[i] = v.Value
	}

	var b strings.Builder
	for i, v := range values {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString("p" + strconv.Itoa(i+1) + "=")
		b.WriteString(strings.ReplaceAll(url.QueryEscape(v), "+", "%20"))
	}
	return b.String()
}

// statusError describes a non-2xx reply in the terms Decide needs.
func (s *Signal) statusError(resp *http.Response, tok string) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, int64(maxErrorBody+len(tok))))
	body := strings.ReplaceAll(string(b), tok, "[token]")
	if len(body) > maxErrorBody {
		body = body[:maxErrorBody]
	}

	e := &variables.Error{
		Status: resp.StatusCode,
		Token:  tok,
		Body:   strings.TrimSpace(strings.ToValidUTF8(body, "")),
	}
	e.RetryAfter, _ = variables.ParseRetryAfter(resp.Header.Get("Retry-After"), s.now())
	return e
}

// checkContactID accepts what CXone uses as a contact id: a decimal
// number. Anything else cannot name a contact and would only be refused.
func checkContactID(id string) error {
	if id == "" {
		return errors.New("empty contact id")
	}
	if len(id) > 20 {
		return fmt.Errorf("contact id of %d characters is too long", len(id))
	}
	for i := range len(id) {
		if id[i] < '0' || id[i] > '9' {
			return fmt.Errorf("contact id %q is not a decimal number", id)
		}
	}
	return nil
}

// drainClose reads what is left of a reply, up to maxDrain, and closes it
// so the connection goes back to the pool.
func drainClose(body io.ReadCloser) {
	_, _ = io.Copy(io.Discard, io.LimitReader(body, maxDrain))
	body.Close()
}
