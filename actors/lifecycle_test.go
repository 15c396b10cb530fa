package actors

import (
	"context"
	"runtime"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/dtmfd/dtmfd/transport/metrics"
)

const completed = `c1 ivr_selection=["2","A","1"] ivr_status=completed`

func TestLateKeysNeverReopenACompletedCall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, &memSink{}, nil)
		defer h.close()

		h.press("c1", "2A1")
		synctest.Wait()
		decided := time.Now()
		// The caller goes on pressing keys while talking to an agent.
		for _, at := range []time.Duration{2 * time.Minute, 3 * time.Hour} {
			time.Sleep(at - time.Since(decided))
			h.press("c1", "2")
			time.Sleep(time.Minute)
			synctest.Wait()
			if got := h.sink.got(); len(got) != 1 || got[0] != completed {
				t.Fatalf("writes after a key %v after the decision = %q, want only the completion",
					at, got)
			}
		}
		late := testutil.ToFloat64(h.m.Events.WithLabelValues("dtmf", metrics.OutcomeUnknownCall))
		if late != 2 {
			t.Errorf("late keys counted as for an ended call = %v, want 2", late)
		}
	})
}

func TestKeyAfterEndedTTLStartsANewCall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, &memSink{}, func(c *Config) { c.EndedTTL = time.Hour })
		defer h.close()

		h.press("c1", "2A1")
		synctest.Wait()
		// Remembered for the TTL and at most an eighth more.
		time.Sleep(time.Hour + time.Hour/8 + time.Second)
		h.press("c1", "2")
		time.Sleep(11 * time.Second)
		synctest.Wait()

		want := []string{completed, "c1 ivr_status=timeout_fallback"}
		if got := h.sink.got(); strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("writes = %q, want %q: a key after the TTL starts a new call", got, want)
		}
	})
}

// dueClock is the system clock in which stopping a timer never stops it:
// each timer behaves as one that was already due when it was stopped,
// whose message is on its way to the call.
type dueClock struct{}

func (dueClock) Now() time.Time { return time.Now() }

func (dueClock) AfterFunc(d time.Duration, f func()) func() bool {
	time.AfterFunc(d, f)
	return func() bool { return false }
}

func TestStaleTimerMessageIsIgnored(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, &memSink{}, func(c *Config) { c.Clock = dueClock{} })
		defer h.close()

		h.press("c1", "2")
		time.Sleep(9 * time.Second)
		// The first key's timer, replaced here, still delivers at 10 s.
		h.press("c1", "A")
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if got := h.sink.got(); len(got) != 0 {
			t.Fatalf("writes after a replaced timer went off = %q, want none", got)
		}

		h.press("c1", "1")
		time.Sleep(20 * time.Second)
		synctest.Wait()
		if got := h.sink.got(); len(got) != 1 || got[0] != completed {
			t.Errorf("writes = %q, want only the completion", got)
		}
	})
}

func TestIdleCallIsAbandonedAndForgotten(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const idle, ttl = 30 * time.Minute, time.Hour
		h := newHarness(t, &memSink{}, func(c *Config) { c.MaxIdle, c.EndedTTL = idle, ttl })
		defer h.close()
		ctx := context.Background()
		step := func(keys string) *StepReply {
			t.Helper()
			r, err := h.eng.Step(ctx, &Step{CallID: "s1", Keys: keys, Received: time.Now()})
			if err != nil {
				t.Fatal(err)
			}
			return r
		}
		open := func() int {
			t.Helper()
			s, err := h.eng.Stats(ctx)
			if err != nil {
				t.Fatal(err)
			}
			return s.OpenCalls
		}

		// A platform-timed call has no timer but the idle limit.
		if r := step("2"); r.Ended {
			t.Fatalf("after 2: %+v, want the call waiting at department", r)
		}
		time.Sleep(idle - time.Second)
		synctest.Wait()
		if n := open(); n != 1 {
			t.Fatalf("open calls just before the idle limit = %d, want 1", n)
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if n := open(); n != 0 {
			t.Fatalf("open calls after the idle limit = %d, want 0", n)
		}
		if n := testutil.ToFloat64(h.m.CallsOpen); n != 0 {
			t.Errorf("call actors alive after the idle limit = %v, want 0", n)
		}
		ended := testutil.ToFloat64(h.m.CallsEnded.WithLabelValues("abandoned", "department"))
		if ended != 1 {
			t.Errorf("calls ended as abandoned = %v, want 1", ended)
		}
		if got := h.sink.got(); len(got) != 0 {
			t.Errorf("writes for an abandoned call = %q, want none", got)
		}

		// Remembered as ended, then forgotten after the TTL.
		if r := step("A"); !r.Ended {
			t.Errorf("a step after the call was abandoned = %+v, want ended", r)
		}
		time.Sleep(ttl + ttl/8 + time.Second)
		if r := step("2"); r.Ended || r.Node.ID != "department" {
			t.Errorf("a step after the TTL = %+v, want a new call at department", r)
		}
		if n := open(); n != 1 {
			t.Errorf("open calls = %d, want the new call only", n)
		}
	})
}

func TestRecentKeepsIDsForTheTTL(t *testing.T) {
	t.Parallel()
	const ttl = 8 * time.Second
	// Times count from a rotation; the next ones fall on whole seconds.
	tests := []struct {
		name          string
		putAt, getAt  time.Duration
		wantRemembers bool
	}{
		{"just put", 0, 0, true},
		{"put after a rotation, a ttl later", 0, ttl, true},
		{"put after a rotation, a ttl and a slice later", 0, ttl + time.Second, false},
		{"put before a rotation, a ttl later", time.Second - 1, ttl + time.Second - 1, true},
		{"put before a rotation, at the rotation after the ttl", time.Second - 1, ttl + time.Second, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := newRecent[int](ttl)
			if r.every != time.Second {
				t.Fatalf("slice = %v, want %v", r.every, time.Second)
			}
			now := time.Duration(0)
			advance := func(to time.Duration) {
				for now+r.every <= to {
					now += r.every
					r.rotate()
				}
			}

			advance(tt.putAt)
			r.put("c1", 7)
			advance(tt.getAt)

			v, ok := r.get("c1")
			if ok != tt.wantRemembers || (ok && v != 7) {
				t.Errorf("get = %d, %v; want remembered %v", v, ok, tt.wantRemembers)
			}
		})
	}
}

// TestEndedCallsCostLittleAndAreGivenBack holds the memory of an ended
// call to what EndedTTL's documentation says, since a busy service
// remembers hours of them.
func TestEndedCallsCostLittleAndAreGivenBack(t *testing.T) {
	const n = 100000
	r := newRecent[struct{}](time.Hour)

	base := liveHeap()
	for range n {
		r.put(uuid.NewString(), struct{}{})
	}
	full := liveHeap()
	for range recentSlices + 1 {
		r.rotate()
	}
	after := liveHeap()

	per := (int64(full) - int64(base)) / n
	t.Logf("%d bytes per ended call", per)
	if per > 110 {
		t.Errorf("an ended call costs %d bytes, want at most 110", per)
	}
	if left := int64(after) - int64(base); left > n {
		t.Errorf("%d bytes kept after every ended call was forgotten", left)
	}
	runtime.KeepAlive(r)
}
