package stream

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"

	"github.com/dtmfd/dtmfd/transport/metrics"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// waitLimit only guards against a hung test; no test waits for it to pass.
const waitLimit = 10 * time.Second

// platformConfig says how a platform treats handshake n, counting from 1.
type platformConfig struct {
	// refuse returns the status to refuse handshake n with, or 0 to accept.
	refuse func(n int) int

	// ignorePings makes connection n leave pings unanswered.
	ignorePings func(n int) bool

	// serve runs accepted connection n until it returns.
	serve func(ctx context.Context, n int, conn *websocket.Conn)
}

// platform is a loopback voice stream endpoint.
type platform struct {
	*httptest.Server
	handshakes atomic.Int32

	mu   sync.Mutex
	auth []string
}

func newPlatform(t *testing.T, cfg platformConfig) *platform {
	t.Helper()

	ctx, cancel := context.WithCancel(context.Background())
	var handlers sync.WaitGroup
	p := &platform{}
	p.Server = httptest.NewServer(http.HandlerFunc(
		func(w http.ResponseWriter, r *http.Request) {
			handlers.Add(1)
			defer handlers.Done()
			p.handle(t, ctx, cfg, w, r)
		}))

	t.Cleanup(func() {
		cancel()
		p.Close()
		handlers.Wait()
	})
	return p
}

func (p *platform) handle(t *testing.T, ctx context.Context, cfg platformConfig,
	w http.ResponseWriter, r *http.Request) {
	n := int(p.handshakes.Add(1))
	p.mu.Lock()
	p.auth = append(p.auth, r.Header.Get("Authorization"))
	p.mu.Unlock()

	if cfg.refuse != nil {
		if status := cfg.refuse(n); status != 0 {
			http.Error(w, "refused", status)
			return
		}
	}

	var opts websocket.AcceptOptions
	if cfg.ignorePings != nil && cfg.ignorePings(n) {
		opts.OnPingReceived = func(context.Context, []byte) bool { return false }
	}
	conn, err := websocket.Accept(w, r, &opts)
	if err != nil {
		t.Errorf("accept: %v", err)
		return
	}
	defer conn.CloseNow()

	if cfg.serve != nil {
		cfg.serve(ctx, n, conn)
		return
	}
	drain(ctx, conn)
}

func (p *platform) url() string {
	return "ws" + strings.TrimPrefix(p.URL, "http") + "/api/v2/voice/websocket"
}

func (p *platform) authHeaders() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.auth...)
}

// drain reads conn until it fails and returns why.
func drain(ctx context.Context, conn *websocket.Conn) error {
	for {
		if _, _, err := conn.Read(ctx); err != nil {
			return err
		}
	}
}

// send writes each frame as a text message.
func send(ctx context.Context, conn *websocket.Conn, frames ...string) {
	for _, f := range frames {
		if err := conn.Write(ctx, websocket.MessageText, []byte(f)); err != nil {
			return
		}
	}
}

func dtmf(callID, digit string) string {
	return fmt.Sprintf(`{"type":"dtmf","digit":%q,"callId":%q,"timestamp":1}`,
		digit, callID)
}

// rejection is one call of OnReject.
type rejection struct {
	kind error
	typ  string
}

// harness runs a Client against a platform and records what it reports.
type harness struct {
	events      chan Event
	rejects     chan rejection
	states      chan bool
	invalidated chan string
	metrics     *metrics.Metrics
	logs        *syncBuffer

	stop func() error
}

