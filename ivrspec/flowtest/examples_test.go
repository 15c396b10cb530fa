package flowtest_test

import (
	"strings"
	"testing"

	"github.com/dtmfd/dtmfd/ivrspec"
	"github.com/dtmfd/dtmfd/ivrspec/flowtest"
)

func load(t *testing.T, name string) *ivrspec.Flow {
	t.Helper()
	f, err := ivrspec.LoadExample(name, ivrspec.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// want lists the variables a call must have written; "" means absent.
type want map[string]string

func check(t *testing.T, c *flowtest.Call, w want) {
	t.Helper()
	if n := len(c.Writes()); n != 1 {
		t.Fatalf("%d writes, want exactly one; the call is at %s", n, c.Node())
	}
	for name, v := range w {
		if got := c.Var(name); got != v {
			t.Errorf("%s = %q, want %q", name, got, v)
		}
	}
}

// TestExampleFile runs the test the package example shows, so that what
// the documentation says a flow test does is what it does.
func TestExampleFile(t *testing.T) {
	testBankCalls(t)
}

func TestBankFlow(t *testing.T) {
	flow := load(t, "bank.yaml")
	tests := []struct {
		name   string
		script string
		want   want
	}{
		{"balance of checking", `press "1"; press "12345678#"; press "4321"; press "1"`,
			want{"ivr_status": "balance_checking", "account": "12345678", "choice": "1", "pin_entered": "true"}},
		{"account number completed by the inter-digit timeout", `press "1"; press "123456789"; wait 3s; press "4321"; press "2"`,
			want{"ivr_status": "balance_savings", "account": "123456789"}},
		{"twelve digits complete at once", `press "1"; press "123456789012"; press "43212"`,
			want{"ivr_status": "balance_savings", "account": "123456789012"}},
		{"a short account number three times reaches the operator",
			`press "1"; press "123#"; press "99#"; press "1#"`,
			want{"ivr_status": "operator", "ivr_from": "account_number", "ivr_reason": "no_match"}},
		{"silence at the account number escalates to the operator", `press "1"; wait 8s; wait 8s; wait 8s`,
			want{"ivr_status": "operator", "ivr_reason": "no_input"}},
		{"0 is a PIN digit, not the operator", `press "1"; press "12345678#"; press "1020"; press "0"`,
			want{"ivr_status": "operator", "ivr_from": "balance_menu"}},
		{"star goes back to the main menu", `press "2"; press "*"; press "9"`,
			want{"ivr_status": "goodbye"}},
		{"three wrong keys at the main menu fail the call", `wait 1s; press "5"; press "7"; press "8"`,
			want{"ivr_status": "failed", "ivr_from": "main_menu", "ivr_reason": "no_match"}},
		{"silence at the main menu fails after two reprompts", `start; wait 8s; wait 8s; wait 8s`,
			want{"ivr_status": "failed", "ivr_from": "main_menu", "ivr_reason": "no_input"}},
		{"two silences at the main menu are only reprompted", `start; wait 8s; wait 8s; press "9"`,
			want{"ivr_status": "goodbye"}},
		{"0 is an account number digit, not the operator",
			`press "1"; press "10000000#"; press "1234"; press "1"`,
			want{"ivr_status": "balance_checking", "account": "10000000"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			flowtest.Run(t, flow, func(h *flowtest.Harness) {
				c := h.Call("bank-1")
				c.Script(tt.script)
				check(t, c, tt.want)
			})
		})
	}
}

func TestBankPINNeverShown(t *testing.T) {
	flowtest.Run(t, load(t, "bank.yaml"), func(h *flowtest.Harness) {
		c := h.Call("bank-2")
		c.Script(`press "1"; press "12345678#"; press "43"`)
		for _, ev := range c.Events() {
			if ev.Node == "pin" && (ev.Digits != "" && ev.Digits != "*" && ev.Digits != "**") {
				t.Errorf("PIN digits shown as %q", ev.Digits)
			}
			if ev.Key == "4" || ev.Key == "3" {
				if ev.Node == "pin" {
					t.Errorf("a PIN key was shown: %+v", ev)
				}
			}
		}
	})
}

func TestSupportFlow(t *testing.T) {
	flow := load(t, "support.yaml")
	tests := []struct {
		name   string
		script string
		want   want
	}{
		{"outage, nested two deep", `start; wait 7s; press "2"; press "1"; press "1"`,
			want{"ivr_status": "outage_informed", "language": "2", "ivr_selection": `["2","1","1"]`}},
		{"keys during the greeting are discarded", `start; press "1"; wait 7s; press "1"; press "2"; press "1"`,
			want{"ivr_status": "balance", "ivr_selection": `["1","2","1"]`}},
		{"0 is a callback number digit, not the agent",
			`start; wait 7s; press "1"; press "1"; press "2"; press "1"; press "0123456789"`,
			want{"ivr_status": "callback", "callback_number": "0123456789"}},
		{"two wrong keys reprompt, the third reaches an agent", `start; wait 7s; press "1"; press "9"; press "9"; press "9"`,
			want{"ivr_status": "agent", "ivr_from": "main_menu", "ivr_reason": "no_match"}},
		{"silence escalates to an agent", `start; wait 7s; wait 6s; wait 6s; wait 6s`,
			want{"ivr_status": "agent", "ivr_from": "welcome", "ivr_reason": "no_input"}},
		{"0 in billing reaches the billing team", `start; wait 7s; press "1"; press "2"; press "0"`,
			want{"ivr_status": "billing_agent"}},
		{"0 elsewhere reaches an agent", `start; wait 7s; press "1"; press "1"; press "0"`,
			want{"ivr_status": "agent", "ivr_from": "internet"}},
		{"troubleshooting waits longer", `start; wait 7s; press "1"; press "1"; press "2"; wait 19s; press "2"`,
			want{"ivr_status": "agent", "ivr_from": "troubleshoot", "ivr_reason": "completed"}},
		{"a first key during an untimed greeting counts", `press "2"; press "1"; press "1"`,
			want{"ivr_status": "outage_informed", "language": "2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			flowtest.Run(t, flow, func(h *flowtest.Harness) {
				c := h.Call("support-1")
				c.Script(tt.script)
				check(t, c, tt.want)
			})
		})
	}
}

