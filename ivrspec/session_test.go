package ivrspec

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
)

// mustParse loads a flow written in the test.
func mustParse(t *testing.T, src string) *Flow {
	t.Helper()
	f, err := Parse("test.yaml", []byte(src), Options{DefaultTimeout: 10 * time.Second})
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return f
}

// run feeds a script to a new session: each character is a key, except
// '~', which fires the running timer. It returns the decision (nil if
// the call has not ended), the outcomes of the keys, and the session.
func run(t *testing.T, f *Flow, script string) (*Decision, []Outcome, *Session) {
	t.Helper()
	s, eff := f.NewSession("call-1")
	d := eff.Decision
	var outs []Outcome
	for i := 0; i < len(script); i++ {
		if script[i] == '~' {
			eff = s.Timeout()
		} else {
			eff = s.Digit(script[i], int64(i+1))
			outs = append(outs, eff.Outcome)
		}
		if eff.Decision != nil {
			if d != nil {
				t.Fatalf("second decision at step %d", i)
			}
			d = eff.Decision
		}
	}
	return d, outs, s
}

func vars(d *Decision) string {
	if d == nil {
		return "<none>"
	}
	var b strings.Builder
	for i, v := range d.Variables {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(v.Name + "=" + v.Value)
	}
	return b.String()
}

func TestContractExample(t *testing.T) {
	t.Parallel()
	f := Example(10 * time.Second)

	tests := []struct {
		name   string
		script string
		want   string
		node   string
	}{
		{"full path", "2A1", `ivr_selection=["2","A","1"] ivr_status=completed`, "completed"},
		{"other branch", "3B1", `ivr_selection=["3","B","1"] ivr_status=completed`, "completed"},
		{"invalid keys ignored", "9#2CA51", `ivr_selection=["2","A","1"] ivr_status=completed`, "completed"},
		{"silence at start", "~", "ivr_status=timeout_fallback", "timed_out"},
		{"silence mid-path", "2A~", "ivr_status=timeout_fallback", "timed_out"},
		{"invalid keys do not reset the clock", "2A9~", "ivr_status=timeout_fallback", "timed_out"},
		{"keys after completion are ignored", "2A1~1", `ivr_selection=["2","A","1"] ivr_status=completed`, "completed"},
		{"no decision yet", "2A", "<none>", "confirm"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d, _, s := run(t, f, tt.script)
			if got := vars(d); got != tt.want {
				t.Errorf("variables = %s, want %s", got, tt.want)
			}
			if s.Node().ID != tt.node {
				t.Errorf("node = %s, want %s", s.Node().ID, tt.node)
			}
		})
	}
}

func TestContractTimerOnlyFromValidKeys(t *testing.T) {
	t.Parallel()
	f := Example(10 * time.Second)
	s, eff := f.NewSession("c")
	if eff.Timer != (Timer{Kind: TimerNoInput, After: 10 * time.Second}) {
		t.Fatalf("start timer = %+v", eff.Timer)
	}
	if eff := s.Digit('9', 1); eff.Timer.Kind != TimerKeep || eff.Outcome != Ignored {
		t.Errorf("invalid key: %+v, want the timer left alone and the key ignored", eff)
	}
	if eff := s.Digit('1', 2); eff.Timer.Kind != TimerNoInput || eff.Outcome != Accepted {
		t.Errorf("valid key: %+v, want the timer restarted", eff)
	}
	eff = s.Digit('A', 3)
	eff = s.Digit('1', 4)
	if eff.Timer.Kind != TimerStop || eff.Decision == nil {
		t.Errorf("last key: %+v, want the timer stopped and a decision", eff)
	}
}

