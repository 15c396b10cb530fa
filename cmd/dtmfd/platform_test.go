package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/rs/zerolog"

	"github.com/dtmfd/dtmfd/transport/emulator"
)

// proxied is the emulator as dtmfd reaches it in the fault tests: through
// a TCP proxy that injects network faults (toxiproxy, run in-process), then
// a front handler that records every request and can fail token and write
// requests in ways the emulator cannot (hang up, stall, answer nonsense).
//
//	dtmfd --> toxiproxy --> front handler --> emulator routes
type proxied struct {
	emu   *emulator.Emulator
	proxy *toxiproxy.Proxy
	front *httptest.Server
	// url is the proxy's address as dtmfd's CXONE_BASE_URL.
	url string
	// emuLogs are the emulator's own logs: what the platform saw.
	emuLogs *capturedLogs

	mu       sync.Mutex
	requests []seenRequest
	issued   []string
	// faults, by kind of request (token or write), see each request of
	// that kind first and report whether they answered it.
	faults map[string]func(w http.ResponseWriter, r *http.Request) bool
}

// seenRequest is one request the front handler saw.
type seenRequest struct {
	at     time.Time
	kind   string // token, stream or write
	call   string
	status int // 0 when the front hung up
}

// quietToxics silences toxiproxy's toxics, which log through zerolog's
// global logger at trace level.
var quietToxics sync.Once

// newProxied starts the emulator, the front handler and the proxy; each
// is closed when the test ends, after the service.
func newProxied(t testing.TB) *proxied {
	t.Helper()
	return newProxiedFor(t, testSecret)
}

// newProxiedFor is newProxied with a platform that accepts the client
// secret secret.
func newProxiedFor(t testing.TB, secret string) *proxied {
	t.Helper()
	quietToxics.Do(func() { zerolog.SetGlobalLevel(zerolog.Disabled) })
	p := &proxied{
		emuLogs: &capturedLogs{t: t},
		faults:  map[string]func(http.ResponseWriter, *http.Request) bool{},
	}
	p.emu = emulator.New(emulator.Options{ClientID: testID, ClientSecret: secret,
		Logger: slog.New(slog.NewJSONHandler(p.emuLogs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	p.front = httptest.NewServer(p)
	t.Cleanup(p.front.Close)
	t.Cleanup(func() { p.emu.Close() })

	srv := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop())
	p.proxy = toxiproxy.NewProxy(srv, "platform", "127.0.0.1:0", p.front.Listener.Addr().String())
	if err := p.proxy.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.proxy.Stop)
	p.url = "http://" + p.proxy.Listen
	return p
}

// ServeHTTP records the request and hands it to the emulator, or to the
// fault set for its kind.
func (p *proxied) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	kind, call := classifyPath(r.URL.Path)
	if kind == "stream" {
		// The upgrade needs the connection itself, not a wrapper.
		p.emu.Handler().ServeHTTP(w, r)
		return
	}

	at := time.Now()
	rec := &statusRecorder{ResponseWriter: w, keep: kind == "token"}
	p.mu.Lock()
	fault := p.faults[kind]
	p.mu.Unlock()
	if fault == nil || !fault(rec, r) {
		p.emu.Handler().ServeHTTP(rec, r)
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	p.requests = append(p.requests, seenRequest{at: at, kind: kind, call: call, status: rec.status})
	if kind == "token" && rec.status == http.StatusOK {
		var reply struct {
			AccessToken string `json:"access_token"`
		}
		if json.Unmarshal(rec.body.Bytes(), &reply) == nil && reply.AccessToken != "" {
			p.issued = append(p.issued, reply.AccessToken)
		}
	}
}

// classifyPath names the endpoint a path belongs to and, for writes, the call.
func classifyPath(path string) (kind, call string) {
	switch {
	case path == "/oauth/token":
		return "token", ""
	case path == "/api/v2/voice/websocket":
		return "stream", ""
	case strings.HasPrefix(path, "/api/v2/interactions/"):
		id := strings.TrimSuffix(strings.TrimPrefix(path, "/api/v2/interactions/"), "/variables")
		return "write", id
	}
	return "other", ""
}

// statusRecorder notes the status of a reply and, when keep is set, its body.
type statusRecorder struct {
	http.ResponseWriter
	status int
	keep   bool
	body   bytes.Buffer
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	if r.keep {
		r.body.Write(b)
	}
	return r.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection.
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// setFault makes f see the requests of one kind (token or write) before
// the emulator; nil ends the fault.
func (p *proxied) setFault(kind string, f func(w http.ResponseWriter, r *http.Request) bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.faults[kind] = f
}

// tokenHangUp closes the connection without an answer, as an endpoint that is
// down behind a load balancer does.
func tokenHangUp(w http.ResponseWriter, r *http.Request) bool {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err == nil {
		conn.Close()
	}
	return true
}

// tokenStall holds each token request for d before the emulator answers it.
func tokenStall(d time.Duration) func(http.ResponseWriter, *http.Request) bool {
	return func(w http.ResponseWriter, r *http.Request) bool {
		select {
		case <-time.After(d):
		case <-r.Context().Done():
		}
		return false
	}
}

// tokenNonsense answers 200 with a body that is no token reply.
func tokenNonsense(w http.ResponseWriter, r *http.Request) bool {
	w.Header().Set("Content-Type", "text/html")
	w.WriteHeader(http.StatusOK)
	io.WriteString(w, "<html><body>502 upstream unavailable</body></html>")
	return true
}

// seen returns the requests of one kind, in arrival order.
func (p *proxied) seen(kind string) []seenRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []seenRequest
	for _, r := range p.requests {
		if r.kind == kind {
			out = append(out, r)
		}
	}
	return out
}

// writesByCall returns the write requests of each call, in arrival
// order.
func (p *proxied) writesByCall() map[string][]seenRequest {
	byCall := map[string][]seenRequest{}
	for _, r := range p.seen("write") {
		byCall[r.call] = append(byCall[r.call], r)
	}
	for _, rs := range byCall {
		slices.SortFunc(rs, func(a, b seenRequest) int { return a.at.Compare(b.at) })
	}
	return byCall
}

// tokens returns every access token the platform issued.
func (p *proxied) tokens() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.issued...)
}

