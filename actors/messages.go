package actors

import (
	"context"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/dtmfd/dtmfd/ivrspec"
)

// Digit is one key pressed on one call, from any ingress.
type Digit struct {
	CallID string
	Key    byte
	// Timestamp is the platform's time of the key in UNIX milliseconds;
	// a repeat of the same key with the same timestamp is dropped.
	Timestamp int64
	// Received is when dtmfd read the key; latencies are measured from it.
	Received time.Time
}

// Begin starts a call before its first key, so that its first prompt and
// timers run from the moment the call reached the IVR. A call that gets
// a key first starts at that key instead.
type Begin struct {
	CallID   string
	Received time.Time
}

// Write is a decision on its way to the platform.
type Write struct {
	// ID identifies the decision, for logs and dead letters.
	ID            string
	InteractionID string
	Variables     []ivrspec.Variable
	// DigitAt is when the deciding input was received (or the timer
	// fired); DecidedAt is when the call actor decided.
	DigitAt   time.Time
	DecidedAt time.Time
}

// Verdict is a sink's answer to a failed write.
type Verdict struct {
	Retry  bool
	After  time.Duration
	Reason string
}

// Sink delivers variable writes to the platform. Write is called from the
// writer pool's workers, one call at a time per worker; it may block.
type Sink interface {
	Write(ctx context.Context, interactionID string, vars []ivrspec.Variable) error
	// Retry decides, for the attempt-th failure err, whether and when to
	// try again. It may act on the failure (for example drop a rejected
	// token) before answering.
	Retry(err error, attempt int) Verdict
}

// Journal keeps decisions on disk from the moment a call decides until
// the platform accepts them, so a crash loses none.
type Journal interface {
	// Record stores w durably before returning.
	Record(w *Write) error
	// Remove drops decisions that were delivered or dead-lettered.
	Remove(ids []string) error
}

// DeadLetter is a write given up on: the variables of one or more merged
// decisions for one interaction, with why they were not delivered.
type DeadLetter struct {
	InteractionID string
	Variables     []ivrspec.Variable
	DecisionIDs   []string
	// DecidedAt is when the earliest of the decisions was made.
	DecidedAt time.Time
	FailedAt  time.Time
	Attempts  int
	Err       error
}

// timerFired is a call's timer going off. gen is the generation it was
// armed with; a later arm or a stop makes it stale.
type timerFired struct{ gen uint32 }

// ended tells the ingress that a call is over, so that a late key for it
// is refused rather than starting a new call. When a Step ended the call,
// requestID and reply are that Step's, so a repeat of it gets the same
// reply.
type ended struct {
	callID    string
	requestID string
	reply     *StepReply
}

// drainRequest asks the ingress to refuse new calls and answer when no
// call is open.
type drainRequest struct{}

type drained struct{}

// stopCallsRequest asks the ingress to refuse new calls, stop every open
// call, and answer, as drainRequest does, once none is left.
type stopCallsRequest struct{}

// flushRequest asks the writer to answer once nothing is waiting; with
// final set, it then stops taking new work.
type flushRequest struct{ final bool }

type flushed struct{}

// abandonRequest asks the writer to dead-letter everything still held.
type abandonRequest struct{ reason string }

// attempt is one write handed to a worker.
type attempt struct {
	id      string
	vars    []ivrspec.Variable
	attempt int
	// decisions are the ids of the writes merged into this attempt.
	decisions []string
}

// attemptDone is a worker's report of an attempt.
type attemptDone struct {
	id      string
	err     error
	latency time.Duration
}

// retryDue wakes a write whose backoff has passed.
type retryDue struct{ id string }

// statsRequest asks an actor for its counts; used by health checks.
type statsRequest struct{}

// callStopped tells the ingress that a call actor it spawned stopped,
// after its last message.
type callStopped struct{ who *actor.PID }

// Stats is a snapshot of the engine's load.
type Stats struct {
	OpenCalls int
	Backlog   int
	InFlight  int
}

// Step is one turn of a call whose keys the platform collects itself (a
// Studio script's Capture action, a Virtual Agent Hub exchange): the keys
// it captured, then the end of that input.
type Step struct {
	CallID string
	// RequestID identifies a turn that the platform may send again, as
	// when its reply was lost. A Step with the RequestID of the call's
	// last Step is answered with that Step's reply and changes nothing.
	// Empty applies every Step.
	RequestID string
	// Keys are the keys captured this turn, in order; empty means the
	// caller pressed nothing before the platform's timeout.
	Keys string
	// Hangup ends the call without a decision: the caller is gone.
	Hangup   bool
	Received time.Time
	// At names the node whose prompt the keys answer, when the platform
	// learned it from an earlier reply. A call waiting at another node
	// applies nothing and answers with its own node, marked Elsewhere. A
	// call that is not open starts at At instead of the flow's start (the
	// process that ran it is gone), marked Resumed; the keys it took
	// before are not known.
	At string
	// Existing asks for an open call only: a call that is not open is not
	// started, and the reply is marked Unknown.
	Existing bool
}

// StepReply is the call's state after a Step: what the platform should
// do next.
type StepReply struct {
	// Node is the node now waiting for input; nil once the call ended.
	Node *ivrspec.Node
	// Prompt is the prompt to play before collecting, if any.
	Prompt string
	// Decision is set when this step ended the call.
	Decision *ivrspec.Decision
	// Ended reports that the call is over (decided now or before, or hung up).
	Ended   bool
	NoInput int
	NoMatch int
	// Unknown reports that the call was not open and the Step, which
	// asked for an Existing call, started none.
	Unknown bool
	// Elsewhere reports that the call waits at another node than the
	// Step's At, so the Step's keys were not applied.
	Elsewhere bool
	// Resumed reports that the Step started the call at its At.
	Resumed bool
}

// clone returns a copy of r, so that a reply given again is not shared
// with whoever got it first.
func (r *StepReply) clone() *StepReply {
	c := *r
	return &c
}