const collectFlow = `
version: 1
start: pin
defaults:
  timeout: 5s
  interDigitTimeout: 3s
  noInput: {fallback: silent}
  noMatch: {fallback: wrong}
nodes:
  pin:
    type: collect
    minDigits: MIN
    maxDigits: MAX
    terminators: "TERM"
    termTimeout: TT
    EXTRA
    next: done
  done:
    type: end
    variables: {value: "${value.pin}"}
  silent:
    type: end
    variables: {value: no_input}
  wrong:
    type: end
    variables: {value: no_match}
`

func collect(t *testing.T, min, max int, term string, tt time.Duration) *Flow {
	t.Helper()
	return collectWith(t, min, max, term, tt, "")
}

// collectWith is collect with extra fields on the collect node, written
// "field: value; field: value".
func collectWith(t *testing.T, min, max int, term string, tt time.Duration, extra string) *Flow {
	t.Helper()
	r := strings.NewReplacer("MIN", itoa(min), "MAX", itoa(max), "TERM", term, "TT", tt.String(),
		"EXTRA", strings.ReplaceAll(extra, "; ", "\n    "))
	return mustParse(t, r.Replace(collectFlow))
}

func itoa(i int) string { return strconv.Itoa(i) }

// TestCollectRules covers the DTMF collection rules the leading platforms
// agree on; the package documentation cites each.
func TestCollectRules(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		min, max int
		term     string
		tt       time.Duration
		script   string
		want     string
	}{
		{"exactly 4, incomplete at inter-digit timeout is a no-match", 4, 4, "#", 0, "12~", "value=no_match"},
		{"2 to 4, complete at inter-digit timeout is accepted", 2, 4, "#", 0, "12~", "value=12"},
		{"terminator ends input at once, excluded from value", 2, 4, "#", 0, "12#", "value=12"},
		{"terminator before minDigits is a no-match", 3, 4, "#", 0, "12#", "value=no_match"},
		{"terminator alone is a no-match", 1, 4, "#", 0, "#", "value=no_match"},
		{"optional input: terminator alone gives an empty value", 0, 4, "#", 0, "#", "value="},
		{"maxDigits completes without waiting", 4, 4, "", 0, "1234", "value=1234"},
		{"maxDigits with a terminator key and no term timeout", 4, 4, "#", 0, "1234", "value=1234"},
		{"no input at all", 1, 4, "#", 0, "~", "value=no_input"},
		{"key outside the value keys is a no-match", 1, 4, "#", 0, "1*", "value=no_match"},
		{"star as terminator", 1, 4, "*", 0, "12*", "value=12"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d, _, _ := run(t, collect(t, tt.min, tt.max, tt.term, tt.tt), tt.script)
			if got := vars(d); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

// TestCollectOptions covers the rules a collect node can change: keeping
// the terminator, requiring one, and a key that clears the value.
func TestCollectOptions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		min, max int
		term     string
		tt       time.Duration
		extra    string
		script   string
		want     string
	}{
		{"keepTerminator keeps the terminator in the value", 2, 4, "#", 0,
			"keepTerminator: true", "12#", "value=12#"},
		{"keepTerminator keeps a terminator consumed in the term wait", 4, 4, "#", 2 * time.Second,
			"keepTerminator: true", "1234#", "value=1234#"},
		{"required terminator: maxDigits does not complete", 4, 4, "#", 0,
			"requireTerminator: true", "1234", "<none>"},
		{"required terminator: the terminator completes", 4, 4, "#", 0,
			"requireTerminator: true", "1234#", "value=1234"},
		{"required terminator: a complete value at inter-digit timeout is a no-match", 2, 4, "#", 0,
			"requireTerminator: true", "123~", "value=no_match"},
		{"required terminator: a key past maxDigits is a no-match", 4, 4, "#", 0,
			"requireTerminator: true", "12345", "value=no_match"},
		{"required terminator: before minDigits is still a no-match", 3, 4, "#", 0,
			"requireTerminator: true", "12#", "value=no_match"},
		{"clear key empties the value", 4, 4, "#", 0,
			`clearKey: "*"`, "12*3456", "value=3456"},
		{"clear key restarts the first-digit timer", 4, 4, "#", 0,
			`clearKey: "*"`, "12*~", "value=no_input"},
		{"clear key during the term wait", 4, 4, "#", 2 * time.Second,
			`clearKey: "*"`, "1234*5678~", "value=5678"},
		{"clear key with a required terminator", 2, 4, "#", 0,
			`clearKey: "*"; requireTerminator: true`, "1234*56#", "value=56"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := collectWith(t, tt.min, tt.max, tt.term, tt.tt, tt.extra)
			d, _, _ := run(t, f, tt.script)
			if got := vars(d); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

func TestClearKeyTimer(t *testing.T) {
	t.Parallel()
	s, _ := collectWith(t, 4, 4, "#", 0, `clearKey: "*"`).NewSession("c")
	s.Digit('1', 1)
	eff := s.Digit('*', 2)
	if eff.Outcome != Accepted || eff.Timer != (Timer{TimerNoInput, 5 * time.Second}) {
		t.Errorf("clear key: %+v, want it accepted and the 5s first-digit timer started", eff)
	}
	if s.Pending() {
		t.Errorf("keys still pending after the clear key")
	}
}

// termFlow asks for exactly four digits and then waits termTimeout for an
// optional #. Its three timeouts differ, so a wait armed with the wrong
// one shows. The next node takes # and 5 itself, so a key the wait passes
// on leaves the call somewhere else than a key it consumes.
const termFlow = `
version: 1
start: pin
defaults:
  timeout: 5s
  interDigitTimeout: 3s
  noInput: {fallback: silent}
  noMatch: {fallback: wrong}
nodes:
  pin:
    type: collect
    minDigits: 4
    terminators: "#"
    termTimeout: 2s
    next: menu
  menu:
    type: menu
    prompt: menu_prompt
    branches: {"#": hash, "5": five}
  hash: {type: end, variables: {to: hash}}
  five: {type: end, variables: {to: five}}
  silent: {type: end, variables: {to: silent}}
  wrong: {type: end, variables: {to: wrong}}
`

// TestTermTimeout: the fourth of four digits does not end input when the
// node has a termTimeout. The call stays at the node for 2s, the value
// pending, and what ends the wait decides where the next key goes.
func TestTermTimeout(t *testing.T) {
	t.Parallel()
	f := mustParse(t, termFlow)

	tests := []struct {
		name string
		then string // events after "1234"
		node string
		path string
	}{
		{"a terminator within the wait is consumed, not in the value", "#", "menu", "pin:1234"},
		{"the timer firing accepts the value", "~", "menu", "pin:1234"},
		{"a terminator after the wait goes to the next node", "~#", "hash", "pin:1234 menu:#"},
		{"another key completes the value and goes to the next node", "5", "five",
			"pin:1234 menu:5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, _ := f.NewSession("c")
			eff := lastOf(s, "1234")
			if eff.Timer != (Timer{TimerTerminator, 2 * time.Second}) || eff.Decision != nil ||
				s.Node().ID != "pin" || s.Digits() != "1234" {
				t.Fatalf("fourth key: %+v at %s with %q; want a 2s terminator timer, "+
					"still at pin with 1234 pending", eff, s.Node().ID, s.Digits())
			}

			lastOf(s, tt.then)
			if got := pathString(s); s.Node().ID != tt.node || got != tt.path {
				t.Errorf("after %q: at %s with path %s, want at %s with path %s",
					tt.then, s.Node().ID, got, tt.node, tt.path)
			}
		})
	}
}

// lastOf gives s the events of script, each a key or '~' for the running
// timer firing, and returns the effects of the last one.
func lastOf(s *Session, script string) Effects {
	var eff Effects
	for i := 0; i < len(script); i++ {
		if script[i] == '~' {
			eff = s.Timeout()
		} else {
			eff = s.Digit(script[i], 0)
		}
	}
	return eff
}

// pathString writes the path of s as "node:input ...".
func pathString(s *Session) string {
	var parts []string
	for _, p := range s.Path() {
		parts = append(parts, p.Node+":"+p.Masked())
	}
	return strings.Join(parts, " ")
}

func TestCollectTimers(t *testing.T) {
	t.Parallel()
	f := collect(t, 2, 4, "#", 0)
	s, eff := f.NewSession("c")
	if eff.Timer != (Timer{TimerNoInput, 5 * time.Second}) {
		t.Errorf("first-digit timer = %+v, want noInput 5s", eff.Timer)
	}
	eff = s.Digit('1', 1)
	if eff.Timer != (Timer{TimerInterDigit, 3 * time.Second}) {
		t.Errorf("after the first digit = %+v, want the inter-digit timeout to take over", eff.Timer)
	}
}

const typeaheadFlow = `
version: 1
start: first
defaults:
  noMatch: {ignore: true}
  noInput: {fallback: out}
nodes:
  first:
    type: collect
    maxDigits: 1
    terminators: "#"
    termTimeout: TT
    next: second
  second:
    type: menu
    promptDuration: 2s
    bargeIn: BARGE
    flush: FLUSH
    prompt: menu_prompt
    branches: {"2": done, "#": hash}
  done:
    type: end
    variables: {path: "${path}"}
  hash:
    type: end
    variables: {path: "${path}"}
  out:
    type: end
    variables: {path: timeout}
`

func TestTypeaheadAndBargeIn(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		tt     string
		barge  string
		flush  string
		script string
		want   string
		outs   string
	}{
		{"a fast second key belongs to the next node", "0s", "true", "false", "12", `path=["1","2"]`, ""},
		{"a terminator after a zero term timeout goes to the next node", "0s", "true", "false", "1#",
			`path=["1","#"]`, ""},
		{"a terminator within the term timeout is consumed", "2s", "true", "false", "1#2", `path=["1","2"]`, ""},
		{"a key during the term wait completes and moves on", "2s", "true", "false", "12",
			`path=["1","2"]`, "accepted accepted"},
		{"barge-in off discards keys during the prompt", "0s", "false", "false", "12~2", `path=["1","2"]`, ""},
		{"barge-in off, silence after the prompt is no-input", "0s", "false", "false", "12~~", "path=timeout", ""},
		{"flush drops the key typed ahead in the term wait", "2s", "true", "true", "12",
			"<none>", "accepted ignored"},
		{"flush: a key after the node started counts", "2s", "true", "true", "12~2",
			`path=["1","2"]`, "accepted ignored accepted"},
		{"flush keeps a key pressed once the node has started", "0s", "true", "true", "12",
			`path=["1","2"]`, "accepted accepted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			src := strings.NewReplacer("TT", tt.tt, "BARGE", tt.barge, "FLUSH", tt.flush).Replace(typeaheadFlow)
			d, outs, _ := run(t, mustParse(t, src), tt.script)
			if got := vars(d); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
			if got := outcomes(outs); tt.outs != "" && got != tt.outs {
				t.Errorf("outcomes %s, want %s", got, tt.outs)
			}
		})
	}
}

