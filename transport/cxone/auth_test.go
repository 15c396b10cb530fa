package cxone

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	testClientID  = "app:id@tenant"
	testClient    = `s"e:c&r=t% +`
	testKeyID     = "key id&1"
	testKeySecret = "k=y+2 %&?"
)

// tokenRequest is one request the fake token endpoint received.
type tokenRequest struct {
	auth        string
	contentType string
	body        string
	form        url.Values
}

// tokenServer is a fake token endpoint. answer decides each reply from the
// request's form and its 1-based number.
type tokenServer struct {
	mu       sync.Mutex
	requests []tokenRequest
	answer   func(form url.Values, n int) (int, string)
}

func (ts *tokenServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	form, _ := url.ParseQuery(string(body))

	ts.mu.Lock()
	ts.requests = append(ts.requests, tokenRequest{
		auth: r.Header.Get("Authorization"), contentType: r.Header.Get("Content-Type"),
		body: string(body), form: form,
	})
	n := len(ts.requests)
	ts.mu.Unlock()

	status, reply := ts.answer(form, n)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	io.WriteString(w, reply)
}

func (ts *tokenServer) grants() []string {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	var out []string
	for _, r := range ts.requests {
		g := r.form.Get("grant_type")
		if g == "refresh_token" {
			g += ":" + r.form.Get("refresh_token")
		}
		out = append(out, g)
	}
	return out
}

// idToken builds an unsigned JWT with claims.
func idToken(claims string) string {
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(`{"alg":"none"}`)) + "." +
		enc.EncodeToString([]byte(claims)) + "."
}

// issuing answers every request with access token a<n>, refresh token
// r<n> and an id token naming tenant t1.
func issuing(form url.Values, n int) (int, string) {
	return http.StatusOK, fmt.Sprintf(
		`{"access_token":"a%d","token_type":"bearer","expires_in":3600,"refresh_token":"r%d","id_token":%q}`,
		n, n, idToken(`{"sub":"x","tenantId":"t1"}`))
}

