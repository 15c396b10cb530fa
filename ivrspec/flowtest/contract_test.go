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

// TestPackageDocExample runs the example of the package documentation,
// so that what it promises holds.
func TestPackageDocExample(t *testing.T) {
	flow, err := ivrspec.LoadFile("../examples/bank.yaml", ivrspec.Options{})
	if err != nil {
		t.Fatal(err)
	}
	flowtest.Run(t, flow, func(h *flowtest.Harness) {
		c := h.Call("call-1")
		c.Script(`press "1"; press "12345678#"; wait 5s; press "4321"; press "2"`)
		if got := c.Var("ivr_status"); got != "balance_savings" {
			t.Errorf("ivr_status = %q, want balance_savings", got)
		}
	})
}

// TestRepeatedEvents sends events again, as a platform that delivers one
// twice does, and checks the call takes each key once.
func TestRepeatedEvents(t *testing.T) {
	contract := ivrspec.Example(10 * time.Second)
	bank, err := ivrspec.LoadExample("bank.yaml", ivrspec.Options{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		flow   *ivrspec.Flow
		script string
		end    string
		v      string
		want   string
	}{
		{"a replayed menu key is dropped", contract,
			`press "2A" at 100; press "2A" at 100; press "1" at 102`,
			"completed", "ivr_selection", `["2","A","1"]`},
		{"a replay after the next key is dropped", contract,
			`press "2" at 100; press "A" at 101; press "2" at 100; press "1" at 102`,
			"completed", "ivr_selection", `["2","A","1"]`},
		{"another key at the same timestamp is a new press", contract,
			`press "2" at 100; press "A" at 100; press "1" at 100`,
			"completed", "ivr_selection", `["2","A","1"]`},
		{"the same key at a new timestamp is a new press", bank,
			`press "1" at 100; press "11111111#" at 200; press "1111" at 300; press "1" at 400`,
			"checking", "account", "11111111"},
		{"a replayed account number is dropped", bank,
			`press "1" at 100; press "1234" at 200; press "1234" at 200; press "5678#" at 204; ` +
				`press "4321" at 300; press "1" at 400`,
			"checking", "account", "12345678"},
		{"keys without timestamps are never repeats", bank,
			`press "1"; press "11111111#"; press "1111"; press "1"`,
			"checking", "account", "11111111"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			flowtest.Run(t, tt.flow, func(h *flowtest.Harness) {
				c := h.Call("call-1")
				c.Script(tt.script)
				d := c.Decision()
				if d == nil {
					t.Fatalf("no decision; the call is at %s", c.Node())
				}
				if d.End != tt.end || d.Reason != ivrspec.ReasonCompleted || c.Var(tt.v) != tt.want {
					t.Errorf("ended at %s (%s) with %s %q, want %s (completed) with %q",
						d.End, d.Reason, tt.v, c.Var(tt.v), tt.end, tt.want)
				}
			})
		})
	}
}
