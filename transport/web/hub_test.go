package web

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/dtmfd/dtmfd/actors"
	"github.com/dtmfd/dtmfd/ivrspec"
)

func exampleHub(opts Options) *Hub {
	flow := ivrspec.Example(time.Second)
	opts.Flow = func() *ivrspec.Flow { return flow }
	return New(opts)
}

func serve(t *testing.T, h *Hub) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h.Handler())
	t.Cleanup(func() {
		h.Close()
		srv.Close()
	})
	return srv
}

// events reads a server-sent event stream.
type events struct {
	t    *testing.T
	body io.ReadCloser
	r    *bufio.Reader
}

// connect opens the event stream; it fails the test unless it answers
// 200.
func connect(t *testing.T, url string) *events {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /events: %s", resp.Status)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("GET /events: content type %q", ct)
	}
	return &events{t: t, body: resp.Body, r: bufio.NewReader(resp.Body)}
}

// next returns the next event's name and data; io.EOF when the stream
// ended.
func (e *events) next() (string, []byte, error) {
	var name string
	var data []byte
	for {
		line, err := e.r.ReadString('\n')
		if err != nil {
			return "", nil, err
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "" && name != "":
			return name, data, nil
		case strings.HasPrefix(line, "event: "):
			name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			data = []byte(strings.TrimPrefix(line, "data: "))
		}
	}
}

// expect reads the next event, which must be called name, into v.
func (e *events) expect(name string, v any) {
	e.t.Helper()
	got, data, err := e.next()
	if err != nil {
		e.t.Fatalf("reading %s event: %v", name, err)
	}
	if got != name {
		e.t.Fatalf("got %s event %s, want %s", got, data, name)
	}
	if err := json.Unmarshal(data, v); err != nil {
		e.t.Fatalf("%s event %s: %v", name, data, err)
	}
}

func callEvent(id, node, key string, at time.Time) actors.CallEvent {
	ev := actors.CallEvent{CallID: id, Node: node, Key: key, Timer: noInput(time.Second), At: at}
	if key != "" {
		ev.Outcome = "accepted"
	}
	return ev
}

func TestEventsStartWithSnapshot(t *testing.T) {
	t.Parallel()
	h := exampleHub(Options{})
	srv := serve(t, h)
	h.OnCall(callEvent("early", "main_menu", "", t0))
	h.OnWrite(actors.WriteEvent{InteractionID: "before",
		Variables: []ivrspec.Variable{{Name: "ivr_status", Value: "completed"}}})

	stream := connect(t, srv.URL)
	var snap snapshotMessage
	stream.expect("snapshot", &snap)
	if snap.Flow == nil || snap.Flow.Name != "contract.yaml" || len(snap.Flow.Nodes) != 5 {
		t.Errorf("snapshot flow %+v, want the contract's five nodes", snap.Flow)
	}
	if len(snap.Calls) != 1 || snap.Calls[0].ID != "early" || snap.Calls[0].Node != "main_menu" {
		t.Errorf("snapshot calls %+v, want early at main_menu", snap.Calls)
	}
	if len(snap.Writes) != 1 || snap.Writes[0].InteractionID != "before" {
		t.Errorf("snapshot writes %+v, want the one before", snap.Writes)
	}
	if snap.Now == 0 {
		t.Error("snapshot has no server time to run timers against")
	}

	h.OnCall(callEvent("early", "department", "2", t0.Add(time.Second)))
	var call callMessage
	stream.expect("call", &call)
	if c := call.Call; c.Node != "department" || len(c.Path) != 2 || c.Keys[0].Key != "2" {
		t.Errorf("call event %+v, want early at department after 2", c)
	}

	h.OnWrite(actors.WriteEvent{InteractionID: "early", Latency: time.Millisecond,
		Variables: []ivrspec.Variable{{Name: "pin", Value: "9876", Sensitive: true}}})
	_, data, err := stream.next()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data), "9876") || !strings.Contains(string(data), `"value":"***"`) {
		t.Errorf("write event %s, want the sensitive value masked", data)
	}
}

