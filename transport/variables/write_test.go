package variables

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dtmfd/dtmfd/transport/metrics"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

const secret = "tok-3f9a1c77e2"

func staticToken(context.Context) (string, error) { return secret, nil }

var completed = []Variable{
	{Name: "ivr_selection", Value: `["2","A","1"]`},
	{Name: "ivr_status", Value: "completed"},
}

// captured is what the server saw of one request.
type captured struct {
	method, uri, auth, contentType string
	body                           []byte
}

// recorder is a platform stand-in that records each request and answers
// with the status, headers and body it is set to.
type recorder struct {
	mu       sync.Mutex
	requests []captured

	status int
	header http.Header
	body   string
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)

	rec.mu.Lock()
	rec.requests = append(rec.requests, captured{
		method:      r.Method,
		uri:         r.RequestURI,
		auth:        r.Header.Get("Authorization"),
		contentType: r.Header.Get("Content-Type"),
		body:        body,
	})
	rec.mu.Unlock()

	for k, v := range rec.header {
		w.Header()[k] = v
	}
	w.WriteHeader(cmp(rec.status, http.StatusOK))
	io.WriteString(w, rec.body)
}

func (rec *recorder) seen() []captured {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]captured(nil), rec.requests...)
}

// cmp returns v, or def when v is zero.
func cmp(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

// counted returns the value of a counter.
func counted(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var pb dto.Metric
	if err := c.Write(&pb); err != nil {
		t.Fatalf("read counter: %v", err)
	}
	return pb.GetCounter().GetValue()
}

// series returns how many label combinations a vector has seen.
// series counts the label combinations of v that have counted anything.
func series(v *prometheus.CounterVec) int {
	ch := make(chan prometheus.Metric, 16)
	v.Collect(ch)
	close(ch)
	n := 0
	for m := range ch {
		var out dto.Metric
		if err := m.Write(&out); err == nil && out.GetCounter().GetValue() > 0 {
			n++
		}
	}
	return n
}

func newServer(t *testing.T, rec *recorder) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)
	return srv
}

func TestWriteSendsTheContractRequest(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name    string
		base    string // appended to the server URL
		id      string
		wantURI string
	}{
		{"plain id", "", "c-1001", "/api/v2/interactions/c-1001/variables"},
		{"trailing slash on base", "/", "c-1001", "/api/v2/interactions/c-1001/variables"},
		{"base with prefix", "/tenant/", "42", "/tenant/api/v2/interactions/42/variables"},
		{"id with slash and space", "", "call/7 x", "/api/v2/interactions/call%2F7%20x/variables"},
		{"id with query characters", "", "a?b#c", "/api/v2/interactions/a%3Fb%23c/variables"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rec := &recorder{status: http.StatusNoContent}
			srv := newServer(t, rec)
			c := New(Options{BaseURL: srv.URL + tt.base, Token: staticToken})

			if err := c.Write(t.Context(), tt.id, completed); err != nil {
				t.Fatalf("Write: %v", err)
			}

			reqs := rec.seen()
			if len(reqs) != 1 {
				t.Fatalf("server saw %d requests, want 1", len(reqs))
			}
			got := reqs[0]
			want := captured{
				method:      http.MethodPost,
				uri:         tt.wantURI,
				auth:        "Bearer " + secret,
				contentType: "application/json",
			}
			body := got.body
			got.body = nil
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("request = %+v, want %+v", got, want)
			}
			wantBody := `[{"name":"ivr_selection","value":"[\"2\",\"A\",\"1\"]"},` +
				`{"name":"ivr_status","value":"completed"}]`
			if string(body) != wantBody {
				t.Errorf("body = %s, want %s", body, wantBody)
			}
		})
	}
}

func TestWriteNilVariablesSendsEmptyArray(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	srv := newServer(t, rec)

	c := New(Options{BaseURL: srv.URL, Token: staticToken})

	if err := c.Write(t.Context(), "c1", nil); err != nil {
		t.Fatalf("Write: %v", err)
	}
	if got := string(rec.seen()[0].body); got != "[]" {
		t.Errorf("body = %s, want []", got)
	}
}

