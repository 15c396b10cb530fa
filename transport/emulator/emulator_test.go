package emulator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const (
	testID     = "client-1"
	testSecret = `s"e:c&r=t% +`
)

// start runs an emulator on loopback and returns it with a client whose
// connections are closed when the test ends.
func start(t *testing.T, opts Options) (*Emulator, *http.Client) {
	t.Helper()

	e := New(opts)
	if err := e.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	tr := &http.Transport{}
	t.Cleanup(func() {
		if err := e.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		tr.CloseIdleConnections()
	})
	return e, &http.Client{Transport: tr}
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// reply is a response read in full.
type reply struct {
	status int
	header http.Header
	body   []byte
}

func (r reply) errorCode(t *testing.T) string {
	t.Helper()
	var v errorReply
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("error body %q: %v", r.body, err)
	}
	return v.Error
}

func do(t *testing.T, c *http.Client, req *http.Request) reply {
	t.Helper()

	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return reply{status: resp.StatusCode, header: resp.Header, body: body}
}

func jsonTokenRequest(t *testing.T, base, id, secret string) *http.Request {
	t.Helper()
	body, _ := json.Marshal(map[string]string{
		"grant_type": "client_credentials", "client_id": id, "client_secret": secret,
	})
	req, err := http.NewRequest("POST", base+"/oauth/token", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	return req
}

func formTokenRequest(t *testing.T, base string, form url.Values) *http.Request {
	t.Helper()
	req, err := http.NewRequest("POST", base+"/oauth/token", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return req
}

// getToken obtains a token with the test credentials.
func getToken(t *testing.T, c *http.Client, e *Emulator) string {
	t.Helper()

	r := do(t, c, jsonTokenRequest(t, e.URL(), testID, testSecret))
	if r.status != http.StatusOK {
		t.Fatalf("token status %d: %s", r.status, r.body)
	}
	var tr tokenReply
	if err := json.Unmarshal(r.body, &tr); err != nil {
		t.Fatalf("token body %q: %v", r.body, err)
	}
	return tr.AccessToken
}

func postWrite(t *testing.T, c *http.Client, e *Emulator, token, id, body string) reply {
	t.Helper()

	u := e.URL() + "/api/v2/interactions/" + url.PathEscape(id) + "/variables"
	req, err := http.NewRequest("POST", u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return do(t, c, req)
}

const statusBody = `[{"name":"ivr_status","value":"completed"}]`

func TestTokenEndpoint(t *testing.T) {
	t.Parallel()
	e, c := start(t, Options{ClientID: testID, ClientSecret: testSecret})
	base := e.URL()

	basic := func(req *http.Request, id, secret string) *http.Request {
		req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
		return req
	}
	grantOnly := url.Values{"grant_type": {"client_credentials"}}
	tests := []struct {
		name      string
		req       *http.Request
		wantCode  int
		wantError string
	}{
		{"json body", jsonTokenRequest(t, base, testID, testSecret), 200, ""},
		{"form body", formTokenRequest(t, base, url.Values{
			"grant_type": {"client_credentials"}, "client_id": {testID},
			"client_secret": {testSecret},
		}), 200, ""},
		{"form with basic auth", basic(formTokenRequest(t, base, grantOnly),
			testID, testSecret), 200, ""},
		{"wrong secret in json", jsonTokenRequest(t, base, testID, "nope"),
			401, "invalid_client"},
		{"wrong id in json", jsonTokenRequest(t, base, "other", testSecret),
			401, "invalid_client"},
		{"wrong secret in basic auth", basic(formTokenRequest(t, base, grantOnly),
			testID, "nope"), 401, "invalid_client"},
		{"unsupported grant", formTokenRequest(t, base, url.Values{
			"grant_type": {"password"}, "client_id": {testID},
			"client_secret": {testSecret},
		}), 400, "unsupported_grant_type"},
		{"no grant", formTokenRequest(t, base, url.Values{
			"client_id": {testID}, "client_secret": {testSecret},
		}), 400, "invalid_request"},
		{"secret in body and basic auth", basic(formTokenRequest(t, base, url.Values{
			"grant_type": {"client_credentials"}, "client_secret": {testSecret},
		}), testID, testSecret), 400, "invalid_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := do(t, c, tt.req)
			if r.status != tt.wantCode {
				t.Fatalf("status = %d, want %d; body %s", r.status, tt.wantCode, r.body)
			}
			if tt.wantError != "" {
				if got := r.errorCode(t); got != tt.wantError {
					t.Errorf("error = %q, want %q", got, tt.wantError)
				}
				return
			}

			var tr tokenReply
			if err := json.Unmarshal(r.body, &tr); err != nil {
				t.Fatalf("body %q: %v", r.body, err)
			}
			if tr.TokenType != "Bearer" || tr.ExpiresIn != 3600 {
				t.Errorf("token_type %q, expires_in %d; want Bearer, 3600",
					tr.TokenType, tr.ExpiresIn)
			}
			if w := postWrite(t, c, e, tr.AccessToken, "c1", statusBody); w.status != 200 {
				t.Errorf("write with issued token: status %d", w.status)
			}
		})
	}
}

func TestTokenBasicChallenge(t *testing.T) {
	t.Parallel()
	e, c := start(t, Options{ClientID: testID, ClientSecret: testSecret})

	req := formTokenRequest(t, e.URL(), url.Values{"grant_type": {"client_credentials"}})
	req.SetBasicAuth(testID, "wrong")
	r := do(t, c, req)
	if r.status != 401 || r.header.Get("WWW-Authenticate") == "" {
		t.Errorf("status %d, WWW-Authenticate %q; want 401 with a challenge",
			r.status, r.header.Get("WWW-Authenticate"))
	}
}

func TestTokenOptions(t *testing.T) {
	t.Parallel()
	e, c := start(t, Options{TokenTTL: 90 * time.Second})

	r := do(t, c, jsonTokenRequest(t, e.URL(), "anyone", "anything"))
	var tr tokenReply
	if err := json.Unmarshal(r.body, &tr); err != nil || r.status != 200 {
		t.Fatalf("status %d, body %q: %v", r.status, r.body, err)
	}
	if tr.ExpiresIn != 90 {
		t.Errorf("expires_in = %d, want 90", tr.ExpiresIn)
	}
}

func TestFailTokens(t *testing.T) {
	t.Parallel()
	e, c := start(t, Options{})
	e.FailTokens(2, http.StatusServiceUnavailable)

	var got []int
	for range 3 {
		got = append(got, do(t, c, jsonTokenRequest(t, e.URL(), "a", "b")).status)
	}
	if want := []int{503, 503, 200}; !slices.Equal(got, want) {
		t.Errorf("statuses = %v, want %v", got, want)
	}
	if n := e.TokenRequests(); n != 3 {
		t.Errorf("TokenRequests = %d, want 3", n)
	}
}

// clock is a settable time source for token expiry.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// TestBearerRejected checks that the stream and write endpoints refuse
// every token they should, and that the token endpoint then issues one
// they accept.
func TestBearerRejected(t *testing.T) {
	t.Parallel()

	spoil := []struct {
		name  string
		spoil func(e *Emulator, clk *clock, token string) string
	}{
		{"missing", func(*Emulator, *clock, string) string { return "" }},
		{"unknown", func(*Emulator, *clock, string) string { return "made-up" }},
		{"revoked", func(e *Emulator, _ *clock, tok string) string {
			e.ExpireTokens()
			return tok
		}},
		{"past expires_in", func(_ *Emulator, clk *clock, tok string) string {
			clk.Add(time.Hour)
			return tok
		}},
	}
	endpoints := []struct {
		name string
		use  func(t *testing.T, c *http.Client, e *Emulator, token string) int
	}{
		{"write", func(t *testing.T, c *http.Client, e *Emulator, token string) int {
			return postWrite(t, c, e, token, "c1", statusBody).status
		}},
		{"stream", func(t *testing.T, c *http.Client, e *Emulator, token string) int {
			return handshakeStatus(t, c, e, token)
		}},
	}
	for _, ep := range endpoints {
		for _, sp := range spoil {
			t.Run(ep.name+"/"+sp.name, func(t *testing.T) {
				t.Parallel()
				clk := &clock{t: time.Unix(1700000000, 0)}
				e := New(Options{})
				e.now = clk.Now
				if err := e.Start(); err != nil {
					t.Fatal(err)
				}
				c := &http.Client{Transport: &http.Transport{}}
				t.Cleanup(func() { e.Close(); c.CloseIdleConnections() })

				token := sp.spoil(e, clk, getToken(t, c, e))
				if got := ep.use(t, c, e, token); got != http.StatusUnauthorized {
					t.Errorf("status = %d, want 401", got)
				}
				if got := ep.use(t, c, e, getToken(t, c, e)); got == 401 {
					t.Errorf("fresh token refused")
				}
			})
		}
	}
}

func TestFailWritesRetryAfter(t *testing.T) {
	t.Parallel()
	e, c := start(t, Options{})
	token := getToken(t, c, e)
	e.FailWrites(2, http.StatusTooManyRequests, http.Header{"Retry-After": {"7"}})

	for i, want := range []int{429, 429, 200} {
		r := postWrite(t, c, e, token, "c1", statusBody)
		if r.status != want {
			t.Fatalf("request %d: status %d, want %d", i, r.status, want)
		}
		if ra := r.header.Get("Retry-After"); want == 429 && ra != "7" {
			t.Errorf("request %d: Retry-After %q, want 7", i, ra)
		}
	}
	if n := len(e.Writes()); n != 1 {
		t.Errorf("recorded %d writes, want 1 (failed ones are not recorded)", n)
	}
	if n := e.WriteRequests(); n != 3 {
		t.Errorf("WriteRequests = %d, want 3", n)
	}
}

func TestRejectInteraction(t *testing.T) {
	t.Parallel()
	e, c := start(t, Options{})
	token := getToken(t, c, e)
	e.RejectInteraction("gone", http.StatusBadRequest)

	tests := []struct {
		id   string
		want int
	}{
		{"gone", 400}, {"c1", 200}, {"gone", 400}, {"c2", 200},
	}
	for _, tt := range tests {
		if got := postWrite(t, c, e, token, tt.id, statusBody).status; got != tt.want {
			t.Errorf("write to %s: status %d, want %d", tt.id, got, tt.want)
		}
	}
	if w := e.WritesFor("gone"); len(w) != 0 {
		t.Errorf("rejected interaction recorded: %+v", w)
	}
	if w := e.WritesFor("c1"); len(w) != 1 {
		t.Errorf("WritesFor(c1) = %+v, want one write", w)
	}
}

func TestWriteBadBody(t *testing.T) {
	t.Parallel()
	e, c := start(t, Options{})
	token := getToken(t, c, e)

	tests := []struct{ name, body string }{
		{"not json", `ivr_status=completed`},
		{"object", `{"name":"ivr_status","value":"completed"}`},
		{"empty array", `[]`},
		{"null", `null`},
		{"no name", `[{"value":"completed"}]`},
		{"number value", `[{"name":"n","value":1}]`},
		{"unknown field", `[{"name":"n","value":"v","type":"string"}]`},
		{"trailing data", statusBody + `[]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := postWrite(t, c, e, token, "c1", tt.body)
			if r.status != http.StatusBadRequest {
				t.Errorf("status = %d, want 400", r.status)
			}
		})
	}
	if n := len(e.Writes()); n != 0 {
		t.Errorf("recorded %d bad writes", n)
	}
}

// syncBuffer collects log output from the emulator's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestWritesListed(t *testing.T) {
	t.Parallel()
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e, c := start(t, Options{ClientID: testID, ClientSecret: testSecret, Logger: log})
	token := getToken(t, c, e)

	postWrite(t, c, e, token, "c1", `[{"name":"ivr_selection","value":"[\"2\",\"A\",\"1\"]"},`+
		`{"name":"ivr_status","value":"completed"}]`)
	postWrite(t, c, e, token, "c2", `[{"name":"ivr_status","value":"timeout_fallback"}]`)
	if err := e.WaitWrites(testContext(t), 2); err != nil {
		t.Fatal(err)
	}

	req, _ := http.NewRequest("GET", e.URL()+"/emulator/writes", nil)
	r := do(t, c, req)
	var got []map[string]any
	if err := json.Unmarshal(r.body, &got); err != nil {
		t.Fatalf("body %q: %v", r.body, err)
	}
	if len(got) != 2 || got[0]["interactionId"] != "c1" || got[1]["interactionId"] != "c2" {
		t.Fatalf("writes = %s, want c1 then c2", r.body)
	}
	vars := got[0]["variables"].([]any)
	first := vars[0].(map[string]any)
	if len(vars) != 2 || first["name"] != "ivr_selection" || first["value"] != `["2","A","1"]` {
		t.Errorf("variables = %v", vars)
	}
	at, _ := got[0]["at"].(string)
	if _, err := time.Parse(time.RFC3339Nano, at); err != nil {
		t.Errorf("at = %q: %v", at, err)
	}

	out := logs.String()
	if !strings.Contains(out, "interactionId=c2") || !strings.Contains(out, "ivr_status") {
		t.Errorf("accepted write not logged:\n%s", out)
	}
	if strings.Contains(out, token) || strings.Contains(out, testSecret) {
		t.Errorf("log holds a token or secret:\n%s", out)
	}
}

func TestWaitWrites(t *testing.T) {
	t.Parallel()
	e, c := start(t, Options{})
	token := getToken(t, c, e)

	done := make(chan error, 1)
	go func() { done <- e.WaitWrites(testContext(t), 2) }()
	postWrite(t, c, e, token, "c1", statusBody)
	postWrite(t, c, e, token, "c1", statusBody)
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := e.WaitWrites(ctx, 3); !errors.Is(err, context.Canceled) {
		t.Errorf("WaitWrites with done ctx = %v, want context.Canceled", err)
	}
}

func TestDelayWrites(t *testing.T) {
	t.Parallel()
	e, c := start(t, Options{})
	token := getToken(t, c, e)
	e.DelayWrites(time.Hour)

	ctx, cancel := context.WithCancel(testContext(t))
	errc := make(chan error, 1)
	go func() {
		u := e.URL() + "/api/v2/interactions/c1/variables"
		req, _ := http.NewRequestWithContext(ctx, "POST", u, strings.NewReader(statusBody))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := c.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()

	err := e.waitFor(testContext(t), func() bool { return e.writeRequests == 1 })
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("delayed write = %v, want it still waiting when cancelled", err)
	}

	e.DelayWrites(0)
	if r := postWrite(t, c, e, token, "c1", statusBody); r.status != 200 {
		t.Errorf("after DelayWrites(0): status %d", r.status)
	}
	if n := len(e.Writes()); n != 1 {
		t.Errorf("recorded %d writes, want only the undelayed one", n)
	}
}

func TestHandlerMounted(t *testing.T) {
	t.Parallel()
	e := New(Options{})
	srv := httptest.NewServer(e.Handler())
	defer srv.Close()
	defer e.Close()

	r := do(t, srv.Client(), jsonTokenRequest(t, srv.URL, "a", "b"))
	var tr tokenReply
	if err := json.Unmarshal(r.body, &tr); err != nil {
		t.Fatalf("token: %v", err)
	}
	req, _ := http.NewRequest("POST", srv.URL+"/api/v2/interactions/c1/variables",
		strings.NewReader(statusBody))
	req.Header.Set("Authorization", "Bearer "+tr.AccessToken)
	if r := do(t, srv.Client(), req); r.status != 200 {
		t.Errorf("write status %d: %s", r.status, r.body)
	}
	if e.URL() != "" {
		t.Errorf("URL() = %q without Start, want empty", e.URL())
	}
}

func TestLifecycle(t *testing.T) {
	t.Parallel()
	e := New(Options{})
	if err := e.Start(); err != nil {
		t.Fatal(err)
	}
	if err := e.Start(); err == nil {
		t.Error("second Start succeeded")
	}
	if err := e.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := e.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := e.Start(); err == nil {
		t.Error("Start after Close succeeded")
	}
	if err := e.WaitConnected(t.Context()); !errors.Is(err, errClosed) {
		t.Errorf("WaitConnected after Close = %v, want errClosed", err)
	}
}