func TestSlowPageIsDroppedNotWaitedFor(t *testing.T) {
	t.Parallel()
	var logs logBuffer
	h := exampleHub(Options{Buffer: 4, Logger: logs.logger()})
	sub, _, ok := h.subscribe("192.0.2.1:4000")
	if !ok {
		t.Fatal("subscribe refused")
	}

	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 1000 {
			h.OnCall(callEvent("busy", "main_menu", "9", t0.Add(time.Duration(i)*time.Millisecond)))
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("OnCall blocked on a page that reads nothing")
	}

	select {
	case <-sub.kicked:
	default:
		t.Fatal("a page that fell behind was kept")
	}
	if len(sub.ch) != 4 {
		t.Errorf("%d events queued for the page, want its buffer of 4", len(sub.ch))
	}
	if out := logs.String(); !strings.Contains(out, "too slow") ||
		!strings.Contains(out, "remote=192.0.2.1:4000") {
		t.Errorf("dropping the page logged no line naming its address:\n%s", out)
	}
}

func TestDroppedPageReconnectsToFreshState(t *testing.T) {
	t.Parallel()
	h := exampleHub(Options{})
	srv := serve(t, h)
	stream := connect(t, srv.URL)
	var snap snapshotMessage
	stream.expect("snapshot", &snap)

	h.mu.Lock()
	for s := range h.subs {
		h.kick(s)
	}
	h.mu.Unlock()
	h.OnCall(callEvent("missed", "department", "1", t0))

	if _, _, err := stream.next(); !errors.Is(err, io.EOF) {
		t.Fatalf("dropped page's stream: %v, want it ended", err)
	}
	again := connect(t, srv.URL)
	again.expect("snapshot", &snap)
	if len(snap.Calls) != 1 || snap.Calls[0].Node != "department" {
		t.Errorf("snapshot after reconnect %+v, want the missed call at department", snap.Calls)
	}
}

func TestCloseEndsStreams(t *testing.T) {
	t.Parallel()
	h := exampleHub(Options{})
	srv := serve(t, h)
	stream := connect(t, srv.URL)
	var snap snapshotMessage
	stream.expect("snapshot", &snap)

	h.Close()
	if _, _, err := stream.next(); !errors.Is(err, io.EOF) {
		t.Fatalf("stream after Close: %v, want it ended", err)
	}
	resp, err := http.Get(srv.URL + "/events")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("GET /events after Close: %s, want 503", resp.Status)
	}
	h.Close()
}

func TestToken(t *testing.T) {
	t.Parallel()
	const token = "s3cret-token"
	h := exampleHub(Options{Token: token})
	srv := serve(t, h)

	tests := []struct {
		name   string
		path   string
		header string
		want   int
	}{
		{"page without token", "/", "", http.StatusUnauthorized},
		{"page with wrong token", "/?token=guess", "", http.StatusUnauthorized},
		{"page with token in query", "/?token=" + token, "", http.StatusOK},
		{"page with bearer token", "/", "Bearer " + token, http.StatusOK},
		{"wrong bearer, right query", "/?token=" + token, "Bearer guess", http.StatusUnauthorized},
		{"events without token", "/events", "", http.StatusUnauthorized},
		{"events with token in query", "/events?token=" + token, "", http.StatusOK},
		{"flow without token", "/flow", "", http.StatusUnauthorized},
		{"flow with bearer token", "/flow", "Bearer " + token, http.StatusOK},
		{"assets need no token", "/assets/app.js", "", http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+tt.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			if tt.header != "" {
				req.Header.Set("Authorization", tt.header)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Fatalf("GET %s: %s, want %d", tt.path, resp.Status, tt.want)
			}
			if resp.StatusCode == http.StatusUnauthorized {
				body, _ := io.ReadAll(resp.Body)
				if strings.Contains(string(body), token) || strings.Contains(string(body), "guess") {
					t.Errorf("refusal echoes a token: %s", body)
				}
			}
		})
	}
}