func outcomes(outs []Outcome) string {
	s := make([]string, len(outs))
	for i, o := range outs {
		s[i] = o.String()
	}
	return strings.Join(s, " ")
}

// TestSensitiveEffect checks that a key is marked sensitive wherever it
// is handled at a sensitive node, including a key typed ahead into one,
// so that its owner masks it.
func TestSensitiveEffect(t *testing.T) {
	t.Parallel()
	src := `
version: 1
start: menu
nodes:
  menu: {type: menu, branches: {"1": first}}
  first: {type: collect, maxDigits: 1, termTimeout: 2s, next: pin}
  pin: {type: collect, minDigits: 4, sensitive: true, next: done}
  done: {type: end, variables: {pin: "${value.pin}"}}
`
	s, _ := mustParse(t, src).NewSession("c")
	var got []string
	for i, k := range []byte("17550") {
		eff := s.Digit(k, int64(i+1))
		got = append(got, fmt.Sprintf("%c:%v", k, eff.Sensitive))
	}
	want := "1:false 7:false 5:true 5:true 0:true"
	if strings.Join(got, " ") != want {
		t.Errorf("sensitive per key = %s, want %s", strings.Join(got, " "), want)
	}
}

func TestPromptDelaysNoInputTimer(t *testing.T) {
	t.Parallel()
	src := strings.NewReplacer("TT", "0s", "BARGE", "true", "FLUSH", "false").Replace(typeaheadFlow)
	s, _ := mustParse(t, src).NewSession("c")
	eff := s.Digit('1', 1)
	if eff.Prompt != "menu_prompt" || eff.Timer != (Timer{TimerPrompt, 2 * time.Second}) {
		t.Fatalf("entering second: %+v, want its prompt and a 2s prompt timer", eff)
	}
	eff = s.Timeout()
	if eff.Timer != (Timer{TimerNoInput, 10 * time.Second}) {
		t.Errorf("after the prompt: %+v, want the no-input timer to start", eff.Timer)
	}
}

