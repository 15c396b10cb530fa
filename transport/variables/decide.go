package variables

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"time"
)

// Default backoff limits, used for the zero fields of a Policy.
const (
	DefaultMinBackoff = 200 * time.Millisecond
	DefaultMaxBackoff = 30 * time.Second
)

// Policy bounds the backoff between attempts. Its zero value uses
// DefaultMinBackoff and DefaultMaxBackoff.
type Policy struct {
	// MinBackoff is the shortest delay Decide picks by backoff: the
	// lower bound of the delay after the first failure.
	MinBackoff time.Duration

	// MaxBackoff is the longest delay Decide picks by backoff. A
	// Retry-After from the platform may ask for more and is honoured.
	MaxBackoff time.Duration
}

// Verdict is what to do after a failed attempt.
type Verdict struct {
	// Retry says whether to make another attempt.
	Retry bool

	// After is the delay before that attempt, from now.
	After time.Duration

	// RefreshToken says to invalidate the refused token, Error.Token,
	// before the next attempt.
	RefreshToken bool

	// Reason is one line for the logs saying why.
	Reason string
}

// Decide classifies the failure of attempt number attempt (1 for the first
// attempt) and says whether to try again and when. It is a pure function:
// the caller owns the schedule, the attempt count and any deadline after
// which it gives up.
//
// Network failures, timeouts, token source failures, 429 and every 5xx
// are retried, and so is 408 though it is a 4xx: the server gave up
// waiting for the request to arrive, a transient failure of the path to
// it, not a fault of the request. A Retry-After on a retried status is
// honoured exactly, otherwise the delay is backoff. A 401 refreshes the
// token: at once after the first attempt, with backoff later, so that a
// revoked credential cannot spin. Every other status, and errors that
// Write did not return, are permanent.
//
// Context errors count as network failures and are retried: Write cannot
// tell a caller's shutdown from a per-attempt timeout, and the caller, who
// can, checks its own context before it schedules the next attempt.
//
// Backoff uses equal jitter: the delay for attempt n is drawn from
// [c/2, c), where c is 2·MinBackoff doubled for each attempt after the
// first and capped at MaxBackoff, and never falls below MinBackoff. Half of
// each delay is fixed, so the gaps grow steadily; the other half is random,
// so writes that failed together spread out. rnd supplies values in [0,1);
// nil means math/rand/v2.Float64.
func Decide(err error, attempt int, p Policy, rnd func() float64) Verdict {
	var e *Error
	if err == nil {
		return Verdict{Reason: "write succeeded"}
	}
	if !errors.As(err, &e) {
		// Only Write's failures are classified; guessing could
		// retry a bug forever.
		return Verdict{Reason: "unclassified error: not retried"}
	}
	if e.invalid {
		// The request could not be built; it never will be.
		return Verdict{Reason: "invalid request: not retried"}
	}
	if e.Status == 0 {
		// Nothing came back, so the platform may never have seen
		// the write; setting variables again is harmless.
		return Verdict{Retry: true, After: p.backoff(attempt, rnd), Reason: noReply(e)}
	}
	if e.Status == 401 {
		return unauthorized(attempt, p, rnd)
	}
	if e.Status == 408 || e.Status == 429 || e.Status >= 500 {
		// The platform is busy, rate limiting, failing or timed out
		// waiting for the request; it may accept the same write later.
		return retryLater(e, attempt, p, rnd)
	}
	// Any other status says the request itself is wrong: sending it
	// again gets the same answer.
	return Verdict{Reason: fmt.Sprintf("status %d: permanent", e.Status)}
}

// noReply names the kind of failure that left an attempt without a reply.
func noReply(e *Error) string {
	var ne net.Error
	switch {
	case e.op == "get token":
		return "token unavailable: backing off"
	case errors.Is(e, context.Canceled):
		return "attempt canceled: backing off"
	case errors.Is(e, context.DeadlineExceeded), errors.As(e, &ne) && ne.Timeout():
		return "attempt timed out: backing off"
	}
	return "no reply: backing off"
}

// unauthorized decides after a 401. The first attempt's 401 most likely
// means the cached token expired; a later one, that a fresh token is also
// refused, so the retries slow down while the token source is asked again.
func unauthorized(attempt int, p Policy, rnd func() float64) Verdict {
	v := Verdict{Retry: true, RefreshToken: true}
	if attempt <= 1 {
		v.Reason = "unauthorized: retrying at once with a fresh token"
		return v
	}
	v.After = p.backoff(attempt-1, rnd)
	v.Reason = "unauthorized again: fresh token after backoff"
	return v
}

// retryLater decides after a status worth retrying, preferring the
// platform's own Retry-After to backoff.
func retryLater(e *Error, attempt int, p Policy, rnd func() float64) Verdict {
	if e.RetryAfter > 0 {
		return Verdict{
			Retry:  true,
			After:  e.RetryAfter,
			Reason: fmt.Sprintf("status %d: waiting as Retry-After asks", e.Status),
		}
	}
	return Verdict{
		Retry:  true,
		After:  p.backoff(attempt, rnd),
		Reason: fmt.Sprintf("status %d: backing off", e.Status),
	}
}

// limits returns the policy's bounds with defaults filled in.
func (p Policy) limits() (lo, hi time.Duration) {
	lo, hi = p.MinBackoff, p.MaxBackoff
	if lo <= 0 {
		lo = DefaultMinBackoff
	}
	if hi <= 0 {
		hi = DefaultMaxBackoff
	}
	return lo, max(lo, hi)
}

// backoff returns the jittered delay after attempt; see Decide.
func (p Policy) backoff(attempt int, rnd func() float64) time.Duration {
	lo, hi := p.limits()

	ceil := lo
	for range max(attempt, 1) {
		if ceil > hi/2 {
			ceil = hi
			break
		}
		ceil *= 2
	}

	half := ceil / 2
	d := half + time.Duration(jitter(rnd)*float64(half))
	return min(max(d, lo), hi)
}

// jitter draws from rnd and clamps the value to [0,1), so a faulty source
// cannot stretch a delay past its ceiling.
func jitter(rnd func() float64) float64 {
	if rnd == nil {
		rnd = rand.Float64
	}

	r := rnd()
	switch {
	case !(r >= 0): // negative or NaN
		return 0
	case r >= 1:
		return math.Nextafter(1, 0)
	}
	return r
}