// start runs a Client on p. Options get fast test defaults, a token
// source handing out tok-1, tok-2, ..., and recording callbacks; tune may
// change the Client before it runs.
func start(t *testing.T, p *platform, opts Options, tune func(*Client)) *harness {
	t.Helper()

	h := &harness{
		events:      make(chan Event, 1024),
		rejects:     make(chan rejection, 1024),
		states:      make(chan bool, 1024),
		invalidated: make(chan string, 1024),
		metrics:     metrics.New(nil),
		logs:        &syncBuffer{},
	}

	tr := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(tr.CloseIdleConnections)

	var issued atomic.Int32
	opts.URL = p.url()
	if opts.Token == nil {
		opts.Token = func(context.Context) (string, error) {
			return fmt.Sprintf("tok-%d", issued.Add(1)), nil
		}
	}
	opts.Invalidate = func(tok string) { h.invalidated <- tok }
	opts.HTTPClient = &http.Client{Transport: tr}
	opts.OnEvent = func(ev Event) { h.events <- ev }
	opts.OnReject = func(kind error, typ string) { h.rejects <- rejection{kind, typ} }
	opts.OnState = func(up bool) { h.states <- up }
	opts.MinBackoff = cmpOr(opts.MinBackoff, time.Millisecond)
	opts.MaxBackoff = cmpOr(opts.MaxBackoff, 5*time.Millisecond)
	opts.Logger = slog.New(slog.NewTextHandler(h.logs,
		&slog.HandlerOptions{Level: slog.LevelDebug}))
	opts.Metrics = h.metrics

	c := New(opts)
	if tune != nil {
		tune(c)
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()

	var once sync.Once
	var runErr error
	h.stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(waitLimit):
				runErr = errors.New("Run did not return after cancel")
			}
		})
		return runErr
	}
	t.Cleanup(func() {
		if err := h.stop(); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return h
}

func cmpOr(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// recv returns the next value from ch, failing the test if none comes.
func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()

	select {
	case v := <-ch:
		return v
	case <-time.After(waitLimit):
		t.Fatalf("no %s", what)
		panic("unreachable")
	}
}

func (h *harness) disconnects(t *testing.T, code string) float64 {
	t.Helper()

	var m dto.Metric
	if err := h.metrics.StreamDisconnects.WithLabelValues(code).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// syncBuffer is a bytes.Buffer safe for the Client's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestEventsDeliveredInOrder(t *testing.T) {
	t.Parallel()

	const keys = "0123456789*#ABCD"
	const count = 200
	p := newPlatform(t, platformConfig{
		serve: func(ctx context.Context, _ int, conn *websocket.Conn) {
			for i := range count {
				send(ctx, conn, fmt.Sprintf(
					`{"type":"dtmf","digit":"%c","callId":"call-%d","timestamp":%d}`,
					keys[i%len(keys)], i%7, 1700000000000+i))
			}
			drain(ctx, conn)
		},
	})
	h := start(t, p, Options{}, nil)

	for i := range count {
		ev := recv(t, h.events, "event")
		want := Event{
			Type:      TypeDTMF,
			Digit:     string(keys[i%len(keys)]),
			CallID:    fmt.Sprintf("call-%d", i%7),
			Timestamp: 1700000000000 + int64(i),
			Received:  ev.Received,
		}
		if ev != want {
			t.Fatalf("event %d = %+v, want %+v", i, ev, want)
		}
		if ev.Received.IsZero() {
			t.Fatalf("event %d has no Received time", i)
		}
	}
	if !recv(t, h.states, "state") {
		t.Error("OnState did not report the connection up")
	}
}

func TestRejectedFramesDoNotStopTheStream(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name   string
		frame  string
		binary bool
		want   rejection
	}{
		{"malformed", `{"type":"dtmf",`, false, rejection{ErrMalformed, ""}},
		{"binary", dtmf("c1", "1"), true, rejection{ErrMalformed, ""}},
		{"no call id", `{"type":"dtmf","digit":"1"}`, false,
			rejection{ErrNoCallID, "dtmf"}},
		{"bad digit", `{"type":"dtmf","digit":"zz-caller-input","callId":"c1"}`, false,
			rejection{ErrBadDigit, "dtmf"}},
		{"unknown type", `{"type":"agent_joined","callId":"c1"}`, false,
			rejection{ErrUnknownType, "agent_joined"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			p := newPlatform(t, platformConfig{
				serve: func(ctx context.Context, _ int, conn *websocket.Conn) {
					typ := websocket.MessageText
					if tt.binary {
						typ = websocket.MessageBinary
					}
					conn.Write(ctx, typ, []byte(tt.frame))
					send(ctx, conn, dtmf("c2", "5"))
					drain(ctx, conn)
				},
			})
			h := start(t, p, Options{}, nil)

			if got := recv(t, h.rejects, "rejection"); got != tt.want {
				t.Errorf("OnReject(%v, %q), want (%v, %q)",
					got.kind, got.typ, tt.want.kind, tt.want.typ)
			}
			if ev := recv(t, h.events, "event"); ev.CallID != "c2" || ev.Digit != "5" {
				t.Errorf("event after the rejected frame = %+v, want c2/5", ev)
			}
			if p.handshakes.Load() != 1 {
				t.Errorf("rejected frame caused %d handshakes, want 1",
					p.handshakes.Load())
			}
			if strings.Contains(h.logs.String(), "zz-caller-input") {
				t.Error("log holds the digits of a rejected frame")
			}
		})
	}
}

