package web

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dtmfd/dtmfd/actors"
	"github.com/dtmfd/dtmfd/ivrspec"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func noInput(d time.Duration) ivrspec.Timer {
	return ivrspec.Timer{Kind: ivrspec.TimerNoInput, After: d}
}

func TestCallViewApply(t *testing.T) {
	t.Parallel()
	start := actors.CallEvent{CallID: "c", Node: "main_menu", Timer: noInput(2 * time.Second), At: t0}
	tests := []struct {
		name   string
		events []actors.CallEvent
		check  func(t *testing.T, c *callView)
	}{{
		name: "an accepted key moves the call and restarts the timer",
		events: []actors.CallEvent{start, {
			CallID: "c", Node: "department", Key: "2", Outcome: "accepted",
			Timer: noInput(2 * time.Second), At: t0.Add(time.Second),
		}},
		check: func(t *testing.T, c *callView) {
			want := []stepView{{Node: "main_menu", Via: "start"}, {Node: "department", Via: "key", Key: "2"}}
			if !slices.Equal(c.Path, want) {
				t.Errorf("path %+v, want %+v", c.Path, want)
			}
			if len(c.Keys) != 1 || c.Keys[0] != (keyView{Key: "2", Node: "main_menu", Outcome: "accepted"}) {
				t.Errorf("keys %+v, want 2 accepted at main_menu", c.Keys)
			}
			if c.Timer == nil || c.Timer.At != t0.Add(time.Second).UnixMilli() || c.Timer.AfterMs != 2000 {
				t.Errorf("timer %+v, want 2000ms from the key", c.Timer)
			}
		},
	}, {
		name: "an ignored key leaves the running timer alone",
		events: []actors.CallEvent{start, {
			CallID: "c", Node: "main_menu", Key: "9", Outcome: "ignored", At: t0.Add(time.Second),
		}},
		check: func(t *testing.T, c *callView) {
			if c.Timer == nil || c.Timer.At != t0.UnixMilli() {
				t.Errorf("timer %+v, want the one started with the call", c.Timer)
			}
			if len(c.Path) != 1 || c.Keys[0].Outcome != "ignored" {
				t.Errorf("path %+v keys %+v, want no move and the key ignored", c.Path, c.Keys)
			}
		},
	}, {
		name: "a timeout names the timer that ran out",
		events: []actors.CallEvent{start, {
			CallID: "c", Node: "timed_out", Timer: ivrspec.Timer{Kind: ivrspec.TimerStop},
			Decision: &ivrspec.Decision{End: "timed_out", From: "main_menu", Reason: ivrspec.ReasonNoInput,
				Variables: []ivrspec.Variable{{Name: "ivr_status", Value: "timeout_fallback"}}},
			At: t0.Add(2 * time.Second),
		}},
		check: func(t *testing.T, c *callView) {
			if c.Expired != "noInput" || c.Timer != nil {
				t.Errorf("expired %q timer %+v, want noInput and no timer", c.Expired, c.Timer)
			}
			if last := c.Path[len(c.Path)-1]; last.Via != "noInput" {
				t.Errorf("last step %+v, want reached by noInput", last)
			}
			if c.Decision == nil || c.Decision.Variables[0].Value != "timeout_fallback" {
				t.Errorf("decision %+v, want ivr_status timeout_fallback", c.Decision)
			}
		},
	}, {
		name: "the end of a prompt is not an expiry",
		events: []actors.CallEvent{
			{CallID: "c", Node: "welcome", At: t0,
				Timer: ivrspec.Timer{Kind: ivrspec.TimerPrompt, After: time.Second}},
			{CallID: "c", Node: "welcome", Timer: noInput(time.Second), At: t0.Add(time.Second)},
		},
		check: func(t *testing.T, c *callView) {
			if c.Expired != "" || c.Timer.Kind != "noInput" {
				t.Errorf("expired %q timer %+v, want no expiry and the no-input timer", c.Expired, c.Timer)
			}
		},
	}, {
		name: "a sensitive value never leaves masked",
		events: []actors.CallEvent{start, {
			CallID: "c", Node: "done", Key: "*", Outcome: "accepted",
			Timer: ivrspec.Timer{Kind: ivrspec.TimerStop},
			Decision: &ivrspec.Decision{End: "done", Reason: ivrspec.ReasonCompleted,
				Variables: []ivrspec.Variable{{Name: "pin", Value: "4321", Sensitive: true}}},
			At: t0.Add(time.Second),
		}},
		check: func(t *testing.T, c *callView) {
			if v := c.Decision.Variables[0]; v.Value != mask || !v.Sensitive {
				t.Errorf("pin shown as %+v, want %s", v, mask)
			}
		},
	}, {
		name:   "a long call keeps only its latest keys",
		events: append([]actors.CallEvent{start}, repeatKey("5", 100)...),
		check: func(t *testing.T, c *callView) {
			if len(c.Keys) != maxSteps {
				t.Errorf("%d keys kept, want %d", len(c.Keys), maxSteps)
			}
			if c.Keys[len(c.Keys)-1].Key != "5" {
				t.Errorf("last key %+v, want the latest", c.Keys[len(c.Keys)-1])
			}
		},
	}}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := newCallView(tt.events[0])
			for _, ev := range tt.events {
				c.apply(ev)
			}
			tt.check(t, c)
		})
	}
}

