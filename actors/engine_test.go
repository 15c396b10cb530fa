package actors

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/dtmfd/dtmfd/ivrspec"
	"github.com/dtmfd/dtmfd/transport/metrics"
)

// memSink records writes and fails them as told.
type memSink struct {
	mu     sync.Mutex
	writes []string
	// fail returns the error for an attempt, or nil to accept it.
	fail     func(id string, attempt int) error
	attempts map[string]int
	delay    time.Duration
}

func (s *memSink) Write(ctx context.Context, id string, vars []ivrspec.Variable) error {
	if s.delay > 0 {
		time.Sleep(s.delay)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.attempts == nil {
		s.attempts = make(map[string]int)
	}
	s.attempts[id]++
	if s.fail != nil {
		if err := s.fail(id, s.attempts[id]); err != nil {
			return err
		}
	}
	var b strings.Builder
	b.WriteString(id)
	for _, v := range vars {
		fmt.Fprintf(&b, " %s=%s", v.Name, v.Value)
	}
	s.writes = append(s.writes, b.String())
	return nil
}

var errPermanent = errors.New("permanent")

func (s *memSink) Retry(err error, attempt int) Verdict {
	if errors.Is(err, errPermanent) {
		return Verdict{}
	}
	return Verdict{Retry: true, After: time.Second}
}

func (s *memSink) got() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.writes...)
}

type harness struct {
	eng  *Engine
	sink *memSink
	dead []DeadLetter
	mu   sync.Mutex
	m    *metrics.Metrics
}

func newHarness(t *testing.T, sink *memSink, tune func(*Config)) *harness {
	t.Helper()
	h := &harness{sink: sink, m: metrics.New(nil)}
	flow := ivrspec.Example(10 * time.Second)
	cfg := Config{
		Flow:    func() *ivrspec.Flow { return flow },
		Sink:    sink,
		Metrics: h.m,
		DeadLetters: func(dl DeadLetter) error {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.dead = append(h.dead, dl)
			return nil
		},
	}
	if tune != nil {
		tune(&cfg)
	}
	eng, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.eng = eng
	return h
}

func (h *harness) press(call, keys string) {
	for i := 0; i < len(keys); i++ {
		h.eng.Digit(&Digit{CallID: call, Key: keys[i], Received: time.Now()})
	}
}

// close stops the engine and lets the library's dead-letter throttle,
// which sleeps a second, run out inside the bubble.
func (h *harness) close() {
	h.eng.Close()
	time.Sleep(2 * time.Second)
	synctest.Wait()
}

func TestCallsDecideAndWrite(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, &memSink{}, nil)
		defer h.close()

		h.press("c1", "2A1")
		h.press("c2", "1")
		h.press("c3", "9")
		synctest.Wait()
		if got := h.sink.got(); len(got) != 1 || got[0] != `c1 ivr_selection=["2","A","1"] ivr_status=completed` {
			t.Fatalf("writes after c1 completed = %q", got)
		}

		time.Sleep(10 * time.Second)
		synctest.Wait()
		got := h.sink.got()
		want := []string{
			`c1 ivr_selection=["2","A","1"] ivr_status=completed`,
			"c2 ivr_status=timeout_fallback",
			"c3 ivr_status=timeout_fallback",
		}
		if strings.Join(sorted(got[1:]), "|") != strings.Join(want[1:], "|") || got[0] != want[0] {
			t.Errorf("writes = %q, want %q", got, want)
		}
		if open := testutil.ToFloat64(h.m.CallsOpen); open != 0 {
			t.Errorf("open calls after all decided = %v, want 0", open)
		}
	})
}

func sorted(s []string) []string {
	out := append([]string(nil), s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

func TestCompletedCallNeverTimesOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, &memSink{}, nil)
		defer h.close()

		h.press("c1", "2A1")
		synctest.Wait()
		h.press("c1", "2") // a late key after the decision
		time.Sleep(time.Minute / 2)
		synctest.Wait()
		if got := h.sink.got(); len(got) != 1 {
			t.Errorf("writes = %q, want only the completion", got)
		}
		if n := testutil.ToFloat64(h.m.Events.WithLabelValues("dtmf", metrics.OutcomeUnknownCall)); n != 1 {
			t.Errorf("late keys counted as unknown call = %v, want 1", n)
		}
	})
}

func TestStaleTimerNeverFires(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, &memSink{}, nil)
		defer h.close()

		h.press("c1", "2")
		time.Sleep(9 * time.Second)
		h.press("c1", "A") // restarts the 10s clock
		time.Sleep(9 * time.Second)
		synctest.Wait()
		if got := h.sink.got(); len(got) != 0 {
			t.Fatalf("timed out though a valid key came 9s ago: %q", got)
		}
		h.press("c1", "1")
		time.Sleep(20 * time.Second)
		synctest.Wait()
		if got := h.sink.got(); len(got) != 1 || !strings.Contains(got[0], "completed") {
			t.Errorf("writes = %q, want one completion", got)
		}
	})
}