func TestReconnectsAfterClose(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name  string
		end   func(conn *websocket.Conn)
		label string
	}{
		{"internal error", func(c *websocket.Conn) {
			c.Close(websocket.StatusInternalError, "boom")
		}, "1011"},
		{"going away", func(c *websocket.Conn) {
			c.Close(websocket.StatusGoingAway, "restart")
		}, "1001"},
		{"normal closure", func(c *websocket.Conn) {
			c.Close(websocket.StatusNormalClosure, "")
		}, "1000"},
		{"abrupt drop", func(c *websocket.Conn) {
			c.CloseNow()
		}, "none"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			p := newPlatform(t, platformConfig{
				serve: func(ctx context.Context, n int, conn *websocket.Conn) {
					send(ctx, conn, dtmf("c1", fmt.Sprint(n)))
					if n == 1 {
						tt.end(conn)
						return
					}
					drain(ctx, conn)
				},
			})
			h := start(t, p, Options{}, nil)

			for _, want := range []string{"1", "2"} {
				if ev := recv(t, h.events, "event"); ev.Digit != want {
					t.Fatalf("event digit %q, want %q", ev.Digit, want)
				}
			}
			for i, want := range []bool{true, false, true} {
				if got := recv(t, h.states, "state"); got != want {
					t.Errorf("state change %d = %v, want %v", i, got, want)
				}
			}
			if got := h.disconnects(t, tt.label); got != 1 {
				t.Errorf("disconnects{code=%s} = %v, want 1", tt.label, got)
			}
		})
	}
}

func TestFreshTokenPerHandshake(t *testing.T) {
	t.Parallel()

	p := newPlatform(t, platformConfig{
		serve: func(ctx context.Context, n int, conn *websocket.Conn) {
			if n < 4 {
				conn.Close(websocket.StatusNormalClosure, "")
				return
			}
			send(ctx, conn, dtmf("c1", "1"))
			drain(ctx, conn)
		},
	})
	h := start(t, p, Options{}, nil)
	recv(t, h.events, "event")

	want := []string{"Bearer tok-1", "Bearer tok-2", "Bearer tok-3", "Bearer tok-4"}
	if got := p.authHeaders(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Authorization headers = %q, want %q", got, want)
	}
	if logs := h.logs.String(); strings.Contains(logs, "tok-") {
		t.Errorf("log holds a token:\n%s", logs)
	}
}

func TestRefusedHandshake(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name        string
		status      int
		invalidates bool
	}{
		{"unauthorized invalidates the token", 401, true},
		{"forbidden", 403, false},
		{"unavailable", 503, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			p := newPlatform(t, platformConfig{
				refuse: func(n int) int {
					if n <= 2 {
						return tt.status
					}
					return 0
				},
				serve: func(ctx context.Context, _ int, conn *websocket.Conn) {
					send(ctx, conn, dtmf("c1", "1"))
					drain(ctx, conn)
				},
			})
			h := start(t, p, Options{}, nil)
			recv(t, h.events, "event after refused handshakes")

			var got []string
			for len(h.invalidated) > 0 {
				got = append(got, <-h.invalidated)
			}
			var want []string
			if tt.invalidates {
				want = []string{"tok-1", "tok-2"}
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("invalidated %q, want %q", got, want)
			}
			if n := p.handshakes.Load(); n != 3 {
				t.Errorf("%d handshakes, want 3", n)
			}
		})
	}
}

