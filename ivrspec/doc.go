// Package ivrspec is dtmfd's IVR definition language: the file format, its
// loader and validator, and the state machine that walks a call through a
// flow one input at a time.
//
// The package is pure. A Session takes keys (Digit), the firing of its one
// timer (Timeout) or the end of an input collected by the platform
// (EndInput), and returns Effects: the timer to run, the prompt to play,
// and the Decision when the call ends. It has no goroutines, clocks or I/O,
// so every rule below is a table test in session_test.go.
//
// # The file
//
// A flow is YAML (JSON is accepted too), versioned:
//
//	version: 1
//	start: main_menu
//	defaults:                # optional
//	  timeout: 10s           # first-digit (no-input) timeout
//	  interDigitTimeout: 5s  # between keys once the first is in
//	  noInput: {steps: [{prompt: say_again}], fallback: operator}
//	  noMatch: {ignore: true}
//	global:                  # keys that work at every node
//	  "0": {goto: operator}
//	  "*": {back: true}
//	nodes:
//	  main_menu:
//	    type: menu
//	    prompt: welcome
//	    branches: {"1": sales, "2": account}
//	  account:
//	    type: collect
//	    minDigits: 8
//	    maxDigits: 12
//	    terminators: "#"
//	    next: done
//	  done:
//	    type: end
//	    variables:
//	      ivr_selection: ${path}
//	      account: ${value.account}
//
// Node types: menu (one key, a branch per key; keys not listed are a
// no-match), collect (a multi-digit value; then next), end (the call
// ends and its variables are written). Each node may set prompt,
// promptDuration, bargeIn, flush, timeout, interDigitTimeout, noInput,
// noMatch and global overrides ("0": off). Collect nodes set minDigits
// (1), maxDigits (minDigits, at least 1), keys ("0123456789"),
// terminators ("#"), keepTerminator, requireTerminator, clearKey,
// termTimeout (0), pattern (a Go regexp the whole value must match) and
// sensitive. End-node values may refer to what the
// caller entered: ${path}, ${value.NODE}, ${key.NODE}, ${callId}, ${from},
// ${reason} (see parseTemplate). LoadFile reports every problem at once,
// each with file, line and column.
//
// # The rules
//
// Where the leading platforms agree, dtmfd does the same; where they
// differ, the choice is named and, where users need both, configurable.
//
//	rule                                              | dtmfd                          | who does what
//	--------------------------------------------------|--------------------------------|-------------------------------------------------
//	first-digit timeout starts when the prompt ends   | yes (promptDuration)           | VoiceXML timeout; Genesys No Entry Timeout;
//	                                                  |                                | CXone Capture Timeout; Twilio timeout
//	a key during the prompt starts input (barge-in)   | yes, unless bargeIn: false     | VoiceXML bargein; jambonz dtmfBargein
//	barge-in off discards keys during the prompt      | yes                            | VoiceXML bargein="false"; UCCX flush buffer
//	after a reprompt (a step's prompt)                | the no-input timer starts at   | a choice: platforms that play the prompt
//	                                                  | once; promptDuration times     | themselves start it when it ends
//	                                                  | only the node's entry prompt   |
//	inter-digit timeout replaces it after 1st key     | yes                            | VoiceXML interdigittimeout; Genesys Inter-digit;
//	                                                  |                                | CXone InterDigitTimeout; Asterisk TIMEOUT(digit)
//	inter-digit timeout on an incomplete value        | no-match                       | VoiceXML digits grammar
//	inter-digit timeout on a complete value           | accepted                       | VoiceXML; FreeSWITCH play_and_get_digits
//	maxDigits reached                                 | accepted at once, no wait      | Twilio numDigits; VoiceXML length; FreeSWITCH max
//	terminator ends input, not part of the value      | yes; keepTerminator keeps it   | VoiceXML termchar; Twilio finishOnKey (excluded);
//	                                                  |                                | CXone keeps it unless told (the option)
//	terminator before minDigits                       | no-match                       | VoiceXML; jambonz once accepted the short
//	                                                  |                                | value, which its users reported as a bug
//	terminator required (requireTerminator: true)     | maxDigits does not complete;   | FreeSWITCH play_and_get_digits terminators
//	                                                  | inter-digit timeout: no-match; | starting with "="; elsewhere maxDigits
//	                                                  | a key past maxDigits: no-match | completes (the default)
//	clear key (clearKey: "*")                         | empties the keys so far and    | UCCX cancel digit; Amazon Lex
//	                                                  | restarts the first-digit timer | deletionCharacter (which also ends the
//	                                                  | at the same node               | turn, so the bot asks again)
//	terminator alone                                  | no-match (minDigits 0: empty   | VoiceXML no-match; Twilio makes no request
//	                                                  | value accepted)                |
//	terminator timeout after a complete value         | termTimeout (0 = accept now)   | VoiceXML termtimeout
//	key after a complete value, or during termTimeout | goes to the next node          | VoiceXML typeahead buffer; termtimeout 0
//	flush: true at the next node                      | a key that ended the previous  | CXone clearDigits; FreeClimb flush_buffer;
//	                                                  | node's termTimeout is dropped  | VoiceXML clearing its typeahead buffer
//	a key not in a collect's keys                     | no-match at once               | VoiceXML digits grammar; Plivo validDigits
//	pattern                                           | whole value must match, else   | VoiceXML DTMF grammars; FreeSWITCH regexp
//	                                                  | no-match                       |
//	no-input / no-match counters                      | per node; reset on entering a  | VoiceXML <noinput count>, <nomatch count>;
//	                                                  | node (re-entering the same one | FreeSWITCH tries; Asterisk attempts
//	                                                  | too), kept on retry            |
//	which step runs                                   | the n-th event runs step n;    | VoiceXML: the handler with the highest count
//	                                                  | past the last: fallback, else  | not above the current count
//	                                                  | the last step again            |
//	wrong keys ignored without a count                | noMatch: {ignore: true}        | the tutorial's tree; Asterisk Read
//	noInput fallbacks that go round nodes (A, B, A)   | reported when the file loads:  | a choice: a caller who presses
//	                                                  | silence must end the call or   | nothing has no other way out
//	                                                  | stay at one node               |
//	noMatch fallbacks that go round nodes             | allowed: each turn is a key    | a choice: the same as noMatch
//	                                                  | the caller pressed, and a key  | steps without a fallback, which
//	                                                  | the node takes leaves          | repeat at one node for ever
//	global key vs the node's own use of the key       | the node wins unless the key   | VoiceXML <link> at application scope;
//	                                                  | is preempt: true               | Genesys global choices
//	global key overridden or turned off at a node     | node's global: {"0": off}      | VoiceXML document-scoped links
//	back key                                          | global {back: true}: the node  | UCCX, Genesys "previous menu"
//	                                                  | before, its input undone; with |
//	                                                  | nothing before it, a no-match  |
//	repeated event (same call, key, timestamp)        | dropped as a duplicate if it   | LiveKit de-duplicates RFC 4733 events;
//	                                                  | repeats any of the call's last | FreeSWITCH and Asterisk users report
//	                                                  | 16 keys; timestamp 0: never    | doubled digits when a key arrives both
//	                                                  |                                | in-band and as an RFC 2833 event
//	sensitive values                                  | masked in logs, metrics, the   | Amazon Connect "Encrypt entry"
//	                                                  | simulator and ${path}          |
//
// Typeahead needs no buffer in dtmfd: keys arrive one at a time as the
// caller presses them, so a key that follows a completed value is simply
// the next node's first key. The one key that reaches a node before it
// starts is the key that ends the previous collect's termTimeout; flush:
// true drops it. A node that must not take keys pressed during its prompt
// sets bargeIn: false with the prompt's promptDuration.
//
// A key a node uses itself (a branch, a value key, a terminator or the
// clear key) is not a global key there unless the global key preempts;
// a node's own global override on such a key could never fire, so the
// loader reports it.
//
// A sensitive value appears in ${path} as asterisks; it reaches the
// platform only where a template names its node with ${value.NODE}.
package ivrspec
