package ivrspec

import (
	"strings"
	"time"
)

// TimerKind names the one timer a session may have running.
type TimerKind uint8

// The timers. TimerKeep is the zero value: an Effects that does not mention
// the timer leaves the running one alone.
const (
	TimerKeep TimerKind = iota
	TimerStop
	TimerPrompt
	TimerNoInput
	TimerInterDigit
	TimerTerminator
)

var timerNames = [...]string{"keep", "stop", "prompt", "noInput", "interDigit", "terminator"}

func (k TimerKind) String() string {
	if int(k) < len(timerNames) {
		return timerNames[k]
	}
	return "unknown"
}

// Timer asks the owner of a session to (re)start or stop its timer. When it
// fires, the owner calls Session.Timeout.
type Timer struct {
	Kind  TimerKind
	After time.Duration
}

// Outcome says what became of one input.
type Outcome uint8

// The outcomes.
const (
	// Accepted: the key was taken (a branch, a digit of a value, a
	// terminator, a global key).
	Accepted Outcome = iota + 1
	// NoMatch: the key was wrong here and counted as a no-match.
	NoMatch
	// Ignored: the key was discarded: a wrong key at a node that ignores
	// them, a key during a prompt without barge-in, or a key after the end.
	Ignored
	// Duplicate: a key with the same timestamp as one of the call's
	// recent keys: the same event delivered twice.
	Duplicate
)

var outcomeNames = [...]string{"", "accepted", "noMatch", "ignored", "duplicate"}

func (o Outcome) String() string {
	if int(o) < len(outcomeNames) {
		return outcomeNames[o]
	}
	return "unknown"
}

// Effects is what one input asks of the session's owner.
type Effects struct {
	Outcome Outcome
	Timer   Timer
	// Prompt is the prompt to play now, if any.
	Prompt string
	// Decision is set when the call has ended.
	Decision *Decision
	// Sensitive is set when the key was handled at a sensitive collect
	// node, including a key typed ahead into one: it must be masked
	// wherever it is shown.
	Sensitive bool
}

// Decision is the end of a call: what to write back to the platform.
type Decision struct {
	// End is the end node reached; From is the node the call was at.
	End  string
	From string
	// Reason is how the end node was reached: completed (by the caller's
	// input), no_input or no_match (by an escalation).
	Reason    string
	Variables []Variable
}

// The reasons a call ends.
const (
	ReasonCompleted = "completed"
	ReasonNoInput   = "no_input"
	ReasonNoMatch   = "no_match"
)

// Variable is one name and value to write. Sensitive values must not be
// logged.
type Variable struct {
	Name      string
	Value     string
	Sensitive bool
}

// PathEntry is one input the caller gave: a menu key, a global key or a
// collected value.
type PathEntry struct {
	Node      string
	Input     string
	Sensitive bool
}

// Masked returns the input, with a sensitive value replaced by asterisks.
func (p PathEntry) Masked() string {
	if p.Sensitive {
		return strings.Repeat("*", len(p.Input))
	}
	return p.Input
}

// Session is one call's walk through a flow. It is a pure state machine:
// time enters only through Timeout, so every rule is testable without a
// clock. A Session is not safe for concurrent use; its owner (the call
// actor) serialises inputs.
type Session struct {
	flow   *Flow
	callID string
	node   *Node
	buf    []byte
	path   []PathEntry

	noInput, noMatch int
	timer            TimerKind
	prompting        bool
	termWait         bool
	reason           string
	done             bool

	// seen holds the call's recent timestamped keys, oldest first, to
	// drop a repeat of any of them. It grows with the keys, up to
	// seenMax.
	seen []SeenKey
}

// seenMax bounds how many recent keys a session remembers. A repeated
// event arrives within a few keys of the first (a retransmission, or the
// same key carried both in-band and as an RFC 4733 event), so a short
// window catches it while a call's memory stays small.
const seenMax = 16

// SeenKey is one key event a session remembers to drop a repeat of it.
type SeenKey struct {
	Key byte
	TS  int64
}