func TestMissingPongReconnects(t *testing.T) {
	t.Parallel()

	p := newPlatform(t, platformConfig{
		ignorePings: func(n int) bool { return n == 1 },
		serve: func(ctx context.Context, n int, conn *websocket.Conn) {
			if n > 1 {
				send(ctx, conn, dtmf("c1", "1"))
			}
			drain(ctx, conn)
		},
	})
	h := start(t, p, Options{
		PingInterval: 5 * time.Millisecond,
		PongTimeout:  20 * time.Millisecond,
	}, nil)

	recv(t, h.events, "event on the second connection")
	if got := h.disconnects(t, "none"); got != 1 {
		t.Errorf("disconnects{code=none} = %v, want 1", got)
	}
	if logs := h.logs.String(); !strings.Contains(logs, "no pong within") {
		t.Errorf("disconnect log does not name the missing pong:\n%s", logs)
	}
}

func TestReadLimit(t *testing.T) {
	t.Parallel()

	closed := make(chan websocket.StatusCode, 1)
	p := newPlatform(t, platformConfig{
		serve: func(ctx context.Context, n int, conn *websocket.Conn) {
			if n == 1 {
				big := `{"type":"dtmf","digit":"1","callId":"` +
					strings.Repeat("x", 2048) + `"}`
				send(ctx, conn, big)
				closed <- websocket.CloseStatus(drain(ctx, conn))
				return
			}
			send(ctx, conn, dtmf("c1", "2"))
			drain(ctx, conn)
		},
	})
	h := start(t, p, Options{ReadLimit: 1024}, nil)

	if ev := recv(t, h.events, "event"); ev.Digit != "2" {
		t.Errorf("first event digit %q, want 2 from the second connection", ev.Digit)
	}
	if code := recv(t, closed, "close status"); code != websocket.StatusMessageTooBig {
		t.Errorf("server saw close %v, want %v", code, websocket.StatusMessageTooBig)
	}
}

func TestShutdownClosesNormally(t *testing.T) {
	t.Parallel()

	closed := make(chan error, 1)
	p := newPlatform(t, platformConfig{
		serve: func(ctx context.Context, _ int, conn *websocket.Conn) {
			send(ctx, conn, dtmf("c1", "1"))
			closed <- drain(ctx, conn)
		},
	})
	h := start(t, p, Options{}, nil)
	recv(t, h.events, "event")

	if err := h.stop(); err != nil {
		t.Fatalf("Run after cancel = %v, want nil", err)
	}

	var ce websocket.CloseError
	if err := recv(t, closed, "server close"); !errors.As(err, &ce) {
		t.Fatalf("server read ended with %v, want a close frame", err)
	}
	want := websocket.CloseError{Code: websocket.StatusNormalClosure, Reason: "shutting down"}
	if ce != want {
		t.Errorf("server got close %+v, want %+v", ce, want)
	}
	if p.handshakes.Load() != 1 {
		t.Errorf("%d handshakes, want 1: shutdown must not reconnect",
			p.handshakes.Load())
	}
	if got := h.disconnects(t, "1000"); got != 0 {
		t.Errorf("own shutdown counted as %v lost connections", got)
	}
}

func TestShutdownDuringBackoff(t *testing.T) {
	t.Parallel()

	p := newPlatform(t, platformConfig{
		refuse: func(int) int { return http.StatusServiceUnavailable },
	})
	slept := make(chan time.Duration, 1)
	h := start(t, p, Options{MinBackoff: time.Hour, MaxBackoff: time.Hour},
		func(c *Client) {
			c.sleep = func(ctx context.Context, d time.Duration) bool {
				slept <- d
				return sleep(ctx, d)
			}
		})

	recv(t, slept, "backoff")
	if err := h.stop(); err != nil {
		t.Fatalf("Run after cancel = %v, want nil", err)
	}
}

func TestRunRejectsIncompleteOptions(t *testing.T) {
	t.Parallel()

	token := func(context.Context) (string, error) { return "t", nil }
	tests := []struct {
		name string
		opts Options
	}{
		{"no url", Options{Token: token}},
		{"no token", Options{URL: "ws://127.0.0.1:1/"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			if err := New(tt.opts).Run(t.Context()); err == nil {
				t.Error("Run succeeded with incomplete Options")
			}
		})
	}
}
