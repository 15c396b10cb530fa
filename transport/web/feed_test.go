package web

import (
	"bytes"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dtmfd/dtmfd/actors"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/dtmfd/dtmfd/ivrspec"
	"github.com/dtmfd/dtmfd/transport/metrics"
)

// logBuffer is a log destination safe for the Hub's goroutines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func TestReceivedWritesFeedThePage(t *testing.T) {
	t.Parallel()
	h := exampleHub(Options{Received: true})
	srv := serve(t, h)
	stream := connect(t, srv.URL)
	var snap snapshotMessage
	stream.expect("snapshot", &snap)

	decided := callEvent("c1", "completed", "1", t0)
	decided.Decision = &ivrspec.Decision{End: "completed", Variables: []ivrspec.Variable{
		{Name: "ivr_status", Value: "completed"},
		{Name: "pin", Value: "7373", Sensitive: true},
	}}
	h.OnCall(decided)
	var call callMessage
	stream.expect("call", &call)

	vars := []ivrspec.Variable{{Name: "ivr_status", Value: "completed"}, {Name: "pin", Value: "7373"}}
	h.OnWrite(actors.WriteEvent{InteractionID: "c1", Variables: vars, Latency: time.Millisecond})
	h.OnReceived("c1", vars, t0.Add(40*time.Millisecond))
	h.OnWrite(actors.WriteEvent{InteractionID: "c2", Err: errors.New("post variables: 400"),
		Variables: []ivrspec.Variable{{Name: "ivr_status", Value: "timeout_fallback"}}})

	tests := []struct {
		name    string
		id      string
		status  string
		latency float64
		vars    string
	}{
		{"the write the platform received", "c1", statusAccepted, 40, "ivr_status=completed pin=***"},
		{"a write given up on", "c2", statusFailed, 0, "ivr_status=timeout_fallback"},
	}
	for _, tt := range tests {
		var m writeMessage
		stream.expect("write", &m)
		w := m.Write
		var got []string
		for _, v := range w.Variables {
			got = append(got, v.Name+"="+v.Value)
		}
		if w.InteractionID != tt.id || w.Status != tt.status || strings.Join(got, " ") != tt.vars {
			t.Errorf("%s: got %s %s %q, want %s %s %q", tt.name,
				w.InteractionID, w.Status, got, tt.id, tt.status, tt.vars)
		}
		if w.LatencyMs == nil || *w.LatencyMs != tt.latency {
			t.Errorf("%s: latency %v ms, want %v", tt.name, w.LatencyMs, tt.latency)
		}
	}
}

func TestRefusedTokenIsLoggedWithoutIt(t *testing.T) {
	t.Parallel()
	const token, guess = "s3cret-token", "guess-0f-mine"
	var logs logBuffer
	m := metrics.New(nil)
	h := exampleHub(Options{Token: token, Logger: logs.logger(), Metrics: m})
	srv := serve(t, h)

	for _, path := range []string{"/?token=" + guess, "/events", "/flow?token=" + guess} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+guess)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}

	out := logs.String()
	for _, path := range []string{"/", "/events", "/flow"} {
		found := false
		for _, line := range strings.Split(out, "\n") {
			found = found || strings.Contains(line, "level=WARN") &&
				strings.Contains(line, "remote=127.0.0.1:") && strings.HasSuffix(line, " path="+path)
		}
		if !found {
			t.Errorf("no Warn naming the remote address and path %s:\n%s", path, out)
		}
	}
	if strings.Contains(out, guess) || strings.Contains(out, token) {
		t.Errorf("log holds a token:\n%s", out)
	}
	refused := m.Events.WithLabelValues(metrics.TypeSimulator, metrics.OutcomeUnauthorized)
	if got := testutil.ToFloat64(refused); got != 3 {
		t.Errorf("refused requests counted %v, want 3", got)
	}
}
