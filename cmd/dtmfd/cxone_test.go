package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
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

// startCXoneService runs dtmfd as a deployment of the cxone profile would:
// from its settings alone, with every secret in a file, against the CXone
// emulator at issuer. It returns the service and the ingress credential.
func startCXoneService(t *testing.T, issuer string, env map[string]string) (*service, string) {
	t.Helper()
	dir := t.TempDir()
	file := func(name, value string) string {
		path := filepath.Join(dir, name)
		// A secret file as kubectl writes one from a file: a final newline.
		if err := os.WriteFile(path, []byte(value+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	const ingress = "ingress-from-a-file"
	base := map[string]string{
		"DTMFD_PROFILE":                "cxone",
		"CXONE_ISSUER":                 issuer,
		"CXONE_ACCESS_KEY_ID":          cxoneKeyID,
		"CXONE_ACCESS_KEY_SECRET_FILE": file("access-key-secret", cxoneKeySecret),
		"CXONE_CLIENT_ID":              testID,
		"CXONE_CLIENT_SECRET_FILE":     file("client-secret", testSecret),
		"DTMFD_INGRESS_AUTH_FILE":      file("ingress-auth", ingress),
		"DTMFD_SIGNAL_PARAMS":          "ivr_status,ivr_selection",
		"DTMFD_ADDR":                   "127.0.0.1:0",
		"DTMFD_DEAD_LETTERS":           filepath.Join(dir, "dead.jsonl"),
		"DTMFD_SHUTDOWN_GRACE":         "10s",
	}
	for k, v := range env {
		base[k] = v
	}
	cfg, err := parseConfig(nil, func(k string) string { return base[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	a, err := newApp(cfg, slog.New(slog.NewTextHandler(testWriter{t},
		&slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	s := &service{app: a, done: make(chan error, 1), stop: cancel}
	go func() { s.done <- a.run(ctx) }()
	t.Cleanup(testClient.CloseIdleConnections)
	t.Cleanup(func() { s.shutdown(t) })
	waitReady(t, a)
	return s, ingress
}

const (
	cxoneKeyID     = "AK-dtmfd-e2e"
	cxoneKeySecret = `k3y/s+cr=t`
)

// dtmfd started from its settings signs in with the access key and client
// secret read from their files, serves Studio and VAH with the ingress
// credential read from its file, and signals each decision once.
func TestCXoneProfileFromSettings(t *testing.T) {
	t.Parallel()
	emu := emulator.NewCXone(emulator.CXoneOptions{
		ClientID: testID, ClientSecret: testSecret,
		AccessKeyID: cxoneKeyID, AccessKeySecret: cxoneKeySecret,
		TenantID: "11e7-settings",
	})
	if err := emu.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { emu.Close() })
	s, ingress := startCXoneService(t, emu.URL(), nil)
	ctx := testContext(t)
	base := "http://" + s.app.Addr()

	studio := emulator.StudioClient{URL: base + studioPath, Auth: "Bearer " + ingress,
		HTTPClient: testClient}.Call("4601000")
	turns := [][2]string{{"start", ""}, {"digits", "2"}, {"digits", "A"}, {"digits", "1"}}
	for i, turn := range turns {
		rep, err := studio.Send(ctx, turn[0], turn[1])
		if err != nil || rep.Action == "error" {
			t.Fatalf("studio turn %d: %+v, %v", i+1, rep, err)
		}
	}
	vah := emulator.VAHClient{URL: base + vahPath, Auth: "Bearer " + ingress,
		HTTPClient: testClient}.Call(4601001)
	for i, in := range [][2]string{{"AUTOMATED_TEXT", "welcome"}, {"DTMF_AS_TEXT", "3"},
		{"DTMF_AS_TEXT", "B"}, {"DTMF_AS_TEXT", "1"}} {
		rep, err := vah.Exchange(ctx, in[0], in[1])
		if err != nil || rep.BranchName == "Error" {
			t.Fatalf("vah exchange %d: %+v, %v", i+1, rep, err)
		}
	}

	if err := emu.WaitSignals(ctx, 2); err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"4601000": {"completed", `["2","A","1"]`},
		"4601001": {"completed", `["3","B","1"]`},
	}
	for id, params := range want {
		got := emu.SignalsFor(id)
		if len(got) != 1 || !slices.Equal(got[0].Params, params) {
			t.Errorf("signals to %s = %v, want one with %q", id, got, params)
		}
	}
	if n := emu.PasswordGrants(); n != 1 {
		t.Errorf("password grants = %d, want one sign-in with the key from its file", n)
	}

	wrong := emulator.StudioClient{URL: base + studioPath, Auth: "Bearer " + ingress + "x",
		HTTPClient: testClient}
	var se *emulator.StatusError
	if _, err := wrong.Step(ctx, "4601002", "", "start"); !errors.As(err, &se) || se.Status != 401 {
		t.Errorf("studio with another credential: %v, want 401", err)
	}
	for _, c := range []struct {
		series string
		want   float64
	}{
		{`dtmfd_events_total{outcome="accepted",type="studio"}`, 4},
		{`dtmfd_events_total{outcome="accepted",type="vah"}`, 4},
		{`dtmfd_events_total{outcome="unauthorized",type="studio"}`, 1},
		{`dtmfd_write_attempts_total{class="2xx"}`, 2},
	} {
		if got := counter(t, s.app, c.series); got != c.want {
			t.Errorf("%s = %v, want %v", c.series, got, c.want)
		}
	}
}

// A secret file that cannot be read stops dtmfd at start-up with the
// setting named, before it serves anything.
func TestCXoneSecretFilesAreRead(t *testing.T) {
	t.Parallel()
	missing := filepath.Join(t.TempDir(), "missing")
	for _, setting := range []string{"CXONE_ACCESS_KEY_SECRET_FILE", "DTMFD_INGRESS_AUTH_FILE"} {
		t.Run(setting, func(t *testing.T) {
			t.Parallel()
			env := map[string]string{
				"DTMFD_PROFILE":           "cxone",
				"CXONE_ACCESS_KEY_ID":     cxoneKeyID,
				"CXONE_ACCESS_KEY_SECRET": cxoneKeySecret,
				"CXONE_CLIENT_ID":         testID,
				"CXONE_CLIENT_SECRET":     testSecret,
				"DTMFD_INGRESS_AUTH":      "tok",
				"DTMFD_ADDR":              "127.0.0.1:0",
				"DTMFD_DEAD_LETTERS":      filepath.Join(t.TempDir(), "dead.jsonl"),
			}
			switch setting {
			case "CXONE_ACCESS_KEY_SECRET_FILE":
				env["CXONE_ACCESS_KEY_SECRET"], env[setting] = "", missing
			case "DTMFD_INGRESS_AUTH_FILE":
				env["DTMFD_INGRESS_AUTH"], env[setting] = "", missing
			}
			cfg, err := parseConfig(nil, func(k string) string { return env[k] }, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			a, err := newApp(cfg, slog.New(slog.DiscardHandler))
			if err == nil {
				a.closeAll()
				t.Fatal("dtmfd started without its secret file")
			}
			msg := err.Error()
			if !strings.Contains(msg, setting) || !strings.Contains(msg, "missing") {
				t.Errorf("error %q, want one naming %s and the file", err, setting)
			}
		})
	}
}
