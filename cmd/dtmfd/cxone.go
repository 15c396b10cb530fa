package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/google/uuid"

	"github.com/dtmfd/dtmfd/actors"
	"github.com/dtmfd/dtmfd/ivrspec"
	"github.com/dtmfd/dtmfd/transport/cxone"
	"github.com/dtmfd/dtmfd/transport/emulator"
	"github.com/dtmfd/dtmfd/transport/metrics"
	"github.com/dtmfd/dtmfd/transport/token"
)

// The profiles: which platform contract dtmfd speaks.
const (
	profileTutorial = "tutorial"
	profileCXone    = "cxone"
)

// The paths of the cxone profile's ingress endpoints.
const (
	studioPath = "/cxone/studio"
	vahPath    = "/cxone/vah"
)

// cxoneSettings are the settings of the cxone profile. The application's
// client id and secret are the shared CXONE_CLIENT_ID and
// CXONE_CLIENT_SECRET(_FILE).
type cxoneSettings struct {
	Profile             string
	Issuer              string
	TenantID            string
	AccessKeyID         string
	AccessKeySecret     string
	AccessKeySecretFile string
	TokenEndpoint       string
	APIEndpoint         string
	APIVersion          int
	Scope               string
	SignalParams        string
	IngressAuth         string
	IngressAuthFile     string
	PromptAudio         string
}

// bind registers the cxone profile's settings.
func (s *cxoneSettings) bind(b *binder) {
	str := b.str

	str(&s.Profile, "profile", "DTMFD_PROFILE", profileTutorial,
		"platform contract: tutorial (voice stream, variables) or cxone (Studio/VAH in, Signal API out)")
	str(&s.Issuer, "cxone-issuer", "CXONE_ISSUER", cxone.DefaultIssuer,
		"cxone: sign-in host whose .well-known documents give the token and API endpoints")
	str(&s.TenantID, "cxone-tenant-id", "CXONE_TENANT_ID", "",
		"cxone: tenant id (default: read from the id token)")
	str(&s.AccessKeyID, "cxone-access-key-id", "CXONE_ACCESS_KEY_ID", "",
		"cxone: API user's access key id; without it and a client id, a CXone emulator is used")
	str(&s.AccessKeySecret, "cxone-access-key-secret", "CXONE_ACCESS_KEY_SECRET", "",
		"cxone: API user's access key secret")
	str(&s.AccessKeySecretFile, "cxone-access-key-secret-file", "CXONE_ACCESS_KEY_SECRET_FILE", "",
		"cxone: file holding the access key secret")
	str(&s.TokenEndpoint, "cxone-token-endpoint", "CXONE_TOKEN_ENDPOINT", "",
		"cxone: token endpoint (default: from the issuer's OpenID configuration)")
	str(&s.APIEndpoint, "cxone-api-endpoint", "CXONE_API_ENDPOINT", "",
		"cxone: API base such as https://api-na1.niceincontact.com (default: discovered)")
	b.num(&s.APIVersion, "cxone-api-version", "CXONE_API_VERSION", cxone.DefaultAPIVersion,
		"cxone: REST API version of the Signal path")
	str(&s.Scope, "cxone-scope", "CXONE_SCOPE", "",
		"cxone: scope sent with the password grant, if any")
	str(&s.SignalParams, "signal-params", "DTMFD_SIGNAL_PARAMS", "ivr_status,ivr_selection",
		"cxone: decision variables sent as the signal's p1, p2, ... (at most 9, comma-separated)")
	str(&s.IngressAuth, "ingress-auth", "DTMFD_INGRESS_AUTH", "",
		"cxone: credential Studio and VAH must send: a bearer token, or user:password for Basic")
	str(&s.IngressAuthFile, "ingress-auth-file", "DTMFD_INGRESS_AUTH_FILE", "",
		"cxone: file holding the ingress credential")
	str(&s.PromptAudio, "prompt-audio", "DTMFD_PROMPT_AUDIO", "",
		"cxone: VAH audioFilePath for a prompt, {prompt} replaced by its id (default: the id as text)")
}

// enabled reports whether the cxone profile is selected.
func (s cxoneSettings) enabled() bool { return s.Profile == profileCXone }

// local reports whether the cxone profile runs against its emulator.
func (s cxoneSettings) local(clientID string) bool {
	return clientID == "" && s.AccessKeyID == "" && s.AccessKeySecret == "" &&
		s.AccessKeySecretFile == ""
}

