// Package web serves dtmfd's web keypad: a page where someone building an
// IVR flow presses keys on simulated calls and watches each call walk the
// flow's diagram, its timers run down and its decision written back.
//
// The page presses keys through the simulator endpoint, which the page
// expects beside it at "simulator". What it shows comes from the engine's
// observers: the Hub receives every call step and every write, keeps the
// recent ones, and pushes them to each open page as server-sent events.
// A page that connects gets a snapshot first, then the events. Where the
// platform can report the writes it received, as dtmfd's emulator can,
// the feed shows those instead of what the writer believes it delivered.
//
// The Hub never blocks the engine. Each page has a bounded buffer; a page
// that falls behind is disconnected, and its browser reconnects and starts
// again from a fresh snapshot.
package web

import (
	"container/list"
	"encoding/json"
	"log/slog"
	"sync"
	"time"

	"github.com/dtmfd/dtmfd/actors"
	"github.com/dtmfd/dtmfd/ivrspec"
	"github.com/dtmfd/dtmfd/transport/metrics"
)

// Options configures a Hub. Zero values take the defaults named on each
// field.
type Options struct {
	// Flow returns the flow new calls start on; the page draws it. Nil
	// draws nothing.
	Flow func() *ivrspec.Flow
	// Token, when set, must come with every request for the page, its
	// events and its flow, as "Authorization: Bearer" or as a "token"
	// query parameter (a browser's EventSource cannot set headers).
	Token string
	// Logger receives connections at Debug, dropped pages at Info and
	// refused tokens at Warn.
	Logger *slog.Logger
	// Metrics counts refused tokens as the simulator's, whose token the
	// keypad shares; nil counts nothing.
	Metrics *metrics.Metrics

	// Received, when set, makes the feed show the writes the platform
	// received, as OnReceived reports them; OnWrite then adds only the
	// writes given up on, which the platform never took.
	Received bool

	// MaxCalls is how many recent calls are kept for new pages (200).
	MaxCalls int
	// MaxWrites is how many recent writes are kept for new pages (100).
	MaxWrites int
	// Buffer is how many events may wait for one page before it is
	// dropped (256).
	Buffer int
}

// Hub fans the engine's call and write events out to the open pages and
// remembers the recent ones for pages that connect later.
type Hub struct {
	opts Options
	log  *slog.Logger
	done chan struct{}

	mu     sync.Mutex
	calls  map[string]*list.Element // of *callView
	recent *list.List               // least recently updated call first
	writes []writeView              // a ring of opts.MaxWrites
	next   int                      // where the next write goes in writes
	subs   map[*subscriber]struct{}
	flow   *ivrspec.Flow
	graph  *graph
	closed bool
}

// subscriber is one open page.
type subscriber struct {
	remote string
	ch     chan []byte
	// kicked is closed when the page fell behind and must reconnect.
	kicked chan struct{}
}

