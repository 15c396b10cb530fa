package cxone

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dtmfd/dtmfd/ivrspec"
	"github.com/dtmfd/dtmfd/transport/variables"
)

// signalServer records Signal API requests and answers each with the
// status and headers reply gives.
type signalServer struct {
	mu    sync.Mutex
	got   []*http.Request
	reply func(n int) (int, http.Header)
}

func (ss *signalServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ss.mu.Lock()
	ss.got = append(ss.got, r)
	n := len(ss.got)
	ss.mu.Unlock()

	status, header := http.StatusAccepted, http.Header(nil)
	if ss.reply != nil {
		status, header = ss.reply(n)
	}
	for k, v := range header {
		w.Header()[k] = v
	}
	w.WriteHeader(status)
	if status >= 300 {
		w.Write([]byte(`{"error":"refused","token":"tok-1"}`))
	}
}

func (ss *signalServer) last() *http.Request {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.got[len(ss.got)-1]
}

func newTestSignal(t *testing.T, ss http.Handler, tune func(*SignalOptions)) *Signal {
	t.Helper()
	srv := serve(t, ss)
	opts := SignalOptions{
		API:    func(context.Context) (string, error) { return srv.URL, nil },
		Token:  func(context.Context) (string, error) { return "tok-1", nil },
		Params: []string{"ivr_status", "ivr_selection", "account"},
	}
	if tune != nil {
		tune(&opts)
	}
	s, err := NewSignal(opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func vars(kv ...string) []ivrspec.Variable {
	var out []ivrspec.Variable
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, ivrspec.Variable{Name: kv[i], Value: kv[i+1]})
	}
	return out
}

// A signal that cannot reach the API endpoint, or that it answers 404,
// drops the endpoint so the next attempt discovers it again; a first 404
// is tried once more for that reason.
func TestSignalForgetsAnEndpointThatMoved(t *testing.T) {
	t.Parallel()
	gone := serve(t, http.NotFoundHandler())
	gone.Close()
	tests := []struct {
		name   string
		status int  // 0: the endpoint is not there at all
		forget bool // the endpoint is dropped
		retry  bool // the first failure is tried again
	}{
		{"connection refused", 0, true, true},
		{"404", http.StatusNotFound, true, true},
		{"500", http.StatusInternalServerError, false, true},
		{"403", http.StatusForbidden, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var forgot []string
			var mu sync.Mutex
			base := ""
			s := newTestSignal(t, &signalServer{reply: func(int) (int, http.Header) {
				return tt.status, nil
			}}, func(o *SignalOptions) {
				api := o.API
				o.API = func(ctx context.Context) (string, error) {
					if tt.status == 0 {
						return gone.URL, nil
					}
					b, err := api(ctx)
					base = b
					return b, err
				}
				o.Forget = func(ep string) {
					mu.Lock()
					defer mu.Unlock()
					forgot = append(forgot, ep)
				}
			})
			if tt.status == 0 {
				base = gone.URL
			}

			err := s.Write(testContext(t), "4600123", vars("ivr_status", "completed"))
			if err == nil {
				t.Fatal("Write succeeded")
			}
			mu.Lock()
			defer mu.Unlock()
			if want := tt.forget; (len(forgot) == 1 && forgot[0] == base) != want {
				t.Errorf("forgotten endpoints = %q, want %s dropped: %v", forgot, base, want)
			}
			if v := s.Retry(err, 1); v.Retry != tt.retry {
				t.Errorf("Retry after the first failure = %+v, want retry %v", v, tt.retry)
			}
			if tt.status == http.StatusNotFound {
				if v := s.Retry(err, 2); v.Retry {
					t.Errorf("Retry after a second 404 = %+v, want none", v)
				}
			}
		})
	}
}

func TestSignalPlacesVariablesByName(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		vars  []ivrspec.Variable
		query string
	}{
		{
			"completed",
			vars("ivr_selection", `["2","A","1"]`, "ivr_status", "completed"),
			"p1=completed&p2=%5B%222%22%2C%22A%22%2C%221%22%5D&p3=",
		},
		{
			"missing ones sent empty",
			vars("ivr_status", "timeout_fallback"),
			"p1=timeout_fallback&p2=&p3=",
		},
		{
			"unmapped dropped",
			vars("ivr_status", "failed", "ivr_reason", "no_input", "account", "12345678"),
			"p1=failed&p2=&p3=12345678",
		},
		{
			"space and plus",
			vars("ivr_status", "a b+c&d=e/f"),
			"p1=a%20b%2Bc%26d%3De%2Ff&p2=&p3=",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ss := &signalServer{}
			s := newTestSignal(t, ss, nil)

			if err := s.Write(testContext(t), "4600123", tt.vars); err != nil {
				t.Fatal(err)
			}
			r := ss.last()
			if r.URL.RawQuery != tt.query {
				t.Errorf("query = %s\nwant    %s", r.URL.RawQuery, tt.query)
			}
		})
	}
}

