package actors

import (
	"runtime"
	"sync"
	"testing"
)

// TestPoolDispatcherBurst schedules far more runs than the pool has
// goroutines while its one goroutine is held: none of them may start a
// goroutine of its own, and once released every run happens, in order.
func TestPoolDispatcherBurst(t *testing.T) {
	const burst = 20000
	d := newPoolDispatcher(1)
	defer d.stop()

	hold := make(chan struct{})
	d.Schedule(func() { <-hold })
	before := runtime.NumGoroutine()

	var (
		mu   sync.Mutex
		got  []int
		done sync.WaitGroup
	)
	done.Add(burst)
	for i := range burst {
		d.Schedule(func() {
			mu.Lock()
			got = append(got, i)
			mu.Unlock()
			done.Done()
		})
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("%d goroutines while %d runs wait, %d before", n, burst, before)
	}

	close(hold)
	done.Wait()
	for i, v := range got {
		if v != i {
			t.Fatalf("run %d happened in place %d", v, i)
		}
	}
}

// TestPoolDispatcherStop checks that runs queued before stop still happen,
// and that one scheduled afterwards runs too, on a goroutine of its own.
func TestPoolDispatcherStop(t *testing.T) {
	d := newPoolDispatcher(1)
	hold := make(chan struct{})
	d.Schedule(func() { <-hold })

	var ran sync.WaitGroup
	ran.Add(2)
	d.Schedule(ran.Done)
	d.stop()
	d.Schedule(ran.Done)
	close(hold)
	ran.Wait()
}
