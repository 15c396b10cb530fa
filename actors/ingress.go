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
// actor on a call's first key and forgets it when the call says it
// stopped.
// It never waits on the network, so one slow call cannot hold up another.
type ingress struct {
	sh   *shared
	flow func() *ivrspec.Flow

	calls map[string]*actor.PID
	// callsPeak lets calls give back its memory after a burst.
	callsPeak shrinkable
	// ended remembers calls that are over, for endedTTL, so that a key
	// pressed after the decision (a caller still pressing keys while
	// talking to an agent) is refused instead of starting the call again
	// and timing it out over the decision. It holds only the call ids.
	ended *recent[struct{}]
	// replies holds, for a short while, the reply of the Step that ended
	// a call, so that a repeat of that Step gets the same reply.
	replies *recent[stepEnd]

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

// repeatTTL bounds how long the reply of the Step that ended a call is
// kept for a repeat of that Step. A platform repeats a turn whose reply
// it lost within its own request timeout (90 s for a Studio REST action).
const repeatTTL = 5 * time.Minute

// stepEnd is the Step that ended a call: its request id and the reply it
// got.
type stepEnd struct {
	requestID string
	reply     *StepReply
}

// rotation is the periodic turn of one of the ingress's recent sets:
// replies when set, else ended.
type rotation struct{ replies bool }

func newIngress(sh *shared, flow func() *ivrspec.Flow) *ingress {
	return &ingress{
		sh:      sh,
		flow:    flow,
		calls:   make(map[string]*actor.PID),
		ended:   newRecent[struct{}](sh.endedTTL),
		replies: newRecent[stepEnd](min(sh.endedTTL, repeatTTL)),
	}
}

// Receive handles the ingress's messages.
func (in *ingress) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		in.prefix = ctx.Self().Id + "/"
		in.scheduleRotation(ctx, &rotation{})
		in.scheduleRotation(ctx, &rotation{replies: true})
	case *Digit:
		in.route(ctx, m)
	case *Step:
		in.routeStep(ctx, m)
	case *Begin:
		in.begin(ctx, m)
	case *ended:
		in.end(ctx, m)
	case *callStopped:
		in.forget(ctx, m.who)
	case *actor.Stopping:
		// The calls are not its children: stop them as a parent's
		// would be.
		for _, pid := range in.calls {
			ctx.Stop(pid)
		}
	case *rotation:
		in.rotate(ctx, m)
	case *drainRequest:
		in.draining = true
		in.waiters = append(in.waiters, ctx.Sender())
		in.answerDrain(ctx)
	case *stopCallsRequest:
		in.draining = true
		for _, pid := range in.calls {
			ctx.Stop(pid)
		}
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
	if in.ended.has(d.CallID) {
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
	if in.ended.has(b.CallID) || in.admit(b.CallID) != nil {
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
	if in.ended.has(s.CallID) {
		ctx.Respond(in.answerEnded(s))
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
	if s.Existing {
		ctx.Respond(&StepReply{Unknown: true})
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
	in.ended.put(m.callID, struct{}{})
	if m.requestID != "" && m.reply != nil {
		in.replies.put(m.callID, stepEnd{requestID: m.requestID, reply: m.reply})
	}
	if pid, ok := in.calls[m.callID]; ok {
		ctx.Poison(pid)
	}
}

// answerEnded replies to a Step for an ended call: with the reply the
// call gave, when s repeats the Step that ended it, or else that it ended.
func (in *ingress) answerEnded(s *Step) *StepReply {
	last, ok := in.replies.get(s.CallID)
	if ok && s.RequestID != "" && s.RequestID == last.requestID {
		return last.reply.clone()
	}
	return &StepReply{Ended: true}
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

// spawn starts a call actor, named after the ingress and the call.
//
// A call actor is not a child of the ingress: protoactor keeps a parent's
// children in a map that never shrinks, which after a burst of 100,000
// calls held 6 MiB that no call used. The call tells the ingress itself
// when it stopped, and the guardian's strategy stops, rather than
// restarts, a call actor that panics.
func (in *ingress) spawn(ctx actor.Context, callID string, platformTimed bool) (*actor.PID, error) {
	if in.props == nil {
		opts := []actor.PropsOption{
			actor.WithMailbox(actor.UnboundedLockfree()),
			actor.WithGuardian(stopOnPanic),
		}
		if in.sh.pool != nil {
			opts = append(opts, actor.WithDispatcher(in.sh.pool))
		}
		in.props = actor.PropsFromProducer(func() actor.Actor { return in.next }, opts...)
	}
	in.next = newCall(in.sh, callID, in.flow(), platformTimed)
	in.next.ingress = ctx.Self()
	pid, err := in.sh.root.SpawnNamed(in.props, in.prefix+callID)
	in.next = nil
	return pid, err
}

// forget drops a stopped call actor. Its name is the call id.
func (in *ingress) forget(ctx actor.Context, who *actor.PID) {
	id := strings.TrimPrefix(who.Id, in.prefix)
	if pid, ok := in.calls[id]; ok && pid.Equal(who) {
		copies := in.callsPeak.copies
		in.calls = deleted(&in.callsPeak, in.calls, id)
		if in.callsPeak.copies != copies {
			// Every call actor is named in protoactor's registry too,
			// whose maps grew with these.
			in.sh.registry.compact()
		}
		if !in.ended.has(id) {
			// Stopped without a decision (a crash): refuse its keys too,
			// rather than restart the call from the top.
			in.ended.put(id, struct{}{})
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

// scheduleRotation arms the timer of the next turn of the set r names.
func (in *ingress) scheduleRotation(ctx actor.Context, r *rotation) {
	every := in.ended.every
	if r.replies {
		every = in.replies.every
	}
	self, root := ctx.Self(), in.sh.root
	in.sh.clock.AfterFunc(every, func() { root.Send(self, r) })
}

func (in *ingress) rotate(ctx actor.Context, r *rotation) {
	if r.replies {
		in.replies.rotate()
	} else {
		in.ended.rotate()
	}
	in.scheduleRotation(ctx, r)
}

// recentSlices is the number of slices of time a recent set's ttl is cut
// into: an id is kept up to one slice longer than the ttl.
const recentSlices = 8

// recent is a set of call ids, each with a value, kept for at least ttl
// and at most ttl plus an eighth. Each slice of time has a map of its
// own, and the oldest is dropped whole when the next slice begins: no
// sweep walks the entries, which may be millions with a ttl of hours,
// and a dropped slice gives all its memory back at once.
type recent[V any] struct {
	every time.Duration
	// slices holds the ids of each slice, newest first; a slice with no
	// ids is nil.
	slices [recentSlices + 1]map[string]V
}

func newRecent[V any](ttl time.Duration) *recent[V] {
	every := (ttl + recentSlices - 1) / recentSlices
	return &recent[V]{every: max(every, time.Millisecond)}
}

func (r *recent[V]) put(id string, v V) {
	if r.slices[0] == nil {
		r.slices[0] = make(map[string]V)
	}
	r.slices[0][id] = v
}

// get returns the newest value kept for id.
func (r *recent[V]) get(id string) (V, bool) {
	for _, m := range r.slices {
		if v, ok := m[id]; ok {
			return v, true
		}
	}
	var zero V
	return zero, false
}

func (r *recent[V]) has(id string) bool {
	_, ok := r.get(id)
	return ok
}

// rotate begins a new slice and drops the oldest. An id leaves at the
// rotation recentSlices+1 after it was put: recentSlices slices (the
// ttl) or up to one more after.
func (r *recent[V]) rotate() {
	copy(r.slices[1:], r.slices[:recentSlices])
	r.slices[0] = nil
}

// stopOnPanic stops a call actor that panics instead of restarting it
// with an empty session, which would start the caller's menu again.
var stopOnPanic = actor.NewOneForOneStrategy(0, 0, func(reason interface{}) actor.Directive {
	return actor.StopDirective
})
