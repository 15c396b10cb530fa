package ivrspec

import (
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
	r := strings.NewReplacer("MIN", itoa(min), "MAX", itoa(max), "TERM", term, "TT", tt.String())
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
		{"term timeout consumes a terminator", 4, 4, "#", 2 * time.Second, "1234#", "value=1234"},
		{"term timeout accepts when it passes", 4, 4, "#", 2 * time.Second, "1234~", "value=1234"},
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
		script string
		want   string
	}{
		{"a fast second key belongs to the next node", "0s", "true", "12", `path=["1","2"]`},
		{"a terminator after a zero term timeout goes to the next node", "0s", "true", "1#", `path=["1","#"]`},
		{"a terminator within the term timeout is consumed", "2s", "true", "1#2", `path=["1","2"]`},
		{"a key during the term wait completes and moves on", "2s", "true", "12", `path=["1","2"]`},
		{"barge-in off discards keys during the prompt", "0s", "false", "12~2", `path=["1","2"]`},
		{"barge-in off, silence after the prompt is no-input", "0s", "false", "12~~", "path=timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			src := strings.NewReplacer("TT", tt.tt, "BARGE", tt.barge).Replace(typeaheadFlow)
			d, _, _ := run(t, mustParse(t, src), tt.script)
			if got := vars(d); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

func TestPromptDelaysNoInputTimer(t *testing.T) {
	t.Parallel()
	src := strings.NewReplacer("TT", "0s", "BARGE", "true").Replace(typeaheadFlow)
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
    branches: {"1": account, "0": zero}
    noInput:
      steps: [{prompt: ni1}, {prompt: ni2}]
      fallback: silent
    noMatch:
      steps: [{prompt: nm1}, {}]
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
	tests := []struct {
		name   string
		script string
		want   string
	}{
		{"two reprompts then fallback", "~~~", "to=silent reason=no_input"},
		{"no-match steps repeat the last without a fallback", "5555551", "<none>"},
		{"collect no-match retries then falls back", "112*1*", "to=wrong reason=no_match"},
		{"value written, masked in the path", "11234",
			`account=1234 path=["1","****"] from=account reason=completed`},
		{"node branch wins over a global key", "0", "to=zero"},
		{"preempting global key wins everywhere", "19", `to=operator path=["1","9"] reason=completed`},
		{"a global key turned off at a node is a no-match there", "1*", "<none>"},
		{"back with nothing to go back to is a no-match", "*1", "<none>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d, _, _ := run(t, f, tt.script)
			if got := vars(d); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
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
	want := "ni1/10 nm1/11 ni2/21 /22 /23"
	if strings.Join(got, " ") != want {
		t.Errorf("prompts/counters = %s, want %s", strings.Join(got, " "), want)
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

func TestDuplicateEvents(t *testing.T) {
	t.Parallel()
	s, _ := Example(time.Second).NewSession("c")
	if o := s.Digit('2', 100).Outcome; o != Accepted {
		t.Fatalf("first = %v", o)
	}
	if o := s.Digit('2', 100).Outcome; o != Duplicate {
		t.Errorf("same key, same timestamp = %v, want duplicate", o)
	}
	if o := s.Digit('A', 100).Outcome; o != Accepted {
		t.Errorf("another key, same timestamp = %v, want accepted", o)
	}
	if o := s.Digit('1', 0).Outcome; o != Accepted {
		t.Errorf("no timestamp = %v, want accepted", o)
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