const retryFlow = `
version: 1
start: menu
global:
  "0": {goto: operator}
  "*": {back: true}
  "9": {goto: operator, preempt: true}
nodes:
  menu:
    type: menu
    prompt: main
    branches: {"1": account, "0": zero, "9": nine}
    noInput:
      steps: [{prompt: ni1}, {prompt: ni2}]
      fallback: silent
    noMatch:
      steps: [{prompt: nm1}, {prompt: nm2}]
  account:
    type: collect
    minDigits: 4
    maxDigits: 4
    keys: "0123456789"
    sensitive: true
    next: done
    noMatch: {steps: [{prompt: again}], fallback: wrong}
    noInput: {fallback: silent}
    global: {"*": "off"}
  done:
    type: end
    variables:
      account: ${value.account}
      path: ${path}
      from: ${from}
      reason: ${reason}
  operator:
    type: end
    variables: {to: operator, path: "${path}", reason: "${reason}"}
  zero:
    type: end
    variables: {to: zero}
  nine:
    type: end
    variables: {to: nine}
  silent:
    type: end
    variables: {to: silent, reason: "${reason}"}
  wrong:
    type: end
    variables: {to: wrong, reason: "${reason}"}
`

func TestEscalation(t *testing.T) {
	t.Parallel()
	f := mustParse(t, retryFlow)
	// node is where the call is at the end, last the outcome of the last
	// key, and noMatch the no-match count there.
	tests := []struct {
		name    string
		script  string
		want    string
		node    string
		last    Outcome
		noMatch int
	}{
		{"two reprompts then fallback", "~~~", "to=silent reason=no_input", "silent", 0, 0},
		{"no-match steps repeat the last without a fallback", "5555551", "<none>",
			"account", Accepted, 0},
		{"collect no-match retries then falls back", "112*1*", "to=wrong reason=no_match",
			"wrong", NoMatch, 0},
		{"value written, masked in the path", "11234",
			`account=1234 path=["1","****"] from=account reason=completed`, "done", Accepted, 0},
		{"node branch wins over a global key", "0", "to=zero", "zero", Accepted, 0},
		{"preempting global key wins over a collect key", "19",
			`to=operator path=["1","9"] reason=completed`, "operator", Accepted, 0},
		{"preempting global key wins over a menu branch", "9",
			`to=operator path=["9"] reason=completed`, "operator", Accepted, 0},
		{"a global key turned off at a node is a no-match there", "1*", "<none>",
			"account", NoMatch, 1},
		{"back with nothing to go back to is a no-match", "*", "<none>", "menu", NoMatch, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d, outs, s := run(t, f, tt.script)
			if got := vars(d); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}

			var last Outcome
			if len(outs) > 0 {
				last = outs[len(outs)-1]
			}
			_, nm := s.Counters()
			if s.Node().ID != tt.node || last != tt.last || nm != tt.noMatch {
				t.Errorf("at %s, last key %v, no-match count %d; want at %s, %v, %d",
					s.Node().ID, last, nm, tt.node, tt.last, tt.noMatch)
			}
		})
	}
}

