package ivrspec_test

import (
	"fmt"

	"github.com/dtmfd/dtmfd/ivrspec"
)

// A flow is parsed once and each call walks it in a Session. The session
// is pure: its owner feeds it keys and timer firings and carries out the
// Effects, so a flow can be stepped through without a clock.
func ExampleParse() {
	const src = `
version: 1
start: menu
defaults:
  timeout: 5s
  noMatch: {steps: [{prompt: not_an_option}], fallback: agent}
global:
  "0": {goto: agent}
nodes:
  menu:
    type: menu
    prompt: main_menu
    branches: {"1": pin}
  pin:
    type: collect
    prompt: enter_pin
    minDigits: 4
    sensitive: true
    next: done
  done:
    type: end
    variables: {pin: "${value.pin}", path: "${path}"}
  agent:
    type: end
    variables: {ivr_status: agent}
`
	flow, err := ivrspec.Parse("pin.yaml", []byte(src), ivrspec.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}

	s, eff := flow.NewSession("call-1")
	fmt.Printf("start: play %s, %s timer %v\n", eff.Prompt, eff.Timer.Kind, eff.Timer.After)

	eff = s.Digit('7', 1)
	fmt.Printf("7: %s, play %s\n", eff.Outcome, eff.Prompt)
	eff = s.Digit('7', 1)
	fmt.Printf("7 again, same timestamp: %s\n", eff.Outcome)

	for i, k := range []byte("12045") {
		eff = s.Digit(k, int64(10+i))
		fmt.Printf("%c: %s at %s, digits %q\n", k, eff.Outcome, s.Node().ID, s.Digits())
	}

	for _, v := range eff.Decision.Variables {
		fmt.Printf("write %s=%s (sensitive %v)\n", v.Name, v.Value, v.Sensitive)
	}
	// Output:
	// start: play main_menu, noInput timer 5s
	// 7: noMatch, play not_an_option
	// 7 again, same timestamp: duplicate
	// 1: accepted at pin, digits ""
	// 2: accepted at pin, digits "*"
	// 0: accepted at pin, digits "**"
	// 4: accepted at pin, digits "***"
	// 5: accepted at done, digits ""
	// write pin=2045 (sensitive true)
	// write path=["1","****"] (sensitive false)
}
