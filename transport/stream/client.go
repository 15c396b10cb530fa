// Package stream is the client of the platform's voice stream: a WebSocket
// on which the platform sends one JSON event per text frame, among them the
// keys callers press.
//
// A Client keeps one connection up for as long as it runs. It fetches a
// fresh token for every handshake, checks the link with pings, and after
// any close or error that is not its own shutdown it backs off and dials
// again, forever. It parses each frame and hands valid key presses to a
// callback on its reading goroutine; it does nothing else with them.
package stream

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"time"

	"github.com/dtmfd/dtmfd/transport/metrics"
)

const (
	defaultPingInterval = 15 * time.Second
	defaultPongTimeout  = 10 * time.Second
	defaultMinBackoff   = 250 * time.Millisecond
	defaultMaxBackoff   = 30 * time.Second
	defaultReadLimit    = 64 << 10

	// handshakeTimeout bounds getting a token and the WebSocket handshake
	// together.
	handshakeTimeout = 15 * time.Second
)

// Options configures a Client. URL and Token are required; every other
// field has a default.
type Options struct {
	// URL is the ws:// or wss:// URL of the voice stream.
	URL string

	// Token returns the bearer token for a handshake. It is called once
	// per handshake, so it should cache; token.Source.Token does.
	Token func(ctx context.Context) (string, error)

	// Invalidate is called with the token a handshake was refused with
	// 401, so the next handshake gets a new one. Nil does nothing.
	Invalidate func(token string)

	// HTTPClient sends the handshake. Nil means http.DefaultClient. Its
	// Timeout, if any, applies to the handshake only.
	HTTPClient *http.Client

	// OnEvent receives each valid dtmf event, in stream order, on the
	// reading goroutine. It must not block: while it runs, no frame is
	// read and no pong is noticed. Nil drops events.
	OnEvent func(Event)

	// OnReject receives each rejected frame: the frame error (one of
	// ErrMalformed, ErrNoCallID, ErrBadDigit, ErrUnknownType) and the
	// event type if the frame had one. Like OnEvent it must not block.
	OnReject func(kind error, typ string)

	// OnState is told when the connection comes up and goes down, for
	// readiness.
	OnState func(connected bool)

	// PingInterval is the time between pings. Zero means 15s.
	PingInterval time.Duration

	// PongTimeout is how long a ping may go unanswered before the link is
	// taken for dead, dropped and dialled again. Zero means 10s.
	PongTimeout time.Duration

	// MinBackoff and MaxBackoff bound the delay before a reconnect. Zero
	// means 250ms and 30s.
	MinBackoff, MaxBackoff time.Duration

	// ReadLimit is the largest frame accepted, in bytes. A larger one makes
	// the library close the connection with 1009, and the Client
	// reconnects. Zero means 64 KiB.
	ReadLimit int64

	// Logger receives connection lifecycle at Info and rejected frames at
	// Debug. Nil means slog.Default().
	Logger *slog.Logger

	// Metrics counts connections made and lost. Nil counts nothing.
	Metrics *metrics.Metrics
}

// Client reads the voice stream. Create it with New and start it with Run.
type Client struct {
	opts Options
	log  *slog.Logger

	// sleep waits d and reports true, or reports false as soon as ctx ends.
	sleep func(ctx context.Context, d time.Duration) bool

	// jitter returns a random number in [0, n).
	jitter func(n int64) int64
}

// New returns a Client for opts, with defaults filled in. It does not dial.
func New(opts Options) *Client {
	if opts.PingInterval <= 0 {
		opts.PingInterval = defaultPingInterval
	}
	if opts.PongTimeout <= 0 {
		opts.PongTimeout = defaultPongTimeout
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = defaultMinBackoff
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = defaultMaxBackoff
	}
	opts.MaxBackoff = max(opts.MaxBackoff, opts.MinBackoff)
	if opts.ReadLimit <= 0 {
		opts.ReadLimit = defaultReadLimit
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.OnEvent == nil {
		opts.OnEvent = func(Event) {}
	}
	if opts.OnReject == nil {
		opts.OnReject = func(error, string) {}
	}
	if opts.OnState == nil {
		opts.OnState = func(bool) {}
	}

	return &Client{
		opts:   opts,
		log:    opts.Logger,
		sleep:  sleep,
		jitter: rand.Int64N,
	}
}

// Run connects and reads the stream until ctx ends, reconnecting after
// every close, error or failed handshake; it returns an error only for
// Options it cannot run with.
//
// When ctx ends, Run closes the live connection with 1000 "shutting down",
// waits for the close handshake (at most about 10s, bounded by the
// library), and returns nil: a shutdown that was asked for is not a
// failure.
func (c *Client) Run(ctx context.Context) error {
	if err := c.check(); err != nil {
		return err
	}

	c.log.Info("stream starting", "url", safeURL(c.opts.URL))
	defer c.log.Info("stream stopped")

	failures := 0
	for {
		s := c.attempt(ctx)
		if ctx.Err() != nil {
			return nil
		}

		if c.healthy(s) {
			failures = 0
		}
		failures++
		delay := c.backoff(failures)
		c.logEnd(s, failures, delay)

		if !c.sleep(ctx, delay) {
			return nil
		}
	}
}

// check reports Options Run cannot work with.
func (c *Client) check() error {
	if c.opts.URL == "" {
		return errors.New("stream: no URL")
	}
	if c.opts.Token == nil {
		return errors.New("stream: no Token func")
	}
	return nil
}

// logEnd logs how an attempt ended and when the next one starts.
func (c *Client) logEnd(s session, attempt int, delay time.Duration) {
	if !s.connected {
		c.log.Warn("stream connect failed",
			"status", s.status, "attempt", attempt, "delay", delay,
			"error", s.err)
		return
	}

	c.opts.Metrics.StreamDisconnected(s.code)
	c.log.Info("stream disconnected",
		"code", s.code, "reason", s.reason, "up", s.lasted,
		"frames", s.frames, "attempt", attempt, "delay", delay,
		"error", s.err)
}

// safeURL returns u without user info or query, for the log.
func safeURL(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "(unparsable)"
	}
	p.User = nil
	p.RawQuery = ""
	return p.String()
}