func TestEscalationPrompts(t *testing.T) {
	t.Parallel()
	s, eff := mustParse(t, retryFlow).NewSession("c")
	if eff.Prompt != "main" {
		t.Fatalf("entry prompt = %q", eff.Prompt)
	}
	var got []string
	for _, in := range []string{"~", "5", "~", "5", "5"} {
		if in == "~" {
			eff = s.Timeout()
		} else {
			eff = s.Digit(in[0], 0)
		}
		ni, nm := s.Counters()
		got = append(got, eff.Prompt+"/"+itoa(ni)+itoa(nm))
	}
	// Past its last step, a policy without a fallback runs that step
	// again: nm2 repeats.
	want := "ni1/10 nm1/11 ni2/21 nm2/22 nm2/23"
	if strings.Join(got, " ") != want {
		t.Errorf("prompts/counters = %s, want %s", strings.Join(got, " "), want)
	}
}

func TestBackWithNothingBefore(t *testing.T) {
	t.Parallel()
	s, _ := mustParse(t, retryFlow).NewSession("c")
	eff := s.Digit('*', 1)
	ni, nm := s.Counters()
	if eff.Outcome != NoMatch || eff.Prompt != "nm1" || ni != 0 || nm != 1 || s.Node().ID != "menu" {
		t.Errorf("back at the start: %+v, counters %d/%d at %s; "+
			"want a no-match counted, nm1 played, still at menu", eff, ni, nm, s.Node().ID)
	}
}

