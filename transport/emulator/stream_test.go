package emulator

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"testing"

	"github.com/coder/websocket"
)

func wsURL(e *Emulator) string {
	return "ws" + e.URL()[len("http"):] + "/api/v2/voice/websocket"
}

func dialOptions(c *http.Client, token string) *websocket.DialOptions {
	return &websocket.DialOptions{
		HTTPClient: c,
		HTTPHeader: http.Header{"Authorization": {"Bearer " + token}},
	}
}

// dial connects a stream client and waits until the emulator counts it.
func dial(t *testing.T, c *http.Client, e *Emulator, token string) *websocket.Conn {
	t.Helper()
	ctx := testContext(t)

	want := e.StreamConnects() + 1
	ws, _, err := websocket.Dial(ctx, wsURL(e), dialOptions(c, token))
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { ws.CloseNow() })

	err = e.waitFor(ctx, func() bool { return e.streamConnects >= want })
	if err != nil {
		t.Fatal(err)
	}
	return ws
}

// handshakeStatus returns the HTTP status a stream handshake got.
func handshakeStatus(t *testing.T, c *http.Client, e *Emulator, token string) int {
	t.Helper()

	ws, resp, err := websocket.Dial(testContext(t), wsURL(e), dialOptions(c, token))
	if err == nil {
		ws.CloseNow()
		return resp.StatusCode
	}
	if resp == nil {
		t.Fatalf("dial: %v", err)
	}
	return resp.StatusCode
}

func readFrame(t *testing.T, ws *websocket.Conn) string {
	t.Helper()

	typ, p, err := ws.Read(testContext(t))
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if typ != websocket.MessageText {
		t.Fatalf("frame type %v, want text", typ)
	}
	return string(p)
}

func digitEvent(d string) Event {
	return Event{Type: "dtmf", Digit: d, CallID: "c1", Timestamp: 1700000000000}
}

func digitFrame(d string) string {
	return `{"type":"dtmf","digit":"` + d + `","callId":"c1","timestamp":1700000000000}`
}

func TestEventFrame(t *testing.T) {
	t.Parallel()
	e, c := start(t, Options{})
	ws := dial(t, c, e, getToken(t, c, e))

	e.Send(digitEvent("1"))
	raw := []byte(`{"type":"heartbeat"`)
	e.SendRaw(raw)
	raw[0] = 'X'

	if got, want := readFrame(t, ws), digitFrame("1"); got != want {
		t.Errorf("frame = %s, want %s", got, want)
	}
	if got := readFrame(t, ws); got != `{"type":"heartbeat"` {
		t.Errorf("raw frame = %s, want the bytes as sent", got)
	}
}

// TestOutboxSurvivesDrop checks that frames queued while no client is
// connected reach the next client, in order, and that a dropped
// connection ends without a close status.
func TestOutboxSurvivesDrop(t *testing.T) {
	t.Parallel()
	e, c := start(t, Options{})
	token := getToken(t, c, e)

	e.Send(digitEvent("1"))
	e.Send(digitEvent("2"))
	ws := dial(t, c, e, token)
	e.Send(digitEvent("3"))
	for _, d := range []string{"1", "2", "3"} {
		if got := readFrame(t, ws); got != digitFrame(d) {
			t.Fatalf("first connection: got %s, want digit %s", got, d)
		}
	}

	e.DropStreams()
	_, _, err := ws.Read(testContext(t))
	if code := websocket.CloseStatus(err); err == nil || code != -1 {
		t.Fatalf("read after drop: err %v, close status %d; want an error without one", err, code)
	}

	for i := 4; i <= 9; i++ {
		e.Send(digitEvent(strconv.Itoa(i)))
	}
	if n := e.Pending(); n != 6 {
		t.Fatalf("Pending = %d with no client, want 6", n)
	}
	ws = dial(t, c, e, token)
	for i := 4; i <= 9; i++ {
		if got, want := readFrame(t, ws), digitFrame(strconv.Itoa(i)); got != want {
			t.Fatalf("second connection: got %s, want %s", got, want)
		}
	}
	if n := e.StreamConnects(); n != 2 {
		t.Errorf("StreamConnects = %d, want 2", n)
	}
}

