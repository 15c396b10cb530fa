package variables

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"
)

// half always picks the middle of the jitter range, so delays are exact.
func half() float64 { return 0.5 }

// timeoutErr is a net.Error that timed out, as a dial or read deadline
// produces.
type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func postErr(err error) *Error {
	return &Error{op: "post", Token: "t", Err: &url.Error{Op: "Post", URL: "http://x", Err: err}}
}

func TestDecide(t *testing.T) {
	t.Parallel()

	// With the default policy and jitter 0.5, backoff after attempt n is
	// 0.75 of its ceiling 400ms·2^(n-1).
	first := 300 * time.Millisecond
	third := 1200 * time.Millisecond

	tests := []struct {
		name    string
		err     error
		attempt int
		want    Verdict
	}{
		{"429 with seconds", &Error{Status: 429, RetryAfter: 7 * time.Second}, 1,
			Verdict{Retry: true, After: 7 * time.Second}},
		{"429 with date, parsed to duration", &Error{Status: 429, RetryAfter: 90 * time.Second}, 3,
			Verdict{Retry: true, After: 90 * time.Second}},
		{"429 without Retry-After", &Error{Status: 429}, 3,
			Verdict{Retry: true, After: third}},
		{"500", &Error{Status: 500}, 1, Verdict{Retry: true, After: first}},
		{"501", &Error{Status: 501}, 1, Verdict{Retry: true, After: first}},
		{"502", &Error{Status: 502}, 3, Verdict{Retry: true, After: third}},
		{"503 without Retry-After", &Error{Status: 503}, 1, Verdict{Retry: true, After: first}},
		{"503 with Retry-After", &Error{Status: 503, RetryAfter: 2 * time.Second}, 1,
			Verdict{Retry: true, After: 2 * time.Second}},
		{"503 with Retry-After beyond MaxBackoff", &Error{Status: 503, RetryAfter: time.Minute}, 1,
			Verdict{Retry: true, After: time.Minute}},
		{"504", &Error{Status: 504}, 1, Verdict{Retry: true, After: first}},
		{"408 request timeout is transient, retried unlike other 4xx", &Error{Status: 408}, 1,
			Verdict{Retry: true, After: first}},
		{"401 first attempt", &Error{Status: 401, Token: "old"}, 1,
			Verdict{Retry: true, RefreshToken: true}},
		{"401 repeated", &Error{Status: 401, Token: "new"}, 2,
			Verdict{Retry: true, RefreshToken: true, After: first}},
		{"401 ignores Retry-After", &Error{Status: 401, RetryAfter: time.Minute}, 1,
			Verdict{Retry: true, RefreshToken: true}},
		{"400", &Error{Status: 400}, 1, Verdict{}},
		{"403", &Error{Status: 403}, 1, Verdict{}},
		{"404", &Error{Status: 404}, 1, Verdict{}},
		{"409 with Retry-After", &Error{Status: 409, RetryAfter: time.Second}, 1, Verdict{}},
		{"connection refused", postErr(syscall.ECONNREFUSED), 1, Verdict{Retry: true, After: first}},
		{"connection reset", postErr(syscall.ECONNRESET), 3, Verdict{Retry: true, After: third}},
		{"EOF", postErr(io.EOF), 1, Verdict{Retry: true, After: first}},
		{"network timeout", postErr(&net.OpError{Op: "read", Err: timeoutErr{}}), 1,
			Verdict{Retry: true, After: first}},
		{"deadline exceeded", postErr(context.DeadlineExceeded), 1,
			Verdict{Retry: true, After: first}},
		{"canceled", postErr(context.Canceled), 1, Verdict{Retry: true, After: first}},
		{"token unavailable", &Error{op: "get token", Err: errors.New("token endpoint: 503")}, 1,
			Verdict{Retry: true, After: first}},
		{"wrapped *Error", fmt.Errorf("flush: %w", &Error{Status: 503}), 1,
			Verdict{Retry: true, After: first}},
		{"invalid request", &Error{op: "build request", Err: errors.New("bad id"), invalid: true}, 1,
			Verdict{}},
		{"not from Write", context.Canceled, 1, Verdict{}},
		{"nil", nil, 1, Verdict{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			got := Decide(tt.err, tt.attempt, Policy{}, half)
			if got.Reason == "" || strings.ContainsAny(got.Reason, "\r\n") {
				t.Errorf("Reason = %q, want one non-empty line", got.Reason)
			}
			got.Reason = ""
			if got != tt.want {
				t.Errorf("Decide() = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestDecideReasonNamesTheFailure(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name string
		err  error
		want string
	}{
		{"timeout", postErr(&net.OpError{Op: "dial", Err: timeoutErr{}}), "timed out"},
		{"deadline", postErr(context.DeadlineExceeded), "timed out"},
		{"canceled", postErr(context.Canceled), "canceled"},
		{"reset", postErr(syscall.ECONNRESET), "no reply"},
		{"token", &Error{op: "get token", Err: errors.New("down")}, "token"},
		{"rate limited", &Error{Status: 429, RetryAfter: time.Second}, "Retry-After"},
		{"server error", &Error{Status: 502}, "502"},
		{"permanent", &Error{Status: 404}, "404"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			got := Decide(tt.err, 1, Policy{}, half).Reason
			if !strings.Contains(got, tt.want) {
				t.Errorf("Reason = %q, want it to mention %q", got, tt.want)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	t.Parallel()

	ms := time.Millisecond
	tests := []struct {
		name    string
		policy  Policy
		attempt int
		lo, hi  time.Duration // rnd 0 gives lo; rnd just under 1 gives nearly hi
	}{
		{"first", Policy{}, 1, 200 * ms, 400 * ms},
		{"second", Policy{}, 2, 400 * ms, 800 * ms},
		{"seventh", Policy{}, 7, 12800 * ms, 25600 * ms},
		{"capped", Policy{}, 8, 15 * time.Second, 30 * time.Second},
		{"far beyond the cap", Policy{}, math.MaxInt, 15 * time.Second, 30 * time.Second},
		{"attempt zero counts as first", Policy{}, 0, 200 * ms, 400 * ms},
		{"custom", Policy{MinBackoff: time.Second, MaxBackoff: 5 * time.Second}, 2,
			2 * time.Second, 4 * time.Second},
		{"narrow range keeps MinBackoff", Policy{MinBackoff: time.Second, MaxBackoff: 1500 * ms}, 1,
			time.Second, 1500 * ms},
		{"max below min", Policy{MinBackoff: time.Second, MaxBackoff: ms}, 3,
			time.Second, time.Second},
		{"huge min does not overflow", Policy{MinBackoff: math.MaxInt64 / 3}, 5,
			math.MaxInt64 / 3, math.MaxInt64 / 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			low := tt.policy.backoff(tt.attempt, func() float64 { return 0 })
			high := tt.policy.backoff(tt.attempt, func() float64 { return math.Nextafter(1, 0) })
			if low != tt.lo {
				t.Errorf("backoff with rnd 0 = %v, want %v", low, tt.lo)
			}
			if high > tt.hi || high < tt.hi-time.Microsecond {
				t.Errorf("backoff with rnd near 1 = %v, want just under %v", high, tt.hi)
			}
		})
	}
}

func TestBackoffClampsBadRandomness(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name string
		r    float64
	}{
		{"negative", -3},
		{"one", 1},
		{"above one", 42},
		{"NaN", math.NaN()},
		{"infinity", math.Inf(1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			d := Policy{}.backoff(1, func() float64 { return tt.r })
			if d < 200*time.Millisecond || d >= 400*time.Millisecond {
				t.Errorf("backoff = %v, want within [200ms, 400ms)", d)
			}
		})
	}
}

func TestBackoffDefaultRandomStaysInRange(t *testing.T) {
	t.Parallel()

	for range 1000 {
		v := Decide(&Error{Status: 503}, 2, Policy{}, nil)
		if v.After < 400*time.Millisecond || v.After >= 800*time.Millisecond {
			t.Fatalf("After = %v, want within [400ms, 800ms)", v.After)
		}
	}
}
