// Package flowtest tests IVR flows with dtmfd's real actors, in virtual
// time: a call's keys and pauses are scripted, and the decision and the
// variables written are asserted, so a test of a 30 s timeout takes
// milliseconds.
//
// Run starts the engine inside a testing/synctest bubble. Inside it,
// time.Sleep advances a fake clock at once, and after every step the
// harness waits until every actor is idle, so what a test reads is always
// the settled result of what it did.
//
//	func TestBank(t *testing.T) {
//		flow, err := ivrspec.LoadFile("bank.yaml", ivrspec.Options{})
//		if err != nil {
//			t.Fatal(err)
//		}
//		flowtest.Run(t, flow, func(h *flowtest.Harness) {
//			c := h.Call("call-1")
//			c.Script(`press "1"; press "12345678#"; wait 5s; press "4321"; press "2"`)
//			if got := c.Var("ivr_status"); got != "balance_savings" {
//				t.Errorf("ivr_status = %q, want balance_savings", got)
//			}
//		})
//	}
//
// Run needs the *testing.T of a test function, so the package example
// is a whole test file, example_test.go; package ivrspec has a runnable
// example of the session the harness drives.
package flowtest

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dtmfd/dtmfd/actors"
	"github.com/dtmfd/dtmfd/ivrspec"
)

// Harness runs one flow on a real engine in virtual time.
type Harness struct {
	t    *testing.T
	eng  *actors.Engine
	sink *sink

	mu     sync.Mutex
	events map[string][]actors.CallEvent
}

// Write is one request the engine made to the platform.
type Write struct {
	CallID    string
	Variables []ivrspec.Variable
}

// Run starts an engine on flow in a synctest bubble, calls f, and stops
// the engine. The test fails if an actor is still busy when f returns.
func Run(t *testing.T, flow *ivrspec.Flow, f func(h *Harness)) {
	t.Helper()
	synctest.Test(t, func(t *testing.T) {
		h := &Harness{t: t, sink: &sink{}, events: make(map[string][]actors.CallEvent)}
		eng, err := actors.Start(actors.Config{
			Flow:   func() *ivrspec.Flow { return flow },
			Sink:   h.sink,
			OnCall: h.record,
		})
		if err != nil {
			t.Fatalf("start engine: %v", err)
		}
		h.eng = eng

		f(h)

		eng.Close()
		// protoactor's dead-letter throttle sleeps a second; let it end
		// inside the bubble.
		time.Sleep(2 * time.Second)
		synctest.Wait()
	})
}

func (h *Harness) record(ev actors.CallEvent) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.events[ev.CallID] = append(h.events[ev.CallID], ev)
}

// Call returns a handle on the call with this id. The call starts with
// its first key.
func (h *Harness) Call(id string) *Call {
	return &Call{h: h, id: id}
}

// Wait lets d of virtual time pass.
func (h *Harness) Wait(d time.Duration) {
	time.Sleep(d)
	synctest.Wait()
}

// Writes returns every write the platform accepted, in order.
func (h *Harness) Writes() []Write {
	return h.sink.all()
}

// Call is one scripted call.
type Call struct {
	h  *Harness
	id string
}

// Start starts the call before its first key, as when it reaches the IVR:
// the start node's prompt and timers run from now. Without Start, a call
// starts at its first key, with the start node's prompt taken as played.
func (c *Call) Start() {
	c.h.eng.Begin(&actors.Begin{CallID: c.id, Received: time.Now()})
	synctest.Wait()
}

// Press presses keys one after another, with no time between them. The
// keys carry no platform timestamp, so none is taken for a repeat.
func (c *Call) Press(keys string) {
	c.h.t.Helper()
	c.press(keys, 0)
}

// PressAt presses keys as Press does, giving the i-th key the platform
// timestamp ts+i (UNIX milliseconds). Pressing the same keys at the same
// ts again sends the same events again, as a platform that delivers an
// event twice does: dtmfd must drop the repeats.
func (c *Call) PressAt(keys string, ts int64) {
	c.h.t.Helper()
	if ts <= 0 {
		c.h.t.Fatalf("press %q at %d: a timestamp must be positive", keys, ts)
	}
	c.press(keys, ts)
}