// NewSession starts a call at the flow's start node.
func (f *Flow) NewSession(callID string) (*Session, Effects) {
	s := &Session{flow: f, callID: callID}
	var eff Effects
	s.enter(f.Start, ReasonCompleted, &eff)
	return s, eff
}

// Flow returns the flow the session runs on.
func (s *Session) Flow() *Flow { return s.flow }

// Node returns the node the call is at.
func (s *Session) Node() *Node { return s.node }

// Done reports whether the call has ended.
func (s *Session) Done() bool { return s.done }

// Timer returns the timer that should be running.
func (s *Session) Timer() TimerKind { return s.timer }

// Path returns the inputs taken so far. The caller must not modify it.
func (s *Session) Path() []PathEntry { return s.path }

// Counters returns the no-input and no-match counts at the current node.
func (s *Session) Counters() (noInput, noMatch int) { return s.noInput, s.noMatch }

// Digits returns the keys gathered at the current collect node, masked
// when the node is sensitive.
func (s *Session) Digits() string {
	if s.node.Collect != nil && s.node.Collect.Sensitive {
		return strings.Repeat("*", len(s.buf))
	}
	return string(s.buf)
}

// Digit feeds one key pressed by the caller. ts is the platform's
// timestamp of the key: a key with the timestamp of one of the call's
// last 16 keys is a repeat of that event and is dropped. Zero means no
// timestamp, and such a key is never a repeat.
func (s *Session) Digit(key byte, ts int64) Effects {
	var eff Effects
	eff.Sensitive = sensitive(s.node)
	if s.done {
		eff.Outcome = Ignored
		return eff
	}
	if ts != 0 {
		if s.repeat(key, ts) {
			eff.Outcome = Duplicate
			return eff
		}
		s.remember(key, ts)
	}

	s.digit(key, &eff)
	return eff
}

// repeat reports whether key at ts is one of the recent keys again.
func (s *Session) repeat(key byte, ts int64) bool {
	for _, k := range s.seen {
		if k.Key == key && k.TS == ts {
			return true
		}
	}
	return false
}

// remember adds a key to the recent keys, forgetting the oldest once
// seenMax are kept. The list grows as keys come, so a call that is
// mid-menu after a key or two holds a small one.
func (s *Session) remember(key byte, ts int64) {
	k := SeenKey{Key: key, TS: ts}
	if len(s.seen) == seenMax {
		copy(s.seen, s.seen[1:])
		s.seen[seenMax-1] = k
		return
	}
	s.seen = append(s.seen, k)
}

// Timeout tells the session that its running timer fired. A timer that was
// replaced or stopped must not be delivered; the owner tracks that.
func (s *Session) Timeout() Effects {
	var eff Effects
	if s.done {
		return eff
	}

	switch s.timer {
	case TimerPrompt:
		s.prompting = false
		s.arm(&eff, TimerNoInput, s.node.Timeout)
	case TimerNoInput:
		s.noInput++
		s.escalate(s.node.NoInput, s.noInput, ReasonNoInput, &eff)
	case TimerInterDigit:
		s.complete(&eff)
	case TimerTerminator:
		s.finish(s.value(), &eff)
	}
	return eff
}

// EndInput ends the current input the way a platform's own collection
// ends it: keys gathered so far are completed as when the inter-digit
// timer fires, and no keys at all are a no-input. Ingresses where the
// platform collects the keys and enforces the timeouts (a Studio script,
// a Virtual Agent Hub exchange) use it instead of Timeout.
func (s *Session) EndInput() Effects {
	var eff Effects
	if s.done {
		return eff
	}
	s.prompting = false
	if len(s.buf) == 0 && !s.termWait {
		s.noInput++
		s.escalate(s.node.NoInput, s.noInput, ReasonNoInput, &eff)
		return eff
	}
	if s.termWait {
		s.finish(s.value(), &eff)
		return eff
	}
	s.complete(&eff)
	return eff
}

// Pending reports whether keys have been gathered at the current node
// and not yet taken as a value.
func (s *Session) Pending() bool { return len(s.buf) > 0 }