func TestInvalidKeysDoNotResetTheClock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, &memSink{}, nil)
		defer h.close()

		h.press("c1", "2")
		for range 5 {
			time.Sleep(3 * time.Second)
			h.press("c1", "9")
		}
		synctest.Wait()
		if got := h.sink.got(); len(got) != 1 || got[0] != "c1 ivr_status=timeout_fallback" {
			t.Errorf("writes = %q, want a timeout 10s after the last valid key", got)
		}
	})
}

func TestWriterRetriesThenDelivers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sink := &memSink{fail: func(id string, n int) error {
			if n <= 3 {
				return errors.New("503")
			}
			return nil
		}}
		h := newHarness(t, sink, nil)
		defer h.close()

		h.press("c1", "2A1")
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if got := sink.got(); len(got) != 1 {
			t.Fatalf("writes = %q, want one after retries", got)
		}
		if n := testutil.ToFloat64(h.m.WriteRetries); n != 3 {
			t.Errorf("retries = %v, want 3", n)
		}
	})
}

func TestPermanentFailureIsDeadLettered(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sink := &memSink{fail: func(id string, n int) error {
			if id == "bad" {
				return errPermanent
			}
			return nil
		}}
		h := newHarness(t, sink, nil)
		defer h.close()

		h.press("bad", "2A1")
		h.press("good", "3B1")
		synctest.Wait()
		if got := sink.got(); len(got) != 1 || !strings.HasPrefix(got[0], "good ") {
			t.Errorf("writes = %q, want the good call only", got)
		}
		if len(h.dead) != 1 || h.dead[0].InteractionID != "bad" || len(h.dead[0].Variables) != 2 {
			t.Fatalf("dead letters = %+v, want the bad call's write", h.dead)
		}
	})
}

func TestRetriesStopAtDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sink := &memSink{fail: func(string, int) error { return errors.New("503") }}
		h := newHarness(t, sink, func(c *Config) { c.WriteDeadline = 5 * time.Second })
		defer h.close()

		h.press("c1", "2A1")
		time.Sleep(time.Minute)
		synctest.Wait()
		if len(h.dead) != 1 || h.dead[0].Attempts < 4 || h.dead[0].Attempts > 6 {
			t.Fatalf("dead letters = %+v, want one after about 5 attempts", h.dead)
		}
	})
}

func TestWaitingUpdatesAreMerged(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		sink := &memSink{}
		sink.fail = func(id string, n int) error {
			if n == 1 {
				<-release
			}
			return nil
		}
		h := newHarness(t, sink, func(c *Config) { c.Writers = 1 })
		defer h.close()

		// Three decisions for one interaction while the only worker is
		// busy: the last two wait together and go in one request.
		send := func(val string) {
			h.eng.system.Root.Send(h.eng.writer, &Write{ID: val, InteractionID: "x",
				Variables: []ivrspec.Variable{{Name: "v", Value: val}, {Name: "k" + val, Value: "1"}},
				DecidedAt: time.Now()})
		}
		send("a")
		synctest.Wait()
		send("b")
		send("c")
		synctest.Wait()
		close(release)
		synctest.Wait()
		got := sink.got()
		want := []string{"x v=a ka=1", "x v=c kb=1 kc=1"}
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("requests = %q, want %q", got, want)
		}
	})
}

func TestBacklogLimitDeadLettersNewWork(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		block := make(chan struct{})
		sink := &memSink{fail: func(string, int) error { <-block; return nil }}
		h := newHarness(t, sink, func(c *Config) { c.Writers = 1; c.MaxBacklog = 2 })
		defer h.close()

		h.press("a", "2A1")
		h.press("b", "2A1")
		h.press("c", "2A1")
		synctest.Wait()
		close(block)
		synctest.Wait()
		got := sink.got()
		if len(got) != 2 || len(h.dead) != 1 {
			t.Fatalf("writes %q, dead %+v: want two written, one dead-lettered", got, h.dead)
		}
		all := sorted([]string{got[0][:1], got[1][:1], h.dead[0].InteractionID})
		if strings.Join(all, "") != "abc" {
			t.Errorf("written %q and dead-lettered %s: want each call once", got, h.dead[0].InteractionID)
		}
	})
}

func TestMaxCallsShedsNewCalls(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, &memSink{}, func(c *Config) { c.MaxCalls = 2 })
		defer h.close()

		h.press("a", "2")
		h.press("b", "2")
		h.press("c", "2")
		h.press("a", "A1")
		synctest.Wait()
		if n := testutil.ToFloat64(h.m.Events.WithLabelValues("dtmf", metrics.OutcomeShed)); n != 1 {
			t.Errorf("shed = %v, want 1", n)
		}
		time.Sleep(11 * time.Second)
		synctest.Wait()
		if got := sorted(h.sink.got()); len(got) != 2 || !strings.HasPrefix(got[0], "a ") || !strings.HasPrefix(got[1], "b ") {
			t.Errorf("writes = %q, want a and b only", got)
		}
	})
}

