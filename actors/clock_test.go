package actors

import (
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestSystemClockRunsTimersInDueOrder(t *testing.T) {
	var c SystemClock
	var mu sync.Mutex
	var order []int
	var wg sync.WaitGroup
	// Armed latest first, so each new timer becomes the earliest and the
	// runtime timer must be moved forward for it.
	for i, d := range []time.Duration{60, 40, 20, 10} {
		wg.Add(1)
		c.AfterFunc(d*time.Millisecond, func() {
			mu.Lock()
			order = append(order, i)
			mu.Unlock()
			wg.Done()
		})
	}
	wg.Wait()
	if want := []int{3, 2, 1, 0}; !slices.Equal(order, want) {
		t.Errorf("timers ran in the order %v, want %v (earliest first)", order, want)
	}
}

func TestSystemClockStopCancels(t *testing.T) {
	var c SystemClock
	var ran atomic.Int32
	stopEarly := c.AfterFunc(10*time.Millisecond, func() { ran.Add(1) })
	stopLate := c.AfterFunc(30*time.Millisecond, func() { ran.Add(10) })
	done := make(chan struct{})
	stopLast := c.AfterFunc(50*time.Millisecond, func() { close(done) })

	// The stopped timer was the earliest, the one the runtime timer was
	// armed for: the later ones must still run.
	if !stopEarly() {
		t.Fatal("stop of a pending timer reported it had already run")
	}
	<-done
	if got := ran.Load(); got != 10 {
		t.Errorf("timers ran to a sum of %d, want 10 (only the one not stopped)", got)
	}
	if stopLate() || stopLast() {
		t.Error("stop of a timer that had run reported it pending")
	}
	if stopEarly() {
		t.Error("a second stop reported the timer pending")
	}
}

func TestSystemClockNowAndZeroWait(t *testing.T) {
	var c SystemClock
	before := time.Now()
	if now := c.Now(); now.Before(before) || now.Sub(before) > time.Second {
		t.Errorf("Now() = %v, want the wall clock (%v)", now, before)
	}
	done := make(chan struct{})
	c.AfterFunc(-time.Second, func() { close(done) })
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("a timer with a negative wait never ran")
	}
}

func TestSystemClockUnderConcurrentArmsAndStops(t *testing.T) {
	const workers, each = 8, 500
	var c SystemClock
	var ran, kept atomic.Int64
	var wg, fired sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				d := time.Duration((w*each+i)%20) * time.Millisecond
				if i%2 == 0 {
					fired.Add(1)
					kept.Add(1)
					c.AfterFunc(d, func() { ran.Add(1); fired.Done() })
					continue
				}
				stop := c.AfterFunc(d+time.Hour, func() { t.Error("a stopped timer ran") })
				if !stop() {
					t.Error("stop of a timer an hour away reported it had run")
				}
			}
		}()
	}
	wg.Wait()
	fired.Wait()
	if ran.Load() != kept.Load() {
		t.Errorf("%d timers ran, want %d", ran.Load(), kept.Load())
	}
	c.mu.Lock()
	left := len(c.heap)
	c.mu.Unlock()
	if left != 0 {
		t.Errorf("%d timers left waiting after all ran or were stopped", left)
	}
}

func TestSystemClockGivesMemoryBack(t *testing.T) {
	const n = 100000
	var c SystemClock
	stops := make([]func() bool, n)
	base := liveHeap()
	for i := range stops {
		stops[i] = c.AfterFunc(10*time.Minute, func() {})
	}
	full := liveHeap()
	for i, stop := range stops {
		stop()
		stops[i] = nil
	}
	after := liveHeap()

	grown, left := int64(full)-int64(base), int64(after)-int64(base)
	// The slice of stop funcs is part of both figures; what must go is
	// the timers and the heap that ordered them.
	if left > grown/10 {
		t.Errorf("%d stopped timers kept %d of the %d bytes they took", n, left, grown)
	}
}

// BenchmarkClockArmStop is a call's life per key: arm its timeout, then
// stop it when the next key comes.
func BenchmarkClockArmStop(b *testing.B) {
	b.Run("SystemClock", func(b *testing.B) {
		var c SystemClock
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				c.AfterFunc(10*time.Second, func() {})()
			}
		})
	})
	b.Run("time.AfterFunc", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				time.AfterFunc(10*time.Second, func() {}).Stop()
			}
		})
	})
}