func newTestSource(t *testing.T, ts *tokenServer, tune func(*AuthOptions)) *Source {
	t.Helper()
	srv := serve(t, ts)
	opts := AuthOptions{
		TokenEndpoint: func(context.Context) (string, error) {
			return srv.URL + "/auth/token", nil
		},
		ClientID: testClientID, ClientSecret: testClient,
		AccessKeyID: testKeyID, AccessKeySecret: testKeySecret,
	}
	if tune != nil {
		tune(&opts)
	}
	s, err := NewSource(opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// clock is a settable time for a Source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func TestPasswordGrantIsSentExactly(t *testing.T) {
	t.Parallel()
	ts := &tokenServer{answer: issuing}
	s := newTestSource(t, ts, func(o *AuthOptions) { o.Scope = "RealTimeApi AdminApi" })

	tok, err := s.Token(testContext(t))
	if err != nil || tok != "a1" {
		t.Fatalf("Token = %q, %v", tok, err)
	}

	r := ts.requests[0]
	wantAuth := "Basic " + base64.StdEncoding.EncodeToString(
		[]byte("app%3Aid%40tenant:s%22e%3Ac%26r%3Dt%25+%2B"))
	if r.auth != wantAuth {
		t.Errorf("Authorization = %q, want %q (id and secret form-encoded first)", r.auth, wantAuth)
	}
	if r.contentType != "application/x-www-form-urlencoded" {
		t.Errorf("Content-Type = %q", r.contentType)
	}
	wantBody := "grant_type=password&password=k%3Dy%2B2+%25%26%3F" +
		"&scope=RealTimeApi+AdminApi&username=key+id%261"
	if r.body != wantBody {
		t.Errorf("body = %q, want %q", r.body, wantBody)
	}
	if r.form.Get("password") != testKeySecret || r.form.Get("username") != testKeyID {
		t.Errorf("the access key does not survive the encoding: %v", r.form)
	}
	if r.form.Has("client_secret") {
		t.Error("the client secret is in the body as well as in Basic auth")
	}
}

func TestRefreshTokenIsUsedBeforeSigningInAgain(t *testing.T) {
	t.Parallel()
	ts := &tokenServer{answer: issuing}
	s := newTestSource(t, ts, nil)
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	s.now = clk.now
	ctx := testContext(t)

	steps := []struct {
		name  string
		do    func()
		token string
	}{
		{"first sign-in", func() {}, "a1"},
		{"cached", func() { clk.add(3500 * time.Second) }, "a1"},
		{"due 30s before expiry", func() { clk.add(71 * time.Second) }, "a2"},
		{"refused with 401", func() { s.Invalidate("a2") }, "a3"},
		{"stale invalidate", func() { s.Invalidate("a2") }, "a3"},
	}
	for _, st := range steps {
		st.do()
		tok, err := s.Token(ctx)
		if err != nil || tok != st.token {
			t.Fatalf("%s: Token = %q, %v; want %s", st.name, tok, err, st.token)
		}
	}

	want := "password refresh_token:r1 refresh_token:r2"
	if got := strings.Join(ts.grants(), " "); got != want {
		t.Errorf("grants = %s, want %s (each refresh with the latest refresh token)", got, want)
	}
}

func TestRejectedRefreshSignsInAgain(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		status int
		want   string
		ok     bool
	}{
		{"invalid grant", http.StatusBadRequest, "password refresh_token:r1 password", true},
		{"unauthorized", http.StatusUnauthorized, "password refresh_token:r1 password", true},
		{"endpoint down", http.StatusServiceUnavailable, "password refresh_token:r1", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ts := &tokenServer{answer: func(form url.Values, n int) (int, string) {
				if form.Get("grant_type") == "refresh_token" {
					return tt.status, `{"error":"invalid_grant"}`
				}
				return issuing(form, n)
			}}
			s := newTestSource(t, ts, nil)
			clk := &clock{t: time.Unix(1_700_000_000, 0)}
			s.now = clk.now
			ctx := testContext(t)

			if _, err := s.Token(ctx); err != nil {
				t.Fatal(err)
			}
			clk.add(2 * time.Hour)
			_, err := s.Token(ctx)
			if (err == nil) != tt.ok {
				t.Errorf("Token after refresh failure: err = %v, want ok=%v", err, tt.ok)
			}
			if got := strings.Join(ts.grants(), " "); got != tt.want {
				t.Errorf("grants = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestFailedRenewalKeepsAnUnexpiredToken(t *testing.T) {
	t.Parallel()
	ts := &tokenServer{answer: func(form url.Values, n int) (int, string) {
		if n == 1 {
			return issuing(form, n)
		}
		return http.StatusServiceUnavailable, `{}`
	}}
	s := newTestSource(t, ts, nil)
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	s.now = clk.now
	ctx := testContext(t)

	if _, err := s.Token(ctx); err != nil {
		t.Fatal(err)
	}
	clk.add(3590 * time.Second)
	if tok, err := s.Token(ctx); err != nil || tok != "a1" {
		t.Errorf("renewal failed 10s before expiry: Token = %q, %v; want the current token", tok, err)
	}
	clk.add(20 * time.Second)
	if tok, err := s.Token(ctx); err == nil {
		t.Errorf("renewal failed after expiry: Token = %q, want an error", tok)
	}
	if s.Ready() {
		t.Error("Ready with an expired token")
	}
}

func TestTenantComesFromTheIDToken(t *testing.T) {
	t.Parallel()
	ts := &tokenServer{answer: issuing}
	s := newTestSource(t, ts, nil)
	ctx := testContext(t)

	id, err := s.TenantID(ctx)
	if err != nil || id != "t1" {
		t.Fatalf("TenantID = %q, %v", id, err)
	}
	if !s.Ready() {
		t.Error("not Ready after signing in")
	}

	configured := newTestSource(t, &tokenServer{answer: issuing}, func(o *AuthOptions) {
		o.TenantID = "fixed"
	})
	if id, err := configured.TenantID(ctx); err != nil || id != "fixed" {
		t.Errorf("configured TenantID = %q, %v", id, err)
	}
}

func TestTenantMissingFromTheIDToken(t *testing.T) {
	t.Parallel()
	ts := &tokenServer{answer: func(url.Values, int) (int, string) {
		return 200, `{"access_token":"a","expires_in":60,"id_token":"` + idToken(`{"sub":"x"}`) + `"}`
	}}
	s := newTestSource(t, ts, nil)
	_, err := s.TenantID(testContext(t))
	if err == nil || !strings.Contains(err.Error(), "tenantId") {
		t.Errorf("err = %v, want one naming the missing claim", err)
	}
}

func TestTenantFromIDToken(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		token string
		want  string
		bad   bool
	}{
		{"string claim", idToken(`{"tenantId":"11e7-abc"}`), "11e7-abc", false},
		{"number claim", idToken(`{"tenantId":4600123}`), "4600123", false},
		{"no claim", idToken(`{"sub":"x"}`), "", false},
		{"padded payload", "e30." +
			base64.URLEncoding.EncodeToString([]byte(`{"tenantId":"ab"}`)) + ".", "ab", false},
		{"object claim", idToken(`{"tenantId":{}}`), "", true},
		{"two parts", "a.b", "", true},
		{"not base64", "a.!!!.c", "", true},
		{"not json", "a." + base64.RawURLEncoding.EncodeToString([]byte("nope")) + ".c", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := tenantFromIDToken(tt.token, DefaultTenantClaim)
			if (err != nil) != tt.bad || got != tt.want {
				t.Errorf("tenantFromIDToken = %q, %v; want %q, error %v", got, err, tt.want, tt.bad)
			}
		})
	}
}

func TestTokenErrorsCarryNoSecret(t *testing.T) {
	t.Parallel()
	// A careless endpoint echoes the request in its error.
	ts := &tokenServer{answer: func(form url.Values, n int) (int, string) {
		b, _ := json.Marshal(map[string]string{"error": "invalid_grant", "echo": form.Encode() +
			" " + form.Get("password")})
		return http.StatusBadRequest, string(b)
	}}
	s := newTestSource(t, ts, nil)

	_, err := s.Token(testContext(t))
	if err == nil {
		t.Fatal("Token succeeded")
	}
	for _, secret := range []string{testKeySecret, url.QueryEscape(testKeySecret)} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error %q carries the access key secret", err)
		}
	}
	if !strings.Contains(err.Error(), "400") {
		t.Errorf("error %q does not say the status", err)
	}
}

func TestConcurrentCallersShareOneSignIn(t *testing.T) {
	t.Parallel()
	ts := &tokenServer{answer: issuing}
	s := newTestSource(t, ts, nil)
	ctx := testContext(t)

	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			if tok, err := s.Token(ctx); err != nil || tok != "a1" {
				t.Errorf("Token = %q, %v", tok, err)
			}
		})
	}
	wg.Wait()
	if n := len(ts.grants()); n != 1 {
		t.Errorf("token requests = %d, want 1", n)
	}
}

func TestNewSourceNeedsCredentials(t *testing.T) {
	t.Parallel()
	ep := func(context.Context) (string, error) { return "", nil }
	tests := []struct {
		name string
		opts AuthOptions
	}{
		{"no endpoint", AuthOptions{ClientID: "c", ClientSecret: "s", AccessKeyID: "k", AccessKeySecret: "v"}},
		{"no client", AuthOptions{TokenEndpoint: ep, AccessKeyID: "k", AccessKeySecret: "v"}},
		{"no key", AuthOptions{TokenEndpoint: ep, ClientID: "c", ClientSecret: "s"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if _, err := NewSource(tt.opts); err == nil {
				t.Error("NewSource succeeded")
			}
		})
	}
}
