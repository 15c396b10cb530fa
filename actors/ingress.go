package actors

import (
	"errors"
	"strings"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/dtmfd/dtmfd/ivrspec"
	"github.com/dtmfd/dtmfd/transport/metrics"
)

// ingress routes every key to the actor of its call. It spawns a call
// actor on a call's first key, watches it, and forgets it when it stops.
// It never waits on the network, so one slow call cannot hold up another.
type ingress struct {
	sh   *shared
	flow func() *ivrspec.Flow

	calls map[string]*actor.PID
	// ended remembers calls that are over, for endedTTL, so a key pressed
	// after the decision is refused instead of starting the call again
	// (and timing it out later), and a repeat of the turn that ended a
	// call gets the reply it got.
	ended map[string]tombstone
	// callsPeak and endedPeak let calls and ended give back their
	// memory after a burst.
	callsPeak, endedPeak shrinkable

	draining bool
	waiters  []*actor.PID
	prefix   string

	// props spawns every call actor; its producer hands over next, set
	// just before each spawn. One Props for all calls saves an allocation
	// of a few hundred bytes per call; it is safe because the producer
	// runs inside SpawnNamed and call actors are never restarted.
	props *actor.Props
	next  *call
}

// The reasons a new call is refused.
var (
	ErrDraining     = errors.New("shutting down: no new calls")
	ErrTooManyCalls = errors.New("open call limit reached")
)

// tombstone is what the ingress keeps of a call that is over: when it
// ended and, if a Step ended it, that Step's request id and reply.
type tombstone struct {
	at        time.Time
	requestID string
	reply     *StepReply
}

// answer replies to a Step for the ended call: with the reply the call
// gave, when s repeats the Step that ended it, or else that it ended.
func (t tombstone) answer(s *Step) *StepReply {
	if s.RequestID != "" && s.RequestID == t.requestID && t.reply != nil {
		return t.reply.clone()
	}
	return &StepReply{Ended: true}
}

// sweep is the periodic clean-up of ended calls.
type sweep struct{}

func newIngress(sh *shared, flow func() *ivrspec.Flow) *ingress {
	return &ingress{
		sh:    sh,
		flow:  flow,
		calls: make(map[string]*actor.PID),
		ended: make(map[string]tombstone),
	}
}

// Receive handles the ingress's messages.
func (in *ingress) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		in.prefix = ctx.Self().Id + "/"
		in.scheduleSweep(ctx)
	case *Digit:
		in.route(ctx, m)
	case *Step:
		in.routeStep(ctx, m)
	case *Begin:
		in.begin(ctx, m)
	case *ended:
		in.end(ctx, m)
	case *actor.Terminated:
		in.forget(ctx, m.Who)
		clearVacated(ctx)
	case *sweep:
		in.sweep(ctx)
	case *drainRequest:
		in.draining = true
		in.waiters = append(in.waiters, ctx.Sender())
		in.answerDrain(ctx)
	case *statsRequest:
		ctx.Respond(len(in.calls))
	}
}

func (in *ingress) route(ctx actor.Context, d *Digit) {
	if pid, ok := in.calls[d.CallID]; ok {
		ctx.Send(pid, d)
		return
	}
	if _, ok := in.ended[d.CallID]; ok {
		in.sh.metrics.Event("dtmf", metrics.OutcomeUnknownCall)
		in.sh.log.Debug("key for an ended call dropped", "callId", d.CallID)
		return
	}
	if in.admit(d.CallID) != nil {
		return
	}

	pid, err := in.spawn(ctx, d.CallID, false)
	if err != nil {
		in.sh.metrics.Event("dtmf", metrics.OutcomeShed)
		in.sh.log.Error("call actor not started", "callId", d.CallID, "error", err)
		return
	}
	in.calls[d.CallID] = pid
	ctx.Send(pid, d)
}

// begin starts a call that has no actor yet.
func (in *ingress) begin(ctx actor.Context, b *Begin) {
	if _, ok := in.calls[b.CallID]; ok {
		return
	}
	if _, ok := in.ended[b.CallID]; ok || in.admit(b.CallID) != nil {
		return
	}
	pid, err := in.spawn(ctx, b.CallID, false)
	if err != nil {
		in.sh.log.Error("call actor not started", "callId", b.CallID, "error", err)
		return
	}
	in.calls[b.CallID] = pid
	ctx.Send(pid, b)
}

