package token

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"

	"github.com/dtmfd/dtmfd/transport/metrics"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// awkwardSecret holds every byte a hand-built body would get wrong.
const awkwardSecret = `s"e&c=r\e+t %41`

// endpoint is a loopback token endpoint that answers every request with
// reply and remembers what it was sent.
type endpoint struct {
	*httptest.Server
	requests atomic.Int32

	mu          sync.Mutex
	contentType string
	body        string
}

func newEndpoint(t *testing.T, status int, reply string) *endpoint {
	t.Helper()

	e := &endpoint{}
	e.Server = httptest.NewServer(http.HandlerFunc(
		func(w http.ResponseWriter, r *http.Request) {
			n := e.requests.Add(1)
			b, _ := io.ReadAll(r.Body)

			e.mu.Lock()
			e.contentType = r.Header.Get("Content-Type")
			e.body = string(b)
			e.mu.Unlock()

			w.WriteHeader(status)
			fmt.Fprintf(w, reply, n)
		}))
	t.Cleanup(e.Close)
	return e
}

func (e *endpoint) source(t *testing.T, form bool, m *metrics.Metrics) *Source {
	t.Helper()

	client := &http.Client{Timeout: 5 * time.Second}
	t.Cleanup(client.CloseIdleConnections)
	return New(Options{
		URL:            e.URL + "/oauth/token",
		ClientID:       "client-1",
		ClientSecret:   awkwardSecret,
		Form:           form,
		HTTPClient:     client,
		Metrics:        m,
		FailureBackoff: 20 * time.Millisecond,
	})
}

func TestRequestBody(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name        string
		form        bool
		contentType string
		decode      func(string) (map[string]string, error)
	}{
		{"json", false, "application/json", decodeJSON},
		{"form", true, "application/x-www-form-urlencoded", decodeForm},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			e := newEndpoint(t, 200, `{"access_token":"tok-%d","expires_in":3600}`)
			if _, err := e.source(t, tt.form, nil).Token(t.Context()); err != nil {
				t.Fatalf("Token: %v", err)
			}

			e.mu.Lock()
			defer e.mu.Unlock()
			if e.contentType != tt.contentType {
				t.Errorf("Content-Type = %q, want %q", e.contentType, tt.contentType)
			}
			got, err := tt.decode(e.body)
			if err != nil {
				t.Fatalf("decode body %q: %v", e.body, err)
			}
			want := map[string]string{
				"grant_type":    "client_credentials",
				"client_id":     "client-1",
				"client_secret": awkwardSecret,
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("body fields = %q, want %q", got, want)
			}
		})
	}
}

func decodeJSON(body string) (map[string]string, error) {
	var m map[string]string
	err := json.Unmarshal([]byte(body), &m)
	return m, err
}

func decodeForm(body string) (map[string]string, error) {
	v, err := url.ParseQuery(body)
	if err != nil {
		return nil, err
	}
	m := make(map[string]string)
	for k, vs := range v {
		if len(vs) != 1 {
			return nil, fmt.Errorf("field %s sent %d times", k, len(vs))
		}
		m[k] = vs[0]
	}
	return m, nil
}

func TestTokenIsCached(t *testing.T) {
	t.Parallel()

	m := metrics.New(nil)
	e := newEndpoint(t, 200, `{"access_token":"tok-%d","expires_in":3600}`)
	s := e.source(t, false, m)
	if s.Ready() {
		t.Fatal("Ready before any token was fetched")
	}

	for range 3 {
		tok, err := s.Token(t.Context())
		if err != nil || tok != "tok-1" {
			t.Fatalf("Token = %q, %v; want tok-1", tok, err)
		}
	}
	if n := e.requests.Load(); n != 1 {
		t.Errorf("token endpoint got %d requests, want 1", n)
	}
	if !s.Ready() {
		t.Error("not Ready after a token was fetched")
	}
	if got := counter(t, m.TokenRefreshes); got != 1 {
		t.Errorf("TokenRefreshes = %v, want 1", got)
	}
}

