package emulator

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// frameWriteTimeout bounds one batch of frame writes, so a peer that stops
// reading is treated as gone instead of holding the outbox forever.
const frameWriteTimeout = 10 * time.Second

// maxBatch is how many frames a stream takes from the outbox at a time.
const maxBatch = 64

// Event is one voice stream event, sent as a JSON text frame.
type Event struct {
	Type      string `json:"type"`
	Digit     string `json:"digit,omitempty"`
	CallID    string `json:"callId,omitempty"`
	Timestamp int64  `json:"timestamp"` // Unix milliseconds
}

// ending says how the emulator closes a stream it ends.
type ending struct {
	drop   bool // close the connection without a close frame
	code   websocket.StatusCode
	reason string
}

func (end *ending) apply(ws *websocket.Conn) error {
	if end.drop {
		return ws.CloseNow()
	}
	return ws.Close(end.code, end.reason)
}

// stream is one accepted voice stream connection.
type stream struct {
	ws     *websocket.Conn
	conn   *corkedConn // ws's connection, which holds a batch's frames
	remote string

	// stop is closed when the stream leaves e.live. end, guarded by e.mu,
	// is then nil if the connection itself failed, or how the emulator is
	// closing it.
	stop chan struct{}
	end  *ending

	finished chan struct{} // closed when the stream's goroutines are done
}

func (s *stream) ended() bool {
	select {
	case <-s.stop:
		return true
	default:
		return false
	}
}

// Send queues ev for the stream. Frames go out in the order sent, to the
// most recently connected live client; a frame not yet written when its
// connection dies waits for the next one.
func (e *Emulator) Send(ev Event) {
	// Marshal cannot fail: Event has only strings and an integer.
	frame, _ := json.Marshal(ev)
	e.enqueue(frame)
}

// SendRaw queues frame as is, for events the contract does not describe
// and for malformed ones.
func (e *Emulator) SendRaw(frame []byte) {
	e.enqueue(bytes.Clone(frame))
}

func (e *Emulator) enqueue(frame []byte) {
	e.mu.Lock()
	defer e.mu.Unlock()

	e.outbox = append(e.outbox, frame)
	e.broadcastLocked()
}

// Pending returns how many frames wait in the outbox.
func (e *Emulator) Pending() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.outbox)
}

// WaitConnected blocks until a stream client is connected, ctx is done or
// the emulator is closed.
func (e *Emulator) WaitConnected(ctx context.Context) error {
	err := e.waitFor(ctx, func() bool { return len(e.live) > 0 })
	if err != nil {
		return fmt.Errorf("wait for stream: %w", err)
	}
	return nil
}

// StreamConnects returns how many stream connections were accepted.
func (e *Emulator) StreamConnects() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.streamConnects
}

// StreamAttempts returns the time of every stream handshake attempt,
// failed ones included, so tests can check a client's backoff.
func (e *Emulator) StreamAttempts() []time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.attempts)
}

// CloseStreams closes every live stream with a close frame carrying code
// and reason, and returns when the close handshakes are done.
func (e *Emulator) CloseStreams(code websocket.StatusCode, reason string) {
	e.mu.Lock()
	ended := e.endAllLocked(&ending{code: code, reason: reason})
	e.mu.Unlock()

	e.closeEnded(ended)
}

// DropStreams closes every live stream's connection without a close frame,
// as a network failure or a crashed platform would; clients see the
// connection end with no close status. As on a real network, frames
// written just before the drop may be lost with the connection; frames
// still queued are kept for the next client.
func (e *Emulator) DropStreams() {
	e.mu.Lock()
	ended := e.endAllLocked(&ending{drop: true})
	e.mu.Unlock()

	e.closeEnded(ended)
}

// StopPongs, while stop is true, leaves clients' pings unanswered, as a
// platform that has stopped reading would.
func (e *Emulator) StopPongs(stop bool) {
	e.pongsStopped.Store(stop)
}

// answerPing tells the WebSocket library whether to answer a ping.
func (e *Emulator) answerPing(context.Context, []byte) bool {
	if !e.pongsStopped.Load() {
		return true
	}

	e.mu.Lock()
	defer e.mu.Unlock()
	e.pingsIgnored++
	e.broadcastLocked()
	return false
}

// serveStream upgrades an authorized request to a voice stream and feeds
// it from the outbox until it ends.
func (e *Emulator) serveStream(w http.ResponseWriter, r *http.Request) {
	if status, failed := e.beginHandshake(); failed {
		e.log.Debug("stream handshake failed by fault", "status", status)
		replyError(w, status, errorCode(status))
		return
	}
	if !e.authorized(r) {
		replyUnauthorized(w)
		return
	}
	if !e.trackHandler() {
		replyError(w, http.StatusServiceUnavailable, "service_unavailable")
		return
	}
	defer e.handlers.Done()

	cw := &corkingWriter{ResponseWriter: w}
	ws, err := websocket.Accept(cw, r, &websocket.AcceptOptions{
		OnPingReceived: e.answerPing,
	})
	if err != nil {
		e.log.Debug("stream upgrade failed", "err", err)
		return
	}

	s := e.connect(ws, cw.conn, r.RemoteAddr)
	if s == nil {
		ws.Close(websocket.StatusGoingAway, "emulator closing")
		return
	}
	e.run(s)
}