func TestCountersResetOnSameNode(t *testing.T) {
	t.Parallel()
	src := `
version: 1
start: m
nodes:
  m:
    type: menu
    branches: {"1": m, "2": out}
    noMatch: {steps: [{prompt: first}, {prompt: second}], fallback: out}
  out: {type: end, variables: {x: y}}
`
	s, _ := mustParse(t, src).NewSession("c")
	var got []string
	for i, k := range []byte("919") {
		eff := s.Digit(k, int64(i+1))
		_, nm := s.Counters()
		got = append(got, fmt.Sprintf("%s/%d", eff.Prompt, nm))
	}
	if want := "first/1 /0 first/1"; strings.Join(got, " ") != want {
		t.Errorf("prompt/no-match count = %s, want %s: re-entering m starts its count again",
			strings.Join(got, " "), want)
	}
}

// TestRepromptStartsNoInputTimer: a step's prompt does not wait for the
// entry prompt's promptDuration; the no-input timer starts at once.
func TestRepromptStartsNoInputTimer(t *testing.T) {
	t.Parallel()
	src := `
version: 1
start: m
nodes:
  m:
    type: menu
    prompt: welcome
    promptDuration: 4s
    timeout: 6s
    branches: {"1": out}
    noInput: {steps: [{prompt: again}]}
    noMatch: {steps: [{prompt: wrong}]}
  out: {type: end, variables: {x: y}}
`
	s, entry := mustParse(t, src).NewSession("c")
	effs := []Effects{entry, s.Timeout(), s.Timeout(), s.Digit('5', 1)}

	names := []string{"entry", "prompt played", "no input", "no match"}
	want := []string{"welcome prompt 4s", " noInput 6s", "again noInput 6s", "wrong noInput 6s"}
	for i, eff := range effs {
		got := fmt.Sprintf("%s %s %v", eff.Prompt, eff.Timer.Kind, eff.Timer.After)
		if got != want[i] {
			t.Errorf("%s: prompt and timer %q, want %q", names[i], got, want[i])
		}
	}
}

