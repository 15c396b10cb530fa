package main

import (
	"context"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dtmfd/dtmfd/actors"
	"github.com/dtmfd/dtmfd/ivrspec"
	"github.com/dtmfd/dtmfd/transport/emulator"
)

// cxoneArgs parses args with the cxone settings alone.
func cxoneArgs(t *testing.T, args ...string) cxoneSettings {
	t.Helper()
	var s cxoneSettings
	fs := flag.NewFlagSet("dtmfd", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	s.bind(&binder{fs: fs})
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestCXoneSettingsDefaults(t *testing.T) {
	t.Parallel()
	s := cxoneArgs(t)
	if s.Profile != "tutorial" || s.Issuer != "https://cxone.niceincontact.com" ||
		s.APIVersion != 30 || s.SignalParams != "ivr_status,ivr_selection" {
		t.Errorf("defaults = %+v", s)
	}
	if errs := s.check("", false); len(errs) != 0 {
		t.Errorf("tutorial profile checked: %v", errs)
	}
}

func TestCXoneSettingsCheck(t *testing.T) {
	t.Parallel()
	full := []string{"-profile", "cxone", "-ingress-auth", "tok",
		"-cxone-access-key-id", "k", "-cxone-access-key-secret", "v"}
	tests := []struct {
		name     string
		args     []string
		clientID string
		secret   bool
		want     []string // settings named in the errors
	}{
		{"full", full, "c", true, nil},
		{"local", []string{"-profile", "cxone", "-ingress-auth", "u:p"}, "", false, nil},
		{"unknown profile", []string{"-profile", "genesys"}, "", false, []string{"DTMFD_PROFILE"}},
		{"no ingress credential", []string{"-profile", "cxone"}, "", false, []string{"DTMFD_INGRESS_AUTH"}},
		{"bad ingress credential", []string{"-profile", "cxone", "-ingress-auth", ":p"}, "", false,
			[]string{"DTMFD_INGRESS_AUTH"}},
		{"ten params", append(slices.Clone(full), "-signal-params", "a,b,c,d,e,f,g,h,i,j"), "c", true,
			[]string{"DTMFD_SIGNAL_PARAMS"}},
		{"key without client", full, "", false, []string{"CXONE_CLIENT_ID"}},
		{"client without key", []string{"-profile", "cxone", "-ingress-auth", "t"}, "c", true,
			[]string{"CXONE_ACCESS_KEY_ID"}},
		{"both key secrets", append(slices.Clone(full), "-cxone-access-key-secret-file", "/f"), "c", true,
			[]string{"CXONE_ACCESS_KEY_SECRET_FILE"}},
		{"bad issuer", append(slices.Clone(full), "-cxone-issuer", "cxone.niceincontact.com"), "c", true,
			[]string{"CXONE_ISSUER"}},
		{"bad api endpoint", append(slices.Clone(full), "-cxone-api-endpoint", "https://u:p@h"), "c", true,
			[]string{"CXONE_API_ENDPOINT"}},
		{"bad version", append(slices.Clone(full), "-cxone-api-version", "0"), "c", true,
			[]string{"CXONE_API_VERSION"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			errs := cxoneArgs(t, tt.args...).check(tt.clientID, tt.secret)
			var got []string
			for _, err := range errs {
				name, _, _ := strings.Cut(err.Error(), ":")
				got = append(got, name)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("errors = %v, want ones naming %v", errs, tt.want)
			}
		})
	}
}

func TestCXoneProfileLocalMode(t *testing.T) {
	t.Parallel()
	log := slog.New(slog.DiscardHandler)
	s := cxoneArgs(t, "-profile", "cxone", "-ingress-auth", "tok")
	p, err := newCXoneProfile(s, "", "", "", nil, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.close)
	if p.emu == nil {
		t.Fatal("local mode started no emulator")
	}

	engine, err := actors.Start(actors.Config{
		Flow: func() *ivrspec.Flow { return ivrspec.Example(10 * time.Second) },
		Sink: p.Sink(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(engine.Close)
	flow := func() *ivrspec.Flow { return ivrspec.Example(10 * time.Second) }
	if err := p.serve(engine, flow); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	p.mount(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	signedIn, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.keepSignedIn(signedIn, time.Minute)
	}()
	for len(p.notReady()) > 0 && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
	stop()
	<-done
	if r := p.notReady(); r != nil {
		t.Fatalf("not ready: %v", r)
	}

	studio := emulator.StudioClient{URL: srv.URL + studioPath, Auth: "Bearer tok"}
	for _, turn := range [][2]string{{"start", ""}, {"digits", "2"}, {"digits", "A"}, {"digits", "1"}} {
		if _, err := studio.Step(ctx, "4600123", turn[1], turn[0]); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.emu.WaitSignals(ctx, 1); err != nil {
		t.Fatal(err)
	}
	got := p.emu.Signals()[0]
	if got.ContactID != "4600123" || !slices.Equal(got.Params, []string{"completed", `["2","A","1"]`}) {
		t.Errorf("signal = %+v", got)
	}
	vah := emulator.VAHClient{URL: srv.URL + vahPath, Auth: "Bearer wrong"}
	if _, err := vah.Call(1).Exchange(ctx, "AUTOMATED_TEXT", "welcome"); err == nil ||
		!strings.Contains(err.Error(), "401") {
		t.Errorf("VAH with a wrong credential: %v, want 401", err)
	}
}
