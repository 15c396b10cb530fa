package actors

import (
	"context"
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/google/uuid"

	"github.com/dtmfd/dtmfd/ivrspec"
	"github.com/dtmfd/dtmfd/transport/metrics"
)

// call is the actor that owns one call's IVR session: its node, path,
// counters and its one timer. Nothing about a call lives outside it.
type call struct {
	sh   *shared
	id   string
	flow *ivrspec.Flow
	sess *ivrspec.Session

	// gen numbers the armed timer; a timerFired with another number is
	// stale and ignored, so a stopped or replaced timer never fires.
	gen       uint32
	stopTimer func() bool
	// deadline is when the armed timer fires, saved with the call in a
	// cluster so that another member can arm it again.
	deadline time.Time

	keys      int
	lastInput time.Time

	// platformTimed calls are driven by Steps: the platform collects keys
	// and enforces the timeouts, so the only timer here is the idle limit.
	platformTimed bool
	// prompt is the last prompt asked for, returned to the next Step.
	prompt string
	// begun is set when the call was started by Begin, before any key.
	begun bool
	// fresh is set from the call's start until its first Step, which may
	// move it to the node the platform names.
	fresh bool

	// outbox holds the decision of a clustered call until its state is
	// saved; the grain sends it then. Unused on a single node.
	outbox *Write
	// inputAt is when the deciding input was received.
	inputAt time.Time

	// lastRequest and lastReply are the last Step that carried a request
	// id and the reply it got, given again if the platform repeats it.
	lastRequest string
	lastReply   *StepReply
	// over is set once the call decided, hung up or was abandoned: it
	// takes no more input. told is set once the ingress knows.
	over bool
	told bool

	// ingress is told when the call actor stopped; nil for a cluster's
	// call grains, which the cluster tracks.
	ingress *actor.PID
}

func newCall(sh *shared, id string, flow *ivrspec.Flow, platformTimed bool) *call {
	return &call{sh: sh, id: id, flow: flow, platformTimed: platformTimed}
}

// Receive handles the call's messages.
func (c *call) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		c.start(ctx)
	case *Begin:
		c.begun = true
	case *Digit:
		c.digit(ctx, m)
	case *timerFired:
		c.timeout(ctx, m)
	case *Step:
		c.step(ctx, m)
	case *actor.Stopping:
		c.cancelTimer()
	case *actor.Stopped:
		c.sh.metrics.CallClosed()
		if c.ingress != nil {
			ctx.Send(c.ingress, &callStopped{who: ctx.Self()})
		}
	}
	if c.over {
		c.tell(ctx, "", nil)
	}
}

func (c *call) start(ctx actor.Context) {
	c.sh.metrics.CallOpened()
	c.lastInput = c.sh.clock.Now()

	sess, eff := c.flow.NewSession(c.id)
	c.sess = sess
	c.fresh = true
	c.prompt = eff.Prompt
	c.apply(ctx, eff, c.lastInput, "")
}

func (c *call) digit(ctx actor.Context, d *Digit) {
	if c.over {
		c.sh.metrics.Event("dtmf", metrics.OutcomeUnknownCall)
		return
	}
	if c.keys == 0 && !c.begun && !c.platformTimed && c.sess.Timer() == ivrspec.TimerPrompt {
		// dtmfd learns of this call from a key, so it cannot have timed
		// the first prompt: take it as played, or a start node without
		// barge-in would discard the key that started the call.
		c.apply(ctx, c.sess.Timeout(), d.Received, "")
	}
	if c.sess.Done() {
		c.sh.metrics.Event("dtmf", metrics.OutcomeUnknownCall)
		return
	}
	c.keys++
	if c.sh.maxKeys > 0 && c.keys > c.sh.maxKeys {
		c.sh.metrics.Event("dtmf", metrics.OutcomeShed)
		if c.keys == c.sh.maxKeys+1 {
			c.logger().Warn("call reached its key limit; further keys are dropped",
				"limit", c.sh.maxKeys)
		}
		return
	}

	node := c.sess.Node()
	eff := c.sess.Digit(d.Key, d.Timestamp)
	shown := c.countDigit(node, d.Key, eff)
	if eff.Outcome == ivrspec.Accepted {
		c.lastInput = d.Received
	}
	c.apply(ctx, eff, d.Received, shown)
}

// countDigit counts and logs a key; it returns the key as it may be shown.
// node is where the call was when the key came. The key is masked when
// that node or any node it reached, typed ahead, collects a sensitive
// value.
func (c *call) countDigit(node *ivrspec.Node, key byte, eff ivrspec.Effects) string {
	o := eff.Outcome
	outcome := metrics.OutcomeAccepted
	switch o {
	case ivrspec.NoMatch, ivrspec.Ignored:
		outcome = metrics.OutcomeInvalidDigit
	case ivrspec.Duplicate:
		outcome = metrics.OutcomeDuplicate
	}
	c.sh.metrics.Event("dtmf", outcome)

	shown := string(key)
	if eff.Sensitive || node.Collect != nil && node.Collect.Sensitive {
		shown = "*"
	}
	if c.sh.log.Enabled(context.Background(), slog.LevelDebug) {
		c.sh.log.Debug("key", "callId", c.id, "node", node.ID, "key", shown, "outcome", o.String())
	}
	return shown
}

