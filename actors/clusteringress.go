package actors

import (
	"context"
	"strconv"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"

	"github.com/dtmfd/dtmfd/actors/clusterpb"
	"github.com/dtmfd/dtmfd/transport/metrics"
)

// clusterIngress is a member's ingress in a cluster: it sends every key,
// begin and step to the grain of its call, wherever that lives. It keeps
// one request in flight per call, so a call's inputs arrive in the order
// this member got them, and retries a request lost with a member under
// the same request id, so that the grain applies it once.
type clusterIngress struct {
	sh   *shared
	node *node
	// queues holds each call's inputs not yet answered; the head is in
	// flight.
	queues map[string][]*outbound
	seq    uint64

	draining bool
	waiters  []*actor.PID
}

// outbound is one input on its way to a grain.
type outbound struct {
	msg proto.Message
	// replyTo is the asker of a Step, answered with the grain's reply.
	replyTo *actor.PID
}

// answered is a grain's answer to the head of a call's queue.
type answered struct {
	callID string
	res    any
	err    error
}

// requestDeadline bounds the tries of one input; past it the input is
// lost and counted as shed.
const requestDeadline = 30 * time.Second

func newClusterIngress(sh *shared, n *node) *clusterIngress {
	return &clusterIngress{sh: sh, node: n, queues: make(map[string][]*outbound)}
}

// Receive handles the ingress's messages.
func (in *clusterIngress) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *Digit:
		in.enqueue(ctx, m.CallID, &outbound{msg: &clusterpb.Press{
			RequestId: in.nextID(), Key: string(m.Key), Timestamp: m.Timestamp,
			ReceivedUnixNano: unixNano(m.Received)}})
	case *Begin:
		in.enqueue(ctx, m.CallID, &outbound{msg: &clusterpb.Begin{
			RequestId: in.nextID(), ReceivedUnixNano: unixNano(m.Received)}})
	case *Step:
		in.step(ctx, m)
	case *answered:
		in.answer(ctx, m)
	case *drainRequest:
		in.draining = true
		in.waiters = append(in.waiters, ctx.Sender())
		in.answerDrain(ctx)
	case *statsRequest:
		ctx.Respond(len(in.queues))
	}
}

func (in *clusterIngress) nextID() string {
	in.seq++
	return in.sh.member + "-" + strconv.FormatUint(in.seq, 36)
}

func (in *clusterIngress) step(ctx actor.Context, s *Step) {
	if in.draining {
		ctx.Respond(ErrDraining)
		return
	}
	id := in.nextID()
	if s.RequestID != "" {
		id = callerRequestID(s.RequestID)
	}
	in.enqueue(ctx, s.CallID, &outbound{
		msg: &clusterpb.Step{RequestId: id, Keys: s.Keys, Hangup: s.Hangup,
			ReceivedUnixNano: unixNano(s.Received), At: s.At, Existing: s.Existing},
		replyTo: ctx.Sender(),
	})
}

// callerRequestID is the grain's request id for a Step whose caller named
// it, so that the caller's repeat of the Step, through this member or
// another, is answered with the saved reply. An id nextID makes is a
// member id (a short UUID) and a base-36 count joined by "-": it never
// holds a ':', so no caller's id can equal one.
func callerRequestID(id string) string { return "step:" + id }

func (in *clusterIngress) enqueue(ctx actor.Context, callID string, o *outbound) {
	if in.draining && o.replyTo == nil {
		in.sh.metrics.Event("dtmf", metrics.OutcomeShed)
		return
	}
	q := append(in.queues[callID], o)
	in.queues[callID] = q
	if len(q) == 1 {
		in.send(ctx, callID, o)
	}
}

// send delivers o in its own goroutine: a request may wait for a member
// to be found gone, and the ingress must not.
func (in *clusterIngress) send(ctx actor.Context, callID string, o *outbound) {
	self, root, n := ctx.Self(), in.sh.root, in.node
	go func() {
		rctx, cancel := context.WithTimeout(context.Background(), requestDeadline)
		defer cancel()
		res, err := n.request(rctx, KindCall, callID, o.msg)
		root.Send(self, &answered{callID: callID, res: res, err: err})
	}()
}

func (in *clusterIngress) answer(ctx actor.Context, a *answered) {
	q := in.queues[a.callID]
	if len(q) == 0 {
		return
	}
	head := q[0]
	if a.err != nil {
		in.sh.metrics.Event("dtmf", metrics.OutcomeShed)
		in.sh.log.Error("input lost: its call did not answer", "callId", a.callID, "error", a.err)
	}
	if head.replyTo != nil {
		ctx.Send(head.replyTo, in.stepReply(a))
	}

	q = q[1:]
	if len(q) == 0 {
		delete(in.queues, a.callID)
		in.answerDrain(ctx)
		return
	}
	in.queues[a.callID] = q
	in.send(ctx, a.callID, q[0])
}

func (in *clusterIngress) stepReply(a *answered) any {
	if a.err != nil {
		return a.err
	}
	r, ok := a.res.(*clusterpb.StepReply)
	if !ok {
		return &StepReply{Ended: true}
	}
	return fromStepReply(r, in.node.flow())
}

func (in *clusterIngress) answerDrain(ctx actor.Context) {
	if !in.draining || len(in.queues) > 0 {
		return
	}
	for _, w := range in.waiters {
		ctx.Send(w, &drained{})
	}
	in.waiters = nil
}