func TestErrorReplies(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name   string
		status int
		reply  string
		code   int // StatusError.Code, or 0 for another error
	}{
		{"unauthorized", 401, `{"error":"invalid_client","secret":"` +
			strings.NewReplacer(`"`, `\"`, `\`, `\\`, "%", "%%").
				Replace(awkwardSecret) + `"} %d`, 401},
		{"unauthorized echoing the form", 401, "client_secret=" +
			strings.ReplaceAll(url.QueryEscape(awkwardSecret), "%", "%%") +
			"&n=%d", 401},
		{"server error", 500, "upstream failed %d", 500},
		{"garbage", 200, "<html>%d</html>", 0},
		{"no access token", 200, `{"token_type":"Bearer","n":%d}`, 0},
		{"empty access token", 200, `{"access_token":"","n":%d}`, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				var requests atomic.Int32
				rt := roundTripFunc(func(*http.Request) (*http.Response, error) {
					body := fmt.Sprintf(tt.reply, requests.Add(1))
					return &http.Response{StatusCode: tt.status, Header: http.Header{},
						Body: io.NopCloser(strings.NewReader(body))}, nil
				})
				m := metrics.New(nil)
				const backoff = time.Second
				s := New(Options{URL: "http://token.test/oauth/token", ClientID: "client-1",
					ClientSecret: awkwardSecret, HTTPClient: &http.Client{Transport: rt},
					Metrics: m, FailureBackoff: backoff})

				// The pause after one failure lasts from half to all of
				// FailureBackoff: the second call comes just before the
				// shortest ends, the third once the longest has.
				start := time.Now()
				for i, at := range []time.Duration{0, backoff/2 - 1, backoff} {
					time.Sleep(time.Until(start.Add(at)))
					tok, err := s.Token(t.Context())
					if err == nil {
						t.Fatalf("Token = %q, want an error", tok)
					}
					checkError(t, err, tt.code)
					if i == 0 && s.Ready() {
						t.Error("Ready after a failed request")
					}
				}
				if n := requests.Load(); n != 2 {
					t.Errorf("token endpoint got %d requests, want 2: the "+
						"second call falls in the backoff, the third after it", n)
				}
				if got := counter(t, m.TokenFailures); got != 2 {
					t.Errorf("TokenFailures = %v, want 2", got)
				}
			})
		})
	}
}

func checkError(t *testing.T, err error, code int) {
	t.Helper()

	for _, form := range []string{
		awkwardSecret,
		url.QueryEscape(awkwardSecret),
		jsonString(awkwardSecret, false),
	} {
		if strings.Contains(err.Error(), form) {
			t.Errorf("error %q contains the secret", err)
		}
	}

	var se *StatusError
	switch {
	case code == 0 && errors.As(err, &se):
		t.Errorf("error %q is a StatusError, want a decoding error", err)
	case code != 0 && !errors.As(err, &se):
		t.Errorf("error %q is not a StatusError", err)
	case code != 0 && se.Code != code:
		t.Errorf("StatusError.Code = %d, want %d", se.Code, code)
	case code != 0 && !strings.Contains(err.Error(), fmt.Sprint(code)):
		t.Errorf("error %q does not name status %d", err, code)
	}
}

func TestInvalidate(t *testing.T) {
	t.Parallel()

	e := newEndpoint(t, 200, `{"access_token":"tok-%d","expires_in":3600}`)
	s := e.source(t, false, nil)
	token := func() string {
		t.Helper()
		tok, err := s.Token(t.Context())
		if err != nil {
			t.Fatalf("Token: %v", err)
		}
		return tok
	}

	token()
	s.Invalidate("someone-elses")
	if got := token(); got != "tok-1" {
		t.Fatalf("after invalidating another token, Token = %q, want tok-1", got)
	}

	for range 50 {
		s.Invalidate("tok-1")
	}
	if s.Ready() {
		t.Error("Ready after the cached token was invalidated")
	}
	if got := token(); got != "tok-2" {
		t.Fatalf("after invalidating tok-1, Token = %q, want tok-2", got)
	}

	s.Invalidate("tok-1")
	if got := token(); got != "tok-2" {
		t.Errorf("a late Invalidate(tok-1) dropped its successor: Token = %q", got)
	}
	if n := e.requests.Load(); n != 2 {
		t.Errorf("token endpoint got %d requests, want 2", n)
	}
}

