package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/dtmfd/dtmfd/transport/emulator"
	"github.com/dtmfd/dtmfd/transport/web/browsertest"
)

// keypadLogs keeps a JSON log for a test to search.
type keypadLogs struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *keypadLogs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *keypadLogs) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// find returns the first record whose message starts with prefix.
func (l *keypadLogs) find(prefix string) (map[string]any, bool) {
	for _, line := range strings.Split(l.String(), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) != nil {
			continue
		}
		if msg, _ := rec["msg"].(string); strings.HasPrefix(msg, prefix) {
			return rec, true
		}
	}
	return nil, false
}

// keypadRun is dtmfd started in-process in local mode, as the README's
// first command starts it, with its log kept.
type keypadRun struct {
	app  *app
	logs *keypadLogs
}

// startKeypadRun runs dtmfd in local mode with env on top of the test's
// settings, and waits until it has printed where the keypad is.
func startKeypadRun(t *testing.T, env map[string]string) *keypadRun {
	t.Helper()
	settings := map[string]string{
		"DTMFD_ADDR":           "127.0.0.1:0",
		"DTMFD_DEAD_LETTERS":   filepath.Join(t.TempDir(), "dead.jsonl"),
		"DTMFD_SHUTDOWN_GRACE": "5s",
	}
	for k, v := range env {
		settings[k] = v
	}
	cfg, err := parseConfig(nil, func(k string) string { return settings[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}

	logs := &keypadLogs{}
	a, err := newApp(cfg, slog.New(slog.NewJSONHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("dtmfd exited with %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Error("dtmfd did not exit within its grace period")
		}
	})

	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, ok := logs.find("open the web keypad at "); ok {
			return &keypadRun{app: a, logs: logs}
		}
		if time.Now().After(deadline) {
			t.Fatalf("dtmfd printed no keypad address:\n%s", logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// keypadLine returns the printed keypad line and the URL it names.
func (r *keypadRun) keypadLine(t *testing.T) (msg, url string) {
	t.Helper()
	rec, _ := r.logs.find("open the web keypad at ")
	msg, _ = rec["msg"].(string)
	url, _ = rec["url"].(string)
	if !strings.HasPrefix(msg, "open the web keypad at "+url) {
		t.Fatalf("keypad line %q does not start with its url %q", msg, url)
	}
	return msg, url
}

func getKeypad(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func listenPort(t *testing.T, addr string) string {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestKeypadAddressIsPrinted(t *testing.T) {
	t.Parallel()
	const token = "keypad-t0ken"
	tests := []struct {
		name      string
		env       map[string]string
		onSimAddr bool
		token     bool
	}{
		{"on the main address", nil, false, false},
		{"on the simulator's own address",
			map[string]string{"DTMFD_SIMULATOR_ADDR": "127.0.0.1:0"}, true, false},
		{"behind the simulator's token", map[string]string{
			"DTMFD_SIMULATOR_ADDR": "127.0.0.1:0", "DTMFD_SIMULATOR_TOKEN": token}, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			run := startKeypadRun(t, tt.env)
			msg, url := run.keypadLine(t)

			want := run.app.Addr()
			if tt.onSimAddr {
				want = run.app.simListener.Addr().String()
			}
			if !strings.HasPrefix(url, "http://") || !strings.HasSuffix(url, ":"+listenPort(t, want)+"/") {
				t.Errorf("keypad printed at %s, want the address it is served on, %s", url, want)
			}
			if strings.Contains(run.logs.String(), token) {
				t.Errorf("the log holds the simulator token:\n%s", run.logs)
			}
			if got := strings.Contains(msg, url+"?token="); got != tt.token {
				t.Errorf("keypad line %q: names ?token= %v, want %v", msg, got, tt.token)
			}

			status, body := getKeypad(t, url)
			if tt.token {
				if status != http.StatusUnauthorized {
					t.Errorf("GET %s without the token: %d, want 401", url, status)
				}
				status, body = getKeypad(t, url+"?token="+token)
			}
			if status != http.StatusOK || !strings.Contains(body, "dtmfd keypad") {
				t.Errorf("GET the printed keypad address: %d %.60q, want the page", status, body)
			}
		})
	}
}

// newKeypadBrowser starts a headless Chromium for the test, each of its
// steps bounded by a minute.
func newKeypadBrowser(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(browsertest.Start(t), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// waitInPage waits until the JavaScript expression is true in the page.
func waitInPage(t *testing.T, ctx context.Context, what, expr string) {
	t.Helper()
	wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	_, err := chromedp.Run(wctx, chromedp.Poll[chromedp.Void](expr,
		chromedp.WithPollingInterval(50*time.Millisecond)))
	if err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

func evalInPage[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// TestKeypadCompletesCallInLocalMode does what the README asks of a
// newcomer: start dtmfd, open the address it prints, and complete a call
// through the example flow with the mouse. The feed must show what the
// emulator received, as GET /emulator/writes lists it.
func TestKeypadCompletesCallInLocalMode(t *testing.T) {
	t.Parallel()
	run := startKeypadRun(t, nil)
	_, url := run.keypadLine(t)
	ctx := newKeypadBrowser(t)

	if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
		t.Fatal(err)
	}
	waitInPage(t, ctx, "the event stream", `document.getElementById('conn').dataset.state === 'live'`)
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#new-call"))); err != nil {
		t.Fatal(err)
	}
	id := evalInPage[string](t, ctx, `document.getElementById('call-id').textContent`)

	for _, step := range []struct{ key, node string }{
		{"2", "department"}, {"A", "confirm"}, {"1", "completed"},
	} {
		sel := fmt.Sprintf(`button[aria-label="key %s"]`, step.key)
		if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(sel))); err != nil {
			t.Fatal(err)
		}
		waitInPage(t, ctx, "node "+step.node, fmt.Sprintf(
			`document.querySelector('#diagram .node[data-current="true"]')?.dataset.id === %s`,
			jsString(step.node)))
	}

	item := fmt.Sprintf(`[...document.querySelectorAll('#writes li')]
		.filter(li => li.dataset.interaction === %s)`, jsString(id))
	waitInPage(t, ctx, "the write in the feed", item+`.some(li => li.dataset.status === 'accepted')`)
	feed := evalInPage[[]string](t, ctx, item+`.map(li => li.querySelector('.vars').textContent)`)

	var listed []emulator.Write
	status, body := getKeypad(t, "http://"+run.app.Addr()+"/emulator/writes")
	if status != http.StatusOK || json.Unmarshal([]byte(body), &listed) != nil {
		t.Fatalf("GET /emulator/writes: %d %s", status, body)
	}
	var want []string
	for _, w := range listed {
		if w.InteractionID != id {
			continue
		}
		var vars []string
		for _, v := range w.Variables {
			vars = append(vars, v.Name+"="+v.Value)
		}
		want = append(want, strings.Join(vars, "  "))
	}
	if len(want) != 1 || !strings.Contains(want[0], `ivr_selection=["2","A","1"]`) {
		t.Fatalf("the emulator received %q for %s, want one completed selection", want, id)
	}
	if len(feed) != 1 || feed[0] != want[0] {
		t.Errorf("the feed shows %q, the emulator received %q", feed, want)
	}
}
