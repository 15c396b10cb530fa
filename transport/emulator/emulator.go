// Package emulator runs an in-process stand-in for the CXone platform as the
// tutorial describes it: an OAuth token endpoint, a voice stream that pushes
// one JSON event per WebSocket text frame, and an endpoint that takes
// variable writes for an interaction. dtmfd's local mode starts one on
// loopback so the whole path runs on a laptop without a CXone account, and
// the end-to-end, fault and benchmark tests drive it from Go: they queue
// events, read back the writes it accepted, and inject faults.
//
// It serves the tutorial's paths, which are not the real platform's. On the
// real platform the token endpoint is /auth/token (found by OpenID
// discovery, password grant, client credentials as HTTP Basic), REST paths
// live under /inContactAPI/services/vNN.0/ on a regional API host, and values
// reach a running script through the Signal API. The emulator models only
// the tutorial's contract.
package emulator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// maxBody bounds every request body the emulator reads.
const maxBody = 64 << 10

var errClosed = errors.New("emulator closed")

// Options configures an Emulator. The zero value is usable.
type Options struct {
	// ClientID and ClientSecret are the credentials the token endpoint
	// accepts. When both are empty it accepts any.
	ClientID, ClientSecret string

	// TokenTTL is the lifetime of issued tokens, sent as expires_in.
	// Zero means 3600s, the platform's.
	TokenTTL time.Duration

	// Logger receives lifecycle and per-request records; nil discards them.
	Logger *slog.Logger

	// Addr is the address Start listens on; empty means 127.0.0.1:0.
	Addr string

	// OnWrite, when set, is called with every write the emulator accepted,
	// once Writes lists it and before the client hears the reply, so a
	// watcher sees each write exactly as the platform received it. It runs
	// on the request's goroutine and must not block.
	OnWrite func(Write)
}

// Variable is one name and value of a write to an interaction.
type Variable struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Write is one write the emulator accepted, as /emulator/writes lists it.
type Write struct {
	InteractionID string     `json:"interactionId"`
	Variables     []Variable `json:"variables"`
	At            time.Time  `json:"at"`
}

// Emulator is an HTTP server that plays the platform's side of dtmfd's wire
// contract. Its methods are safe for concurrent use.
type Emulator struct {
	opts Options
	log  *slog.Logger
	mux  *http.ServeMux
	now  func() time.Time
	done chan struct{} // closed by Close

	// pongsStopped is read on every ping, outside mu.
	pongsStopped atomic.Bool

	// handlers counts stream handlers, which outlive the HTTP server's
	// tracking once they hijack their connection.
	handlers sync.WaitGroup

	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every change waiters see
	closed  bool
	srv     *server // nil until Start
	tokens  map[string]time.Time
	writes  []Write
	faults  faults

	// Stream state; see stream.go.
	live     []*stream // connected streams, oldest first
	outbox   [][]byte
	sending  bool // a stream is writing frames from the head of outbox
	attempts []time.Time

	tokenRequests  int
	streamConnects int
	writeRequests  int
	pingsIgnored   int
}

// New returns an Emulator that is not yet listening. Call Start to serve
// on Options.Addr, or mount Handler on a server of your own; either way,
// call Close when done.
func New(opts Options) *Emulator {
	if opts.TokenTTL <= 0 {
		opts.TokenTTL = 3600 * time.Second
	}
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}

	e := &Emulator{
		opts:    opts,
		log:     log,
		mux:     http.NewServeMux(),
		now:     time.Now,
		done:    make(chan struct{}),
		changed: make(chan struct{}),
		tokens:  make(map[string]time.Time),
		faults:  faults{rejected: make(map[string]int)},
	}
	e.mux.HandleFunc("POST /oauth/token", e.serveToken)
	e.mux.HandleFunc("GET /api/v2/voice/websocket", e.serveStream)
	e.mux.HandleFunc("POST /api/v2/interactions/{id}/variables", e.serveWrite)
	e.mux.HandleFunc("GET /emulator/writes", e.serveWrites)
	return e
}

// Start listens on Options.Addr and serves in the background until Close.
func (e *Emulator) Start() error {
	e.mu.Lock()
	defer e.mu.Unlock()

	if e.closed {
		return fmt.Errorf("start emulator: %w", errClosed)
	}
	if e.srv != nil {
		return errors.New("start emulator: already started")
	}

	srv, err := serve(e.opts.Addr, e.mux, e.log)
	if err != nil {
		return err
	}
	e.srv = srv
	e.log.Info("emulator listening", "url", srv.url())
	return nil
}

// URL returns the base URL the emulator serves on, such as
// http://127.0.0.1:41234, or "" before Start.
func (e *Emulator) URL() string {
	e.mu.Lock()
	defer e.mu.Unlock()

	return e.srv.url()
}

// Handler returns the emulator's routes, for mounting on another server
// such as an httptest.Server.
func (e *Emulator) Handler() http.Handler {
	return e.mux
}

