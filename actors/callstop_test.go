package actors

import (
	"context"
	"runtime"
	"strings"
	"testing"
	"testing/synctest"
	"time"
	"weak"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/dtmfd/dtmfd/transport/metrics"
)

// A call whose actor panics is stopped, not restarted from the top of
// the menu: its later keys are refused, it never times out into a write,
// and the other calls go on.
func TestPanickingCallIsStoppedNotRestarted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, &memSink{}, func(c *Config) {
			c.OnCall = func(ev CallEvent) {
				if ev.CallID == "bad" && ev.Key == "A" {
					panic("observer failed")
				}
			}
		})
		defer h.close()

		h.press("bad", "2A")
		h.press("good", "2")
		synctest.Wait()
		h.press("bad", "1")
		h.press("good", "A1")
		time.Sleep(11 * time.Second)
		synctest.Wait()

		if got := h.sink.got(); len(got) != 1 || !strings.HasPrefix(got[0], "good ") {
			t.Errorf("writes = %q, want good's only", got)
		}
		if n := testutil.ToFloat64(h.m.Events.WithLabelValues("dtmf", metrics.OutcomeUnknownCall)); n != 1 {
			t.Errorf("keys refused for the stopped call = %v, want 1", n)
		}
		st, err := h.eng.Stats(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if st.OpenCalls != 0 {
			t.Errorf("open calls = %d after both ended, want 0", st.OpenCalls)
		}
		if n := testutil.ToFloat64(h.m.CallsOpen); n != 0 {
			t.Errorf("dtmfd_calls_open = %v, want 0", n)
		}
	})
}

// Closing the engine stops the actors of calls still waiting mid-menu.
func TestCloseStopsOpenCalls(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, &memSink{}, nil)
		for _, id := range []string{"a", "b", "c"} {
			h.press(id, "2")
		}
		synctest.Wait()
		if n := testutil.ToFloat64(h.m.CallsOpen); n != 3 {
			t.Fatalf("dtmfd_calls_open = %v with three calls mid-menu, want 3", n)
		}

		h.eng.Close()
		n := testutil.ToFloat64(h.m.CallsOpen)
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if n != 0 {
			t.Errorf("dtmfd_calls_open = %v when Close returned, want 0", n)
		}
		if got := h.sink.got(); len(got) != 0 {
			t.Errorf("writes = %q after Close, want none", got)
		}
	})
}

// A closed engine leaves nothing behind that keeps its memory: not its
// actor system, not the timers its calls and its ended-call sweep armed.
func TestClosedEngineIsCollected(t *testing.T) {
	h := newHarness(t, &memSink{}, nil)
	h.press("done", "2A1")
	h.press("waiting", "2")
	deadline := time.Now().Add(5 * time.Second)
	for len(h.sink.got()) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if len(h.sink.got()) == 0 {
		t.Fatal("no write from the call that decided")
	}
	gone := weak.Make(h.eng.sh)
	h.eng.Close()
	h = nil

	// protoactor's dead-letter throttle holds the system for a second
	// after its last dead letter.
	for time.Now().Before(deadline.Add(5 * time.Second)) {
		runtime.GC()
		if gone.Value() == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Error("a closed engine is still reachable: something it armed or started keeps it alive")
}
