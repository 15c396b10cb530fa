package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/coder/websocket"

	"github.com/dtmfd/dtmfd/transport/emulator"
)

// e2eTimeout is the input timeout of end-to-end runs: long enough that a
// loaded CI machine under -race still delivers a call's keys within it.
const e2eTimeout = 2 * time.Second

const (
	testID     = "dtmfd-test-client"
	testSecret = `s3cr3t-"quoted"-&-value`
)

// testClient is the tests' HTTP client for dtmfd's own endpoints. It has
// its own transport, so that closing its idle connections when a service
// stops leaves no keep-alive goroutine for the leak check to find, and a
// timeout, so that a stuck endpoint fails a test instead of hanging it.
var testClient = &http.Client{
	Transport: http.DefaultTransport.(*http.Transport).Clone(),
	Timeout:   30 * time.Second,
}

// service is dtmfd started in-process against an emulator.
type service struct {
	app  *app
	emu  *emulator.Emulator
	done chan error
	stop context.CancelFunc
}

// startService runs dtmfd against a fresh emulator, with env on top of
// the test's settings.
func startService(t *testing.T, env map[string]string) *service {
	t.Helper()
	emu := emulator.New(emulator.Options{ClientID: testID, ClientSecret: testSecret})
	if err := emu.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { emu.Close() })

	base := map[string]string{
		"CXONE_CLIENT_ID":      testID,
		"CXONE_CLIENT_SECRET":  testSecret,
		"CXONE_BASE_URL":       emu.URL(),
		"DTMFD_ADDR":           "127.0.0.1:0",
		"DTMFD_INPUT_TIMEOUT":  e2eTimeout.String(),
		"DTMFD_DEAD_LETTERS":   filepath.Join(t.TempDir(), "dead.jsonl"),
		"DTMFD_SHUTDOWN_GRACE": "10s",
	}
	for k, v := range env {
		base[k] = v
	}
	cfg, err := parseConfig(nil, func(k string) string { return base[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}

	a, err := newApp(cfg, slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &service{app: a, emu: emu, done: make(chan error, 1), stop: cancel}
	go func() { s.done <- a.run(ctx) }()
	t.Cleanup(testClient.CloseIdleConnections)
	t.Cleanup(func() { s.shutdown(t) })

	wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer wcancel()
	if err := emu.WaitConnected(wctx); err != nil {
		t.Fatalf("dtmfd never connected its stream: %v", err)
	}
	waitReady(t, a)
	return s
}

// waitReady waits until /readyz answers 200, as a Kubernetes probe would.
func waitReady(t *testing.T, a *app) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := testClient.Get("http://" + a.Addr() + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("dtmfd never became ready")
}

// shutdown stops dtmfd as SIGTERM does and waits for it to exit.
func (s *service) shutdown(t *testing.T) {
	t.Helper()
	s.stop()
	select {
	case err, ok := <-s.done:
		if ok && err != nil {
			t.Errorf("dtmfd exited with %v", err)
		}
		if ok {
			close(s.done)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("dtmfd did not exit within its grace period")
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// script is one call's keys and the write it must produce.
type script struct {
	id   string
	keys string
	want string
}

// scripts builds n calls of four kinds: straight completions, completions
// with wrong keys mixed in, and silences at the start and mid-path.
func scripts(n int, rng *rand.Rand) []script {
	first, second := "123", "AB"
	out := make([]script, n)
	for i := range out {
		a, b := first[rng.IntN(3)], second[rng.IntN(2)]
		s := script{id: fmt.Sprintf("call-%04d", i)}
		completed := fmt.Sprintf(`ivr_selection=["%c","%c","1"] ivr_status=completed`, a, b)
		switch i % 4 {
		case 0:
			s.keys, s.want = string([]byte{a, b, '1'}), completed
		case 1:
			s.keys, s.want = string([]byte{'9', a, '#', 'C', b, '5', '1'}), completed
		case 2:
			s.keys, s.want = string([]byte{a, b}), "ivr_status=timeout_fallback"
		case 3:
			s.keys, s.want = "*", "ivr_status=timeout_fallback"
		}
		out[i] = s
	}
	return out
}

// play sends the calls' keys interleaved, one frame each, with malformed
// frames mixed in; it returns the number of malformed frames sent.
func play(emu *emulator.Emulator, calls []script, rng *rand.Rand) int {
	bad := [][]byte{
		[]byte(`not json`),
		[]byte(`{"type":"dtmf","digit":"1","timestamp":1}`),
		[]byte(`{"type":"dtmf","digit":"E","callId":"call-0000","timestamp":1}`),
		[]byte(`{"type":"dtmf","digit":"12","callId":"call-0001","timestamp":1}`),
		[]byte(`{"type":"dtmf","digit":"1","callId":"call-0002"`),
	}
	pos := make([]int, len(calls))
	malformed, ts, left := 0, int64(1700000000000), len(calls)
	for left > 0 {
		i := rng.IntN(len(calls))
		if pos[i] >= len(calls[i].keys) {
			continue
		}
		ts++
		emu.Send(emulator.Event{Type: "dtmf", Digit: calls[i].keys[pos[i] : pos[i]+1], CallID: calls[i].id, Timestamp: ts})
		if pos[i]++; pos[i] == len(calls[i].keys) {
			left--
		}
		if ts%37 == 0 {
			emu.SendRaw(bad[malformed%len(bad)])
			malformed++
		}
		if ts%53 == 0 {
			emu.Send(emulator.Event{Type: "call_started", CallID: calls[i].id, Timestamp: ts})
		}
	}
	return malformed
}

// checkWrites asserts that each call got exactly its one expected write
// and nothing else was written.
func checkWrites(t *testing.T, emu *emulator.Emulator, calls []script) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := emu.WaitWrites(ctx, len(calls)); err != nil {
		t.Fatalf("got %d writes, want %d: %v", len(emu.Writes()), len(calls), err)
	}
	time.Sleep(e2eTimeout + 500*time.Millisecond) // no late extra writes

	got := map[string][]string{}
	for _, w := range emu.Writes() {
		var b strings.Builder
		for i, v := range w.Variables {
			if i > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(v.Name + "=" + v.Value)
		}
		got[w.InteractionID] = append(got[w.InteractionID], b.String())
	}
	wrong := 0
	for _, c := range calls {
		if g := got[c.id]; len(g) != 1 || g[0] != c.want {
			if wrong++; wrong <= 10 {
				t.Errorf("%s (keys %q): writes %q, want [%s]", c.id, c.keys, g, c.want)
			}
		}
		delete(got, c.id)
	}
	if len(got) > 0 {
		t.Errorf("writes for calls that were never made: %v", keys(got))
	}
}

func keys(m map[string][]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func TestEndToEnd(t *testing.T) {
	s := startService(t, nil)
	rng := rand.New(rand.NewPCG(1, 2))
	calls := scripts(1000, rng)
	malformed := play(s.emu, calls, rng)

	checkWrites(t, s.emu, calls)
	if n := counter(t, s.app, `dtmfd_events_total{outcome="malformed"`); n != float64(malformed) {
		t.Errorf("malformed frames counted = %v, want %d", n, malformed)
	}
}

// TestFaultsLoseNoDecision runs the same calls through each platform
// fault: every decision still arrives, exactly once.
func TestFaultsLoseNoDecision(t *testing.T) {
	tests := []struct {
		name  string
		fault func(*emulator.Emulator)
	}{
		{"429 with Retry-After seconds", func(e *emulator.Emulator) {
			e.FailWrites(20, http.StatusTooManyRequests, http.Header{"Retry-After": {"1"}})
		}},
		{"429 with Retry-After date", func(e *emulator.Emulator) {
			e.FailWrites(20, http.StatusTooManyRequests,
				http.Header{"Retry-After": {time.Now().Add(time.Second).UTC().Format(http.TimeFormat)}})
		}},
		{"503", func(e *emulator.Emulator) { e.FailWrites(30, http.StatusServiceUnavailable, nil) }},
		{"401 on an expired token", func(e *emulator.Emulator) { e.ExpireTokens() }},
		{"stream closed with 1011", func(e *emulator.Emulator) { e.CloseStreams(websocket.StatusInternalError, "maintenance") }},
		{"stream dropped without a close frame", func(e *emulator.Emulator) { e.DropStreams() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startService(t, nil)
			rng := rand.New(rand.NewPCG(3, 4))
			calls := scripts(200, rng)

			play(s.emu, calls[:100], rng)
			tt.fault(s.emu)
			play(s.emu, calls[100:], rng)
			checkWrites(t, s.emu, calls)
		})
	}
}

func TestShutdownDeliversPendingWrites(t *testing.T) {
	s := startService(t, map[string]string{"DTMFD_WRITERS": "2"})
	s.emu.DelayWrites(100 * time.Millisecond)
	rng := rand.New(rand.NewPCG(5, 6))
	calls := scripts(40, rng)
	for i := range calls {
		calls[i].keys = calls[i].keys[:0] + "2A1"
		calls[i].want = `ivr_selection=["2","A","1"] ivr_status=completed`
	}
	play(s.emu, calls, rng)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.emu.WaitWrites(ctx, 1); err != nil {
		t.Fatal(err)
	}

	s.shutdown(t)
	if n := len(s.emu.Writes()); n != len(calls) {
		t.Fatalf("%d of %d writes delivered before exit", n, len(calls))
	}
	checkWrites(t, s.emu, calls)
}

func TestHealthAndReadiness(t *testing.T) {
	s := startService(t, nil)
	base := "http://" + s.app.Addr()
	for _, tt := range []struct{ path, want string }{
		{"/health", "ok"},
		{"/healthz", `{"status":"ok"}`},
		{"/readyz", `{"status":"ready"}`},
	} {
		resp, err := testClient.Get(base + tt.path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || strings.TrimSpace(string(body)) != tt.want {
			t.Errorf("GET %s = %d %s, want 200 %s", tt.path, resp.StatusCode, body, tt.want)
		}
	}

	s.app.draining.Store(true)
	resp, err := testClient.Get(base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	var body struct{ Reasons []string }
	_ = json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()
	if resp.StatusCode != 503 || len(body.Reasons) == 0 || body.Reasons[0] != "shutting down" {
		t.Errorf("readyz while draining = %d %v, want 503 naming the shutdown", resp.StatusCode, body.Reasons)
	}
}

// readiness returns the status and reasons /readyz gives.
func readiness(t *testing.T, a *app) (int, []string) {
	t.Helper()
	resp, err := testClient.Get("http://" + a.Addr() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct{ Reasons []string }
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("/readyz body is not JSON: %v", err)
	}
	return resp.StatusCode, body.Reasons
}

// TestReadinessSaysWhy takes away what readiness needs, one thing at a
// time, and checks that /readyz answers 503 naming exactly what is
// missing, as an operator reading a failing probe would want, and 200
// again once it is back.
func TestReadinessSaysWhy(t *testing.T) {
	t.Parallel()
	p := newProxied(t)
	// No token can be had, so the stream cannot connect either.
	p.setFault("token", tokenHangUp)
	r := startAgainst(t, p, nil)
	waitWithin(t, "token requests", 10*time.Second, func() bool { return len(p.seen("token")) >= 2 })
	code, reasons := readiness(t, r.app)
	want := []string{"no access token yet", "voice stream not connected"}
	if code != http.StatusServiceUnavailable || !slices.Equal(reasons, want) {
		t.Errorf("readyz with the token endpoint down = %d %q, want 503 %q", code, reasons, want)
	}

	p.setFault("token", nil)
	r.waitReady(t, 20*time.Second)

	// The stream goes down and stays down; the token is still good.
	p.emu.FailHandshakes(1<<30, http.StatusServiceUnavailable)
	p.emu.CloseStreams(websocket.StatusGoingAway, "restarting")
	want = []string{"voice stream not connected"}
	waitWithin(t, "readiness to name the stream", 10*time.Second, func() bool {
		code, reasons = readiness(t, r.app)
		return code == http.StatusServiceUnavailable && slices.Equal(reasons, want)
	})

	p.emu.FailHandshakes(0, 0)
	r.waitReady(t, 20*time.Second)
}

// stuckEngine is an actor system that never answers.
type stuckEngine struct{}

func (stuckEngine) Ping(ctx context.Context) error {
	<-ctx.Done()
	return ctx.Err()
}

// liveEngine answers at once.
type liveEngine struct{}

func (liveEngine) Ping(context.Context) error { return nil }

// TestLivenessFailsWhenEngineStuck checks that /healthz fails when the
// actor system stops answering, so Kubernetes restarts the pod, and that
// it says so within the second the probe allows. Time is virtual.
func TestLivenessFailsWhenEngineStuck(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		engine     pinger
		wantCode   int
		wantReason string
		wantAfter  time.Duration
	}{
		{"engine answers", liveEngine{}, http.StatusOK, "", 0},
		{"engine stuck", stuckEngine{}, http.StatusServiceUnavailable,
			"actor system did not answer: context deadline exceeded", time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				start := time.Now()
				w := httptest.NewRecorder()
				healthz(tt.engine).ServeHTTP(w, httptest.NewRequest("GET", "/healthz", nil))
				took := time.Since(start)

				var body struct{ Status, Reason string }
				if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
					t.Fatalf("/healthz body is not JSON: %v", err)
				}
				if w.Code != tt.wantCode || body.Reason != tt.wantReason {
					t.Errorf("/healthz = %d %+v, want %d with reason %q", w.Code, body, tt.wantCode, tt.wantReason)
				}
				if took != tt.wantAfter {
					t.Errorf("/healthz answered after %v, want %v", took, tt.wantAfter)
				}
			})
		})
	}
}

// counter sums the samples of /metrics lines starting with prefix.
func counter(t *testing.T, a *app, prefix string) float64 {
	t.Helper()
	resp, err := testClient.Get("http://" + a.Addr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var sum float64
	for _, line := range strings.Split(string(body), "\n") {
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		var v float64
		fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &v)
		sum += v
	}
	return sum
}

// testContext bounds a test's waits.
func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}