// check returns one error per setting the cxone profile cannot run with.
// clientID and hasClientSecret are the shared client settings.
func (s cxoneSettings) check(clientID string, hasClientSecret bool) []error {
	var errs []error
	bad := func(name, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{name}, args...)...))
	}

	switch s.Profile {
	case profileTutorial:
		return nil
	case profileCXone:
	default:
		bad("DTMFD_PROFILE", "want tutorial or cxone, got %q", s.Profile)
		return errs
	}

	for _, u := range []struct{ name, v string }{
		{"CXONE_ISSUER", s.Issuer},
		{"CXONE_TOKEN_ENDPOINT", s.TokenEndpoint},
		{"CXONE_API_ENDPOINT", s.APIEndpoint},
	} {
		if u.v != "" && !absoluteURL(u.v) {
			bad(u.name, "want an http:// or https:// URL, got %q", u.v)
		}
	}
	if s.APIVersion < 1 {
		bad("CXONE_API_VERSION", "want a positive whole number, got %d", s.APIVersion)
	}
	if _, err := cxone.ParseParams(s.SignalParams); err != nil {
		bad("DTMFD_SIGNAL_PARAMS", "%v", err)
	}
	if s.AccessKeySecret != "" && s.AccessKeySecretFile != "" {
		bad("CXONE_ACCESS_KEY_SECRET_FILE", "give the secret or a file holding it, not both")
	}
	if s.IngressAuth != "" && s.IngressAuthFile != "" {
		bad("DTMFD_INGRESS_AUTH_FILE", "give the credential or a file holding it, not both")
	}
	if s.IngressAuth == "" && s.IngressAuthFile == "" {
		bad("DTMFD_INGRESS_AUTH", "required with DTMFD_PROFILE=cxone: Studio and VAH must authenticate")
	}
	if s.IngressAuth != "" {
		if _, err := cxone.ParseCredential(s.IngressAuth); err != nil {
			bad("DTMFD_INGRESS_AUTH", "%v", err)
		}
	}
	if s.local(clientID) {
		return errs
	}

	hasKey := s.AccessKeySecret != "" || s.AccessKeySecretFile != ""
	if s.AccessKeyID == "" || !hasKey {
		bad("CXONE_ACCESS_KEY_ID",
			"set it with CXONE_ACCESS_KEY_SECRET (or _FILE), or neither for local mode")
	}
	if clientID == "" || !hasClientSecret {
		bad("CXONE_CLIENT_ID", "the cxone profile needs the application's client id and secret")
	}
	return errs
}

func absoluteURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" && u.User == nil
}

// cxoneProfile is what the cxone profile adds to dtmfd: sign-in, the
// Signal sink and the credential of the ingress endpoints, and in local
// mode the CXone emulator they all talk to.
type cxoneProfile struct {
	settings cxoneSettings
	log      *slog.Logger
	metrics  *metrics.Metrics

	emu    *emulator.CXone
	tokens *cxone.Source
	api    func(context.Context) (string, error)
	sink   *cxone.Signal
	auth   cxone.Credential

	studio *cxone.Studio
	vah    *cxone.VAH
}