func TestCountersResetOnReentry(t *testing.T) {
	t.Parallel()
	s, _ := mustParse(t, retryFlow).NewSession("c")
	s.Timeout()
	s.Digit('1', 0)
	if ni, _ := s.Counters(); ni != 0 {
		t.Fatalf("counter carried into a new node: %d", ni)
	}
	s2, _ := mustParse(t, retryFlow).NewSession("c2")
	s2.Digit('1', 0)
	s2.Digit('1', 0)
	if s2.Node().ID != "account" || s2.Digits() != "*" {
		t.Errorf("sensitive digits shown as %q at %s, want masked", s2.Digits(), s2.Node().ID)
	}
}

// TestCountsRestartOnReturn: a call that leaves a node and comes back to
// it starts the node's counts again, so its next silence or wrong key
// runs the first step, not the one after the count it left with.
func TestCountsRestartOnReturn(t *testing.T) {
	t.Parallel()
	src := `
version: 1
start: a
global: {"*": {back: true}}
nodes:
  a:
    type: menu
    branches: {"1": b, "2": out}
    noInput: {steps: [{prompt: silent1}, {prompt: silent2}], fallback: out}
    noMatch: {steps: [{prompt: wrong1}, {prompt: wrong2}], fallback: out}
  b:
    type: menu
    branches: {"1": a, "2": out}
  out: {type: end, variables: {x: y}}
`
	f := mustParse(t, src)

	tests := []struct {
		name    string
		script  string
		prompt  string
		noInput int
		noMatch int
	}{
		{"silence twice without leaving runs the second step", "~~", "silent2", 2, 0},
		{"silence after a back key returns runs the first step", "~1*~", "silent1", 1, 0},
		{"silence after a branch returns runs the first step", "~11~", "silent1", 1, 0},
		{"a wrong key after a back key returns runs the first step", "91*9", "wrong1", 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, _ := f.NewSession("c")
			eff := lastOf(s, tt.script)
			ni, nm := s.Counters()
			if s.Node().ID != "a" || eff.Prompt != tt.prompt ||
				ni != tt.noInput || nm != tt.noMatch {
				t.Errorf("at %s, prompt %q, counts %d/%d; want at a, %q, %d/%d",
					s.Node().ID, eff.Prompt, ni, nm, tt.prompt, tt.noInput, tt.noMatch)
			}
		})
	}
}

func TestBackKey(t *testing.T) {
	t.Parallel()
	src := `
version: 1
start: a
global: {"*": {back: true}}
nodes:
  a: {type: menu, branches: {"1": b}}
  b: {type: menu, branches: {"2": c}}
  c: {type: menu, branches: {"3": end}}
  end: {type: end, variables: {path: "${path}"}}
`
	d, outs, _ := run(t, mustParse(t, src), "12**123")
	if got := vars(d); got != `path=["1","2","3"]` {
		t.Errorf("got %s, want the path without the keys undone", got)
	}
	if outs[2] != Accepted || outs[3] != Accepted {
		t.Errorf("back keys: %v", outs)
	}
}

// press feeds events written "key@timestamp ..." to s. It returns the
// outcomes and the decision, if one was made.
func press(t *testing.T, s *Session, events string) ([]Outcome, *Decision) {
	t.Helper()
	var outs []Outcome
	var d *Decision
	for _, ev := range strings.Fields(events) {
		k, ts, ok := strings.Cut(ev, "@")
		n, err := strconv.ParseInt(ts, 10, 64)
		if !ok || len(k) != 1 || err != nil {
			t.Fatalf("bad event %q", ev)
		}
		eff := s.Digit(k[0], n)
		outs = append(outs, eff.Outcome)
		if eff.Decision != nil {
			d = eff.Decision
		}
	}
	return outs, d
}

// sixteen is 16 keys with timestamps 1 to 16: as many as a call
// remembers.
const sixteen = "1@1 2@2 3@3 4@4 5@5 6@6 7@7 8@8 9@9 0@10 1@11 2@12 3@13 4@14 5@15 6@16"