func TestSignalRequest(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		version int
		path    string
	}{
		{"default version", 0, "/inContactAPI/services/v30.0/interactions/4600123/signal"},
		{"configured version", 31, "/inContactAPI/services/v31.0/interactions/4600123/signal"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ss := &signalServer{}
			s := newTestSignal(t, ss, func(o *SignalOptions) { o.Version = tt.version })

			if err := s.Write(testContext(t), "4600123", vars("ivr_status", "x")); err != nil {
				t.Fatal(err)
			}
			r := ss.last()
			if r.Method != http.MethodPost || r.URL.Path != tt.path {
				t.Errorf("request = %s %s, want POST %s", r.Method, r.URL.Path, tt.path)
			}
			if got := r.Header.Get("Authorization"); got != "Bearer tok-1" {
				t.Errorf("Authorization = %q", got)
			}
		})
	}
}

func TestSignalFailuresAreClassifiedLikeWrites(t *testing.T) {
	t.Parallel()
	errDown := errors.New("down")
	tests := []struct {
		name     string
		status   int
		header   http.Header
		token    error
		api      error
		contact  string
		retry    bool
		after    time.Duration
		refresh  bool
		accepted bool
	}{
		{name: "202", status: 202, accepted: true},
		{name: "200", status: 200, accepted: true},
		{name: "204", status: 204, accepted: true},
		{name: "429 with Retry-After", status: 429, header: http.Header{"Retry-After": {"7"}},
			retry: true, after: 7 * time.Second},
		{name: "503", status: 503, retry: true},
		{name: "401 refreshes the token", status: 401, retry: true, refresh: true},
		{name: "400 is permanent", status: 400},
		{name: "404 is permanent", status: 404},
		{name: "no token", token: errDown, retry: true},
		{name: "no API endpoint", api: errDown, retry: true},
		{name: "bad contact id", contact: "../admin"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ss := &signalServer{reply: func(int) (int, http.Header) { return tt.status, tt.header }}
			var invalidated []string
			s := newTestSignal(t, ss, func(o *SignalOptions) {
				if tt.token != nil {
					o.Token = func(context.Context) (string, error) { return "", tt.token }
				}
				if tt.api != nil {
					o.API = func(context.Context) (string, error) { return "", tt.api }
				}
				o.Invalidate = func(tok string) { invalidated = append(invalidated, tok) }
			})
			contact := "4600123"
			if tt.contact != "" {
				contact = tt.contact
			}

			err := s.Write(testContext(t), contact, vars("ivr_status", "x"))
			if (err == nil) != tt.accepted {
				t.Fatalf("Write = %v, want accepted=%v", err, tt.accepted)
			}
			if tt.accepted {
				return
			}
			v := s.Retry(err, 1)
			if v.Retry != tt.retry {
				t.Errorf("Retry = %+v, want retry=%v", v, tt.retry)
			}
			if tt.after > 0 && v.After != tt.after {
				t.Errorf("After = %v, want %v from Retry-After", v.After, tt.after)
			}
			if got := len(invalidated) == 1 && invalidated[0] == "tok-1"; got != tt.refresh {
				t.Errorf("invalidated = %q, want the refused token: %v", invalidated, tt.refresh)
			}
			if strings.Contains(err.Error(), "tok-1") {
				t.Errorf("error %q carries the token", err)
			}
		})
	}
}

func TestSignalStatusErrorKeepsTheReply(t *testing.T) {
	t.Parallel()
	ss := &signalServer{reply: func(int) (int, http.Header) { return 400, nil }}
	s := newTestSignal(t, ss, nil)

	err := s.Write(testContext(t), "1", vars("ivr_status", "x"))
	var e *variables.Error
	if !errors.As(err, &e) || e.Status != 400 {
		t.Fatalf("err = %v, want a *variables.Error with status 400", err)
	}
	if strings.Contains(e.Body, "tok-1") || !strings.Contains(e.Body, "[token]") {
		t.Errorf("body = %q, want the token masked", e.Body)
	}
}

func TestSignalConfiguration(t *testing.T) {
	t.Parallel()
	api := func(context.Context) (string, error) { return "", nil }
	tests := []struct {
		name   string
		params []string
		ok     bool
	}{
		{"one", []string{"ivr_status"}, true},
		{"nine", strings.Split("a,b,c,d,e,f,g,h,i", ","), true},
		{"ten", strings.Split("a,b,c,d,e,f,g,h,i,j", ","), false},
		{"none", nil, false},
		{"empty name", []string{"a", ""}, false},
		{"duplicate", []string{"a", "b", "a"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := NewSignal(SignalOptions{API: api, Token: api, Params: tt.params})
			if (err == nil) != tt.ok {
				t.Errorf("NewSignal(%q) = %v, want ok=%v", tt.params, err, tt.ok)
			}
		})
	}
}

func TestParseParams(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want string
		ok   bool
	}{
		{"ivr_status", "ivr_status", true},
		{" ivr_status , ivr_selection ", "ivr_status|ivr_selection", true},
		{"", "", false},
		{"a,,b", "", false},
		{"a,b,c,d,e,f,g,h,i,j", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			got, err := ParseParams(tt.in)
			if (err == nil) != tt.ok || strings.Join(got, "|") != tt.want {
				t.Errorf("ParseParams(%q) = %q, %v", tt.in, got, err)
			}
		})
	}
}