func TestWriteStatus(t *testing.T) {
	t.Parallel()

	now := time.Date(2025, 3, 4, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name       string
		status     int
		retryAfter string
		body       string
		wantErr    bool
		wantAfter  time.Duration
		wantBody   string
	}{
		{"200", 200, "", `{"ok":true}`, false, 0, ""},
		{"201", 201, "", "", false, 0, ""},
		{"204", 204, "", "", false, 0, ""},
		{"400 keeps body", 400, "", `{"error":"bad variable"}`, true, 0, `{"error":"bad variable"}`},
		{"404", 404, "", "no such interaction\n", true, 0, "no such interaction"},
		{"429 seconds", 429, "3", "slow down", true, 3 * time.Second, "slow down"},
		{"429 HTTP-date", 429, now.Add(45 * time.Second).Format(http.TimeFormat), "", true,
			45 * time.Second, ""},
		{"429 bad Retry-After", 429, "later", "", true, 0, ""},
		{"429 without Retry-After", 429, "", "", true, 0, ""},
		{"503 Retry-After", 503, "10", "", true, 10 * time.Second, ""},
		{"long body is cut", 500, "", strings.Repeat("x", 1000), true, 0, strings.Repeat("x", 256)},
		{"cut inside a rune", 500, "", strings.Repeat("x", 255) + "é", true, 0,
			strings.Repeat("x", 255)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rec := &recorder{status: tt.status, body: tt.body, header: http.Header{}}
			if tt.retryAfter != "" {
				rec.header.Set("Retry-After", tt.retryAfter)
			}
			srv := newServer(t, rec)
			c := New(Options{BaseURL: srv.URL, Token: staticToken})
			c.now = func() time.Time { return now }

			err := c.Write(t.Context(), "c1", completed)
			if !tt.wantErr {
				if err != nil {
					t.Fatalf("Write: %v", err)
				}
				return
			}

			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Write error = %v (%T), want *Error", err, err)
			}
			if e.Status != tt.status || e.RetryAfter != tt.wantAfter || e.Body != tt.wantBody {
				t.Errorf("Error = {Status:%d RetryAfter:%v Body:%q}, want {%d %v %q}",
					e.Status, e.RetryAfter, e.Body, tt.status, tt.wantAfter, tt.wantBody)
			}
			if e.Token != secret {
				t.Errorf("Error.Token does not hold the token used")
			}
			if want := fmt.Sprintf("write variables: status %d", tt.status); e.Error() != want {
				t.Errorf("Error() = %q, want %q", e.Error(), want)
			}
		})
	}
}

// trackingTransport wraps every reply body to record whether it was read to
// the end and closed.
type trackingTransport struct {
	base   http.RoundTripper
	mu     sync.Mutex
	bodies []*trackedBody
}

func (tr *trackingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := tr.base.RoundTrip(r)
	if err != nil {
		return nil, err
	}

	b := &trackedBody{ReadCloser: resp.Body}
	resp.Body = b
	tr.mu.Lock()
	tr.bodies = append(tr.bodies, b)
	tr.mu.Unlock()
	return resp, nil
}

type trackedBody struct {
	io.ReadCloser
	eof, closed atomic.Bool
}

func (b *trackedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		b.eof.Store(true)
	}
	return n, err
}

func (b *trackedBody) Close() error {
	b.closed.Store(true)
	return b.ReadCloser.Close()
}

func TestWriteDrainsAndClosesEveryBody(t *testing.T) {
	t.Parallel()

	for _, status := range []int{200, 204, 400, 401, 404, 429, 500, 503} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			t.Parallel()
			rec := &recorder{status: status, body: strings.Repeat("b", 10<<10)}
			if status == 204 {
				rec.body = ""
			}
			srv := newServer(t, rec)
			tr := &trackingTransport{base: srv.Client().Transport}
			c := New(Options{BaseURL: srv.URL, Token: staticToken, HTTPClient: &http.Client{Transport: tr}})

			c.Write(t.Context(), "c1", completed)

			if len(tr.bodies) != 1 {
				t.Fatalf("got %d replies, want 1", len(tr.bodies))
			}
			if b := tr.bodies[0]; !b.eof.Load() || !b.closed.Load() {
				t.Errorf("body drained=%v closed=%v, want both", b.eof.Load(), b.closed.Load())
			}
		})
	}
}