// routeStep forwards a Step to its call, keeping the asker as sender so
// the call answers it directly. A call that is over is answered here,
// even while its actor is still stopping.
func (in *ingress) routeStep(ctx actor.Context, s *Step) {
	if t, ok := in.ended[s.CallID]; ok {
		ctx.Respond(t.answer(s))
		return
	}
	if pid, ok := in.calls[s.CallID]; ok {
		ctx.Forward(pid)
		return
	}
	if s.Hangup {
		ctx.Respond(&StepReply{Ended: true})
		return
	}
	if err := in.admit(s.CallID); err != nil {
		ctx.Respond(err)
		return
	}
	pid, err := in.spawn(ctx, s.CallID, true)
	if err != nil {
		in.sh.log.Error("call actor not started", "callId", s.CallID, "error", err)
		ctx.Respond(err)
		return
	}
	in.calls[s.CallID] = pid
	ctx.Forward(pid)
}

// end remembers a call that is over and stops its actor. The stop is
// queued behind every message already routed to the call, so the call
// answers each of them before it stops.
func (in *ingress) end(ctx actor.Context, m *ended) {
	in.ended[m.callID] = tombstone{at: in.sh.clock.Now(), requestID: m.requestID, reply: m.reply}
	if pid, ok := in.calls[m.callID]; ok {
		ctx.Poison(pid)
	}
}

// admit says whether a new call may start.
func (in *ingress) admit(callID string) error {
	if in.draining {
		in.sh.metrics.Event("dtmf", metrics.OutcomeShed)
		in.sh.log.Warn("new call refused while shutting down", "callId", callID)
		return ErrDraining
	}
	if in.sh.maxCalls > 0 && len(in.calls) >= in.sh.maxCalls {
		in.sh.metrics.Event("dtmf", metrics.OutcomeShed)
		in.sh.log.Warn("new call refused: open call limit reached",
			"callId", callID, "limit", in.sh.maxCalls)
		return ErrTooManyCalls
	}
	return nil
}

// spawn starts a call actor as a child of the ingress, which is told of
// its end by the *actor.Terminated every parent gets: no Watch needed.
func (in *ingress) spawn(ctx actor.Context, callID string, platformTimed bool) (*actor.PID, error) {
	if in.props == nil {
		opts := []actor.PropsOption{actor.WithMailbox(actor.UnboundedLockfree())}
		if in.sh.pool != nil {
			opts = append(opts, actor.WithDispatcher(in.sh.pool))
		}
		in.props = actor.PropsFromProducer(func() actor.Actor { return in.next }, opts...)
	}
	in.next = newCall(in.sh, callID, in.flow(), platformTimed)
	pid, err := ctx.SpawnNamed(in.props, callID)
	in.next = nil
	return pid, err
}

// forget drops a stopped call actor. Its name is the call id.
func (in *ingress) forget(ctx actor.Context, who *actor.PID) {
	id := strings.TrimPrefix(who.Id, in.prefix)
	if pid, ok := in.calls[id]; ok && pid.Equal(who) {
		in.calls = deleted(&in.callsPeak, in.calls, id)
		if _, ok := in.ended[id]; !ok {
			// Stopped without a decision (a crash): refuse its keys too,
			// rather than restart the call from the top.
			in.ended[id] = tombstone{at: in.sh.clock.Now()}
		}
	}
	in.answerDrain(ctx)
}

func (in *ingress) answerDrain(ctx actor.Context) {
	if !in.draining || len(in.calls) > 0 {
		return
	}
	for _, w := range in.waiters {
		ctx.Send(w, &drained{})
	}
	in.waiters = nil
}

func (in *ingress) scheduleSweep(ctx actor.Context) {
	self, root := ctx.Self(), in.sh.root
	in.sh.clock.AfterFunc(in.sh.endedTTL/2+time.Millisecond, func() {
		root.Send(self, &sweep{})
	})
}

func (in *ingress) sweep(ctx actor.Context) {
	cutoff := in.sh.clock.Now().Add(-in.sh.endedTTL)
	note(&in.endedPeak, in.ended)
	for id, t := range in.ended {
		if t.at.Before(cutoff) {
			delete(in.ended, id)
		}
	}
	in.ended = shrunk(&in.endedPeak, in.ended)
	in.scheduleSweep(ctx)
}

// clearVacated drops the pointer protoactor's PIDSet.Remove leaves in the
// slot it vacates past the end of the children slice. A PID caches its
// process, so a stale slot keeps a stopped call's mailbox, context and
// session reachable until a later spawn overwrites it: after a burst of
// 100,000 calls that held 90 MiB of heap no call was using.
func clearVacated(ctx actor.Context) {
	kids := ctx.Children()
	if len(kids) < cap(kids) {
		kids[:len(kids)+1][len(kids)] = nil
	}
}

// stopOnPanic is the ingress's strategy for its children: it stops a call
// actor that panics instead of restarting it
// with an empty session, which would start the caller's menu again.
var stopOnPanic = actor.NewOneForOneStrategy(0, 0, func(reason interface{}) actor.Directive {
	return actor.StopDirective
})
