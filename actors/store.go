package actors

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/dtmfd/dtmfd/actors/clusterpb"
	"github.com/dtmfd/dtmfd/ivrspec"
)

// Store keeps every call's state where all members of a cluster can read
// it, so that a call whose member left is carried on by another, and
// records which decisions were delivered, so that none is written twice.
//
// Save is a compare-and-set on a version: two activations of one call
// (the old one not yet stopped after its member lost the call) cannot both
// move the call on; the one that saves second learns it is stale.
type Store interface {
	// Load returns a call's saved state and its version, or nil and 0
	// when the call has none.
	Load(ctx context.Context, callID string) (state []byte, version int64, err error)
	// Save stores state as version, which must be one past the stored
	// version; it reports false, saving nothing, when it is not. wake is
	// when the call's timer fires (zero for none): a call overdue past it
	// is woken by Overdue. The state expires after ttl.
	Save(ctx context.Context, callID string, version int64, state []byte, wake time.Time, ttl time.Duration) (bool, error)
	// Overdue returns up to limit calls whose timer was due before t.
	Overdue(ctx context.Context, t time.Time, limit int) ([]string, error)
	// Claim makes owner the one member that delivers a decision. It
	// reports ClaimHeld while another owner holds an unexpired claim and
	// ClaimDelivered once the decision was accepted by the platform.
	Claim(ctx context.Context, decisionID, owner string, ttl time.Duration) (Claim, error)
	// Accept records that the platform accepted callID's decision, and
	// takes the call off the index Overdue reads.
	Accept(ctx context.Context, callID, decisionID string, ttl time.Duration) error
}

// Claim is the answer to Store.Claim.
type Claim int

// The claims.
const (
	// ClaimMine: deliver the decision.
	ClaimMine Claim = iota
	// ClaimHeld: another member is delivering it; ask again later.
	ClaimHeld
	// ClaimDelivered: it was delivered; do nothing.
	ClaimDelivered
)

// decisionID names a call's decision. A call decides once, so the id is
// the same on every member that might deliver it.
func decisionID(callID string) string { return callID + "#1" }

// storeTimeout bounds one store operation made inside an actor.
const storeTimeout = 2 * time.Second

// encodeCall renders c as the state a call saves.
func encodeCall(c *call, requestID string, reply *clusterpb.StepReply) ([]byte, error) {
	st := c.sess.State()
	path := make([]*clusterpb.PathEntry, len(st.Path))
	for i, p := range st.Path {
		path[i] = &clusterpb.PathEntry{Node: p.Node, Input: p.Input, Sensitive: p.Sensitive}
	}
	m := &clusterpb.CallState{
		Session: &clusterpb.Session{
			Node: st.Node, Buf: st.Buf, Path: path,
			NoInput: int32(st.NoInput), NoMatch: int32(st.NoMatch),
			Timer: uint32(st.Timer), Prompting: st.Prompting, TermWait: st.TermWait,
			Reason: st.Reason, Done: st.Done, LastKey: uint32(st.LastKey), LastTs: st.LastTS,
		},
		Keys:                  int32(c.keys),
		LastInputUnixNano:     unixNano(c.lastInput),
		PlatformTimed:         c.platformTimed,
		Prompt:                c.prompt,
		Begun:                 c.begun,
		TimerDeadlineUnixNano: unixNano(c.deadline),
		LastRequestId:         requestID,
		LastReply:             reply,
	}
	if c.outbox != nil {
		m.Decision = toDecision(&ivrspec.Decision{Variables: c.outbox.Variables})
		m.DecisionId = c.outbox.ID
		m.DecidedAtUnixNano = unixNano(c.outbox.DecidedAt)
		m.InputAtUnixNano = unixNano(c.outbox.DigitAt)
	}
	return proto.Marshal(m)
}

// decodeCall rebuilds a call from its saved state on flow. The decision,
// if any, comes back as the call's outbox.
func decodeCall(sh *shared, id string, flow *ivrspec.Flow, data []byte) (*call, *clusterpb.CallState, error) {
	var m clusterpb.CallState
	if err := proto.Unmarshal(data, &m); err != nil {
		return nil, nil, fmt.Errorf("decode call state: %w", err)
	}
	ss := m.GetSession()
	st := ivrspec.State{
		CallID: id, Node: ss.GetNode(), Buf: ss.GetBuf(),
		NoInput: int(ss.GetNoInput()), NoMatch: int(ss.GetNoMatch()),
		Timer: ivrspec.TimerKind(ss.GetTimer()), Prompting: ss.GetPrompting(),
		TermWait: ss.GetTermWait(), Reason: ss.GetReason(), Done: ss.GetDone(),
		LastKey: byte(ss.GetLastKey()), LastTS: ss.GetLastTs(),
	}
	for _, p := range ss.GetPath() {
		st.Path = append(st.Path, ivrspec.PathEntry{Node: p.GetNode(), Input: p.GetInput(), Sensitive: p.GetSensitive()})
	}
	sess, err := flow.Restore(st)
	if err != nil {
		return nil, nil, err
	}

	c := newCall(sh, id, flow, m.GetPlatformTimed())
	c.sess = sess
	c.keys = int(m.GetKeys())
	c.lastInput = fromUnixNano(m.GetLastInputUnixNano())
	c.prompt = m.GetPrompt()
	c.begun = m.GetBegun()
	c.deadline = fromUnixNano(m.GetTimerDeadlineUnixNano())
	if m.GetDecisionId() != "" {
		c.outbox = &Write{
			ID:            m.GetDecisionId(),
			InteractionID: id,
			Variables:     fromDecision(m.GetDecision()).Variables,
			DigitAt:       fromUnixNano(m.GetInputAtUnixNano()),
			DecidedAt:     fromUnixNano(m.GetDecidedAtUnixNano()),
		}
	}
	return c, &m, nil
}

func toDecision(d *ivrspec.Decision) *clusterpb.Decision {
	if d == nil {
		return nil
	}
	m := &clusterpb.Decision{End: d.End, From: d.From, Reason: d.Reason}
	for _, v := range d.Variables {
		m.Variables = append(m.Variables, &clusterpb.Variable{Name: v.Name, Value: v.Value, Sensitive: v.Sensitive})
	}
	return m
}

func fromDecision(m *clusterpb.Decision) *ivrspec.Decision {
	if m == nil {
		return nil
	}
	d := &ivrspec.Decision{End: m.GetEnd(), From: m.GetFrom(), Reason: m.GetReason()}
	for _, v := range m.GetVariables() {
		d.Variables = append(d.Variables, ivrspec.Variable{Name: v.GetName(), Value: v.GetValue(), Sensitive: v.GetSensitive()})
	}
	return d
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromUnixNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}
