package web

import (
	"time"

	"github.com/dtmfd/dtmfd/actors"
	"github.com/dtmfd/dtmfd/ivrspec"
)

// maxSteps bounds the node visits and the keys kept for one call, so a
// caller who presses keys for an hour costs the page no more than one who
// walks a three-node flow.
const maxSteps = 64

// mask replaces a sensitive value before it leaves the process.
const mask = "***"

// callView is what the page knows of one call: the state after its last
// event and the way it came there. It is sent whole on every event, so a
// browser that missed events is right again after the next one.
type callView struct {
	ID      string `json:"id"`
	Node    string `json:"node"`
	Digits  string `json:"digits"`
	NoInput int    `json:"noInput"`
	NoMatch int    `json:"noMatch"`
	Prompt  string `json:"prompt,omitempty"`

	// Timer is the running timer; nil when none runs.
	Timer *timerView `json:"timer"`
	// Expired names the timer whose firing caused the last event.
	Expired string `json:"expired,omitempty"`

	Path     []stepView    `json:"path"`
	Keys     []keyView     `json:"keys"`
	Decision *decisionView `json:"decision"`

	Started int64 `json:"started"`
	Updated int64 `json:"updated"`

	// decided is when the call decided, for the latency of its write.
	decided time.Time
}

// timerView is a running timer: it fires After milliseconds from At, both
// in the server's clock.
type timerView struct {
	Kind    string `json:"kind"`
	AfterMs int64  `json:"afterMs"`
	At      int64  `json:"at"`
}

// stepView is one node the call entered and how: Via is "start", "key"
// (with Key), "noMatch", or the name of the timer that fired.
type stepView struct {
	Node string `json:"node"`
	Via  string `json:"via"`
	Key  string `json:"key,omitempty"`
}

// keyView is one key the caller pressed, as it may be shown, with the node
// it was pressed at and what became of it.
type keyView struct {
	Key     string `json:"key"`
	Node    string `json:"node"`
	Outcome string `json:"outcome"`
}

type decisionView struct {
	End       string    `json:"end"`
	From      string    `json:"from"`
	Reason    string    `json:"reason"`
	Variables []varView `json:"variables"`
}

type varView struct {
	Name      string `json:"name"`
	Value     string `json:"value"`
	Sensitive bool   `json:"sensitive,omitempty"`
}

// The statuses of a write in the feed.
const (
	statusAccepted  = "accepted"  // the platform received it
	statusDelivered = "delivered" // the writer had it accepted
	statusFailed    = "failed"    // the writer gave up on it
)

// writeView is one write received, delivered or given up on. LatencyMs
// runs from the decision; it is nil when that is not known.
type writeView struct {
	InteractionID string    `json:"interactionId"`
	Variables     []varView `json:"variables"`
	OK            bool      `json:"ok"`
	Status        string    `json:"status"`
	Error         string    `json:"error,omitempty"`
	LatencyMs     *float64  `json:"latencyMs,omitempty"`
	At            int64     `json:"at"`
}

// maxError bounds the error text of a failed write shown on the page.
const maxError = 300

func newCallView(ev actors.CallEvent) *callView {
	return &callView{ID: ev.CallID, Started: ev.At.UnixMilli()}
}

// apply moves the view on by one event of its call.
func (c *callView) apply(ev actors.CallEvent) {
	fired := ev.Key == "" && len(c.Path) > 0
	c.Expired = ""
	if fired && c.Timer != nil && c.Timer.Kind != ivrspec.TimerPrompt.String() {
		c.Expired = c.Timer.Kind
	}

	if ev.Key != "" {
		c.Keys = bounded(c.Keys, keyView{Key: ev.Key, Node: c.Node, Outcome: ev.Outcome})
	}
	if len(c.Path) == 0 || c.Path[len(c.Path)-1].Node != ev.Node {
		c.Path = bounded(c.Path, c.step(ev, fired))
	}

	c.Node, c.Digits, c.Prompt = ev.Node, ev.Digits, ev.Prompt
	c.NoInput, c.NoMatch = ev.NoInput, ev.NoMatch
	c.Updated = ev.At.UnixMilli()
	c.setTimer(ev.Timer, ev.At)
	if ev.Decision != nil {
		c.Decision = newDecisionView(ev.Decision)
		c.decided = ev.At
	}
}