func (s *Session) digit(key byte, eff *Effects) {
	n := s.node
	eff.Sensitive = eff.Sensitive || sensitive(n)
	if s.prompting {
		if !n.BargeIn {
			eff.Outcome = Ignored
			return
		}
		s.prompting = false
	}

	if g, ok := n.Global[key]; ok && (g.Preempt || !uses(n, key)) {
		s.global(key, g, eff)
		return
	}

	switch n.Kind {
	case KindMenu:
		next := n.Branches[key]
		if next == nil {
			s.wrongKey(eff)
			return
		}
		eff.Outcome = Accepted
		s.path = append(s.path, PathEntry{Node: n.ID, Input: string(key)})
		s.enter(next, ReasonCompleted, eff)
	case KindCollect:
		s.collect(key, eff)
	}
}

// collect applies one key to a collect node.
func (s *Session) collect(key byte, eff *Effects) {
	c := s.node.Collect
	term := strings.IndexByte(c.Terminators, key) >= 0

	if c.ClearKey != 0 && key == c.ClearKey {
		eff.Outcome = Accepted
		s.buf = s.buf[:0]
		s.termWait = false
		s.arm(eff, TimerNoInput, s.node.Timeout)
		return
	}
	if s.termWait {
		s.typeahead(key, term, eff)
		return
	}

	if term {
		if len(s.buf) < c.MinDigits {
			s.wrongKey(eff)
			return
		}
		eff.Outcome = Accepted
		s.finish(s.valueWith(key), eff)
		return
	}
	if strings.IndexByte(c.Keys, key) < 0 {
		s.wrongKey(eff)
		return
	}

	if len(s.buf) == c.MaxDigits {
		// Only with RequireTerminator is a full value still open: a
		// further key makes it too long.
		s.wrongKey(eff)
		return
	}

	eff.Outcome = Accepted
	s.buf = append(s.buf, key)
	switch {
	case len(s.buf) < c.MaxDigits || c.RequireTerminator:
		s.arm(eff, TimerInterDigit, s.node.InterDigit)
	case c.TermTimeout > 0 && c.Terminators != "":
		s.termWait = true
		s.arm(eff, TimerTerminator, c.TermTimeout)
	default:
		s.complete(eff)
	}
}

// typeahead handles a key while an optional terminator is awaited: a
// terminator is consumed; any other key completes the value and belongs
// to the next node, unless that node flushes keys typed ahead of it.
func (s *Session) typeahead(key byte, term bool, eff *Effects) {
	if term {
		eff.Outcome = Accepted
		s.finish(s.valueWith(key), eff)
		return
	}

	taken := len(s.path)
	s.finish(s.value(), eff)
	switch {
	case s.done:
	case len(s.path) > taken && s.node.Flush:
		eff.Outcome = Ignored
	default:
		s.digit(key, eff)
	}
}

// complete ends input at a collect node without a terminator: a value
// long enough and matching the pattern is accepted, anything else, or any
// value where a terminator is required, is a no-match.
func (s *Session) complete(eff *Effects) {
	c := s.node.Collect
	if len(s.buf) < c.MinDigits || c.RequireTerminator {
		s.wrongKey(eff)
		return
	}
	s.finish(s.value(), eff)
}

// finish accepts v if it matches the node's pattern.
func (s *Session) finish(v string, eff *Effects) {
	if p := s.node.Collect.Pattern; p != nil && !p.MatchString(v) {
		s.wrongKey(eff)
		return
	}
	s.accept(v, eff)
}

func (s *Session) accept(v string, eff *Effects) {
	c := s.node.Collect
	s.path = append(s.path, PathEntry{Node: s.node.ID, Input: v, Sensitive: c.Sensitive})
	s.enter(c.Next, ReasonCompleted, eff)
}

func (s *Session) value() string { return string(s.buf) }

// valueWith is the value ended by terminator key t.
func (s *Session) valueWith(t byte) string {
	if s.node.Collect.KeepTerminator {
		return string(append(s.buf, t))
	}
	return string(s.buf)
}

