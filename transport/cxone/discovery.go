package cxone

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// DefaultIssuer is CXone's global sign-in host.
const DefaultIssuer = "https://cxone.niceincontact.com"

const (
	// defaultHTTPTimeout bounds one request when no HTTP client is given.
	defaultHTTPTimeout = 10 * time.Second

	// flightTimeout bounds a request shared by several callers, so one
	// that every caller gave up on still ends.
	flightTimeout = 30 * time.Second

	// maxReply bounds how much of a reply is read.
	maxReply = 64 << 10
)

// defaultClient is the client a component uses when it is given none: a
// timeout, and a transport of its own. On http.DefaultTransport, anything
// else in the process that closes that transport's idle connections
// (every httptest.Server does when it closes) could break a request of
// this component that was just reusing one.
func defaultClient() *http.Client {
	return &http.Client{
		Timeout:   defaultHTTPTimeout,
		Transport: http.DefaultTransport.(*http.Transport).Clone(),
	}
}

// DiscoveryOptions configures a Discovery. The zero value discovers both
// endpoints from DefaultIssuer.
type DiscoveryOptions struct {
	// Issuer is the sign-in host whose .well-known documents are read.
	// Empty means DefaultIssuer.
	Issuer string

	// TokenEndpoint, when set, is used as is and the OpenID configuration
	// is never read.
	TokenEndpoint string

	// APIEndpoint, when set, is used as is for every tenant and the CXone
	// configuration is never read.
	APIEndpoint string

	// HTTPClient sends the requests. Nil means a client of its own with a
	// 10s timeout.
	HTTPClient *http.Client
}

// Discovery finds the token endpoint and a tenant's API host, and keeps
// what it found until ForgetAPIEndpoint drops an API host that stopped
// answering. A failed lookup is not kept: the next call asks again, so an
// issuer that was down at start-up is picked up once it answers. Its
// methods are safe for concurrent use.
type Discovery struct {
	opts  DiscoveryOptions
	group singleflight.Group

	mu    sync.Mutex
	token string
	api   map[string]string // tenant id to api_endpoint
}

// NewDiscovery returns a Discovery for opts. It sends no request until one
// of its methods is called.
func NewDiscovery(opts DiscoveryOptions) *Discovery {
	opts.Issuer = strings.TrimRight(opts.Issuer, "/")
	if opts.Issuer == "" {
		opts.Issuer = DefaultIssuer
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = defaultClient()
	}
	return &Discovery{opts: opts, api: make(map[string]string)}
}

// TokenEndpoint returns the token_endpoint of the issuer's OpenID
// configuration, or the configured override.
func (d *Discovery) TokenEndpoint(ctx context.Context) (string, error) {
	if d.opts.TokenEndpoint != "" {
		return d.opts.TokenEndpoint, nil
	}
	if ep := d.cachedToken(); ep != "" {
		return ep, nil
	}

	u := d.opts.Issuer + "/.well-known/openid-configuration"
	return d.lookup(ctx, "openid", u, parseOpenID, func(ep string) {
		d.token = ep
	})
}

// APIEndpoint returns the api_endpoint of tenantID's CXone configuration,
// such as https://api-na1.niceincontact.com, or the configured override.
func (d *Discovery) APIEndpoint(ctx context.Context, tenantID string) (string, error) {
	if d.opts.APIEndpoint != "" {
		return strings.TrimRight(d.opts.APIEndpoint, "/"), nil
	}
	if tenantID == "" {
		return "", errors.New("discover API endpoint: no tenant id")
	}
	if ep := d.cachedAPI(tenantID); ep != "" {
		return ep, nil
	}

	u := d.opts.Issuer + "/.well-known/cxone-configuration?tenantId=" +
		url.QueryEscape(tenantID)
	return d.lookup(ctx, "api:"+tenantID, u, parseCXoneConfig, func(ep string) {
		d.api[tenantID] = ep
	})
}