// toxic adds a toxiproxy toxic to every connection, current and new, in
// one direction: downstream is platform to dtmfd. The returned func
// removes it; the test's end removes it too.
func (p *proxied) toxic(t testing.TB, typ, stream string, attrs map[string]any) (remove func()) {
	t.Helper()
	name := typ + "_" + stream
	body, err := json.Marshal(map[string]any{"name": name, "type": typ, "stream": stream, "attributes": attrs})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.proxy.Toxics.AddToxicJson(bytes.NewReader(body)); err != nil {
		t.Fatalf("add toxic %s: %v", name, err)
	}
	var once sync.Once
	remove = func() {
		once.Do(func() {
			if err := p.proxy.Toxics.RemoveToxic(context.Background(), name); err != nil {
				t.Errorf("remove toxic %s: %v", name, err)
			}
		})
	}
	t.Cleanup(remove)
	return remove
}

// capturedLogs keeps every log line of a service, for tests that assert what
// was logged and what never was.
type capturedLogs struct {
	mu    sync.Mutex
	lines []string
	t     testing.TB
}

func (l *capturedLogs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, strings.Split(strings.TrimRight(string(p), "\n"), "\n")...)
	return len(p), nil
}

// all returns every line so far.
func (l *capturedLogs) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...)
}

// count returns how many lines carry the message msg.
func (l *capturedLogs) count(msg string) int {
	want, _ := json.Marshal(msg)
	n := 0
	for _, line := range l.all() {
		if strings.Contains(line, `"msg":`+string(want)) {
			n++
		}
	}
	return n
}

// dump logs the lines at Warn and above, for a failing test's reader.
func (l *capturedLogs) dump() {
	for _, line := range l.all() {
		if strings.Contains(line, `"level":"WARN"`) || strings.Contains(line, `"level":"ERROR"`) {
			l.t.Log(line)
		}
	}
}

// rigged is dtmfd running in-process against a platform, with its logs
// kept at Debug.
type rigged struct {
	*service
	p    *proxied
	logs *capturedLogs
	dead string // the dead-letter file
}

// launchAgainst starts dtmfd against p with env on top of the fault tests'
// settings and waits until it is ready.
func launchAgainst(t *testing.T, p *proxied, env map[string]string) *rigged {
	t.Helper()
	r := startAgainst(t, p, env)
	wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer wcancel()
	if err := p.emu.WaitConnected(wctx); err != nil {
		t.Fatalf("dtmfd never connected its stream: %v", err)
	}
	r.waitReady(t, 10*time.Second)
	return r
}

// startAgainst starts dtmfd against p as launchAgainst does, without
// waiting for it to connect or be ready.
func startAgainst(t *testing.T, p *proxied, env map[string]string) *rigged {
	t.Helper()
	r := &rigged{p: p, logs: &capturedLogs{t: t}, dead: filepath.Join(t.TempDir(), "dead.jsonl")}
	settings := map[string]string{
		"CXONE_CLIENT_ID":      testID,
		"CXONE_CLIENT_SECRET":  testSecret,
		"CXONE_BASE_URL":       p.url,
		"DTMFD_ADDR":           "127.0.0.1:0",
		"DTMFD_INPUT_TIMEOUT":  "300ms",
		"DTMFD_DEAD_LETTERS":   r.dead,
		"DTMFD_SHUTDOWN_GRACE": "10s",
	}
	for k, v := range env {
		settings[k] = v
	}
	cfg, err := parseConfig(nil, func(k string) string { return settings[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewJSONHandler(r.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	a, err := newApp(cfg, log)
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	r.service = &service{app: a, emu: p.emu, done: make(chan error, 1), stop: cancel}
	go func() { r.done <- a.run(ctx) }()
	t.Cleanup(testClient.CloseIdleConnections)
	t.Cleanup(func() {
		if t.Failed() {
			r.logs.dump()
		}
	})
	t.Cleanup(func() { r.shutdown(t) })
	return r
}

// ready reports whether /readyz answers 200.
func (r *rigged) ready() bool {
	resp, err := testClient.Get("http://" + r.app.Addr() + "/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// waitReady waits until /readyz answers 200, as a Kubernetes probe would.
func (r *rigged) waitReady(t testing.TB, within time.Duration) {
	t.Helper()
	waitWithin(t, "dtmfd to be ready", within, r.ready)
}

// waitWithin polls cond until it holds or d passes.
func waitWithin(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// maxInWindow returns the most times that fall within any span of width w.
func maxInWindow(times []time.Time, w time.Duration) int {
	times = slices.Clone(times)
	slices.SortFunc(times, time.Time.Compare)
	best := 0
	for i := range times {
		n := 0
		for j := i; j < len(times) && times[j].Sub(times[i]) < w; j++ {
			n++
		}
		best = max(best, n)
	}
	return best
}