// step describes how the call reached ev.Node.
func (c *callView) step(ev actors.CallEvent, fired bool) stepView {
	s := stepView{Node: ev.Node}
	switch {
	case len(c.Path) == 0:
		s.Via = "start"
	case ev.Outcome == ivrspec.NoMatch.String():
		s.Via, s.Key = "noMatch", ev.Key
	case ev.Key != "":
		s.Via, s.Key = "key", ev.Key
	case fired && c.Timer != nil:
		s.Via = c.Timer.Kind
	default:
		s.Via = "timer"
	}
	return s
}

// setTimer follows the session's request: keep the running timer, stop
// it, or start a new one at.
func (c *callView) setTimer(t ivrspec.Timer, at time.Time) {
	switch t.Kind {
	case ivrspec.TimerKeep:
	case ivrspec.TimerStop:
		c.Timer = nil
	default:
		c.Timer = &timerView{Kind: t.Kind.String(), AfterMs: t.After.Milliseconds(), At: at.UnixMilli()}
	}
}

// bounded appends v, dropping the oldest entry past maxSteps.
func bounded[T any](s []T, v T) []T {
	if len(s) >= maxSteps {
		s = append(s[:0], s[len(s)-maxSteps+1:]...)
	}
	return append(s, v)
}

func newDecisionView(d *ivrspec.Decision) *decisionView {
	return &decisionView{End: d.End, From: d.From, Reason: d.Reason, Variables: masked(d.Variables)}
}

// masked copies vars with every sensitive value replaced, so the value
// never reaches a browser.
func masked(vars []ivrspec.Variable) []varView {
	out := make([]varView, len(vars))
	for i, v := range vars {
		out[i] = varView{Name: v.Name, Value: v.Value, Sensitive: v.Sensitive}
		if v.Sensitive {
			out[i].Value = mask
		}
	}
	return out
}

func newWriteView(ev actors.WriteEvent, at time.Time) writeView {
	w := writeView{
		InteractionID: ev.InteractionID,
		Variables:     masked(ev.Variables),
		OK:            ev.Err == nil,
		Status:        statusDelivered,
		LatencyMs:     millis(ev.Latency),
		At:            at.UnixMilli(),
	}
	if ev.Err != nil {
		w.Status = statusFailed
		w.Error = ev.Err.Error()
		if len(w.Error) > maxError {
			w.Error = w.Error[:maxError] + "…"
		}
	}
	return w
}

// newReceivedView describes a write the platform received at, to call c
// (nil when unknown). A value is shown only when c's decision holds it
// and did not mark it sensitive.
func newReceivedView(id string, vars []ivrspec.Variable, at time.Time, c *callView) writeView {
	w := writeView{
		InteractionID: id,
		Variables:     make([]varView, len(vars)),
		OK:            true,
		Status:        statusAccepted,
		At:            at.UnixMilli(),
	}
	shown := make(map[string]bool)
	if c != nil && c.Decision != nil {
		for _, v := range c.Decision.Variables {
			if _, seen := shown[v.Name]; !seen || v.Sensitive {
				shown[v.Name] = !v.Sensitive
			}
		}
		w.LatencyMs = millis(at.Sub(c.decided))
	}
	for i, v := range vars {
		w.Variables[i] = varView{Name: v.Name, Value: v.Value}
		if !shown[v.Name] {
			w.Variables[i].Value, w.Variables[i].Sensitive = mask, true
		}
	}
	return w
}

// millis is d in milliseconds, to the microsecond; a wall clock stepped
// back between two readings gives 0, not a negative latency.
func millis(d time.Duration) *float64 {
	ms := float64(max(d, 0).Microseconds()) / 1000
	return &ms
}
