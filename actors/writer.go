package actors

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/dtmfd/dtmfd/ivrspec"
)

var (
	errBacklogFull  = errors.New("write backlog full")
	errShuttingDown = errors.New("shutting down: no more writes accepted")
)

// writer is the coordinator of the writer pool. It holds the backlog,
// merges the updates of each interaction that are waiting, hands one
// write at a time to each idle worker, and schedules retries with timers.
// It never blocks, so a slow platform fills the backlog instead of holding
// up the calls.
type writer struct {
	sh      *shared
	sink    Sink
	workCtx context.Context
	size    int

	idle    []*actor.PID
	entries map[string]*entry
	// entriesPeak lets entries give back its memory after a burst.
	entriesPeak shrinkable
	ready       []string

	closed  bool
	waiters []*actor.PID
}

// entry is everything held for one interaction.
type entry struct {
	id string
	// waiting are variables not yet sent; sending are those in flight or
	// waiting out a backoff.
	waiting, sending   []ivrspec.Variable
	waitingW, sendingW []*Write

	inFlight, retrying, queued bool
	attempts                   int
	since                      time.Time
}

func newWriter(sh *shared, sink Sink, workCtx context.Context, size int) *writer {
	return &writer{
		sh:      sh,
		sink:    sink,
		workCtx: workCtx,
		size:    size,
		entries: make(map[string]*entry),
	}
}

// Receive handles the writer's messages.
func (w *writer) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		for i := 0; i < w.size; i++ {
			wk := &worker{sink: w.sink, ctx: w.workCtx, clock: w.sh.clock, sh: w.sh}
			w.idle = append(w.idle, ctx.Spawn(actor.PropsFromProducer(
				func() actor.Actor { return wk }, actor.WithDispatcher(w.sh.writePool))))
		}
	case *Write:
		w.add(ctx, m)
	case *attemptDone:
		w.idle = append(w.idle, ctx.Sender())
		w.done(ctx, m)
	case *retryDue:
		if e := w.entries[m.id]; e != nil {
			e.retrying = false
			w.enqueue(e)
		}
	case *flushRequest:
		w.closed = w.closed || m.final
		w.waiters = append(w.waiters, ctx.Sender())
	case *abandonRequest:
		w.abandon(m.reason)
	case *statsRequest:
		ctx.Respond(len(w.entries))
	}
	w.dispatch(ctx)
	w.answerFlush(ctx)
	w.sh.metrics.Backlog(len(w.entries))
}

func (w *writer) add(ctx actor.Context, m *Write) {
	if w.closed {
		w.deadLetter(m.InteractionID, m.Variables, []*Write{m}, 0, errShuttingDown)
		return
	}
	e := w.entries[m.InteractionID]
	if e == nil {
		if w.sh.maxBacklog > 0 && len(w.entries) >= w.sh.maxBacklog {
			w.deadLetter(m.InteractionID, m.Variables, []*Write{m}, 0, errBacklogFull)
			return
		}
		e = &entry{id: m.InteractionID, since: m.DecidedAt}
		w.entries[e.id] = e
	}

	e.waiting = merge(e.waiting, m.Variables)
	e.waitingW = append(e.waitingW, m)
	w.enqueue(e)
}

// enqueue puts e in line for a worker unless it is already in line, in
// flight or waiting out a backoff.
func (w *writer) enqueue(e *entry) {
	if e.queued || e.inFlight || e.retrying {
		return
	}
	e.queued = true
	w.ready = append(w.ready, e.id)
}

func (w *writer) dispatch(ctx actor.Context) {
	for len(w.idle) > 0 && len(w.ready) > 0 {
		id := w.ready[0]
		w.ready = w.ready[1:]
		e := w.entries[id]
		if e == nil {
			continue
		}
		e.queued = false

		// Whatever arrived since the last attempt joins this one.
		e.sending = merge(e.sending, e.waiting)
		e.sendingW = append(e.sendingW, e.waitingW...)
		e.waiting, e.waitingW = nil, nil
		e.inFlight = true
		e.attempts++

		wk := w.idle[len(w.idle)-1]
		w.idle = w.idle[:len(w.idle)-1]
		a := &attempt{id: id, vars: e.sending, attempt: e.attempts}
		if w.sh.journal != nil || w.sh.store != nil {
			a.decisions = decisionIDs(e.sendingW)
		}
		ctx.Send(wk, a)
	}
	if len(w.ready) == 0 {
		w.ready = nil
	}
}

func (w *writer) done(ctx actor.Context, m *attemptDone) {
	e := w.entries[m.id]
	if e == nil {
		return
	}
	e.inFlight = false

	if m.err == nil {
		w.delivered(e, m.latency)
		return
	}

	now := w.sh.clock.Now()
	v := w.verdict(m.err, e.attempts)
	if v.Retry && now.Add(v.After).Sub(e.since) < w.sh.writeDeadline {
		w.sh.metrics.WriteRetry()
		w.sh.log.Debug("write failed; retrying", "callId", e.id,
			"attempt", e.attempts, "after", v.After.String(), "reason", v.Reason, "error", m.err)
		e.retrying = true
		self, root, id := ctx.Self(), w.sh.root, e.id
		w.sh.clock.AfterFunc(v.After, func() { root.Send(self, &retryDue{id: id}) })
		return
	}

	w.deadLetter(e.id, e.sending, e.sendingW, e.attempts, m.err)
	w.next(e)
}