func TestWriteReusesOneConnection(t *testing.T) {
	t.Parallel()

	rec := &recorder{}
	srv := httptest.NewUnstartedServer(rec)
	var conns atomic.Int32
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	c := New(Options{BaseURL: srv.URL, Token: staticToken, HTTPClient: srv.Client()})

	for _, status := range []int{200, 429, 503, 404, 200, 500} {
		rec.mu.Lock()
		rec.status, rec.body = status, strings.Repeat("r", 4096)
		rec.mu.Unlock()
		c.Write(t.Context(), "c1", completed)
	}

	if n := conns.Load(); n != 1 {
		t.Errorf("server accepted %d connections, want 1: a reply body was left unread", n)
	}
}

func TestWriteTokenFailure(t *testing.T) {
	t.Parallel()

	errDown := errors.New("token endpoint unreachable")
	tests := []struct {
		name  string
		token func(context.Context) (string, error)
		is    error
	}{
		{"source error", func(context.Context) (string, error) { return "", errDown }, errDown},
		{"empty token", func(context.Context) (string, error) { return "", nil }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rec := &recorder{}
			srv := newServer(t, rec)
			m := metrics.New(nil)
			c := New(Options{BaseURL: srv.URL, Token: tt.token, Metrics: m})

			err := c.Write(t.Context(), "c1", completed)

			var e *Error
			if !errors.As(err, &e) || e.Status != 0 || e.Token != "" {
				t.Fatalf("Write error = %#v, want *Error with Status 0 and no token", err)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("Write error %v does not wrap the token source's error", err)
			}
			if !strings.HasPrefix(err.Error(), "write variables: get token: ") {
				t.Errorf("Error() = %q, want it to name the token step", err.Error())
			}
			if v := Decide(err, 1, Policy{}, half); !v.Retry {
				t.Errorf("Decide = %+v, want a retry", v)
			}
			if n := len(rec.seen()); n != 0 {
				t.Errorf("server saw %d requests, want none without a token", n)
			}
			if n := series(m.WriteAttempts); n != 0 {
				t.Errorf("counted %d attempt classes, want none: nothing was sent", n)
			}
		})
	}
}

func TestWriteInvalidRequestIsPermanent(t *testing.T) {
	t.Parallel()

	const server = "SERVER" // replaced by the test server's URL
	tests := []struct {
		name  string
		base  string
		token func(context.Context) (string, error)
		id    string
	}{
		{"empty id", server, staticToken, ""},
		{"dot id", server, staticToken, "."},
		{"dot-dot id", server, staticToken, ".."},
		{"no token source", server, nil, "c1"},
		{"empty base", "", staticToken, "c1"},
		{"relative base", "/api", staticToken, "c1"},
		{"ftp base", "ftp://example.com", staticToken, "c1"},
		{"unparsable base with password", "http://u:pw%zz@h", staticToken, "c1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rec := &recorder{}
			srv := newServer(t, rec)
			base := strings.Replace(tt.base, server, srv.URL, 1)

			err := New(Options{BaseURL: base, Token: tt.token}).Write(t.Context(), tt.id, completed)

			if err == nil {
				t.Fatal("Write succeeded, want an error")
			}
			if v := Decide(err, 1, Policy{}, half); v.Retry {
				t.Errorf("Decide = %+v, want no retry", v)
			}
			if strings.Contains(err.Error(), "pw") {
				t.Errorf("Error() = %q leaks the base URL's password", err.Error())
			}
			if n := len(rec.seen()); n != 0 {
				t.Errorf("server saw %d requests, want none", n)
			}
		})
	}
}

