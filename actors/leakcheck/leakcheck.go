// Package leakcheck fails a test binary whose goroutines outlive its
// tests, as goleak does, allowing for the actor library's throttles: each
// runs a goroutine for a while after a dead letter or a gossip round (a
// second for dead letters, a minute for gossip), and ends on its own.
package leakcheck

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// throttle is in the stack of every throttle goroutine, whatever name
// the compiler gives the closure (it may be inlined into its caller's).
const throttle = "NewThrottle"

// settleFor bounds the wait for short throttles to end by themselves.
const settleFor = 3 * time.Second

// Main runs the tests of m and exits with Run's code.
func Main(m *testing.M, opts ...goleak.Option) {
	os.Exit(Run(m, opts...))
}

// Run runs the tests of m and, if they passed, fails (returns 1) when a
// goroutine is left that neither opts nor the throttle rule ignores.
func Run(m *testing.M, opts ...goleak.Option) int {
	code := m.Run()
	if code != 0 {
		return code
	}
	deadline := time.Now().Add(settleFor)
	for len(throttles()) > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	for _, fn := range throttles() {
		opts = append(opts, goleak.IgnoreTopFunction(fn))
	}
	if err := goleak.Find(opts...); err != nil {
		fmt.Fprintf(os.Stderr, "goleak: goroutines left after the tests passed: %v\n", err)
		return 1
	}
	return 0
}

// throttles returns the top functions of the throttle goroutines running
// now.
func throttles() []string {
	buf := make([]byte, 1<<20)
	n := runtime.Stack(buf, true)
	for n == len(buf) {
		buf = make([]byte, 2*len(buf))
		n = runtime.Stack(buf, true)
	}
	var out []string
	for g := range strings.SplitSeq(string(buf[:n]), "\n\n") {
		lines := strings.Split(g, "\n")
		if len(lines) < 2 || !strings.Contains(g, throttle) {
			continue
		}
		// "github.com/x/y.F.func1(...)" names the top function.
		top := lines[1]
		if i := strings.LastIndex(top, "("); i > 0 {
			top = top[:i]
		}
		out = append(out, top)
	}
	return out
}