// New returns a Hub with no calls.
func New(opts Options) *Hub {
	if opts.MaxCalls <= 0 {
		opts.MaxCalls = 200
	}
	if opts.MaxWrites <= 0 {
		opts.MaxWrites = 100
	}
	if opts.Buffer <= 0 {
		opts.Buffer = 256
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Hub{
		opts:   opts,
		log:    log,
		done:   make(chan struct{}),
		calls:  make(map[string]*list.Element),
		recent: list.New(),
		subs:   make(map[*subscriber]struct{}),
	}
}

// OnCall records one step of a call and sends it to the open pages. It
// never waits for a page, so it can be the engine's Config.OnCall.
func (h *Hub) OnCall(ev actors.CallEvent) {
	flow := h.currentFlow()

	h.mu.Lock()
	defer h.mu.Unlock()
	h.refresh(flow)

	c := h.call(ev)
	c.apply(ev)
	h.broadcast("call", callMessage{Now: nowMilli(), Call: c})
}

// OnWrite records a write the writer delivered or gave up on and sends it
// to the open pages; with Options.Received, only one given up on. It never
// waits for a page, so it can be the engine's Config.OnWrite.
func (h *Hub) OnWrite(ev actors.WriteEvent) {
	if h.opts.Received && ev.Err == nil {
		return
	}
	w := newWriteView(ev, time.Now())

	h.mu.Lock()
	defer h.mu.Unlock()
	h.addWrite(w)
}

// OnReceived records a write as the platform received it at the time
// given, and sends it to the open pages. The platform cannot tell which
// values are secret, so the Hub masks those the call's decision marked
// sensitive, and every value of a call it has not seen decide. The
// latency runs from the decision to at. It never waits for a page.
func (h *Hub) OnReceived(interactionID string, vars []ivrspec.Variable, at time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()

	var c *callView
	if e, ok := h.calls[interactionID]; ok {
		c = e.Value.(*callView)
	}
	h.addWrite(newReceivedView(interactionID, vars, at, c))
}

// addWrite keeps w among the recent writes and sends it to the open
// pages. The caller holds h.mu.
func (h *Hub) addWrite(w writeView) {
	if len(h.writes) < h.opts.MaxWrites {
		h.writes = append(h.writes, w)
	} else {
		h.writes[h.next] = w
	}
	h.next = (h.next + 1) % h.opts.MaxWrites
	h.broadcast("write", writeMessage{Now: nowMilli(), Write: w})
}

// Close ends every event stream and refuses new ones, so that an HTTP
// server shutting down is not held open by pages. Call it before the
// server's Shutdown.
func (h *Hub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	h.closed = true
	close(h.done)
	clear(h.subs)
}

func (h *Hub) currentFlow() *ivrspec.Flow {
	if h.opts.Flow == nil {
		return nil
	}
	return h.opts.Flow()
}

// refresh makes f the flow drawn and tells the open pages, if it is not
// already. The caller holds h.mu.
func (h *Hub) refresh(f *ivrspec.Flow) {
	if f == h.flow && h.graph != nil {
		return
	}
	h.flow, h.graph = f, newGraph(f)
	h.broadcast("flow", flowMessage{Now: nowMilli(), Flow: h.graph})
}

// call returns the view of ev's call, creating it and forgetting the
// least recently updated call if there are too many. The caller holds
// h.mu.
func (h *Hub) call(ev actors.CallEvent) *callView {
	if e, ok := h.calls[ev.CallID]; ok {
		h.recent.MoveToBack(e)
		return e.Value.(*callView)
	}

	c := newCallView(ev)
	h.calls[ev.CallID] = h.recent.PushBack(c)
	if h.recent.Len() > h.opts.MaxCalls {
		oldest := h.recent.Remove(h.recent.Front()).(*callView)
		delete(h.calls, oldest.ID)
	}
	return c
}

// The messages of the event stream. Now is the server's clock when the
// message was made, so a page can run timers down in its own clock.
type (
	snapshotMessage struct {
		Now    int64       `json:"now"`
		Flow   *graph      `json:"flow"`
		Calls  []*callView `json:"calls"`
		Writes []writeView `json:"writes"`
	}
	flowMessage struct {
		Now  int64  `json:"now"`
		Flow *graph `json:"flow"`
	}
	callMessage struct {
		Now  int64     `json:"now"`
		Call *callView `json:"call"`
	}
	writeMessage struct {
		Now   int64     `json:"now"`
		Write writeView `json:"write"`
	}
)

// broadcast sends one event to every page. A page whose buffer is full
// is dropped rather than waited for. The caller holds h.mu.
func (h *Hub) broadcast(event string, msg any) {
	if len(h.subs) == 0 {
		return
	}
	frame, err := encode(event, msg)
	if err != nil {
		h.log.Warn("web event not encoded", "event", event, "error", err)
		return
	}

	for s := range h.subs {
		select {
		case s.ch <- frame:
		default:
			h.kick(s)
		}
	}
}

// kick drops a page that fell behind. The caller holds h.mu.
func (h *Hub) kick(s *subscriber) {
	delete(h.subs, s)
	close(s.kicked)
	h.log.Info("web page too slow for its events; it will reconnect",
		"remote", s.remote, "buffer", h.opts.Buffer)
}

// subscribe registers the page at remote and returns the snapshot it
// starts from; every event after the snapshot reaches the page's channel.
// It fails once the Hub is closed.
func (h *Hub) subscribe(remote string) (*subscriber, []byte, bool) {
	flow := h.currentFlow()

	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, nil, false
	}
	h.refresh(flow)

	snap, err := encode("snapshot", h.snapshot())
	if err != nil {
		h.log.Warn("web snapshot not encoded", "error", err)
		return nil, nil, false
	}
	s := &subscriber{remote: remote, ch: make(chan []byte, h.opts.Buffer),
		kicked: make(chan struct{})}
	h.subs[s] = struct{}{}
	return s, snap, true
}

func (h *Hub) unsubscribe(s *subscriber) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.subs, s)
}

// snapshot is everything a new page starts from: the flow, the recent
// calls in the order they were last updated, and the recent writes,
// oldest first. The caller holds h.mu.
func (h *Hub) snapshot() snapshotMessage {
	calls := make([]*callView, 0, h.recent.Len())
	for e := h.recent.Front(); e != nil; e = e.Next() {
		calls = append(calls, e.Value.(*callView))
	}

	writes := make([]writeView, 0, len(h.writes))
	if len(h.writes) == h.opts.MaxWrites {
		writes = append(writes, h.writes[h.next:]...)
		writes = append(writes, h.writes[:h.next]...)
	} else {
		writes = append(writes, h.writes...)
	}
	return snapshotMessage{Now: nowMilli(), Flow: h.graph, Calls: calls, Writes: writes}
}

// flowJSON returns the flow as the page draws it.
func (h *Hub) flowJSON() ([]byte, error) {
	return json.Marshal(newGraph(h.currentFlow()))
}

func nowMilli() int64 { return time.Now().UnixMilli() }
