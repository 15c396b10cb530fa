package ivrspec

import (
	"regexp"
	"time"
)

// Keys lists every DTMF key, in keypad order.
const Keys = "123A456B789C*0#D"

// ValidKey reports whether k is a DTMF key: 0-9, *, #, A-D.
func ValidKey(k byte) bool {
	switch {
	case k >= '0' && k <= '9', k >= 'A' && k <= 'D', k == '*', k == '#':
		return true
	}
	return false
}

// Kind is what a node does with the caller's keys.
type Kind uint8

// The node kinds.
const (
	// KindMenu takes one key and follows the branch for it.
	KindMenu Kind = iota + 1
	// KindCollect gathers a multi-digit value and then goes to Next.
	KindCollect
	// KindEnd completes the call with its variables.
	KindEnd
)

func (k Kind) String() string {
	switch k {
	case KindMenu:
		return "menu"
	case KindCollect:
		return "collect"
	case KindEnd:
		return "end"
	}
	return "unknown"
}

// Flow is a loaded, validated IVR definition. It is immutable, so calls in
// progress keep the Flow they started with while a new one is loaded.
type Flow struct {
	// Name identifies where the flow came from (a file path, or "example").
	Name string
	// Start is the node every call begins at.
	Start *Node
	// Nodes holds every node by id.
	Nodes map[string]*Node
	// Order lists node ids in definition order, for stable output.
	Order []string
}

// Node is one step of a flow.
type Node struct {
	ID   string
	Kind Kind
	// Prompt is the id of the prompt the platform plays on entry.
	Prompt string
	// PromptDuration is how long that prompt plays on entry. The no-input
	// timer starts when it ends, as on every platform that plays prompts
	// itself. Reprompts after a no-input or no-match do not wait for it.
	PromptDuration time.Duration
	// BargeIn lets keys pressed during the prompt count. Without it they
	// are discarded, as VoiceXML's bargein="false" and UCCX's flush do.
	BargeIn bool
	// Flush discards keys typed ahead of the node: a key that ended the
	// previous node's input and would otherwise be this node's first, as
	// CXone's clearDigits and FreeClimb's flush_buffer do.
	Flush bool

	// Branches maps a key to the node it leads to (menu nodes).
	Branches map[byte]*Node

	// Collect holds the rules of a collect node.
	Collect *Collect

	// Timeout is the first-digit (no-input) timeout.
	Timeout time.Duration
	// InterDigit is the timeout between keys once the first is in.
	InterDigit time.Duration

	// NoInput and NoMatch say what happens on silence and on a wrong key.
	NoInput Policy
	NoMatch Policy

	// Global holds the global keys in force at this node: the flow's own,
	// with this node's overrides applied.
	Global map[byte]GlobalKey

	// Variables are written when an end node is reached.
	Variables []Template
}

// Collect holds the rules of a collect node.
type Collect struct {
	MinDigits int
	MaxDigits int
	// Keys lists the keys that make up a value; others are a no-match.
	Keys string
	// Terminators ends input early; excluded from the value unless
	// KeepTerminator is set.
	Terminators    string
	KeepTerminator bool
	// RequireTerminator makes a terminator the only way to complete a
	// value: reaching MaxDigits does not, and the inter-digit timer
	// firing is a no-match.
	RequireTerminator bool
	// ClearKey, when not zero, empties the keys gathered so far and
	// starts the first-digit timer again.
	ClearKey byte
	// TermTimeout is how long to wait for an optional terminator once
	// MaxDigits keys are in. Zero accepts at once.
	TermTimeout time.Duration
	// Pattern, when set, must match the whole value.
	Pattern *regexp.Regexp
	// Sensitive masks the value in logs, metrics and the simulator.
	Sensitive bool
	// Next is where the call goes with the value.
	Next *Node
}

// Policy says what a node does on no-input or no-match.
type Policy struct {
	// Ignore discards a wrong key without counting it or touching the
	// timer (no-match only).
	Ignore bool
	// Steps run in turn: the n-th event at a node runs Steps[n-1].
	Steps []Step
	// Fallback is where the call goes after the last step; nil means the
	// last step repeats.
	Fallback *Node
}

// Step is one escalation step: reprompt and wait again, or go elsewhere.
type Step struct {
	// Prompt, when set, is played before waiting again.
	Prompt string
	// Goto, when set, leaves the node instead of retrying.
	Goto *Node
}

// GlobalKey is a key that works at every node unless overridden.
type GlobalKey struct {
	// Goto is the node the key leads to; nil with Back set returns to the
	// node before the current one.
	Goto *Node
	Back bool
	// Preempt makes the key win over the node's own use of it (a menu
	// branch or a collect key). Without it the node's use wins.
	Preempt bool
}

// Template is one variable to write at an end node. Its value may refer
// to what the caller entered; see the package documentation.
type Template struct {
	Name  string
	parts []part
}

// part is a literal string or a reference, evaluated in order.
type part struct {
	lit string
	ref refKind
	arg string
}

type refKind uint8

const (
	refNone refKind = iota
	refPath
	refValue
	refKey
	refCallID
	refFrom
	refReason
)