func TestDrainDeliversPendingWrites(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sink := &memSink{delay: 2 * time.Second}
		h := newHarness(t, sink, nil)
		defer h.close()

		for i := range 20 {
			h.press(fmt.Sprint("c", i), "2A1")
		}
		h.press("open", "2")
		synctest.Wait()

		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := h.eng.Drain(ctx, time.Now().Add(15*time.Second)); err != nil {
			t.Fatalf("drain: %v", err)
		}
		if got := sink.got(); len(got) != 21 {
			t.Errorf("delivered %d writes before drain returned, want 21", len(got))
		}
		h.press("late", "2")
		synctest.Wait()
		if n := testutil.ToFloat64(h.m.CallsOpen); n != 0 {
			t.Errorf("a call opened after drain")
		}
	})
}

func TestDrainDeadLettersWhenGraceEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sink := &memSink{fail: func(string, int) error { return errors.New("503") }}
		h := newHarness(t, sink, nil)
		defer h.close()

		h.press("c1", "2A1")
		synctest.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := h.eng.Drain(ctx, time.Now()); err == nil {
			t.Fatal("drain reported success with a write undelivered")
		}
		synctest.Wait()
		if len(h.dead) != 1 || h.dead[0].InteractionID != "c1" {
			t.Errorf("dead letters = %+v, want the undelivered write", h.dead)
		}
	})
}

func TestPing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, &memSink{}, nil)
		defer h.close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if err := h.eng.Ping(ctx); err != nil {
			t.Errorf("ping: %v", err)
		}
	})
}

func TestStepsDrivenByThePlatform(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, &memSink{}, nil)
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

		if r := step("2"); r.Ended || r.Node.ID != "department" {
			t.Fatalf("after 2: %+v, want department", r)
		}
		// Time passes with no timer of dtmfd's own: the platform times out.
		time.Sleep(time.Minute)
		synctest.Wait()
		if got := h.sink.got(); len(got) != 0 {
			t.Fatalf("a platform-timed call timed out by itself: %q", got)
		}
		if r := step("9"); r.Ended || r.Node.ID != "department" {
			t.Fatalf("after a wrong key: %+v, want to stay at department", r)
		}
		r := step("A1")
		if !r.Ended || r.Decision == nil || r.Decision.Variables[1].Value != "completed" {
			t.Fatalf("after A1: %+v, want the completed decision", r)
		}
		synctest.Wait()
		if got := h.sink.got(); len(got) != 1 {
			t.Errorf("writes = %q, want the decision written once", got)
		}
		if r := step("1"); !r.Ended {
			t.Errorf("a step after the end = %+v, want ended", r)
		}
	})
}

func TestStepWithoutKeysIsNoInput(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, &memSink{}, nil)
		defer h.close()
		r, err := h.eng.Step(context.Background(), &Step{CallID: "s2", Received: time.Now()})
		if err != nil {
			t.Fatal(err)
		}
		if !r.Ended || r.Decision.Variables[0].Value != "timeout_fallback" {
			t.Errorf("no keys: %+v, want the no-input fallback", r)
		}
	})
}

func TestStepHangupWritesNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, &memSink{}, nil)
		defer h.close()
		ctx := context.Background()
		if _, err := h.eng.Step(ctx, &Step{CallID: "s3", Keys: "1", Received: time.Now()}); err != nil {
			t.Fatal(err)
		}
		r, err := h.eng.Step(ctx, &Step{CallID: "s3", Hangup: true})
		if err != nil || !r.Ended {
			t.Fatalf("hangup: %+v %v", r, err)
		}
		time.Sleep(time.Hour)
		synctest.Wait()
		if got := h.sink.got(); len(got) != 0 {
			t.Errorf("writes after a hangup = %q, want none", got)
		}
	})
}

func TestStepTakesKeysAfterAPromptWithoutBargeIn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		flow, err := ivrspec.LoadExample("support.yaml", ivrspec.Options{})
		if err != nil {
			t.Fatal(err)
		}
		h := newHarness(t, &memSink{}, func(c *Config) { c.Flow = func() *ivrspec.Flow { return flow } })
		defer h.close()
		r, err := h.eng.Step(context.Background(), &Step{CallID: "s4", Keys: "1", Received: time.Now()})
		if err != nil {
			t.Fatal(err)
		}
		if r.Node == nil || r.Node.ID != "main_menu" {
			t.Errorf("after 1 at the greeting: %+v, want main_menu: the platform played the greeting", r)
		}
	})
}