// ForgetAPIEndpoint drops ep wherever it is kept as a tenant's API
// endpoint, so the next lookup asks the issuer again. A Signal calls it
// when ep cannot be reached or answers 404: the tenant's API may have
// moved. A configured endpoint is never forgotten.
func (d *Discovery) ForgetAPIEndpoint(ep string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for tenant, cached := range d.api {
		if cached == ep {
			delete(d.api, tenant)
		}
	}
}

// APIEndpointFor returns a func that resolves the API endpoint of the
// tenant that tenant names, for a Signal's options.
func (d *Discovery) APIEndpointFor(
	tenant func(context.Context) (string, error),
) func(context.Context) (string, error) {
	return func(ctx context.Context) (string, error) {
		if d.opts.APIEndpoint != "" {
			return d.APIEndpoint(ctx, "")
		}
		id, err := tenant(ctx)
		if err != nil {
			return "", fmt.Errorf("find tenant: %w", err)
		}
		return d.APIEndpoint(ctx, id)
	}
}

func (d *Discovery) cachedToken() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.token
}

func (d *Discovery) cachedAPI(tenantID string) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.api[tenantID]
}

// lookup fetches u once for all concurrent callers with the same key and
// stores the result, under d.mu, before any of them is answered, so a
// caller arriving just after cannot start a second request. A caller whose
// ctx ends stops waiting; the request goes on for the others.
func (d *Discovery) lookup(
	ctx context.Context, key, u string,
	parse func([]byte) (string, error), store func(string),
) (string, error) {
	ch := d.group.DoChan(key, func() (any, error) {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), flightTimeout)
		defer cancel()

		ep, err := d.fetch(fctx, u, parse)
		if err != nil {
			return "", err
		}
		d.mu.Lock()
		store(ep)
		d.mu.Unlock()
		return ep, nil
	})
	select {
	case <-ctx.Done():
		return "", ctx.Err()
	case res := <-ch:
		if res.Err != nil {
			return "", res.Err
		}
		return res.Val.(string), nil
	}
}

// fetch reads one discovery document and returns the endpoint in it.
func (d *Discovery) fetch(
	ctx context.Context, u string, parse func([]byte) (string, error),
) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", fmt.Errorf("build discovery request: %w", err)
	}
	req.Header.Set("Accept", "application/json")

	resp, err := d.opts.HTTPClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("discover endpoint: %w", err)
	}
	defer resp.Body.Close()

	body, err := io.ReadAll(io.LimitReader(resp.Body, maxReply))
	if err != nil {
		return "", fmt.Errorf("read discovery reply: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("discover endpoint: %s answered %d", req.URL.Path, resp.StatusCode)
	}
	return parse(body)
}

// parseOpenID returns the token_endpoint of an OpenID configuration.
func parseOpenID(body []byte) (string, error) {
	var doc struct {
		TokenEndpoint string `json:"token_endpoint"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return "", fmt.Errorf("decode openid configuration: %w", err)
	}
	if err := checkEndpoint(doc.TokenEndpoint); err != nil {
		return "", fmt.Errorf("openid configuration token_endpoint: %w", err)
	}
	return doc.TokenEndpoint, nil
}

// parseCXoneConfig returns the api_endpoint of a CXone configuration,
// without a trailing slash.
func parseCXoneConfig(body []byte) (string, error) {
	var doc struct {
		APIEndpoint string `json:"api_endpoint"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return "", fmt.Errorf("decode cxone configuration: %w", err)
	}
	if err := checkEndpoint(doc.APIEndpoint); err != nil {
		return "", fmt.Errorf("cxone configuration api_endpoint: %w", err)
	}
	return strings.TrimRight(doc.APIEndpoint, "/"), nil
}

// checkEndpoint accepts an absolute http or https URL without user
// information, so a discovery document cannot point credentials at a
// relative path or smuggle a password into a log line.
func checkEndpoint(s string) error {
	if s == "" {
		return errors.New("missing")
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return errors.New("not an absolute http or https URL")
	}
	if u.User != nil {
		return errors.New("carries user information")
	}
	return nil
}
