package ivrspec

import "fmt"

// State is a Session's state in plain values. A call saves it after every
// input so that another process can carry the call on with Restore when
// the one that held it is gone.
type State struct {
	CallID  string
	Node    string
	Buf     string
	Path    []PathEntry
	NoInput int
	NoMatch int
	Timer   TimerKind
	// Prompting is set while the node's prompt plays; TermWait while an
	// optional terminator is awaited.
	Prompting bool
	TermWait  bool
	Reason    string
	Done      bool
	// Seen lists the call's recent timestamped keys, oldest first, so
	// that a repeat of one is still dropped after a restore. LastKey and
	// LastTS repeat the newest of them for stores that keep only one;
	// Restore uses them when Seen is empty.
	Seen    []SeenKey
	LastKey byte
	LastTS  int64
}

// State returns the session's state. The path is copied, so the state
// stays valid as the session goes on.
func (s *Session) State() State {
	st := State{
		CallID:    s.callID,
		Node:      s.node.ID,
		Buf:       string(s.buf),
		Path:      append([]PathEntry(nil), s.path...),
		NoInput:   s.noInput,
		NoMatch:   s.noMatch,
		Timer:     s.timer,
		Prompting: s.prompting,
		TermWait:  s.termWait,
		Reason:    s.reason,
		Done:      s.done,
	}
	if n := len(s.seen); n > 0 {
		st.Seen = append([]SeenKey(nil), s.seen...)
		st.LastKey, st.LastTS = s.seen[n-1].Key, s.seen[n-1].TS
	}
	return st
}

// Restore rebuilds a session from a state saved by State. It fails when
// the flow has no node the state refers to, as after a flow was reloaded
// without it: the call cannot go on there.
func (f *Flow) Restore(st State) (*Session, error) {
	node := f.Nodes[st.Node]
	if node == nil {
		return nil, fmt.Errorf("restore session: flow %s has no node %q", f.Name, st.Node)
	}
	for _, p := range st.Path {
		if f.Nodes[p.Node] == nil {
			return nil, fmt.Errorf("restore session: flow %s has no node %q in the path", f.Name, p.Node)
		}
	}
	if st.Timer > TimerTerminator {
		return nil, fmt.Errorf("restore session: unknown timer %d", st.Timer)
	}
	if len(st.Buf) > 0 && node.Collect == nil {
		return nil, fmt.Errorf("restore session: keys gathered at %s node %q", node.Kind, node.ID)
	}

	s := &Session{
		flow:      f,
		callID:    st.CallID,
		node:      node,
		buf:       []byte(st.Buf),
		path:      append([]PathEntry(nil), st.Path...),
		noInput:   st.NoInput,
		noMatch:   st.NoMatch,
		timer:     st.Timer,
		prompting: st.Prompting,
		termWait:  st.TermWait,
		reason:    st.Reason,
		done:      st.Done,
	}
	switch {
	case len(st.Seen) > 0:
		s.seen = append([]SeenKey(nil), st.Seen[max(len(st.Seen)-seenMax, 0):]...)
	case st.LastTS != 0:
		s.seen = []SeenKey{{Key: st.LastKey, TS: st.LastTS}}
	}
	return s, nil
}