// typeaheadPIN asks for a branch code, waiting 2 s for an optional #,
// then a PIN: a PIN key pressed within those 2 s ends the code and is
// the PIN's first digit.
const typeaheadPIN = `
version: 1
start: branch
nodes:
  branch:
    type: collect
    maxDigits: 1
    termTimeout: 2s
    next: pin
  pin:
    type: collect
    minDigits: 4
    sensitive: true
    next: done
  done:
    type: end
    variables: {pin: "${value.pin}", path: "${path}"}
`

// TestTypeaheadPINNeverShown: a PIN key typed ahead, while the node
// before the PIN still waits, is masked like every other PIN key.
func TestTypeaheadPINNeverShown(t *testing.T) {
	flow, err := ivrspec.Parse("pin.yaml", []byte(typeaheadPIN), ivrspec.Options{})
	if err != nil {
		t.Fatal(err)
	}
	flowtest.Run(t, flow, func(h *flowtest.Harness) {
		c := h.Call("pin-1")
		c.Script(`press "7"; press "5"; press "689"`)

		var keys []string
		for _, ev := range c.Events() {
			if ev.Key != "" {
				keys = append(keys, ev.Key)
			}
		}
		if got := strings.Join(keys, " "); got != "7 * * * *" {
			t.Errorf("keys shown %q, want the branch key and four masked PIN keys", got)
		}
		check(t, c, want{"pin": "5689", "path": `["7","****"]`})
	})
}