// Close closes every stream with 1001 (going away), stops the server and
// waits for the emulator's goroutines. Closing twice is harmless.
func (e *Emulator) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	close(e.done)
	e.broadcastLocked()
	ended := e.endAllLocked(&ending{
		code:   websocket.StatusGoingAway,
		reason: "emulator closing",
	})
	srv := e.srv
	e.mu.Unlock()

	e.closeEnded(ended)
	err := srv.close()
	e.handlers.Wait()

	e.log.Info("emulator closed")
	return err
}

// broadcastLocked wakes every waiter so it checks its condition again.
func (e *Emulator) broadcastLocked() {
	close(e.changed)
	e.changed = make(chan struct{})
}

// waitFor blocks until ready, called with e.mu held, reports true.
func (e *Emulator) waitFor(ctx context.Context, ready func() bool) error {
	for {
		e.mu.Lock()
		ok, closed, ch := ready(), e.closed, e.changed
		e.mu.Unlock()

		switch {
		case ok:
			return nil
		case closed:
			return errClosed
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Writes returns a copy of the accepted writes in arrival order.
func (e *Emulator) Writes() []Write {
	e.mu.Lock()
	defer e.mu.Unlock()

	return cloneWrites(e.writes, func(Write) bool { return true })
}

// WritesFor returns a copy of the accepted writes to one interaction.
func (e *Emulator) WritesFor(id string) []Write {
	e.mu.Lock()
	defer e.mu.Unlock()

	return cloneWrites(e.writes, func(w Write) bool { return w.InteractionID == id })
}

func cloneWrites(writes []Write, keep func(Write) bool) []Write {
	out := make([]Write, 0, len(writes))
	for _, w := range writes {
		if keep(w) {
			w.Variables = append([]Variable(nil), w.Variables...)
			out = append(out, w)
		}
	}
	return out
}

// WaitWrites blocks until at least n writes have been accepted, ctx is done
// or the emulator is closed.
func (e *Emulator) WaitWrites(ctx context.Context, n int) error {
	err := e.waitFor(ctx, func() bool { return len(e.writes) >= n })
	if err != nil {
		return fmt.Errorf("wait for %d writes: %w", n, err)
	}
	return nil
}

// TokenRequests returns how many requests reached the token endpoint,
// including failed ones.
func (e *Emulator) TokenRequests() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.tokenRequests
}

// WriteRequests returns how many requests reached the write endpoint,
// including failed and rejected ones.
func (e *Emulator) WriteRequests() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.writeRequests
}

// faults holds the failures tests have asked for; e.mu guards it.
type faults struct {
	writes     failure
	tokens     failure
	handshakes failure
	rejected   map[string]int // interaction id to status
	writeDelay time.Duration
}

// failure answers the next n requests of one kind with status and header.
type failure struct {
	n      int
	status int
	header http.Header
}

func (f *failure) take() (int, http.Header, bool) {
	if f.n <= 0 {
		return 0, nil, false
	}
	f.n--
	return f.status, f.header, true
}

// FailWrites makes the next n write requests, to any interaction, answer
// status with header, such as 429 with Retry-After. They are not recorded.
func (e *Emulator) FailWrites(n, status int, header http.Header) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.faults.writes = failure{n: n, status: status, header: header.Clone()}
}

// RejectInteraction makes every write to interaction id answer status,
// such as 400 for a contact that no longer exists, while other
// interactions are unaffected.
func (e *Emulator) RejectInteraction(id string, status int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.faults.rejected[id] = status
}

// DelayWrites makes each write request wait d before it is answered, or
// until its client gives up.
func (e *Emulator) DelayWrites(d time.Duration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.faults.writeDelay = d
}

// ExpireTokens revokes every token issued so far, so their next use is
// answered 401, as when the platform rejects a token before expires_in.
func (e *Emulator) ExpireTokens() {
	e.mu.Lock()
	defer e.mu.Unlock()
	clear(e.tokens)
}

// FailTokens makes the next n token requests answer status.
func (e *Emulator) FailTokens(n, status int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.faults.tokens = failure{n: n, status: status}
}

// FailHandshakes makes the next n voice stream handshakes answer status
// instead of upgrading.
func (e *Emulator) FailHandshakes(n, status int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.faults.handshakes = failure{n: n, status: status}
}

func (e *Emulator) countTokenRequest() (int, http.Header, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.tokenRequests++
	return e.faults.tokens.take()
}

func (e *Emulator) takeWriteFault() (int, http.Header, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.faults.writes.take()
}

func (e *Emulator) rejection(id string) (int, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	status, ok := e.faults.rejected[id]
	return status, ok
}

// delayWrite counts a write request and waits out DelayWrites. It reports
// false if the client or the emulator gave up first.
func (e *Emulator) delayWrite(ctx context.Context) bool {
	e.mu.Lock()
	e.writeRequests++
	d := e.faults.writeDelay
	e.broadcastLocked()
	e.mu.Unlock()

	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-e.done:
		return false
	}
}

func replyFault(w http.ResponseWriter, status int, header http.Header) {
	for k, vs := range header {
		w.Header()[k] = append([]string(nil), vs...)
	}
	replyError(w, status, errorCode(status))
}
