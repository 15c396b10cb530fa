package actors

import "time"

// Clock is the engine's source of time. The real one is the time package;
// the flow-test harness supplies a virtual one so a 30 s timeout takes no
// wall time at all.
type Clock interface {
	Now() time.Time
	// AfterFunc calls f in its own goroutine after d and returns a func
	// that cancels the call if it has not run yet.
	AfterFunc(d time.Duration, f func()) (stop func() bool)
}

// SystemClock is the wall clock.
type SystemClock struct{}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }

// AfterFunc wraps time.AfterFunc.
func (SystemClock) AfterFunc(d time.Duration, f func()) func() bool {
	return time.AfterFunc(d, f).Stop
}
