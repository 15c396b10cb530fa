package emulator

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

const (
	cxClientID  = "app@tenant"
	cxClient    = `s"e:c&r=t% +`
	cxKeyID     = "key-1"
	cxKeySecret = "k=y+2 %&?"
)

func startCXone(t *testing.T) (*CXone, *http.Client) {
	t.Helper()
	c := NewCXone(CXoneOptions{
		ClientID: cxClientID, ClientSecret: cxClient,
		AccessKeyID: cxKeyID, AccessKeySecret: cxKeySecret,
		TenantID: "11e7-tenant",
	})
	if err := c.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	tr := &http.Transport{}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		tr.CloseIdleConnections()
	})
	return c, &http.Client{Transport: tr}
}

// tokenCall posts form to the token endpoint with Basic credentials
// form-encoded as RFC 6749 asks.
func tokenCall(
	t *testing.T, c *CXone, hc *http.Client, id, secret string, form url.Values,
) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, c.URL()+"/auth/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	r := do(t, hc, req)
	var body map[string]any
	_ = json.Unmarshal(r.body, &body)
	return r.status, body
}

func password() url.Values {
	return url.Values{"grant_type": {"password"}, "username": {cxKeyID}, "password": {cxKeySecret}}
}

func TestCXoneDiscovery(t *testing.T) {
	t.Parallel()
	c, hc := startCXone(t)

	get := func(path string) reply {
		req, _ := http.NewRequest(http.MethodGet, c.URL()+path, nil)
		return do(t, hc, req)
	}
	var openid struct {
		TokenEndpoint string `json:"token_endpoint"`
	}
	r := get("/.well-known/openid-configuration")
	if err := json.Unmarshal(r.body, &openid); err != nil || openid.TokenEndpoint != c.URL()+"/auth/token" {
		t.Errorf("openid configuration %d %s", r.status, r.body)
	}

	var cfg struct {
		APIEndpoint string `json:"api_endpoint"`
	}
	r = get("/.well-known/cxone-configuration?tenantId=11e7-tenant")
	if err := json.Unmarshal(r.body, &cfg); err != nil || cfg.APIEndpoint != c.URL() {
		t.Errorf("cxone configuration %d %s", r.status, r.body)
	}
	if r := get("/.well-known/cxone-configuration?tenantId=other"); r.status != 404 {
		t.Errorf("unknown tenant: %d, want 404", r.status)
	}

	c.FailDiscovery(1, 503)
	if r := get("/.well-known/openid-configuration"); r.status != 503 {
		t.Errorf("with the fault: %d, want 503", r.status)
	}
	if r := get("/.well-known/openid-configuration"); r.status != 200 {
		t.Errorf("after the fault: %d, want 200", r.status)
	}
	if n := c.DiscoveryRequests(); n != 5 {
		t.Errorf("DiscoveryRequests = %d, want 5", n)
	}
}

func TestCXoneTokenGrants(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		id     string
		secret string
		form   url.Values
		status int
		code   string
	}{
		{"password", cxClientID, cxClient, password(), 200, ""},
		{"wrong client secret", cxClientID, "nope", password(), 401, "invalid_client"},
		{"wrong key secret", cxClientID, cxClient,
			url.Values{"grant_type": {"password"}, "username": {cxKeyID}, "password": {"x"}}, 400, "invalid_grant"},
		{"client credentials", cxClientID, cxClient,
			url.Values{"grant_type": {"client_credentials"}}, 400, "unsupported_grant_type"},
		{"unknown refresh token", cxClientID, cxClient,
			url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"r"}}, 400, "invalid_grant"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, hc := startCXone(t)
			status, body := tokenCall(t, c, hc, tt.id, tt.secret, tt.form)
			if status != tt.status || (tt.code != "" && body["error"] != tt.code) {
				t.Errorf("reply %d %v, want %d %s", status, body, tt.status, tt.code)
			}
			if status == 200 {
				for _, k := range []string{"access_token", "refresh_token", "id_token"} {
					if body[k] == "" || body[k] == nil {
						t.Errorf("reply has no %s: %v", k, body)
					}
				}
			}
		})
	}
}