// press sends keys, numbering their timestamps from ts unless it is 0.
func (c *Call) press(keys string, ts int64) {
	c.h.t.Helper()
	for i := 0; i < len(keys); i++ {
		if !ivrspec.ValidKey(keys[i]) {
			c.h.t.Fatalf("press %q: %q is not a DTMF key", keys, keys[i])
		}
		d := &actors.Digit{CallID: c.id, Key: keys[i], Received: time.Now()}
		if ts != 0 {
			d.Timestamp = ts + int64(i)
		}
		c.h.eng.Digit(d)
	}
	synctest.Wait()
}

// Wait lets d of virtual time pass.
func (c *Call) Wait(d time.Duration) { c.h.Wait(d) }

// Script runs a script of steps separated by newlines or semicolons:
//
//	start                start the call before its first key
//	press "12#"          press the keys
//	press "12#" at 1000  press them with timestamps 1000, 1001, 1002
//	wait 5s              let time pass (a Go duration)
func (c *Call) Script(script string) {
	c.h.t.Helper()
	for _, step := range strings.FieldsFunc(script, func(r rune) bool { return r == ';' || r == '\n' }) {
		if err := c.step(strings.TrimSpace(step)); err != nil {
			c.h.t.Fatalf("script step %q: %v", step, err)
		}
	}
}

func (c *Call) step(step string) error {
	verb, arg, _ := strings.Cut(step, " ")
	arg = strings.TrimSpace(arg)
	switch verb {
	case "":
		return nil
	case "start":
		c.Start()
	case "press":
		return c.pressStep(arg)
	case "wait":
		d, err := time.ParseDuration(arg)
		if err != nil {
			return fmt.Errorf("want wait DURATION: %w", err)
		}
		c.Wait(d)
	default:
		return fmt.Errorf("unknown step %q: want start, press or wait", verb)
	}
	return nil
}

// pressStep runs `press "KEYS"` or `press "KEYS" at TS`.
func (c *Call) pressStep(arg string) error {
	quoted, at, timed := strings.Cut(arg, " at ")
	keys, err := strconv.Unquote(strings.TrimSpace(quoted))
	if err != nil {
		return fmt.Errorf("want press \"KEYS\" [at TIMESTAMP]: %w", err)
	}
	if !timed {
		c.Press(keys)
		return nil
	}

	ts, err := strconv.ParseInt(strings.TrimSpace(at), 10, 64)
	if err != nil || ts <= 0 {
		return fmt.Errorf("want a positive timestamp after at, got %q", at)
	}
	c.PressAt(keys, ts)
	return nil
}

// Events returns every step the call has taken.
func (c *Call) Events() []actors.CallEvent {
	c.h.mu.Lock()
	defer c.h.mu.Unlock()
	return append([]actors.CallEvent(nil), c.h.events[c.id]...)
}

// Node returns the node the call is at, or "" before its first key.
func (c *Call) Node() string {
	evs := c.Events()
	if len(evs) == 0 {
		return ""
	}
	last := evs[len(evs)-1]
	if last.Decision != nil {
		return last.Decision.End
	}
	return last.Node
}

// Decision returns the call's decision, or nil while it is still open.
func (c *Call) Decision() *ivrspec.Decision {
	for _, ev := range c.Events() {
		if ev.Decision != nil {
			return ev.Decision
		}
	}
	return nil
}

// Writes returns the writes the platform accepted for this call.
func (c *Call) Writes() []Write {
	var out []Write
	for _, w := range c.h.sink.all() {
		if w.CallID == c.id {
			out = append(out, w)
		}
	}
	return out
}

// Var returns the value last written to variable name for this call, or
// "" if none was.
func (c *Call) Var(name string) string {
	v := ""
	for _, w := range c.Writes() {
		for _, x := range w.Variables {
			if x.Name == name {
				v = x.Value
			}
		}
	}
	return v
}

// sink is the platform, in memory: it accepts every write.
type sink struct {
	mu     sync.Mutex
	writes []Write
}

func (s *sink) Write(_ context.Context, id string, vars []ivrspec.Variable) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writes = append(s.writes, Write{CallID: id, Variables: append([]ivrspec.Variable(nil), vars...)})
	return nil
}

func (s *sink) Retry(error, int) actors.Verdict { return actors.Verdict{} }

func (s *sink) all() []Write {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Write(nil), s.writes...)
}
