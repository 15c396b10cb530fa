package cxone

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// serve runs h on loopback until the test ends.
func serve(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// issuer serves both discovery documents, counting requests and failing
// the first fail of each with 503.
type issuer struct {
	fail     int32
	openid   atomic.Int32
	config   atomic.Int32
	tenantIn atomic.Value
	api      string
}

func (is *issuer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var n int32
	switch r.URL.Path {
	case "/.well-known/openid-configuration":
		n = is.openid.Add(1)
	case "/.well-known/cxone-configuration":
		n = is.config.Add(1)
		is.tenantIn.Store(r.URL.RawQuery)
	default:
		http.NotFound(w, r)
		return
	}
	if n <= is.fail {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}

	w.Header().Set("Content-Type", "application/json")
	if r.URL.Path == "/.well-known/openid-configuration" {
		w.Write([]byte(`{"issuer":"x","token_endpoint":"https://auth.example/auth/token"}`))
		return
	}
	w.Write([]byte(`{"area":"na1","api_endpoint":"` + is.api + `"}`))
}

func TestDiscoveryCachesWhatItFinds(t *testing.T) {
	t.Parallel()
	is := &issuer{api: "https://api-na1.example/"}
	srv := serve(t, is)
	d := NewDiscovery(DiscoveryOptions{Issuer: srv.URL + "/"})
	ctx := testContext(t)

	for range 3 {
		ep, err := d.TokenEndpoint(ctx)
		if err != nil || ep != "https://auth.example/auth/token" {
			t.Fatalf("TokenEndpoint = %q, %v", ep, err)
		}
		api, err := d.APIEndpoint(ctx, "ten ant/1")
		if err != nil || api != "https://api-na1.example" {
			t.Fatalf("APIEndpoint = %q, %v; want it without the trailing slash", api, err)
		}
	}

	if n := is.openid.Load(); n != 1 {
		t.Errorf("openid configuration read %d times, want once", n)
	}
	if n := is.config.Load(); n != 1 {
		t.Errorf("cxone configuration read %d times, want once", n)
	}
	if q := is.tenantIn.Load(); q != "tenantId=ten+ant%2F1" {
		t.Errorf("query = %q, want the tenant id encoded", q)
	}
}

func TestDiscoveryForgetsAnEndpointThatStoppedAnswering(t *testing.T) {
	t.Parallel()
	is := &issuer{api: "https://api-na1.example"}
	srv := serve(t, is)
	d := NewDiscovery(DiscoveryOptions{Issuer: srv.URL})
	ctx := testContext(t)

	steps := []struct {
		forget string
		want   int32 // cxone configuration reads so far
	}{
		{"", 1},
		{"https://api-other.example", 1},
		{"https://api-na1.example", 2},
		{"", 2},
	}
	for i, st := range steps {
		if st.forget != "" {
			d.ForgetAPIEndpoint(st.forget)
		}
		if _, err := d.APIEndpoint(ctx, "t1"); err != nil {
			t.Fatal(err)
		}
		if n := is.config.Load(); n != st.want {
			t.Fatalf("step %d (forget %q): configuration read %d times, want %d", i+1, st.forget,
				n, st.want)
		}
	}
}

func TestDiscoveryAsksAgainAfterAFailure(t *testing.T) {
	t.Parallel()
	is := &issuer{fail: 2, api: "https://api.example"}
	srv := serve(t, is)
	d := NewDiscovery(DiscoveryOptions{Issuer: srv.URL})
	ctx := testContext(t)

	for i := range 2 {
		if _, err := d.TokenEndpoint(ctx); err == nil || !strings.Contains(err.Error(), "503") {
			t.Fatalf("attempt %d: err = %v, want the 503", i+1, err)
		}
	}
	if _, err := d.TokenEndpoint(ctx); err != nil {
		t.Fatalf("once the issuer is up: %v", err)
	}
	if _, err := d.TokenEndpoint(ctx); err != nil {
		t.Fatal(err)
	}
	if n := is.openid.Load(); n != 3 {
		t.Errorf("requests = %d, want 2 failures and 1 success, then the cache", n)
	}
}

func TestDiscoveryOverridesSendNothing(t *testing.T) {
	t.Parallel()
	is := &issuer{}
	srv := serve(t, is)
	d := NewDiscovery(DiscoveryOptions{
		Issuer:        srv.URL,
		TokenEndpoint: "https://auth.example/token",
		APIEndpoint:   "https://api.example/",
	})
	ctx := testContext(t)

	ep, err := d.TokenEndpoint(ctx)
	if err != nil || ep != "https://auth.example/token" {
		t.Errorf("TokenEndpoint = %q, %v", ep, err)
	}
	api, err := d.APIEndpointFor(func(context.Context) (string, error) {
		t.Error("tenant looked up although the API endpoint is configured")
		return "", nil
	})(ctx)
	if err != nil || api != "https://api.example" {
		t.Errorf("APIEndpoint = %q, %v", api, err)
	}
	if is.openid.Load()+is.config.Load() != 0 {
		t.Error("a discovery document was read")
	}
}

func TestDiscoveryRefusesBadDocuments(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		body string
	}{
		{"not json", `<html>`},
		{"no endpoint", `{"area":"na1"}`},
		{"relative", `{"api_endpoint":"/inContactAPI"}`},
		{"other scheme", `{"api_endpoint":"ftp://api.example"}`},
		{"user info", `{"api_endpoint":"https://user:pass@api.example"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Write([]byte(tt.body))
			}))
			d := NewDiscovery(DiscoveryOptions{Issuer: srv.URL})
			if ep, err := d.APIEndpoint(testContext(t), "t1"); err == nil {
				t.Errorf("APIEndpoint = %q, want an error", ep)
			}
			if strings.Contains(tt.body, "pass") {
				_, err := d.APIEndpoint(testContext(t), "t1")
				if strings.Contains(err.Error(), "pass") {
					t.Errorf("error %q repeats the password", err)
				}
			}
		})
	}
}

func TestDiscoveryNeedsATenant(t *testing.T) {
	t.Parallel()
	d := NewDiscovery(DiscoveryOptions{Issuer: "http://127.0.0.1:1"})
	if _, err := d.APIEndpoint(testContext(t), ""); err == nil {
		t.Error("APIEndpoint without a tenant succeeded")
	}
}

func TestDiscoveryShareOneRequest(t *testing.T) {
	t.Parallel()
	release, arrived := make(chan struct{}), make(chan struct{}, 8)
	var requests atomic.Int32
	srv := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		arrived <- struct{}{}
		<-release
		w.Write([]byte(`{"token_endpoint":"https://auth.example/t"}`))
	}))
	d := NewDiscovery(DiscoveryOptions{Issuer: srv.URL})
	ctx := testContext(t)

	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if _, err := d.TokenEndpoint(ctx); err != nil {
				t.Error(err)
			}
		})
	}
	<-arrived
	close(release)
	wg.Wait()
	if n := requests.Load(); n != 1 {
		t.Errorf("requests = %d, want 1 for 8 concurrent callers", n)
	}
}