// roundTripFunc lets a test answer requests in memory, inside a synctest
// bubble where real sockets are not allowed.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) {
	return f(r)
}

// countingTransport answers tok-1, tok-2, ... with expiresIn.
func countingTransport(n *atomic.Int32, expiresIn string) http.RoundTripper {
	return roundTripFunc(func(*http.Request) (*http.Response, error) {
		body := fmt.Sprintf(`{"access_token":"tok-%d","expires_in":%s}`,
			n.Add(1), expiresIn)
		return &http.Response{
			StatusCode: 200,
			Header:     http.Header{},
			Body:       io.NopCloser(strings.NewReader(body)),
		}, nil
	})
}

func TestRefreshBeforeExpiry(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name          string
		expiresIn     string
		refreshBefore time.Duration
		refreshAfter  time.Duration
	}{
		{"default margin", "120", 0, 90 * time.Second},
		{"custom margin", "120", 5 * time.Second, 115 * time.Second},
		{"quoted expiry", `"120"`, 0, 90 * time.Second},
		{"short-lived refreshes at half life", "20", 0, 10 * time.Second},
		{"zero expiry means a minute", "0", 0, 30 * time.Second},
		{"negative expiry means a minute", "-5", 0, 30 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			synctest.Test(t, func(t *testing.T) {
				var n atomic.Int32
				s := New(Options{
					URL:           "http://token.invalid/oauth/token",
					RefreshBefore: tt.refreshBefore,
					HTTPClient: &http.Client{
						Transport: countingTransport(&n, tt.expiresIn),
					},
				})

				want := func(tok string) {
					t.Helper()
					got, err := s.Token(t.Context())
					if err != nil || got != tok {
						t.Fatalf("Token = %q, %v; want %s", got, err, tok)
					}
				}

				want("tok-1")
				time.Sleep(tt.refreshAfter - time.Millisecond)
				want("tok-1")
				time.Sleep(time.Millisecond)
				want("tok-2")
			})
		})
	}
}

func TestReadyEndsAtExpiry(t *testing.T) {
	t.Parallel()

	synctest.Test(t, func(t *testing.T) {
		var n atomic.Int32
		s := New(Options{
			URL:        "http://token.invalid/oauth/token",
			HTTPClient: &http.Client{Transport: countingTransport(&n, "120")},
		})
		if _, err := s.Token(t.Context()); err != nil {
			t.Fatalf("Token: %v", err)
		}

		time.Sleep(119 * time.Second)
		if !s.Ready() {
			t.Error("not Ready while the token is unexpired")
		}
		time.Sleep(time.Second)
		if s.Ready() {
			t.Error("Ready once the only token expired")
		}
	})
}

func TestConcurrentCallersShareOneRequest(t *testing.T) {
	t.Parallel()

	synctest.Test(t, func(t *testing.T) {
		var n atomic.Int32
		release := make(chan struct{})
		inner := countingTransport(&n, "3600")
		s := New(Options{
			URL: "http://token.invalid/oauth/token",
			HTTPClient: &http.Client{Transport: roundTripFunc(
				func(r *http.Request) (*http.Response, error) {
					<-release
					return inner.RoundTrip(r)
				})},
		})

		const callers = 100
		got := make([]string, callers)
		var wg sync.WaitGroup
		for i := range callers {
			wg.Go(func() {
				tok, err := s.Token(t.Context())
				if err != nil {
					t.Errorf("caller %d: %v", i, err)
				}
				got[i] = tok
			})
		}

		synctest.Wait()
		close(release)
		wg.Wait()

		if n.Load() != 1 {
			t.Errorf("token endpoint got %d requests, want 1", n.Load())
		}
		for i, tok := range got {
			if tok != "tok-1" {
				t.Errorf("caller %d got %q, want tok-1", i, tok)
			}
		}
	})
}