func TestCXoneRefreshTokensRotate(t *testing.T) {
	t.Parallel()
	c, hc := startCXone(t)

	_, first := tokenCall(t, c, hc, cxClientID, cxClient, password())
	refresh := func(rt any) (int, map[string]any) {
		return tokenCall(t, c, hc, cxClientID, cxClient,
			url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt.(string)}})
	}

	status, second := refresh(first["refresh_token"])
	if status != 200 || second["access_token"] == first["access_token"] {
		t.Fatalf("refresh: %d %v", status, second)
	}
	if status, _ := refresh(first["refresh_token"]); status != 400 {
		t.Errorf("a used refresh token: %d, want 400", status)
	}
	c.ExpireRefreshTokens()
	if status, _ := refresh(second["refresh_token"]); status != 400 {
		t.Errorf("after ExpireRefreshTokens: %d, want 400", status)
	}
	if c.PasswordGrants() != 1 || c.RefreshGrants() != 3 || c.TokenRequests() != 4 {
		t.Errorf("grants: password %d refresh %d requests %d",
			c.PasswordGrants(), c.RefreshGrants(), c.TokenRequests())
	}
}

func TestCXoneIDTokenNamesTheTenant(t *testing.T) {
	t.Parallel()
	c, hc := startCXone(t)
	_, body := tokenCall(t, c, hc, cxClientID, cxClient, password())

	parts := strings.Split(body["id_token"].(string), ".")
	if len(parts) != 3 {
		t.Fatalf("id token %q is not a JWT", body["id_token"])
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil || claims["tenantId"] != "11e7-tenant" {
		t.Errorf("claims %s, want tenantId 11e7-tenant", payload)
	}
}

// signal posts one Signal API request with tok.
func signal(t *testing.T, c *CXone, hc *http.Client, tok, path, query string) reply {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, c.URL()+path+"?"+query, nil)
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	return do(t, hc, req)
}

const signalPath = "/inContactAPI/services/v30.0/interactions/4600123/signal"

func TestCXoneSignalRecordsParameters(t *testing.T) {
	t.Parallel()
	c, hc := startCXone(t)
	_, body := tokenCall(t, c, hc, cxClientID, cxClient, password())
	tok := body["access_token"].(string)

	tests := []struct {
		name   string
		tok    string
		path   string
		query  string
		status int
		params []string
	}{
		{"three", tok, signalPath, "p1=completed&p2=%5B%222%22%5D&p3=", 202, []string{"completed", `["2"]`, ""}},
		{"gap", tok, signalPath, "p3=c&p1=a%20b", 202, []string{"a b", "", "c"}},
		{"no token", "", signalPath, "p1=a", 401, nil},
		{"revoked token", "nope", signalPath, "p1=a", 401, nil},
		{"p10", tok, signalPath, "p10=a", 400, nil},
		{"other parameter", tok, signalPath, "p1=a&x=b", 400, nil},
		{"repeated", tok, signalPath, "p1=a&p1=b", 400, nil},
		{"none", tok, signalPath, "", 400, nil},
		{"contact not a number", tok, "/inContactAPI/services/v30.0/interactions/abc/signal", "p1=a", 400, nil},
		{"version", tok, "/inContactAPI/services/30/interactions/1/signal", "p1=a", 404, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(c.Signals())
			r := signal(t, c, hc, tt.tok, tt.path, tt.query)
			if r.status != tt.status {
				t.Fatalf("status %d %s, want %d", r.status, r.body, tt.status)
			}
			got := c.Signals()
			if tt.params == nil {
				if len(got) != before {
					t.Errorf("a refused signal was recorded: %v", got[before:])
				}
				return
			}
			last := got[len(got)-1]
			if last.ContactID != "4600123" || last.Version != "v30.0" || !slices.Equal(last.Params, tt.params) ||
				last.RawQuery != tt.query {
				t.Errorf("recorded %+v, want params %q", last, tt.params)
			}
		})
	}
	if n := len(c.SignalsFor("4600123")); n != 2 {
		t.Errorf("SignalsFor = %d signals, want 2", n)
	}
}