func (w *writer) delivered(e *entry, latency time.Duration) {
	now := w.sh.clock.Now()
	// A write that needed retries is logged at Info, so that recovering
	// from a platform fault shows call by call; one accepted at once is
	// the common case, which the metrics count and time, and is logged
	// at Debug. At Info it was half of dtmfd's log volume and 4% of all
	// CPU end to end, for a line the decision's own line already implies.
	level := slog.LevelDebug
	if e.attempts > 1 {
		level = slog.LevelInfo
	}
	logged := w.sh.log.Enabled(context.Background(), level)
	for _, wr := range e.sendingW {
		w.sh.metrics.WriteAccepted(now.Sub(wr.DecidedAt))
		if logged {
			w.sh.log.Log(context.Background(), level, "variables written", "callId", e.id,
				"decisionId", wr.ID, "attempts", e.attempts, "restLatency", latency.String(),
				"digitToWrite", now.Sub(wr.DigitAt).String())
		}
	}
	if w.sh.observeWrite != nil {
		w.sh.observeWrite(e.id, e.sending, nil, latency)
	}
	w.next(e)
}

// next forgets what was sent and lines up whatever arrived meanwhile.
func (w *writer) next(e *entry) {
	e.sending, e.sendingW = nil, nil
	e.attempts = 0
	if len(e.waiting) == 0 {
		w.entries = deleted(&w.entriesPeak, w.entries, e.id)
		return
	}
	e.since = e.waitingW[0].DecidedAt
	w.enqueue(e)
}

func (w *writer) deadLetter(id string, vars []ivrspec.Variable, ws []*Write, attempts int, err error) {
	dl := DeadLetter{
		InteractionID: id,
		Variables:     vars,
		FailedAt:      w.sh.clock.Now(),
		Attempts:      attempts,
		Err:           err,
	}
	for _, wr := range ws {
		dl.DecisionIDs = append(dl.DecisionIDs, wr.ID)
		if dl.DecidedAt.IsZero() || wr.DecidedAt.Before(dl.DecidedAt) {
			dl.DecidedAt = wr.DecidedAt
		}
	}

	w.sh.metrics.DeadLetter()
	w.sh.log.Error("write given up; recorded as a dead letter", "callId", id,
		"attempts", attempts, "variables", logVars(vars), "error", err)
	if w.sh.observeWrite != nil {
		w.sh.observeWrite(id, vars, err, 0)
	}
	if w.sh.deadLetters == nil {
		w.forget(dl.DecisionIDs)
		return
	}
	if ferr := w.sh.deadLetters(dl); ferr != nil {
		w.sh.log.Error("dead letter not recorded", "callId", id,
			"variables", logVars(vars), "error", ferr)
		return
	}
	w.forget(dl.DecisionIDs)
}

// forget drops given-up decisions from the journal. One whose dead letter
// could not be recorded stays there, to be tried again on restart.
func (w *writer) forget(ids []string) {
	if w.sh.journal == nil || len(ids) == 0 {
		return
	}
	if err := w.sh.journal.Remove(ids); err != nil {
		w.sh.log.Warn("journal not updated; the decisions will be written again on restart",
			"decisions", len(ids), "error", err)
	}
}

func decisionIDs(ws []*Write) []string {
	ids := make([]string, len(ws))
	for i, wr := range ws {
		ids[i] = wr.ID
	}
	return ids
}

// abandon gives up on everything still held: the shutdown grace period
// has run out. With a journal the writes stay in it for the next start;
// without one they are dead-lettered.
func (w *writer) abandon(reason string) {
	if w.sh.journal != nil {
		if len(w.entries) > 0 {
			w.sh.log.Warn("writes still pending at shutdown are kept in the journal for the next start",
				"interactions", len(w.entries), "reason", reason)
		}
		clear(w.entries)
		w.ready = nil
		return
	}
	err := errors.New(reason)
	for _, e := range w.entries {
		if len(e.sending) > 0 {
			w.deadLetter(e.id, e.sending, e.sendingW, e.attempts, err)
		}
		if len(e.waiting) > 0 {
			w.deadLetter(e.id, e.waiting, e.waitingW, 0, err)
		}
	}
	clear(w.entries)
	w.ready = nil
}

func (w *writer) answerFlush(ctx actor.Context) {
	if len(w.waiters) == 0 || len(w.entries) > 0 {
		return
	}
	for _, p := range w.waiters {
		ctx.Send(p, &flushed{})
	}
	w.waiters = nil
}

// merge adds vars to dst; a later value for a name replaces the earlier
// one in place, so a merged request keeps the order names first appeared.
func merge(dst, vars []ivrspec.Variable) []ivrspec.Variable {
next:
	for _, v := range vars {
		for i := range dst {
			if dst[i].Name == v.Name {
				dst[i] = v
				continue next
			}
		}
		dst = append(dst, v)
	}
	return dst
}

// worker performs one write at a time for the coordinator. Blocking here
// only holds this worker; the coordinator sends it nothing else meanwhile.
type worker struct {
	sink  Sink
	ctx   context.Context
	clock Clock
	sh    *shared
}

// Receive performs an attempt and reports it to the coordinator.
func (wk *worker) Receive(ctx actor.Context) {
	a, ok := ctx.Message().(*attempt)
	if !ok {
		return
	}
	start := wk.clock.Now()
	err := wk.write(a)
	if err == nil && len(a.decisions) > 0 && wk.sh.journal != nil {
		if jerr := wk.sh.journal.Remove(a.decisions); jerr != nil {
			wk.sh.log.Warn("journal not updated; the decisions will be written again on restart",
				"callId", a.id, "error", jerr)
		}
	}
	ctx.Request(ctx.Parent(), &attemptDone{id: a.id, err: err, latency: wk.clock.Now().Sub(start)})
}
