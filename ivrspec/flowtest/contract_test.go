package flowtest_test

import (
	"testing"
	"time"

	"github.com/dtmfd/dtmfd/ivrspec"
	"github.com/dtmfd/dtmfd/ivrspec/flowtest"
)

func TestContractFlow(t *testing.T) {
	flow := ivrspec.Example(10 * time.Second)
	tests := []struct {
		name   string
		script string
		status string
		sel    string
		took   time.Duration
	}{
		{"completes", `press "2"; wait 3s; press "A"; wait 9s; press "1"`, "completed", `["2","A","1"]`, 0},
		{"wrong keys are ignored", `press "9"; press "3"; press "C"; press "B1"`, "completed", `["3","B","1"]`, 0},
		{"times out 10s after the last valid key", `press "2"; wait 5s; press "7"; wait 5s`, "timeout_fallback", "", 0},
		{"no timeout a moment too early", `press "2"; wait 9999ms`, "", "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			flowtest.Run(t, flow, func(h *flowtest.Harness) {
				c := h.Call("call-1")
				c.Script(tt.script)
				if got := c.Var("ivr_status"); got != tt.status {
					t.Errorf("ivr_status = %q, want %q", got, tt.status)
				}
				if got := c.Var("ivr_selection"); got != tt.sel {
					t.Errorf("ivr_selection = %q, want %q", got, tt.sel)
				}
				if n := len(c.Writes()); tt.status != "" && n != 1 {
					t.Errorf("%d writes, want exactly one", n)
				}
			})
		})
	}
}

func TestManyCallsAtOnce(t *testing.T) {
	flowtest.Run(t, ivrspec.Example(30*time.Second), func(h *flowtest.Harness) {
		a, b := h.Call("a"), h.Call("b")
		a.Press("1")
		b.Press("2B")
		h.Wait(29 * time.Second)
		a.Press("A1")
		h.Wait(time.Second)
		if a.Var("ivr_status") != "completed" || b.Var("ivr_status") != "timeout_fallback" {
			t.Errorf("a = %q, b = %q: want a completed and b timed out", a.Var("ivr_status"), b.Var("ivr_status"))
		}
		if n := len(h.Writes()); n != 2 {
			t.Errorf("%d writes, want 2", n)
		}
	})
}

// ExampleRun shows a flow test: a script of keys and pauses, then the
// variables the call wrote. It runs inside a test function:
//
//	func TestMenu(t *testing.T) { ... }
func ExampleRun() {
	var t *testing.T // the *testing.T of the test function
	flowtest.Run(t, ivrspec.Example(10*time.Second), func(h *flowtest.Harness) {
		c := h.Call("call-1")
		c.Script(`press "2"; wait 2s; press "A1"`)
		if c.Var("ivr_status") != "completed" {
			t.Errorf("want the call completed, got %q", c.Var("ivr_status"))
		}
	})
}