func TestNewestClientGetsFrames(t *testing.T) {
	t.Parallel()
	e, c := start(t, Options{})
	token := getToken(t, c, e)
	older := dial(t, c, e, token)
	newer := dial(t, c, e, token)

	e.Send(digitEvent("1"))
	if got := readFrame(t, newer); got != digitFrame("1") {
		t.Fatalf("newer client got %s", got)
	}

	newer.Close(websocket.StatusNormalClosure, "")
	err := e.waitFor(testContext(t), func() bool { return len(e.live) == 1 })
	if err != nil {
		t.Fatal(err)
	}
	e.Send(digitEvent("2"))
	if got := readFrame(t, older); got != digitFrame("2") {
		t.Errorf("older client got %s after the newer left", got)
	}
}

func TestStreamEndings(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name       string
		end        func(e *Emulator)
		wantCode   websocket.StatusCode
		wantReason string
	}{
		{"normal close", func(e *Emulator) {
			e.CloseStreams(websocket.StatusNormalClosure, "bye")
		}, websocket.StatusNormalClosure, "bye"},
		{"service restart", func(e *Emulator) {
			e.CloseStreams(websocket.StatusServiceRestart, "restarting")
		}, websocket.StatusServiceRestart, "restarting"},
		{"private code", func(e *Emulator) {
			e.CloseStreams(4001, "tenant moved")
		}, 4001, "tenant moved"},
		{"drop", func(e *Emulator) { e.DropStreams() }, -1, ""},
		{"emulator closed", func(e *Emulator) { e.Close() },
			websocket.StatusGoingAway, "emulator closing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e, c := start(t, Options{})
			ws := dial(t, c, e, getToken(t, c, e))

			errc := make(chan error, 1)
			go func() {
				_, _, err := ws.Read(testContext(t))
				errc <- err
			}()
			tt.end(e)

			err := <-errc
			if code := websocket.CloseStatus(err); code != tt.wantCode {
				t.Fatalf("close status = %d, want %d (err %v)", code, tt.wantCode, err)
			}
			var ce websocket.CloseError
			if errors.As(err, &ce) && ce.Reason != tt.wantReason {
				t.Errorf("reason = %q, want %q", ce.Reason, tt.wantReason)
			}
		})
	}
}

func TestFailHandshakes(t *testing.T) {
	t.Parallel()
	e, c := start(t, Options{})
	token := getToken(t, c, e)
	e.FailHandshakes(2, http.StatusServiceUnavailable)

	var got []int
	for range 3 {
		got = append(got, handshakeStatus(t, c, e, token))
	}
	want := []int{503, 503, http.StatusSwitchingProtocols}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("handshake statuses = %v, want %v", got, want)
		}
	}
	if n := len(e.StreamAttempts()); n != 3 {
		t.Errorf("StreamAttempts has %d entries, want 3", n)
	}
}

func TestStopPongs(t *testing.T) {
	t.Parallel()
	e, c := start(t, Options{})
	ws := dial(t, c, e, getToken(t, c, e))
	ctx := ws.CloseRead(testContext(t))

	if err := ws.Ping(ctx); err != nil {
		t.Fatalf("ping before StopPongs: %v", err)
	}

	e.StopPongs(true)
	pingCtx, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() { errc <- ws.Ping(pingCtx) }()
	err := e.waitFor(ctx, func() bool { return e.pingsIgnored == 1 })
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("ping while stopped = %v, want it unanswered until cancelled", err)
	}

	e.StopPongs(false)
	if err := ws.Ping(ctx); err != nil {
		t.Errorf("ping after StopPongs(false): %v", err)
	}
}

func TestWaitConnected(t *testing.T) {
	t.Parallel()
	e, c := start(t, Options{})

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := e.WaitConnected(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("WaitConnected with done ctx = %v", err)
	}

	errc := make(chan error, 1)
	go func() { errc <- e.WaitConnected(testContext(t)) }()
	dial(t, c, e, getToken(t, c, e))
	if err := <-errc; err != nil {
		t.Errorf("WaitConnected = %v", err)
	}
}

// BenchmarkDeliver measures frames per second from Send to a client's Read
// over loopback.
func BenchmarkDeliver(b *testing.B) {
	e := New(Options{})
	if err := e.Start(); err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	c := &http.Client{Transport: &http.Transport{}}
	defer c.CloseIdleConnections()

	token := e.issueToken()
	ws, _, err := websocket.Dial(b.Context(), wsURL(e), dialOptions(c, token))
	if err != nil {
		b.Fatal(err)
	}
	defer ws.CloseNow()

	ev := digitEvent("1")
	b.ReportAllocs()
	b.ResetTimer()
	go func() {
		for range b.N {
			e.Send(ev)
		}
	}()
	for range b.N {
		if _, _, err := ws.Read(b.Context()); err != nil {
			b.Fatal(err)
		}
	}
}