func TestCallerGivingUpLeavesFetchForOthers(t *testing.T) {
	t.Parallel()

	synctest.Test(t, func(t *testing.T) {
		var n atomic.Int32
		inner := countingTransport(&n, "3600")
		s := New(Options{
			URL: "http://token.invalid/oauth/token",
			HTTPClient: &http.Client{Transport: roundTripFunc(
				func(r *http.Request) (*http.Response, error) {
					select {
					case <-time.After(5 * time.Second):
					case <-r.Context().Done():
						return nil, r.Context().Err()
					}
					return inner.RoundTrip(r)
				})},
		})

		impatient, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		patient := make(chan string)
		go func() {
			tok, _ := s.Token(t.Context())
			patient <- tok
		}()

		_, err := s.Token(impatient)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("impatient caller got %v, want its deadline", err)
		}
		if tok := <-patient; tok != "tok-1" {
			t.Errorf("patient caller got %q, want tok-1", tok)
		}
	})
}

func counter(t *testing.T, c interface{ Write(*dto.Metric) error }) float64 {
	t.Helper()

	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatalf("read counter: %v", err)
	}
	return m.GetCounter().GetValue()
}

// TestBackoffWhileTheEndpointFails: callers that keep asking while the
// token endpoint is down cause a request per backoff step, not one each.
func TestBackoffWhileTheEndpointFails(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		var requests atomic.Int32
		var down atomic.Bool
		down.Store(true)
		var tokens atomic.Int32
		ok := countingTransport(&tokens, "3600")
		rt := roundTripFunc(func(r *http.Request) (*http.Response, error) {
			requests.Add(1)
			if down.Load() {
				return &http.Response{StatusCode: 503, Header: http.Header{},
					Body: io.NopCloser(strings.NewReader("down"))}, nil
			}
			return ok.RoundTrip(r)
		})
		s := New(Options{URL: "http://token.test/oauth/token", ClientID: "c", ClientSecret: "s",
			HTTPClient: &http.Client{Transport: rt}})

		// 50 writers asking every 20ms for 10s.
		for range 500 {
			for range 50 {
				if _, err := s.Token(t.Context()); err == nil {
					t.Fatal("a token while the endpoint is down")
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
		if n := requests.Load(); n > 12 {
			t.Errorf("%d requests in 10s of failures, want a backoff (at most 12)", n)
		}

		down.Store(false)
		time.Sleep(maxFailureBackoff)
		if tok, err := s.Token(t.Context()); err != nil || tok != "tok-1" {
			t.Fatalf("after the endpoint recovered: %q, %v", tok, err)
		}
	})
}

// TestRefreshFailureKeepsTheUnexpiredToken: a refresh that fails before
// the cached token expires hands out the cached token.
func TestRefreshFailureKeepsTheUnexpiredToken(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		var tokens atomic.Int32
		var down atomic.Bool
		ok := countingTransport(&tokens, "120")
		rt := roundTripFunc(func(r *http.Request) (*http.Response, error) {
			if down.Load() {
				return &http.Response{StatusCode: 500, Header: http.Header{},
					Body: io.NopCloser(strings.NewReader("down"))}, nil
			}
			return ok.RoundTrip(r)
		})
		s := New(Options{URL: "http://token.test/oauth/token", ClientID: "c", ClientSecret: "s",
			HTTPClient: &http.Client{Transport: rt}})
		if tok, err := s.Token(t.Context()); err != nil || tok != "tok-1" {
			t.Fatalf("first token: %q, %v", tok, err)
		}

		down.Store(true)
		time.Sleep(100 * time.Second) // due for refresh, not expired
		if tok, err := s.Token(t.Context()); err != nil || tok != "tok-1" {
			t.Errorf("refresh failed before expiry: %q, %v; want the cached token", tok, err)
		}
		time.Sleep(30 * time.Second) // expired
		if tok, err := s.Token(t.Context()); err == nil {
			t.Errorf("an expired token was handed out: %q", tok)
		}
	})
}
