package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
)

const (
	// secretCanary is a client secret no log line may ever hold.
	secretCanary = "SECRET-canary-7f3a"
	// pinCanary is a PIN keyed into the bank flow's sensitive node.
	pinCanary = "9731"
)

// bankFlow is the bank example, writing the PIN to the platform too, so
// the test can show it reaches the platform and nothing else.
func bankFlow(t *testing.T) string {
	t.Helper()
	src, err := os.ReadFile("../../ivrspec/examples/bank.yaml")
	if err != nil {
		t.Fatal(err)
	}
	flow := strings.Replace(string(src), "ivr_status: balance_checking",
		"ivr_status: balance_checking\n      pin: ${value.pin}", 1)
	path := filepath.Join(t.TempDir(), "bank.yaml")
	if err := os.WriteFile(path, []byte(flow), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// echoOnce answers the first request it sees with status and everything
// the request carried, as a careless platform might, then steps aside.
func echoOnce(status int) func(http.ResponseWriter, *http.Request) bool {
	var done atomic.Bool
	return func(w http.ResponseWriter, r *http.Request) bool {
		if done.Swap(true) {
			return false
		}
		body, _ := io.ReadAll(r.Body)
		w.WriteHeader(status)
		fmt.Fprintf(w, "Authorization: %s\n%s", r.Header.Get("Authorization"), body)
		return true
	}
}

// TestSecretsStayOutOfLogs runs calls through the bank flow while the
// platform fails in the ways that put credentials in error paths, with
// every log line kept at Debug, and checks that neither the client
// secret, nor any token the platform issued, nor a PIN keyed at the
// sensitive node appears in a log line, a metric or a health answer.
func TestSecretsStayOutOfLogs(t *testing.T) {
	t.Parallel()
	p := newProxiedFor(t, secretCanary)
	p.setFault("token", echoOnce(http.StatusBadRequest))
	p.setFault("write", echoOnce(http.StatusInternalServerError))
	r := launchAgainst(t, p, map[string]string{
		"CXONE_CLIENT_SECRET": secretCanary,
		"DTMFD_IVR":           bankFlow(t),
	})

	bank := func(id string) {
		pressKeys(p.emu, id, "1"+"12345678#"+pinCanary+"1")
	}
	p.emu.RejectInteraction("bank-rejected", http.StatusBadRequest)
	bank("bank-0")
	bank("bank-rejected")
	if err := p.emu.WaitWrites(testContext(t), 1); err != nil {
		t.Fatal(err)
	}
	p.emu.ExpireTokens()
	p.emu.FailWrites(2, http.StatusTooManyRequests, http.Header{"Retry-After": {"1"}})
	bank("bank-1")
	p.emu.FailHandshakes(1, http.StatusUnauthorized)
	p.emu.CloseStreams(websocket.StatusInternalError, "maintenance")
	r.waitReady(t, 10*time.Second)
	bank("bank-2")
	if err := p.emu.WaitWrites(testContext(t), 3); err != nil {
		t.Fatal(err)
	}
	waitWithin(t, "the rejected call's dead letter", 10*time.Second, func() bool {
		return counter(t, r.app, "dtmfd_dead_letters_total") == 1
	})

	for _, w := range p.emu.Writes() {
		if got := w.Variables[len(w.Variables)-1]; got.Name != "pin" || got.Value != pinCanary {
			t.Errorf("%s: last variable %v, want the PIN delivered to the platform", w.InteractionID, got)
		}
	}
	var pages []string
	for _, path := range []string{"/metrics", "/healthz", "/readyz", "/health"} {
		pages = append(pages, get(t, "http://"+r.app.Addr()+path))
	}
	r.shutdown(t)

	tokens := p.tokens()
	if len(tokens) < 2 {
		t.Fatalf("%d tokens issued, want at least 2: the faults did not force a new one", len(tokens))
	}
	lines := append(r.logs.all(), pages...)
	if len(lines) < 50 {
		t.Fatalf("only %d log lines: the logger did not capture the run", len(lines))
	}
	for _, canary := range append([]string{secretCanary}, tokens...) {
		for _, l := range lines {
			if strings.Contains(l, canary) {
				t.Errorf("a credential leaked: %s", l)
			}
		}
	}
	for _, l := range lines {
		if leaksDigits(l, pinCanary) {
			t.Errorf("the PIN leaked: %s", l)
		}
	}

	dead, err := os.ReadFile(r.dead)
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(r.dead); st.Mode().Perm() != 0o600 {
		t.Errorf("dead-letter file mode %v, want 0600: it holds the PIN", st.Mode().Perm())
	}
	for _, canary := range append([]string{secretCanary}, tokens...) {
		if bytes.Contains(dead, []byte(canary)) {
			t.Errorf("a credential reached the dead-letter file: %s", dead)
		}
	}
}

// TestSettingErrorsHideSecrets checks that a refused setting is named
// without its secret value.
func TestSettingErrorsHideSecrets(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		env  []string
	}{
		{"base URL with a password and a bad scheme", []string{"CXONE_CLIENT_ID", "id", "CXONE_CLIENT_SECRET", "s",
			"CXONE_BASE_URL", "ftp://user:" + secretCanary + "@host"}},
		{"secret given twice", []string{"CXONE_CLIENT_ID", "id", "CXONE_CLIENT_SECRET", secretCanary,
			"CXONE_CLIENT_SECRET_FILE", "/nonexistent", "CXONE_TENANT", "t"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var out, errOut bytes.Buffer
			code := run([]string{"-addr", "127.0.0.1:0", "-dead-letters", filepath.Join(t.TempDir(), "d.jsonl")},
				&out, &errOut, env(tt.env...))
			if code == 0 {
				t.Fatal("dtmfd started with a bad setting")
			}
			if all := out.String() + errOut.String(); strings.Contains(all, secretCanary) {
				t.Errorf("the secret was printed:\n%s", all)
			}
		})
	}
}

// leaksDigits reports whether a log line holds digits as a string
// value. Values made of other random digits (times, ids, durations and
// addresses) are cleared first so they cannot match by chance; numbers
// are not checked, since dtmfd logs keys as strings.
func leaksDigits(line, digits string) bool {
	var v any
	if err := json.Unmarshal([]byte(line), &v); err != nil {
		return strings.Contains(noise.ReplaceAllString(line, ""), digits)
	}
	if m, ok := v.(map[string]any); ok {
		delete(m, "time")
	}
	return stringHolds(v, digits)
}

// noise matches UUIDs, Go durations and host:port addresses.
var noise = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}` +
	`|(\d+(\.\d+)?(ns|µs|us|ms|s|m|h))+|\d+\.\d+\.\d+\.\d+:\d+`)

func stringHolds(v any, digits string) bool {
	switch v := v.(type) {
	case string:
		return strings.Contains(noise.ReplaceAllString(v, ""), digits)
	case map[string]any:
		for _, e := range v {
			if stringHolds(e, digits) {
				return true
			}
		}
	case []any:
		for _, e := range v {
			if stringHolds(e, digits) {
				return true
			}
		}
	}
	return false
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return string(body)
}

// runApp starts dtmfd in-process with exactly the settings given, for
// tests that need no platform of their own, and returns its address.
func runApp(t *testing.T, settings map[string]string) string {
	t.Helper()
	settings["DTMFD_ADDR"] = "127.0.0.1:0"
	settings["DTMFD_DEAD_LETTERS"] = filepath.Join(t.TempDir(), "dead.jsonl")
	cfg, err := parseConfig(nil, func(k string) string { return settings[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	logs := &capturedLogs{t: t}
	a, err := newApp(cfg, slog.New(slog.NewJSONHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &rigged{service: &service{app: a, done: make(chan error, 1), stop: cancel}, logs: logs}
	go func() { s.done <- a.run(ctx) }()
	t.Cleanup(func() { s.shutdown(t) })
	return "http://" + a.Addr()
}

// TestEndpointsRefuseBadBodies sends every endpoint of a running dtmfd,
// in both profiles, a body over its limit and a field it does not know,
// and checks each is refused with a status and a reason a client can act
// on; endpoints that take no body refuse POST (404 where the web keypad's
// catch-all route answers for them).
func TestEndpointsRefuseBadBodies(t *testing.T) {
	t.Parallel()
	tutorial := runApp(t, map[string]string{"DTMFD_SIMULATOR": "on", "DTMFD_SIMULATOR_TOKEN": "sim-token"})
	cx := runApp(t, map[string]string{"DTMFD_PROFILE": "cxone", "DTMFD_INGRESS_AUTH": "ingress-token"})
	big := `{"callId":"` + strings.Repeat("x", 100<<10) + `"}`

	tests := []struct {
		name, url, auth, body string
		status                []int
		says                  string
	}{
		{"simulator: unknown field", tutorial + "/simulator", "Bearer sim-token",
			`{"callId":"c","digit":"1","pin":"1234"}`, []int{400}, `unknown field \"pin\"`},
		{"simulator: body over the limit", tutorial + "/simulator", "Bearer sim-token", big,
			[]int{400, 413}, "body over"},
		{"simulator: two JSON values", tutorial + "/simulator", "Bearer sim-token",
			`{"callId":"c","digit":"1"} {}`, []int{400}, "more than one value"},
		{"studio: unknown field", cx + "/cxone/studio", "Bearer ingress-token",
			`{"contactId":"c","event":"start","pin":"1234"}`, []int{400}, `unknown field \"pin\"`},
		{"studio: body over the limit", cx + "/cxone/studio", "Bearer ingress-token", big,
			[]int{400, 413}, "larger than"},
		{"vah: body over the limit", cx + "/cxone/vah", "Bearer ingress-token", big,
			[]int{400, 413}, "larger than"},
		{"health takes no body", tutorial + "/health", "", "{}", []int{404, 405}, ""},
		{"healthz takes no body", tutorial + "/healthz", "", "{}", []int{404, 405}, ""},
		{"readyz takes no body", tutorial + "/readyz", "", "{}", []int{404, 405}, ""},
		{"metrics takes no body", tutorial + "/metrics", "", "{}", []int{404, 405}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req, _ := http.NewRequest(http.MethodPost, tt.url, strings.NewReader(tt.body))
			req.Header.Set("Content-Type", "application/json")
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !slices.Contains(tt.status, resp.StatusCode) || !strings.Contains(string(body), tt.says) {
				t.Errorf("%d %s, want one of %v saying %q", resp.StatusCode, body, tt.status, tt.says)
			}
		})
	}
}

func TestLeaksDigitsFindsThePIN(t *testing.T) {
	t.Parallel()
	tests := []struct {
		line string
		want bool
	}{
		{`{"msg":"key","key":"9731"}`, true},
		{`{"msg":"call decided","variables":{"pin":"9731"}}`, true},
		{`{"msg":"digits","digits":"12345678#9731"}`, true},
		{`{"msg":"path","path":["1","9731"]}`, true},
		{`{"time":"2026-01-01T10:00:00.459731Z","msg":"x"}`, false},
		{`{"msg":"x","delay":19731000}`, false},
		{`{"msg":"x","restLatency":"1.297315ms","up":"9731s"}`, false},
		{`{"msg":"x","decisionId":"5f973100-0000-4000-8000-000000009731"}`, false},
		{`{"msg":"x","error":"dial 127.0.0.1:49731: refused"}`, false},
		{`{"msg":"key","key":"*"}`, false},
	}
	for _, tt := range tests {
		if got := leaksDigits(tt.line, "9731"); got != tt.want {
			t.Errorf("leaksDigits(%s) = %v, want %v", tt.line, got, tt.want)
		}
	}
}
