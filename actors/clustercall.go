package actors

import (
	"context"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"

	"github.com/dtmfd/dtmfd/actors/clusterpb"
	"github.com/dtmfd/dtmfd/ivrspec"
)

// callGrain is a call as a cluster grain. It wraps the same call actor a
// single node runs, and around it: restores the call from the store when
// activated, saves it after every change before anything leaves it (a
// reply, a write), and answers a retried request with the saved reply.
type callGrain struct {
	sh   *shared
	flow func() *ivrspec.Flow
	ttl  time.Duration

	id      string
	c       *call
	version int64
	lastReq string
	last    *clusterpb.StepReply
	// stale is set once a newer activation of the call saved first.
	stale bool
	// opened is set once the call counts as open in the metrics.
	opened bool
	// sent is set once the call's decision went to the writer.
	sent bool
}

// Receive handles the grain's messages.
func (g *callGrain) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		g.id = cluster.GetClusterIdentity(ctx).Identity
		g.restore(ctx)
	case *clusterpb.Press:
		g.handle(ctx, m.GetRequestId(), false, func() *clusterpb.StepReply {
			g.c.digit(ctx, &Digit{CallID: g.id, Key: keyOf(m.GetKey()), Timestamp: m.GetTimestamp(),
				Received: fromUnixNano(m.GetReceivedUnixNano())})
			return &clusterpb.StepReply{Ended: g.c.sess.Done()}
		})
	case *clusterpb.Begin:
		g.handle(ctx, m.GetRequestId(), false, func() *clusterpb.StepReply {
			g.c.begun = true
			return &clusterpb.StepReply{}
		})
	case *clusterpb.Step:
		if g.c == nil && !g.stale && m.GetExisting() {
			// No member holds the call and none is wanted.
			ctx.Respond(&clusterpb.StepReply{Unknown: true})
			ctx.Poison(ctx.Self())
			return
		}
		g.handle(ctx, m.GetRequestId(), true, func() *clusterpb.StepReply {
			r := g.c.runStep(ctx, &Step{CallID: g.id, Keys: m.GetKeys(), Hangup: m.GetHangup(),
				Received: fromUnixNano(m.GetReceivedUnixNano()), At: m.GetAt()})
			return toStepReply(r)
		})
	case *clusterpb.Wake:
		g.wake(ctx)
	case *timerFired:
		if g.c != nil && !g.stale {
			g.c.timeout(ctx, m)
			g.save(ctx, g.lastReq, g.last)
		}
	case *actor.Stopping:
		if g.c != nil {
			g.c.cancelTimer()
		}
	case *actor.Stopped:
		if g.opened {
			g.sh.metrics.CallClosed()
		}
	}
}

// handle runs one request: once, even when retried.
func (g *callGrain) handle(ctx actor.Context, reqID string, platformTimed bool, run func() *clusterpb.StepReply) {
	if g.stale {
		ctx.Respond(&clusterpb.Moved{})
		return
	}
	if reqID != "" && reqID == g.lastReq {
		ctx.Respond(g.last)
		return
	}
	if g.c == nil {
		g.start(ctx, platformTimed)
	}

	reply := run()
	if !g.save(ctx, reqID, reply) {
		ctx.Respond(&clusterpb.Moved{})
		return
	}
	g.lastReq, g.last = reqID, reply
	ctx.Respond(reply)
}

// start begins a call that has no saved state.
func (g *callGrain) start(ctx actor.Context, platformTimed bool) {
	g.c = newCall(g.sh, g.id, g.flow(), platformTimed)
	g.opened = true
	g.c.start(ctx)
}

// restore carries on a call saved by an earlier activation, here or on
// another member: its session, its counters and its timer, which fires at
// once if its deadline passed meanwhile. A decided call whose decision
// may not have been delivered hands it to the writer again; the writer's
// claim keeps it from being written twice.
func (g *callGrain) restore(ctx actor.Context) {
	sctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	data, version, err := g.sh.store.Load(sctx, g.id)
	cancel()
	if err != nil {
		g.sh.log.Error("call state not loaded; the call cannot go on here", "callId", g.id, "error", err)
		g.stale = true
		ctx.Poison(ctx.Self())
		return
	}
	if data == nil {
		return
	}

	c, st, err := decodeCall(g.sh, g.id, g.flow(), data)
	if err != nil {
		g.sh.log.Error("call state not restored; the call ends without a decision", "callId", g.id, "error", err)
		g.stale = true
		ctx.Poison(ctx.Self())
		return
	}
	g.c, g.version = c, version
	g.lastReq, g.last = st.GetLastRequestId(), st.GetLastReply()
	g.opened = true
	g.sh.metrics.CallOpened()
	g.sh.log.Debug("call restored", "callId", g.id, "node", c.sess.Node().ID, "version", version)

	if c.sess.Done() {
		if c.outbox != nil {
			g.redeliver(ctx)
		}
		ctx.Poison(ctx.Self())
		return
	}
	if c.outbox != nil {
		ctx.Send(g.sh.writer, c.outbox)
		g.sent = true
	}
	if !c.deadline.IsZero() {
		c.arm(ctx, max(c.deadline.Sub(g.sh.clock.Now()), 0))
	}
}

