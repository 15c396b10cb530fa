package stream

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// session is what one connection attempt came to.
type session struct {
	connected bool          // the handshake succeeded
	status    int           // HTTP status of a refused handshake, else 0
	code      int           // close code received, or -1 for none
	reason    string        // close reason received
	frames    int           // messages read
	lasted    time.Duration // from handshake to disconnect
	err       error         // why the attempt ended
}

// attempt gets a token, dials, and reads until the connection ends.
func (c *Client) attempt(ctx context.Context) session {
	conn, status, err := c.dial(ctx)
	if err != nil {
		return session{status: status, code: -1, err: err}
	}

	c.opts.Metrics.StreamConnected()
	c.opts.OnState(true)
	c.log.Info("stream connected")

	start := time.Now()
	frames, err := c.serve(ctx, conn)
	c.opts.OnState(false)

	s := session{
		connected: true,
		code:      -1,
		frames:    frames,
		lasted:    time.Since(start),
		err:       err,
	}
	var ce websocket.CloseError
	if errors.As(err, &ce) {
		s.code, s.reason = int(ce.Code), ce.Reason
	}
	return s
}

// dial performs one handshake with a fresh token. A handshake refused with
// 401 invalidates that token. It returns the HTTP status of a refused
// handshake, for the log. Neither its errors nor its logs hold the token.
func (c *Client) dial(ctx context.Context) (*websocket.Conn, int, error) {
	ctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
	defer cancel()

	tok, err := c.opts.Token(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("get token: %w", err)
	}

	conn, resp, err := websocket.Dial(ctx, c.opts.URL, &websocket.DialOptions{
		HTTPClient: c.opts.HTTPClient,
		HTTPHeader: http.Header{"Authorization": {"Bearer " + tok}},
	})
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		if status == http.StatusUnauthorized && c.opts.Invalidate != nil {
			c.opts.Invalidate(tok)
		}
		return nil, status, fmt.Errorf("dial stream: %w", err)
	}

	conn.SetReadLimit(c.opts.ReadLimit)
	return conn, 0, nil
}

// serve reads conn until it ends, with a pinger and a shutdown watcher
// beside it, and returns how many frames it read and why it ended. Both
// goroutines have returned, and conn is closed, when serve returns.
func (c *Client) serve(ctx context.Context, conn *websocket.Conn) (int, error) {
	done := make(chan struct{})
	var (
		wg      sync.WaitGroup
		pingErr error
	)
	wg.Go(func() { pingErr = c.keepAlive(ctx, conn, done) })
	wg.Go(func() { c.closeOnCancel(ctx, conn, done) })

	frames, err := c.read(ctx, conn)
	conn.CloseNow()
	close(done)
	wg.Wait()

	// A close frame says more than the ping that failed beside it.
	if pingErr != nil && websocket.CloseStatus(err) == -1 {
		err = pingErr
	}
	return frames, err
}

// read reads frames until the connection fails, handing each to OnEvent or
// OnReject. Its reads run under a context that is never cancelled: with
// this library, cancelling a read closes the connection without a close
// frame, and shutdown must send one. closeOnCancel ends the reads instead.
func (c *Client) read(ctx context.Context, conn *websocket.Conn) (int, error) {
	ctx = context.WithoutCancel(ctx)

	var buf bytes.Buffer
	for n := 0; ; n++ {
		typ, r, err := conn.Reader(ctx)
		if err != nil {
			return n, err
		}

		buf.Reset()
		if _, err := buf.ReadFrom(r); err != nil {
			return n, err
		}
		received := time.Now()

		if typ != websocket.MessageText {
			c.reject(ErrMalformed, Event{}, buf.Len())
			continue
		}
		ev, err := ParseFrame(buf.Bytes())
		if err != nil {
			c.reject(err, ev, buf.Len())
			continue
		}

		ev.Received = received
		c.opts.OnEvent(ev)
	}
}

// reject reports a frame that failed to parse. The log names the call but
// holds nothing else from the frame.
func (c *Client) reject(kind error, ev Event, size int) {
	c.opts.OnReject(kind, ev.Type)
	c.log.Debug("stream frame rejected",
		"kind", kind, "type", ev.Type, "callId", ev.CallID, "size", size)
}

// keepAlive pings conn every PingInterval until done is closed. A ping not
// answered within PongTimeout means the link is dead though no error has
// reached the reader; keepAlive then drops the connection, which ends the
// read, and returns why.
func (c *Client) keepAlive(ctx context.Context, conn *websocket.Conn,
	done <-chan struct{}) error {
	t := time.NewTicker(c.opts.PingInterval)
	defer t.Stop()

	for {
		select {
		case <-done:
			return nil
		case <-t.C:
		}

		// Not derived from ctx: an expired ping context closes the
		// connection, and shutdown must be left to closeOnCancel.
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx),
			c.opts.PongTimeout)
		err := conn.Ping(pctx)
		cancel()
		if err == nil {
			continue
		}

		if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
			return nil // closed by the reader or by shutdown
		}
		conn.CloseNow()
		return fmt.Errorf("no pong within %v: %w", c.opts.PongTimeout, err)
	}
}

// closeOnCancel closes conn with a normal closure when ctx ends before done
// is closed. Close writes its frame and waits for the peer's with deadlines
// of its own, so it cannot hang on a dead peer.
func (c *Client) closeOnCancel(ctx context.Context, conn *websocket.Conn,
	done <-chan struct{}) {
	select {
	case <-done:
	case <-ctx.Done():
		err := conn.Close(websocket.StatusNormalClosure, "shutting down")
		if err != nil {
			c.log.Debug("stream close handshake failed", "error", err)
		}
	}
}