func (c *call) timeout(ctx actor.Context, m *timerFired) {
	if m.gen != c.gen || c.over || c.sess.Done() {
		return
	}
	c.stopTimer = nil
	c.deadline = time.Time{}

	now := c.sh.clock.Now()
	if c.sh.maxIdle > 0 && now.Sub(c.lastInput) >= c.sh.maxIdle {
		c.logger().Warn("call abandoned: no key accepted within the idle limit",
			"idle", now.Sub(c.lastInput).String())
		c.sh.metrics.CallEnded("abandoned", c.sess.Node().ID, -1)
		c.finish(ctx)
		return
	}

	if c.platformTimed {
		c.arm(ctx, c.sh.maxIdle-now.Sub(c.lastInput))
		return
	}
	kind := c.sess.Timer()
	c.logger().Debug("timer fired", "timer", kind.String())
	c.apply(ctx, c.sess.Timeout(), now, "")
}

// step runs one platform-driven turn and answers with what comes next.
// A repeat of the last turn is answered as that turn was, and applied
// no second time.
func (c *call) step(ctx actor.Context, s *Step) {
	if s.RequestID != "" && s.RequestID == c.lastRequest {
		c.logger().Debug("repeated turn answered again", "requestId", s.RequestID)
		ctx.Respond(c.lastReply.clone())
		return
	}

	r := c.runStep(ctx, s)
	if s.RequestID != "" {
		c.lastRequest, c.lastReply = s.RequestID, r
	}
	ctx.Respond(r.clone())

	if c.over {
		c.tell(ctx, s.RequestID, r)
	}
}

// runStep runs one platform-driven turn and returns what comes next.
func (c *call) runStep(ctx actor.Context, s *Step) *StepReply {
	if c.over || c.sess.Done() {
		return &StepReply{Ended: true}
	}
	if s.Hangup {
		c.logger().Info("caller hung up before a decision")
		c.sh.metrics.CallEnded("hangup", c.sess.Node().ID, -1)
		c.finish(ctx)
		return &StepReply{Ended: true}
	}

	resumed := c.fresh && s.At != "" && c.resume(s.At)
	c.fresh = false
	if s.At != "" && s.At != c.sess.Node().ID {
		c.logger().Debug("turn answers another node; not applied", "at", s.At)
		return c.elsewhere()
	}

	var decision *ivrspec.Decision
	feed := func(eff ivrspec.Effects, key string) {
		if eff.Prompt != "" {
			c.prompt = eff.Prompt
		}
		if eff.Decision != nil {
			decision = eff.Decision
		}
		c.apply(ctx, eff, s.Received, key)
	}

	c.prompt = ""
	c.lastInput = s.Received
	if c.sess.Timer() == ivrspec.TimerPrompt {
		// The platform played the prompt before it collected these keys.
		c.sess.Timeout()
	}
	for i := 0; i < len(s.Keys) && decision == nil; i++ {
		node := c.sess.Node()
		eff := c.sess.Digit(s.Keys[i], 0)
		feed(eff, c.countDigit(node, s.Keys[i], eff))
	}
	if decision == nil && (s.Keys == "" || c.sess.Pending()) {
		feed(c.sess.EndInput(), "")
	}
	r := c.reply(decision)
	r.Resumed = resumed
	return r
}

// resume moves a call that has just started to node at, for a platform
// that names the node its keys answer when this process never saw the
// call. It reports whether the call moved: not when at is where it
// starts, nor when the flow has no such node waiting for input.
func (c *call) resume(at string) bool {
	n := c.flow.Nodes[at]
	if n == nil || n.Kind == ivrspec.KindEnd || n == c.sess.Node() {
		return false
	}
	sess, err := c.flow.Restore(ivrspec.State{CallID: c.id, Node: at, Timer: ivrspec.TimerNoInput})
	if err != nil {
		return false
	}
	c.sess = sess
	c.logger().Info("call resumed at the node the platform named")
	return true
}

// elsewhere answers a Step whose keys answer another node's prompt: the
// call's own node, with its prompt to play again.
func (c *call) elsewhere() *StepReply {
	n := c.sess.Node()
	noInput, noMatch := c.sess.Counters()
	return &StepReply{Node: n, Prompt: n.Prompt, NoInput: noInput, NoMatch: noMatch,
		Elsewhere: true}
}

func (c *call) reply(d *ivrspec.Decision) *StepReply {
	if d != nil {
		return &StepReply{Decision: d, Ended: true, Prompt: c.prompt}
	}
	noInput, noMatch := c.sess.Counters()
	return &StepReply{Node: c.sess.Node(), Prompt: c.prompt, NoInput: noInput, NoMatch: noMatch}
}