func TestHandlerServesPageAndFlow(t *testing.T) {
	t.Parallel()
	h := exampleHub(Options{})
	srv := serve(t, h)

	tests := []struct {
		path, wantType, wantBody string
		want                     int
	}{
		{"/", "text/html; charset=utf-8", `src="assets/app.js"`, http.StatusOK},
		{"/assets/app.css", "text/css; charset=utf-8", ".keypad", http.StatusOK},
		{"/assets/app.js", "text/javascript; charset=utf-8", "EventSource", http.StatusOK},
		{"/flow", "application/json", `"name":"contract.yaml"`, http.StatusOK},
		{"/assets/", "", "", http.StatusNotFound},
		{"/nothing", "", "", http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			t.Parallel()
			resp, err := http.Get(srv.URL + tt.path)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.want {
				t.Fatalf("GET %s: %s, want %d", tt.path, resp.Status, tt.want)
			}
			if tt.want != http.StatusOK {
				return
			}
			if ct := resp.Header.Get("Content-Type"); ct != tt.wantType {
				t.Errorf("GET %s: content type %q, want %q", tt.path, ct, tt.wantType)
			}
			if !strings.Contains(string(body), tt.wantBody) {
				t.Errorf("GET %s: body lacks %q", tt.path, tt.wantBody)
			}
		})
	}

	t.Run("page keeps a token out of referrers", func(t *testing.T) {
		t.Parallel()
		resp, err := http.Get(srv.URL + "/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("Referrer-Policy"); got != "no-referrer" {
			t.Errorf("Referrer-Policy %q, want no-referrer", got)
		}
		csp := resp.Header.Get("Content-Security-Policy")
		if !strings.Contains(csp, "default-src 'self'") {
			t.Errorf("Content-Security-Policy %q, want the page kept to its origin", csp)
		}
	})
}

func TestHubRemembersBoundedHistory(t *testing.T) {
	t.Parallel()
	h := exampleHub(Options{MaxCalls: 3, MaxWrites: 3})
	for i := range 5 {
		h.OnCall(callEvent(fmt.Sprintf("c%d", i), "main_menu", "", t0))
		h.OnWrite(actors.WriteEvent{InteractionID: fmt.Sprintf("w%d", i)})
	}
	h.OnCall(callEvent("c2", "department", "1", t0))

	h.mu.Lock()
	snap := h.snapshot()
	h.mu.Unlock()
	var calls, writes []string
	for _, c := range snap.Calls {
		calls = append(calls, c.ID)
	}
	for _, w := range snap.Writes {
		writes = append(writes, w.InteractionID)
	}
	if got, want := strings.Join(calls, " "), "c3 c4 c2"; got != want {
		t.Errorf("calls kept %q, want the three updated last, %q", got, want)
	}
	if got, want := strings.Join(writes, " "), "w2 w3 w4"; got != want {
		t.Errorf("writes kept %q, want the last three in order, %q", got, want)
	}
}

func TestFlowReloadReachesPages(t *testing.T) {
	t.Parallel()
	bank, err := ivrspec.LoadExample("bank.yaml", ivrspec.Options{})
	if err != nil {
		t.Fatal(err)
	}
	current := ivrspec.Example(time.Second)
	h := New(Options{Flow: func() *ivrspec.Flow { return current }})
	sub, _, _ := h.subscribe("192.0.2.1:4000")

	current = bank
	h.OnCall(callEvent("c", "main_menu", "", t0))

	frame := <-sub.ch
	got := string(frame)
	if !strings.HasPrefix(got, "event: flow\n") || !strings.Contains(got, "bank.yaml") {
		t.Errorf("first event after a reload %.80s, want the new flow", frame)
	}
}

func TestStreamOutlivesServerWriteTimeout(t *testing.T) {
	t.Parallel()
	h := exampleHub(Options{})
	srv := httptest.NewUnstartedServer(h.Handler())
	// A write timeout that has passed before the handler runs: a stream
	// that kept the server's deadline could not write its first event.
	srv.Config.WriteTimeout = time.Nanosecond
	srv.Start()
	t.Cleanup(func() {
		h.Close()
		srv.Close()
	})

	stream := connect(t, srv.URL)
	var snap snapshotMessage
	stream.expect("snapshot", &snap)
	h.OnCall(callEvent("late", "main_menu", "", t0))
	var call callMessage
	stream.expect("call", &call)
	if call.Call.ID != "late" {
		t.Errorf("event for %q, want late", call.Call.ID)
	}
}