// newCXoneProfile builds the profile's transports from s and the shared
// client credentials; hc sends every request to the platform. In local
// mode it starts a CXone emulator first. It sends no request itself:
// keepSignedIn signs in.
func newCXoneProfile(
	s cxoneSettings, clientID, clientSecret, clientSecretFile string,
	hc *http.Client, log *slog.Logger, m *metrics.Metrics,
) (_ *cxoneProfile, err error) {
	p := &cxoneProfile{settings: s, log: log.With("profile", profileCXone), metrics: m}
	defer func() {
		if err != nil {
			p.close()
		}
	}()

	if p.auth, err = readCredential(s); err != nil {
		return nil, err
	}
	keySecret, err := token.ReadSecret(s.AccessKeySecret, s.AccessKeySecretFile)
	if err != nil {
		return nil, fmt.Errorf("CXONE_ACCESS_KEY_SECRET_FILE: %w", err)
	}
	if !s.local(clientID) {
		clientSecret, err = token.ReadSecret(clientSecret, clientSecretFile)
		if err != nil {
			return nil, fmt.Errorf("CXONE_CLIENT_SECRET_FILE: %w", err)
		}
	} else if clientID, clientSecret, keySecret, err = p.startEmulator(); err != nil {
		return nil, err
	}

	disco := cxone.NewDiscovery(cxone.DiscoveryOptions{Issuer: p.settings.Issuer,
		TokenEndpoint: s.TokenEndpoint, APIEndpoint: s.APIEndpoint, HTTPClient: hc})
	p.tokens, err = cxone.NewSource(cxone.AuthOptions{
		TokenEndpoint: disco.TokenEndpoint,
		ClientID:      clientID, ClientSecret: clientSecret,
		AccessKeyID: p.settings.AccessKeyID, AccessKeySecret: keySecret,
		Scope: s.Scope, TenantID: s.TenantID,
		HTTPClient: hc, Logger: p.log, Metrics: m,
	})
	if err != nil {
		return nil, err
	}

	params, err := cxone.ParseParams(s.SignalParams)
	if err != nil {
		return nil, fmt.Errorf("DTMFD_SIGNAL_PARAMS: %w", err)
	}
	p.api = disco.APIEndpointFor(p.tokens.TenantID)
	p.sink, err = cxone.NewSignal(cxone.SignalOptions{
		API:        p.api,
		Token:      p.tokens.Token,
		Invalidate: p.tokens.Invalidate,
		Forget:     disco.ForgetAPIEndpoint,
		Version:    s.APIVersion,
		Params:     params,
		HTTPClient: hc,
		Logger:     p.log,
		Metrics:    m,
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

// startEmulator runs a CXone emulator with random credentials and points
// the profile at it. It returns the credentials to sign in with.
func (p *cxoneProfile) startEmulator() (clientID, clientSecret, keySecret string, err error) {
	clientID, clientSecret = "local-"+uuid.NewString(), uuid.NewString()
	keyID, keySecret := "local-key-"+uuid.NewString(), uuid.NewString()
	p.emu = emulator.NewCXone(emulator.CXoneOptions{
		ClientID: clientID, ClientSecret: clientSecret,
		AccessKeyID: keyID, AccessKeySecret: keySecret,
		Logger: p.log.With("component", "cxone-emulator"),
	})
	if err := p.emu.Start(); err != nil {
		return "", "", "", fmt.Errorf("start cxone emulator: %w", err)
	}

	p.settings.Issuer = p.emu.URL()
	p.settings.AccessKeyID = keyID
	p.log.Info("cxone profile in local mode, against its built-in CXone emulator",
		"emulator", p.emu.URL())
	return clientID, clientSecret, keySecret, nil
}

// readCredential reads the ingress credential from its setting or file.
func readCredential(s cxoneSettings) (cxone.Credential, error) {
	v, err := token.ReadSecret(s.IngressAuth, s.IngressAuthFile)
	if err != nil {
		return cxone.Credential{}, fmt.Errorf("DTMFD_INGRESS_AUTH_FILE: %w", err)
	}
	c, err := cxone.ParseCredential(v)
	if err != nil {
		return cxone.Credential{}, fmt.Errorf("DTMFD_INGRESS_AUTH: %w", err)
	}
	return c, nil
}

// Sink is the engine's sink in the cxone profile.
func (p *cxoneProfile) Sink() actors.Sink { return p.sink }

// serve builds the Studio and VAH endpoints, running turns on engine with
// flows from flow. Call it once the engine has started.
func (p *cxoneProfile) serve(engine cxone.Stepper, flow func() *ivrspec.Flow) (err error) {
	opts := cxone.Options{
		Engine:      engine,
		Flow:        flow,
		Auth:        p.auth,
		PromptAudio: p.settings.PromptAudio,
		Logger:      p.log,
		Metrics:     p.metrics,
	}
	if p.studio, err = cxone.NewStudio(opts); err != nil {
		return err
	}
	p.vah, err = cxone.NewVAH(opts)
	return err
}

// mount adds the endpoints serve built to mux.
func (p *cxoneProfile) mount(mux *http.ServeMux) {
	if p.studio != nil {
		mux.Handle(studioPath, p.studio)
	}
	if p.vah != nil {
		mux.Handle(vahPath, p.vah)
	}
}

// keepSignedIn signs in, finds the API endpoint, and then keeps the
// access token fresh until ctx ends, so readiness reflects the platform
// before the first decision needs it and an idle hour does not let the
// token lapse. Renewal happens only when the token is due; the checks in
// between cost nothing. A failure is logged and tried again sooner.
func (p *cxoneProfile) keepSignedIn(ctx context.Context, every time.Duration) {
	keepSignedIn(ctx, p.log, every, "cannot sign in to CXone or find its API endpoint; trying again",
		func(ctx context.Context) error {
			if _, err := p.tokens.Token(ctx); err != nil {
				return err
			}
			_, err := p.api(ctx)
			return err
		})
}

// notReady returns why the profile cannot serve yet: no access token has
// been obtained. It sends no request.
func (p *cxoneProfile) notReady() []string {
	if p.tokens.Ready() {
		return nil
	}
	return []string{"no CXone access token yet"}
}

// close stops the emulator of local mode, if any.
func (p *cxoneProfile) close() {
	if p.emu == nil {
		return
	}
	if err := p.emu.Close(); err != nil {
		p.log.Warn("cxone emulator did not close cleanly", "error", err)
	}
}
