package stream

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/coder/websocket"
)

const ms = time.Millisecond

// recordSleeps makes c record each backoff delay instead of waiting it.
// Once limit delays are recorded, the next backoff closes full and waits
// for shutdown. Jitter is at its largest, so each delay is the full
// exponential step.
func recordSleeps(limit int) (func(*Client), func() []time.Duration, <-chan struct{}) {
	var (
		mu     sync.Mutex
		delays []time.Duration
		once   sync.Once
	)
	full := make(chan struct{})
	tune := func(c *Client) {
		c.jitter = func(n int64) int64 { return n - 1 }
		c.sleep = func(ctx context.Context, d time.Duration) bool {
			mu.Lock()
			done := len(delays) == limit
			if !done {
				delays = append(delays, d)
			}
			mu.Unlock()

			if done {
				once.Do(func() { close(full) })
				<-ctx.Done()
				return false
			}
			return true
		}
	}
	got := func() []time.Duration {
		mu.Lock()
		defer mu.Unlock()
		return append([]time.Duration(nil), delays...)
	}
	return tune, got, full
}

func TestBackoffGrowsWhileRefused(t *testing.T) {
	t.Parallel()

	p := newPlatform(t, platformConfig{
		refuse: func(int) int { return http.StatusServiceUnavailable },
	})
	tune, delays, full := recordSleeps(8)
	h := start(t, p, Options{MinBackoff: 1 * ms, MaxBackoff: 16 * ms}, tune)

	recv(t, full, "eight delays")
	if err := h.stop(); err != nil {
		t.Fatal(err)
	}

	want := []time.Duration{1 * ms, 2 * ms, 4 * ms, 8 * ms, 16 * ms, 16 * ms, 16 * ms, 16 * ms}
	if got := delays(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("delays = %v, want %v", got, want)
	}
	if n := p.handshakes.Load(); n != 9 {
		t.Errorf("%d handshakes for 8 delays, want 9: one per delay and the first", n)
	}
}

func TestBackoffReset(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name   string
		frames bool
		want   []time.Duration
	}{
		{"after a connection that delivered frames", true,
			[]time.Duration{1 * ms, 2 * ms, 4 * ms, 1 * ms, 2 * ms, 4 * ms}},
		{"not after a connection dropped at once", false,
			[]time.Duration{1 * ms, 2 * ms, 4 * ms, 8 * ms, 16 * ms, 16 * ms}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			p := newPlatform(t, platformConfig{
				refuse: func(n int) int {
					if n == 4 {
						return 0
					}
					return http.StatusServiceUnavailable
				},
				serve: func(ctx context.Context, _ int, conn *websocket.Conn) {
					if tt.frames {
						send(ctx, conn, dtmf("c1", "1"))
					}
					conn.Close(websocket.StatusInternalError, "")
				},
			})
			tune, delays, full := recordSleeps(6)
			h := start(t, p, Options{MinBackoff: 1 * ms, MaxBackoff: 16 * ms}, tune)

			recv(t, full, "six delays")
			if err := h.stop(); err != nil {
				t.Fatal(err)
			}
			if got := delays(); fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("delays = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestTokenFailureBacksOff(t *testing.T) {
	t.Parallel()

	p := newPlatform(t, platformConfig{
		serve: func(ctx context.Context, _ int, conn *websocket.Conn) {
			send(ctx, conn, dtmf("c1", "1"))
			drain(ctx, conn)
		},
	})
	var calls int
	token := func(context.Context) (string, error) {
		calls++
		if calls <= 2 {
			return "", errors.New("token endpoint answered 503")
		}
		return "tok", nil
	}
	tune, delays, _ := recordSleeps(10)
	h := start(t, p, Options{Token: token}, tune)

	recv(t, h.events, "event")
	if got := len(delays()); got != 2 {
		t.Errorf("%d backoff delays, want 2: one per failed token fetch", got)
	}
	if n := p.handshakes.Load(); n != 1 {
		t.Errorf("%d handshakes, want 1: no dial without a token", n)
	}
}

func TestBackoffBounds(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name     string
		failures int
		jitter   func(n int64) int64
		want     time.Duration
	}{
		{"first, least jitter", 1, func(int64) int64 { return 0 }, 125 * ms},
		{"first, most jitter", 1, func(n int64) int64 { return n - 1 }, 250 * ms},
		{"third, least jitter", 3, func(int64) int64 { return 0 }, 500 * ms},
		{"third, most jitter", 3, func(n int64) int64 { return n - 1 }, time.Second},
		{"capped, least jitter", 40, func(int64) int64 { return 0 }, 15 * time.Second},
		{"capped, most jitter", 1000, func(n int64) int64 { return n - 1 }, 30 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			c := New(Options{})
			c.jitter = tt.jitter
			if got := c.backoff(tt.failures); got != tt.want {
				t.Errorf("backoff(%d) = %v, want %v", tt.failures, got, tt.want)
			}
		})
	}
}

func TestSleep(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name     string
		cancelAt time.Duration // 0: never
		want     bool
		wantTime time.Duration
	}{
		{"waits the delay", 0, true, 30 * time.Second},
		{"returns on cancel", time.Second, false, time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			synctest.Test(t, func(t *testing.T) {
				ctx, cancel := context.WithCancel(t.Context())
				defer cancel()
				if tt.cancelAt > 0 {
					time.AfterFunc(tt.cancelAt, cancel)
				}

				start := time.Now()
				got := sleep(ctx, 30*time.Second)
				if got != tt.want || time.Since(start) != tt.wantTime {
					t.Errorf("sleep = %v after %v, want %v after %v",
						got, time.Since(start), tt.want, tt.wantTime)
				}
			})
		})
	}
}