func repeatKey(k string, n int) []actors.CallEvent {
	evs := make([]actors.CallEvent, n)
	for i := range evs {
		evs[i] = actors.CallEvent{CallID: "c", Node: "main_menu", Key: k, Outcome: "ignored", At: t0}
	}
	return evs
}

func TestWriteView(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		ev   actors.WriteEvent
		want writeView
	}{{
		name: "delivered",
		ev: actors.WriteEvent{InteractionID: "c1", Latency: 1500 * time.Microsecond,
			Variables: []ivrspec.Variable{{Name: "ivr_status", Value: "completed"}}},
		want: writeView{InteractionID: "c1", OK: true, Status: statusDelivered,
			LatencyMs: ptr(1.5), At: t0.UnixMilli(),
			Variables: []varView{{Name: "ivr_status", Value: "completed"}}},
	}, {
		name: "given up, with a sensitive value",
		ev: actors.WriteEvent{InteractionID: "c2", Err: errors.New("post variables: 503"),
			Variables: []ivrspec.Variable{{Name: "pin", Value: "1234", Sensitive: true}}},
		want: writeView{InteractionID: "c2", Error: "post variables: 503", Status: statusFailed,
			LatencyMs: ptr(0), At: t0.UnixMilli(),
			Variables: []varView{{Name: "pin", Value: mask, Sensitive: true}}},
	}}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := newWriteView(tt.ev, t0)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}

	t.Run("a long error is cut", func(t *testing.T) {
		t.Parallel()
		got := newWriteView(actors.WriteEvent{Err: errors.New(strings.Repeat("x", 1000))}, t0)
		if len(got.Error) > maxError+len("…") {
			t.Errorf("error of %d bytes shown, want at most %d", len(got.Error), maxError)
		}
	})
}

func ptr(f float64) *float64 { return &f }

func TestReceivedView(t *testing.T) {
	t.Parallel()
	decided := &callView{ID: "c1", decided: t0, Decision: &decisionView{Variables: []varView{
		{Name: "account", Value: "12345678"},
		{Name: "pin", Value: mask, Sensitive: true},
	}}}
	got := []ivrspec.Variable{{Name: "account", Value: "12345678"}, {Name: "pin", Value: "7373"}}

	tests := []struct {
		name string
		call *callView
		want writeView
	}{{
		name: "a decided call shows what it did not mark sensitive",
		call: decided,
		want: writeView{InteractionID: "c1", OK: true, Status: statusAccepted,
			LatencyMs: ptr(12.5), At: t0.Add(12500 * time.Microsecond).UnixMilli(),
			Variables: []varView{{Name: "account", Value: "12345678"},
				{Name: "pin", Value: mask, Sensitive: true}}},
	}, {
		name: "a call not seen deciding shows no value and no latency",
		call: &callView{ID: "c1"},
		want: writeView{InteractionID: "c1", OK: true, Status: statusAccepted,
			At: t0.Add(12500 * time.Microsecond).UnixMilli(),
			Variables: []varView{{Name: "account", Value: mask, Sensitive: true},
				{Name: "pin", Value: mask, Sensitive: true}}},
	}, {
		name: "an unknown call shows no value",
		want: writeView{InteractionID: "c1", OK: true, Status: statusAccepted,
			At: t0.Add(12500 * time.Microsecond).UnixMilli(),
			Variables: []varView{{Name: "account", Value: mask, Sensitive: true},
				{Name: "pin", Value: mask, Sensitive: true}}},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w := newReceivedView("c1", got, t0.Add(12500*time.Microsecond), tt.call)
			if !reflect.DeepEqual(w, tt.want) {
				t.Errorf("got %+v, want %+v", w, tt.want)
			}
		})
	}
}