func (e *Emulator) beginHandshake() (int, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()

	e.attempts = append(e.attempts, e.now())
	status, _, failed := e.faults.handshakes.take()
	return status, failed
}

// trackHandler counts a stream handler for Close to wait on, unless the
// emulator is already closed.
func (e *Emulator) trackHandler() bool {
	e.mu.Lock()
	defer e.mu.Unlock()

	if e.closed {
		return false
	}
	e.handlers.Add(1)
	return true
}

// connect makes ws the stream frames go to, or returns nil if the emulator
// closed during the upgrade.
func (e *Emulator) connect(ws *websocket.Conn, conn *corkedConn, remote string) *stream {
	e.mu.Lock()
	defer e.mu.Unlock()

	if e.closed {
		return nil
	}
	s := &stream{
		ws:       ws,
		conn:     conn,
		remote:   remote,
		stop:     make(chan struct{}),
		finished: make(chan struct{}),
	}
	e.live = append(e.live, s)
	e.streamConnects++
	e.broadcastLocked()

	e.log.Info("stream connected", "remote", remote, "streams", len(e.live))
	return s
}

// run writes frames to s while a second goroutine reads from it, which
// lets the library answer pings and notice the peer's close.
func (e *Emulator) run(s *stream) {
	var readErr error
	read := make(chan struct{})
	go func() {
		defer close(read)
		readErr = e.discard(s)
	}()

	e.deliver(s)

	e.mu.Lock()
	failed := s.end == nil
	e.mu.Unlock()
	if failed {
		s.ws.CloseNow()
	}

	<-read
	close(s.finished)
	e.log.Info("stream disconnected", "remote", s.remote,
		"code", int(websocket.CloseStatus(readErr)))
}

// discard reads and drops client messages until the connection ends.
func (e *Emulator) discard(s *stream) error {
	for {
		_, _, err := s.ws.Read(context.Background())
		if err != nil {
			e.endStream(s, nil)
			return err
		}
	}
}

// deliver writes the outbox to s, in order, while s is the newest live
// stream. A frame leaves the outbox only once written.
func (e *Emulator) deliver(s *stream) {
	for {
		batch, ok := e.claim(s)
		if !ok {
			return
		}

		// The batch reaches the socket in one write at uncork. Frames
		// held when that write fails are lost with the connection, as
		// frames in flight on a broken connection are.
		s.conn.cork()
		n, err := writeFrames(s.ws, batch)
		if uerr := s.conn.uncork(frameWriteTimeout); err == nil {
			err = uerr
		}
		e.release(n)
		if err != nil {
			e.log.Debug("stream write failed", "remote", s.remote, "err", err)
			e.endStream(s, nil)
			return
		}
	}
}

func writeFrames(ws *websocket.Conn, frames [][]byte) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), frameWriteTimeout)
	defer cancel()

	for i, f := range frames {
		if err := ws.Write(ctx, websocket.MessageText, f); err != nil {
			return i, fmt.Errorf("write frame: %w", err)
		}
	}
	return len(frames), nil
}

// claim waits until s may write: it is the newest live stream, frames are
// queued, and no other stream is still writing. It reports false once s
// has ended.
func (e *Emulator) claim(s *stream) ([][]byte, bool) {
	for {
		e.mu.Lock()
		if s.ended() {
			e.mu.Unlock()
			return nil, false
		}
		if !e.sending && len(e.outbox) > 0 && e.live[len(e.live)-1] == s {
			batch := slices.Clone(e.outbox[:min(len(e.outbox), maxBatch)])
			e.sending = true
			e.mu.Unlock()
			return batch, true
		}
		ch := e.changed
		e.mu.Unlock()

		select {
		case <-ch:
		case <-s.stop:
		}
	}
}

// release drops the n frames written from the head of the outbox and lets
// the next claim through.
func (e *Emulator) release(n int) {
	e.mu.Lock()
	defer e.mu.Unlock()

	clear(e.outbox[:n])
	e.outbox = e.outbox[n:]
	if len(e.outbox) == 0 {
		e.outbox = nil
	}
	e.sending = false
	e.broadcastLocked()
}

func (e *Emulator) endStream(s *stream, end *ending) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.endLocked(s, end)
}

// endLocked takes s out of the live set; the first end recorded wins.
func (e *Emulator) endLocked(s *stream, end *ending) {
	if s.ended() {
		return
	}
	s.end = end
	close(s.stop)
	e.live = slices.DeleteFunc(e.live, func(l *stream) bool { return l == s })
	e.broadcastLocked()
}

func (e *Emulator) endAllLocked(end *ending) []*stream {
	ended := slices.Clone(e.live)
	for _, s := range ended {
		e.endLocked(s, end)
	}
	return ended
}

// closeEnded closes streams the emulator ended, in parallel, and waits
// until their handlers are done.
func (e *Emulator) closeEnded(ended []*stream) {
	var wg sync.WaitGroup
	for _, s := range ended {
		wg.Go(func() {
			if err := s.end.apply(s.ws); err != nil {
				e.log.Debug("close stream", "remote", s.remote, "err", err)
			}
			<-s.finished
		})
	}
	wg.Wait()
}
