package actors

import (
	"sync"
	"time"
)

// Clock is the engine's source of time. The real one is SystemClock;
// the flow-test harness supplies a virtual one so a 30 s timeout takes no
// wall time at all.
type Clock interface {
	Now() time.Time
	// AfterFunc calls f after d and returns a func that cancels the call
	// if it has not run yet. f runs on a goroutine other than the
	// caller's and must return quickly: the engine's only send a message.
	AfterFunc(d time.Duration, f func()) (stop func() bool)
}

// SystemClock is the wall clock. Its timers wait in one min-heap behind a
// single runtime timer, armed for the earliest of them.
//
// An engine arms a timer for nearly every key and stops it at the next,
// so one runtime timer per arm was, with 100,000 calls open, 100,000
// runtime timers and their closures. A stopped runtime timer stays in
// its P's timer heap until that P next runs its timers, and the heap's
// array keeps its largest size: 2.2 MiB of heap was still held by timers
// of calls that had ended. Here a stopped timer leaves the heap at once,
// and the heap's array shrinks with it.
//
// The zero SystemClock is ready to use. It must not be copied.
type SystemClock struct {
	mu    sync.Mutex
	base  time.Time // the origin of every due time; set on first use
	heap  []*clockTimer
	timer *time.Timer // runs fire; nil until the first AfterFunc
	// armed is when timer is set for, since base, if isArmed.
	armed   time.Duration
	isArmed bool
	// firing is reused by fire for the timers it runs.
	firing []*clockTimer
}

// clockTimer is one pending call of f.
type clockTimer struct {
	c   *SystemClock
	due time.Duration // since c.base
	f   func()
	// at is the timer's index in c.heap, or -1 once it ran or was
	// stopped.
	at int
}

// clockHeapFloor is the array size under which the heap is never
// shrunk.
const clockHeapFloor = 1024

// Now returns time.Now().
func (*SystemClock) Now() time.Time { return time.Now() }

// AfterFunc arranges for f to run after d.
func (c *SystemClock) AfterFunc(d time.Duration, f func()) func() bool {
	c.mu.Lock()
	if c.base.IsZero() {
		c.base = time.Now()
	}
	t := &clockTimer{c: c, due: time.Since(c.base) + max(d, 0), f: f}
	c.push(t)
	if t.at == 0 {
		c.arm()
	}
	c.mu.Unlock()
	return t.stop
}

// stop cancels t; it reports whether t had not run yet. The runtime
// timer is left armed if t was the earliest: waking once for nothing is
// cheaper than resetting it on every stop.
func (t *clockTimer) stop() bool {
	c := t.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if t.at < 0 {
		return false
	}
	c.remove(t.at)
	c.shrink()
	return true
}

// stop drops every pending timer without running it, so that nothing
// their funcs reference is kept alive by the clock. Timers armed
// afterwards run as usual.
func (c *SystemClock) stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, t := range c.heap {
		t.at = -1
	}
	c.heap = nil
	if c.timer != nil {
		c.timer.Stop()
	}
	c.isArmed = false
}

// arm sets the runtime timer for the earliest due time. c.mu is held.
func (c *SystemClock) arm() {
	if len(c.heap) == 0 {
		return
	}
	due := c.heap[0].due
	if c.isArmed && c.armed <= due {
		return
	}
	c.armed, c.isArmed = due, true
	wait := due - time.Since(c.base)
	if c.timer == nil {
		c.timer = time.AfterFunc(wait, c.fire)
		return
	}
	c.timer.Reset(wait)
}

// fire runs every timer that is due, in due order, then arms the runtime
// timer for the next.
func (c *SystemClock) fire() {
	c.mu.Lock()
	c.isArmed = false
	now := time.Since(c.base)
	run := c.firing[:0]
	for len(c.heap) > 0 && c.heap[0].due <= now {
		t := c.heap[0]
		c.remove(0)
		run = append(run, t)
	}
	c.shrink()
	c.arm()
	c.firing = nil
	c.mu.Unlock()

	for i, t := range run {
		t.f()
		run[i] = nil
	}

	c.mu.Lock()
	if c.firing == nil && cap(run) <= clockHeapFloor {
		c.firing = run[:0]
	}
	c.mu.Unlock()
}

// push adds t to the heap.
func (c *SystemClock) push(t *clockTimer) {
	t.at = len(c.heap)
	c.heap = append(c.heap, t)
	c.up(t.at)
}

// remove takes the timer at index i out of the heap.
func (c *SystemClock) remove(i int) {
	last := len(c.heap) - 1
	t := c.heap[i]
	if i != last {
		c.swap(i, last)
	}
	c.heap[last] = nil
	c.heap = c.heap[:last]
	if i != last {
		if !c.down(i) {
			c.up(i)
		}
	}
	t.at = -1
}

// shrink copies the heap into a smaller array once it uses no more than
// a quarter of the one it has; each timer is then copied at most once per
// three removed.
func (c *SystemClock) shrink() {
	if cap(c.heap) <= clockHeapFloor || len(c.heap) > cap(c.heap)/4 {
		return
	}
	c.heap = append(make([]*clockTimer, 0, 2*len(c.heap)), c.heap...)
}

func (c *SystemClock) swap(i, j int) {
	h := c.heap
	h[i], h[j] = h[j], h[i]
	h[i].at, h[j].at = i, j
}

func (c *SystemClock) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if c.heap[p].due <= c.heap[i].due {
			return
		}
		c.swap(i, p)
		i = p
	}
}

// down sifts the timer at i towards the leaves and reports whether it
// moved.
func (c *SystemClock) down(i int) bool {
	start, n := i, len(c.heap)
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		j := l
		if r := l + 1; r < n && c.heap[r].due < c.heap[l].due {
			j = r
		}
		if c.heap[i].due <= c.heap[j].due {
			break
		}
		c.swap(i, j)
		i = j
	}
	return i > start
}