// A moved API endpoint is what discovery names from then on, and the
// only one the Signal API answers at.
func TestCXoneMoveAPI(t *testing.T) {
	t.Parallel()
	c, hc := startCXone(t)
	_, body := tokenCall(t, c, hc, cxClientID, cxClient, password())
	tok := body["access_token"].(string)
	api := func() string {
		req, _ := http.NewRequest(http.MethodGet,
			c.URL()+"/.well-known/cxone-configuration?tenantId=11e7-tenant", nil)
		var cfg struct {
			APIEndpoint string `json:"api_endpoint"`
		}
		json.Unmarshal(do(t, hc, req).body, &cfg)
		return cfg.APIEndpoint
	}

	steps := []struct {
		move     string // region to move to first; "" stays
		endpoint string // what discovery names, under the emulator's URL
		old, now int    // status of a signal at the root and at /region/eu1
	}{
		{"", "", 202, 404},
		{"eu1", "/region/eu1", 404, 202},
	}
	for i, st := range steps {
		if st.move != "" {
			c.MoveAPI(st.move)
		}
		if got := api(); got != c.URL()+st.endpoint {
			t.Errorf("step %d: api_endpoint = %s, want %s", i+1, got, c.URL()+st.endpoint)
		}
		if r := signal(t, c, hc, tok, signalPath, "p1=a"); r.status != st.old {
			t.Errorf("step %d: signal at the root: %d, want %d", i+1, r.status, st.old)
		}
		if r := signal(t, c, hc, tok, "/region/eu1"+signalPath, "p1=a"); r.status != st.now {
			t.Errorf("step %d: signal at /region/eu1: %d, want %d", i+1, r.status, st.now)
		}
	}
	if n := len(c.Signals()); n != 2 {
		t.Errorf("recorded %d signals, want the two accepted", n)
	}
}

func TestCXoneSignalFaults(t *testing.T) {
	t.Parallel()
	c, hc := startCXone(t)
	_, body := tokenCall(t, c, hc, cxClientID, cxClient, password())
	tok := body["access_token"].(string)

	c.FailSignals(1, 429, http.Header{"Retry-After": {"3"}})
	r := signal(t, c, hc, tok, signalPath, "p1=a")
	if r.status != 429 || r.header.Get("Retry-After") != "3" {
		t.Errorf("with the fault: %d Retry-After %q", r.status, r.header.Get("Retry-After"))
	}
	c.RejectContact("4600123", 404)
	if r := signal(t, c, hc, tok, signalPath, "p1=a"); r.status != 404 {
		t.Errorf("rejected contact: %d, want 404", r.status)
	}
	c.ExpireTokens()
	other := "/inContactAPI/services/v30.0/interactions/1/signal"
	if r := signal(t, c, hc, tok, other, "p1=a"); r.status != 401 {
		t.Errorf("after ExpireTokens: %d, want 401", r.status)
	}
	if n, s := c.SignalRequests(), c.Signals(); n != 3 || len(s) != 0 {
		t.Errorf("SignalRequests = %d, signals %v; want 3 and none recorded", n, s)
	}
}

func TestCXoneWaitSignals(t *testing.T) {
	t.Parallel()
	c, hc := startCXone(t)
	_, body := tokenCall(t, c, hc, cxClientID, cxClient, password())

	done := make(chan error, 1)
	go func() { done <- c.WaitSignals(testContext(t), 1) }()
	signal(t, c, hc, body["access_token"].(string), signalPath, "p1=a")
	if err := <-done; err != nil {
		t.Errorf("WaitSignals: %v", err)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Millisecond)
	defer cancel()
	if err := c.WaitSignals(ctx, 2); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("WaitSignals for a signal that never comes: %v", err)
	}
}

func FuzzParseSignalQuery(f *testing.F) {
	f.Add("p1=completed&p2=%5B%222%22%5D&p3=")
	f.Add("p9=x&p1=a%20b")
	f.Add("p0=1")
	f.Add("p1=a&p1=b")
	f.Add("%zz")

	f.Fuzz(func(t *testing.T, raw string) {
		params, err := parseSignalQuery(raw)
		if err != nil {
			return
		}
		if len(params) == 0 || len(params) > maxSignalParams {
			t.Fatalf("accepted %q as %d parameters", raw, len(params))
		}
		q := url.Values{}
		for i, v := range params {
			q.Set("p"+strconv.Itoa(i+1), v)
		}
		again, err := parseSignalQuery(q.Encode())
		if err != nil || !slices.Equal(again, params) {
			t.Fatalf("round trip of %q: %q, %v", raw, again, err)
		}
	})
}