func TestDuplicateEvents(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		digits int
		events string
		want   string
		last   Outcome
	}{
		{"an adjacent repeat is dropped", 4, "1@1 1@1 2@2 3@3 4@4", "value=1234", Accepted},
		{"a non-adjacent replay is dropped", 4, "1@1 2@2 1@1 2@2 3@3 4@4", "value=1234", Accepted},
		{"a replay of the whole input is dropped", 4, "1@1 2@2 3@3 1@1 2@2 3@3 4@4", "value=1234", Accepted},
		{"the same key at a new timestamp is a new press", 4, "1@1 1@2 1@3 1@4", "value=1111", Accepted},
		{"another key at the same timestamp is a new press", 4, "1@7 2@7 3@7 4@7", "value=1234", Accepted},
		{"timestamp zero is never a repeat", 4, "1@0 1@0 1@0 1@0", "value=1111", Accepted},
		{"the 16th key back is remembered", 18, sixteen + " 1@1", "<none>", Duplicate},
		{"the 17th key back is forgotten", 18, sixteen + " 7@17 1@1", "value=123456789012345671", Accepted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, _ := collect(t, tt.digits, tt.digits, "#", 0).NewSession("c")
			outs, d := press(t, s, tt.events)
			if got := vars(d); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
			if got := outs[len(outs)-1]; got != tt.last {
				t.Errorf("last key %v, want %v", got, tt.last)
			}
		})
	}
}

// TestDuplicateMemoryBounded: however many keys a call sends, it keeps
// only the last 16 to compare new ones with.
func TestDuplicateMemoryBounded(t *testing.T) {
	t.Parallel()
	s, _ := Example(time.Second).NewSession("c")
	for i := 1; i <= 1000; i++ {
		s.Digit('9', int64(i))
	}
	st := s.State()
	if len(st.Seen) != seenMax || st.Seen[0].TS != 1000-seenMax+1 || st.LastTS != 1000 {
		t.Errorf("remembered %d keys, oldest %v, last %d: want the last %d",
			len(st.Seen), st.Seen[0], st.LastTS, seenMax)
	}
	if o := s.Digit('9', 1000-seenMax+1).Outcome; o != Duplicate {
		t.Errorf("the oldest remembered key again = %v, want duplicate", o)
	}
}

func TestPatternValidation(t *testing.T) {
	t.Parallel()
	src := `
version: 1
start: code
nodes:
  code:
    type: collect
    minDigits: 1
    maxDigits: 2
    pattern: '[12]'
    next: ok
    noMatch: {fallback: bad}
  ok: {type: end, variables: {v: "${value.code}"}}
  bad: {type: end, variables: {v: bad}}
`
	f := mustParse(t, src)
	for script, want := range map[string]string{"1~": "v=1", "5~": "v=bad", "12": "v=bad", "2#": "v=2"} {
		d, _, _ := run(t, f, script)
		if got := vars(d); got != want {
			t.Errorf("%q: got %s, want %s", script, got, want)
		}
	}
}

func TestEndInput(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		keys   string
		want   string
		isDone bool
	}{
		{"no keys is a no-input", "", "value=no_input", true},
		{"a complete value is accepted", "12", "value=12", true},
		{"a short value is a no-match", "1", "value=no_match", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, _ := collect(t, 2, 4, "#", 0).NewSession("c")
			for i := 0; i < len(tt.keys); i++ {
				s.Digit(tt.keys[i], 0)
			}
			if s.Pending() != (tt.keys != "") {
				t.Errorf("pending = %v with keys %q", s.Pending(), tt.keys)
			}
			eff := s.EndInput()
			if got := vars(eff.Decision); got != tt.want || s.Done() != tt.isDone {
				t.Errorf("got %s (done %v), want %s", got, s.Done(), tt.want)
			}
		})
	}
}