// global applies a global key.
func (s *Session) global(key byte, g GlobalKey, eff *Effects) {
	if !g.Back {
		eff.Outcome = Accepted
		s.path = append(s.path, PathEntry{Node: s.node.ID, Input: string(key)})
		s.enter(g.Goto, ReasonCompleted, eff)
		return
	}

	if len(s.path) == 0 {
		s.wrongKey(eff)
		return
	}
	eff.Outcome = Accepted
	prev := s.path[len(s.path)-1]
	s.path = s.path[:len(s.path)-1]
	s.enter(s.flow.Nodes[prev.Node], ReasonCompleted, eff)
}

// wrongKey handles a key the node cannot take.
func (s *Session) wrongKey(eff *Effects) {
	p := s.node.NoMatch
	if p.Ignore {
		eff.Outcome = Ignored
		return
	}
	eff.Outcome = NoMatch
	s.noMatch++
	s.escalate(p, s.noMatch, ReasonNoMatch, eff)
}

// escalate runs the step of p for the count-th event at this node. As in
// VoiceXML, the step with the highest count not above the current count
// runs: past the last step the fallback is taken, or without one the last
// step repeats.
func (s *Session) escalate(p Policy, count int, reason string, eff *Effects) {
	var step Step
	switch {
	case count <= len(p.Steps):
		step = p.Steps[count-1]
	case p.Fallback != nil:
		s.enter(p.Fallback, reason, eff)
		return
	case len(p.Steps) > 0:
		step = p.Steps[len(p.Steps)-1]
	}

	if step.Goto != nil {
		s.enter(step.Goto, reason, eff)
		return
	}
	s.retry(step.Prompt, eff)
}

// retry waits for input at the same node again, keeping its counters.
// The no-input timer starts at once: a reprompt is short, and keys
// pressed over it count.
func (s *Session) retry(prompt string, eff *Effects) {
	s.buf = s.buf[:0]
	s.termWait = false
	eff.Prompt = prompt
	s.wait(false, eff)
}

// enter moves the call to n, resetting the node's counters.
func (s *Session) enter(n *Node, reason string, eff *Effects) {
	from := s.node
	s.node = n
	s.buf = s.buf[:0]
	s.termWait = false
	s.noInput, s.noMatch = 0, 0
	s.reason = reason

	if n.Kind == KindEnd {
		s.end(from, eff)
		return
	}
	eff.Prompt = n.Prompt
	s.wait(n.Prompt != "", eff)
}

// wait starts the wait for input: the prompt first if one plays, then
// the no-input timer.
func (s *Session) wait(prompted bool, eff *Effects) {
	if prompted && s.node.PromptDuration > 0 {
		s.prompting = true
		s.arm(eff, TimerPrompt, s.node.PromptDuration)
		return
	}
	s.prompting = false
	s.arm(eff, TimerNoInput, s.node.Timeout)
}

func (s *Session) arm(eff *Effects, k TimerKind, d time.Duration) {
	s.timer = k
	eff.Timer = Timer{Kind: k, After: d}
}

// end completes the call at end node s.node.
func (s *Session) end(from *Node, eff *Effects) {
	s.done = true
	s.prompting = false
	s.arm(eff, TimerStop, 0)

	e := ending{callID: s.callID, reason: s.reason, path: s.path}
	if from != nil {
		e.from = from.ID
	}
	vars := make([]Variable, len(s.node.Variables))
	for i, t := range s.node.Variables {
		vars[i].Name = t.Name
		vars[i].Value, vars[i].Sensitive = t.eval(&e)
	}
	eff.Decision = &Decision{End: s.node.ID, From: e.from, Reason: s.reason, Variables: vars}
}

// uses reports whether node n gives key a meaning of its own.
func uses(n *Node, key byte) bool {
	switch n.Kind {
	case KindMenu:
		return n.Branches[key] != nil
	case KindCollect:
		c := n.Collect
		return strings.IndexByte(c.Keys, key) >= 0 || strings.IndexByte(c.Terminators, key) >= 0 ||
			c.ClearKey != 0 && key == c.ClearKey
	}
	return false
}

// sensitive reports whether n collects a value that must be masked.
func sensitive(n *Node) bool {
	return n != nil && n.Collect != nil && n.Collect.Sensitive
}