func TestWriteNetworkFailures(t *testing.T) {
	t.Parallel()

	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()

	hangup := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
	}))
	t.Cleanup(hangup.Close)

	expired, cancel := context.WithDeadline(t.Context(), time.Unix(0, 0))
	t.Cleanup(cancel)
	canceled, cancel2 := context.WithCancel(t.Context())
	cancel2()

	tests := []struct {
		name   string
		ctx    context.Context
		url    string
		is     error
		reason string
	}{
		{"connection refused", t.Context(), closed.URL, nil, "no reply"},
		{"server hangs up", t.Context(), hangup.URL, nil, "no reply"},
		{"deadline passed", expired, hangup.URL, context.DeadlineExceeded, "timed out"},
		{"canceled", canceled, hangup.URL, context.Canceled, "canceled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := metrics.New(nil)
			c := New(Options{BaseURL: tt.url, Token: staticToken, Metrics: m})

			err := c.Write(tt.ctx, "c1", completed)

			var e *Error
			if !errors.As(err, &e) || e.Status != 0 || e.Err == nil {
				t.Fatalf("Write error = %v, want *Error with Status 0 and a cause", err)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("errors.Is(%v, %v) = false", err, tt.is)
			}
			if !strings.HasPrefix(err.Error(), "write variables: post: ") ||
				strings.Contains(err.Error(), "http://") {
				t.Errorf("Error() = %q, want the cause without method and URL", err.Error())
			}
			v := Decide(err, 1, Policy{}, half)
			if !v.Retry || !strings.Contains(v.Reason, tt.reason) {
				t.Errorf("Decide = %+v, want a retry with reason mentioning %q", v, tt.reason)
			}
			if got := counted(t, m.WriteAttempts.WithLabelValues("error")); got != 1 {
				t.Errorf("error attempts = %v, want 1", got)
			}
		})
	}
}

func TestWriteNeverRevealsToken(t *testing.T) {
	t.Parallel()

	// The server echoes the token back, as a misbehaving proxy might, with
	// the first 10 bytes of the token inside the body excerpt.
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusUnauthorized)
		prefix := strings.Repeat("-", maxExcerpt-10-len(" rejected: Bearer "))
		fmt.Fprintf(w, "%s rejected: %s", prefix, r.Header.Get("Authorization"))
	}))
	t.Cleanup(echo.Close)
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()

	for _, url := range []string{echo.URL, closed.URL} {
		err := New(Options{BaseURL: url, Token: staticToken}).Write(t.Context(), "c1", completed)
		if err == nil {
			t.Fatal("Write succeeded, want an error")
		}

		var e *Error
		errors.As(err, &e)
		if e.Token != secret {
			t.Fatalf("Error.Token = %q, want the token used", e.Token)
		}

		var out bytes.Buffer
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d", "%T"} {
			fmt.Fprintf(&out, verb+"\n", err)
			fmt.Fprintf(&out, verb+"\n", e)
		}
		slog.New(slog.NewTextHandler(&out, nil)).Error("write failed", "err", err)
		slog.New(slog.NewJSONHandler(&out, nil)).Error("write failed", "err", err)
		js, _ := json.Marshal(e)
		out.Write(js)
		out.WriteString(e.Body)

		if strings.Contains(out.String(), secret) || strings.Contains(out.String(), secret[:8]) {
			t.Errorf("token found in formatted error:\n%s", out.String())
		}
	}
}

func TestWriteCountsAttempts(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	srv := newServer(t, rec)
	m := metrics.New(nil)
	c := New(Options{BaseURL: srv.URL, Token: staticToken, Metrics: m})

	for _, status := range []int{200, 204, 429, 429, 503, 404} {
		rec.mu.Lock()
		rec.status = status
		rec.mu.Unlock()
		c.Write(t.Context(), "c1", completed)
	}

	for class, want := range map[string]float64{"2xx": 2, "4xx": 3, "5xx": 1} {
		if got := counted(t, m.WriteAttempts.WithLabelValues(class)); got != want {
			t.Errorf("%s attempts = %v, want %v", class, got, want)
		}
	}
	if got := counted(t, m.WriteRateLimited); got != 2 {
		t.Errorf("rate limited = %v, want 2", got)
	}
}

func TestWriteConcurrent(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	srv := newServer(t, rec)
	c := New(Options{BaseURL: srv.URL, Token: staticToken})

	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			if err := c.Write(t.Context(), fmt.Sprintf("c%d", i), completed); err != nil {
				t.Errorf("Write: %v", err)
			}
		})
	}
	wg.Wait()

	if n := len(rec.seen()); n != 8 {
		t.Errorf("server saw %d requests, want 8", n)
	}
}
