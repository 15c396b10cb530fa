// This file is a test of an IVR flow as a project would keep it beside
// its flow file. testBankCalls is a plain function here so that the
// file can be shown whole as the package example; TestExampleFile in
// examples_test.go runs it, so the example is itself a passing test. In
// a project of your own, name it TestBankCalls.
package flowtest_test

import (
	"testing"

	"github.com/dtmfd/dtmfd/ivrspec"
	"github.com/dtmfd/dtmfd/ivrspec/flowtest"
)

func testBankCalls(t *testing.T) {
	flow, err := ivrspec.LoadExample("bank.yaml", ivrspec.Options{})
	if err != nil {
		t.Fatal(err)
	}

	flowtest.Run(t, flow, func(h *flowtest.Harness) {
		// 1 for a balance, the account number ended by #, the PIN, then
		// 2 for the savings account.
		c := h.Call("call-1")
		c.Script(`press "1"; press "12345678#"; press "4321"; press "2"`)
		if got := c.Var("ivr_status"); got != "balance_savings" {
			t.Errorf("ivr_status = %q, want balance_savings", got)
		}
		if got := c.Var("account"); got != "12345678" {
			t.Errorf("account = %q, want 12345678", got)
		}

		// A caller who stays silent at the account number is reprompted
		// twice and then reaches the operator: 24 s of virtual time that
		// pass in milliseconds.
		silent := h.Call("call-2")
		silent.Script(`press "1"; wait 8s; wait 8s; wait 8s`)
		if got := silent.Var("ivr_status"); got != "operator" {
			t.Errorf("ivr_status = %q, want operator", got)
		}
		if got := silent.Var("ivr_reason"); got != "no_input" {
			t.Errorf("ivr_reason = %q, want no_input", got)
		}
	})
}

// Example shows a test of a flow with the harness. flowtest.Run needs
// the *testing.T of a test function, so the test is testBankCalls above
// rather than this function's body.
func Example() {}