// redeliver hands a restored decision to the writer again unless it was
// delivered: the member that decided it may have died before writing it.
// Saving the call again sets its next wake, in case this member goes too.
func (g *callGrain) redeliver(ctx actor.Context) {
	sctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	id := decisionID(g.id)
	claim, err := g.sh.store.Claim(sctx, id, g.sh.member, claimTTL)
	switch {
	case err != nil:
		g.sh.log.Warn("delivery of a restored decision not checked; it is tried again later",
			"callId", g.id, "error", err)
	case claim == ClaimDelivered:
		// Delivered: only the call's wake is left to clear.
		if err := g.sh.store.Accept(sctx, g.id, id, acceptedTTL); err != nil {
			g.sh.log.Warn("delivered call's wake not cleared", "callId", g.id, "error", err)
		}
	default:
		g.sh.log.Info("restored decision handed to the writer again", "callId", g.id)
		g.save(ctx, g.lastReq, g.last)
	}
}

// wake answers a Wake: restoring the call armed its timer already.
func (g *callGrain) wake(ctx actor.Context) {
	if g.c == nil && !g.stale {
		// Nothing saved: the call ended and its state expired.
		ctx.Poison(ctx.Self())
	}
	ctx.Respond(&clusterpb.Ack{})
}

// save stores the call after a change, then lets its decision out. It
// reports false when a newer activation saved first: this one is stale
// and stops without a word to the platform.
func (g *callGrain) save(ctx actor.Context, reqID string, reply *clusterpb.StepReply) bool {
	data, err := encodeCall(g.c, reqID, reply)
	if err != nil {
		g.sh.log.Error("call state not encoded", "callId", g.id, "error", err)
		return false
	}
	wake := g.c.deadline
	ttl := g.ttl
	if g.c.sess.Done() {
		wake, ttl = time.Time{}, max(g.sh.endedTTL, claimTTL)+acceptedTTL
		if g.c.outbox != nil {
			// Until its delivery takes the call off the index, another
			// member wakes it once a claim on it would have expired.
			wake = g.sh.clock.Now().Add(claimTTL)
		}
	}

	sctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	ok, err := g.sh.store.Save(sctx, g.id, g.version+1, data, wake, ttl)
	cancel()
	if err != nil || !ok {
		if err != nil {
			g.sh.log.Error("call state not saved; the call stops here", "callId", g.id, "error", err)
		} else {
			g.sh.log.Warn("call moved to another activation; this one stops", "callId", g.id)
		}
		g.stale = true
		g.c.cancelTimer()
		ctx.Poison(ctx.Self())
		return false
	}
	g.version++

	if w := g.c.outbox; w != nil && !g.sent {
		ctx.Send(g.sh.writer, w)
		g.sent = true
	}
	return true
}

func keyOf(s string) byte {
	if s == "" {
		return 0
	}
	return s[0]
}

func toStepReply(r *StepReply) *clusterpb.StepReply {
	m := &clusterpb.StepReply{
		Prompt:   r.Prompt,
		Decision: toDecision(r.Decision),
		Ended:    r.Ended,
		NoInput:  int32(r.NoInput),
		NoMatch:  int32(r.NoMatch),

		Unknown:   r.Unknown,
		Elsewhere: r.Elsewhere,
		Resumed:   r.Resumed,
	}
	if r.Node != nil {
		m.Node = r.Node.ID
	}
	return m
}

func fromStepReply(m *clusterpb.StepReply, flow *ivrspec.Flow) *StepReply {
	r := &StepReply{
		Prompt:   m.GetPrompt(),
		Decision: fromDecision(m.GetDecision()),
		Ended:    m.GetEnded(),
		NoInput:  int(m.GetNoInput()),
		NoMatch:  int(m.GetNoMatch()),

		Unknown:   m.GetUnknown(),
		Elsewhere: m.GetElsewhere(),
		Resumed:   m.GetResumed(),
	}
	if m.GetNode() != "" && flow != nil {
		r.Node = flow.Nodes[m.GetNode()]
	}
	return r
}