// apply carries out what the session asked for after one input; key is
// the input as it may be shown, empty for a timer.
func (c *call) apply(ctx actor.Context, eff ivrspec.Effects, inputAt time.Time, key string) {
	switch {
	case eff.Timer.Kind == ivrspec.TimerStop:
		c.cancelTimer()
	case c.platformTimed:
		if c.stopTimer == nil {
			c.arm(ctx, c.sh.maxIdle)
		}
	case eff.Timer.Kind != ivrspec.TimerKeep:
		c.arm(ctx, eff.Timer.After)
	}

	if c.sh.onCall != nil {
		c.observe(eff, key)
	}
	if eff.Decision != nil {
		c.decide(ctx, eff.Decision, inputAt)
	}
}

func (c *call) observe(eff ivrspec.Effects, key string) {
	noInput, noMatch := c.sess.Counters()
	ev := CallEvent{
		CallID:   c.id,
		Node:     c.sess.Node().ID,
		Key:      key,
		Digits:   c.sess.Digits(),
		NoInput:  noInput,
		NoMatch:  noMatch,
		Timer:    eff.Timer,
		Prompt:   eff.Prompt,
		Decision: eff.Decision,
		At:       c.sh.clock.Now(),
	}
	if eff.Outcome != 0 {
		ev.Outcome = eff.Outcome.String()
	}
	c.sh.onCall(ev)
}

func (c *call) arm(ctx actor.Context, d time.Duration) {
	c.cancelTimer()
	c.gen++

	gen, self, root := c.gen, ctx.Self(), c.sh.root
	c.deadline = c.sh.clock.Now().Add(d)
	c.stopTimer = c.sh.clock.AfterFunc(d, func() {
		root.Send(self, &timerFired{gen: gen})
	})
}

func (c *call) cancelTimer() {
	if c.stopTimer != nil {
		c.stopTimer()
		c.stopTimer = nil
	}
	c.gen++
	c.deadline = time.Time{}
}

// decide hands the decision to the writer pool and stops the call.
func (c *call) decide(ctx actor.Context, d *ivrspec.Decision, inputAt time.Time) {
	now := c.sh.clock.Now()
	id := uuid.NewString()
	if c.sh.store != nil {
		id = decisionID(c.id)
	}
	w := &Write{
		ID:            id,
		InteractionID: c.id,
		Variables:     d.Variables,
		DigitAt:       inputAt,
		DecidedAt:     now,
	}
	if c.sh.journal != nil {
		if err := c.sh.journal.Record(w); err != nil {
			c.logger().Error("decision not journaled; a crash before delivery would lose it",
				"decisionId", w.ID, "error", err)
		}
	}
	c.inputAt = inputAt
	if c.sh.store != nil {
		c.outbox = w
	} else {
		ctx.Send(c.sh.writer, w)
	}

	c.sh.metrics.CallEnded(d.Reason, d.From, now.Sub(inputAt))
	// Typed attributes, since this line is written for every call:
	// key-value pairs boxed each string, 6 of the 81 allocations a whole
	// call made in BenchmarkEngineCalls.
	c.sh.log.LogAttrs(context.Background(), slog.LevelInfo, "call decided",
		slog.String("callId", c.id), slog.String("node", d.From),
		slog.String("end", d.End), slog.String("reason", d.Reason),
		slog.String("decisionId", w.ID),
		slog.Attr{Key: "variables", Value: logVars(d.Variables)})

	c.finish(ctx)
}

// finish ends the call: it takes no more input. A grain stops itself. On
// a single node the ingress stops the call when told, which puts the stop
// behind every message it routed here, so each of those is answered.
func (c *call) finish(ctx actor.Context) {
	c.over = true
	if c.sh.store != nil {
		ctx.Poison(ctx.Self())
	}
}

// tell lets the ingress know, once, that the call is over. requestID and
// reply are those of the Step that ended the call, if one did.
func (c *call) tell(ctx actor.Context, requestID string, reply *StepReply) {
	if c.told {
		return
	}
	c.told = true
	ctx.Send(c.sh.ingress, &ended{callID: c.id, requestID: requestID, reply: reply})
}

// logger returns a logger carrying the call id and its current node.
func (c *call) logger() *slog.Logger {
	node := ""
	if c.sess != nil {
		node = c.sess.Node().ID
	}
	return c.sh.log.With("callId", c.id, "node", node)
}

// logVars renders variables for a log line, masking sensitive values.
func logVars(vars []ivrspec.Variable) slog.Value {
	attrs := make([]slog.Attr, len(vars))
	for i, v := range vars {
		val := v.Value
		if v.Sensitive {
			val = "***"
		}
		attrs[i] = slog.String(v.Name, val)
	}
	return slog.GroupValue(attrs...)
}
