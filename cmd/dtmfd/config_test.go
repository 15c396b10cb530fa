package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func env(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

func TestConfigDefaultsAreLocalMode(t *testing.T) {
	t.Parallel()
	c, err := parseConfig(nil, env(), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if !c.local() || c.Addr != ":8080" || c.InputTimeout != 10*time.Second || c.IVR != "" {
		t.Errorf("defaults = %+v, want local mode on :8080 with a 10s timeout and the built-in tree", c)
	}
}

func TestConfigFlagsWinOverEnvironment(t *testing.T) {
	t.Parallel()
	c, err := parseConfig([]string{"-input-timeout", "3s"}, env("DTMFD_INPUT_TIMEOUT", "7s", "DTMFD_ADDR", ":9000"), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if c.InputTimeout != 3*time.Second || c.Addr != ":9000" {
		t.Errorf("timeout %v addr %s, want 3s from the flag and :9000 from the environment", c.InputTimeout, c.Addr)
	}
}

func TestConfigBaseURL(t *testing.T) {
	t.Parallel()
	c, err := parseConfig(nil, env("CXONE_TENANT", "acme", "CXONE_CLIENT_ID", "id", "CXONE_CLIENT_SECRET", "s"), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if c.local() || c.apiBase() != "https://acme.cxone.com" || streamURL(c.apiBase()) != "wss://acme.cxone.com/api/v2/voice/websocket" {
		t.Errorf("base %s stream %s", c.apiBase(), streamURL(c.apiBase()))
	}
	if got := streamURL("http://127.0.0.1:9/x"); got != "ws://127.0.0.1:9/x/api/v2/voice/websocket" {
		t.Errorf("stream URL of a plain http base = %s", got)
	}
}

func TestConfigRejectsBadValues(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		env  func(string) string
		args []string
		want string
	}{
		{"bad duration", env("DTMFD_INPUT_TIMEOUT", "soon"), nil, `invalid DTMFD_INPUT_TIMEOUT="soon"`},
		{"negative duration", env("DTMFD_SHUTDOWN_GRACE", "-1s"), nil, "DTMFD_SHUTDOWN_GRACE: want a positive duration"},
		{"zero writers", env("DTMFD_WRITERS", "0"), nil, "DTMFD_WRITERS: want a whole number of at least 1"},
		{"not a number", env("DTMFD_MAX_CALLS", "many"), nil, `invalid DTMFD_MAX_CALLS="many"`},
		{"id without secret", env("CXONE_CLIENT_ID", "id", "CXONE_TENANT", "t"), nil, "CXONE_CLIENT_ID: set it together with CXONE_CLIENT_SECRET"},
		{"secret twice", env("CXONE_CLIENT_ID", "id", "CXONE_CLIENT_SECRET", "a", "CXONE_CLIENT_SECRET_FILE", "/f", "CXONE_TENANT", "t"), nil, "give the secret or a file"},
		{"no tenant", env("CXONE_CLIENT_ID", "id", "CXONE_CLIENT_SECRET", "s"), nil, "CXONE_TENANT: required"},
		{"base URL not http", env("CXONE_BASE_URL", "ftp://x"), nil, "CXONE_BASE_URL: want an http:// or https:// URL"},
		{"log format", env("DTMFD_LOG_FORMAT", "xml"), nil, "DTMFD_LOG_FORMAT: want json, text or auto"},
		{"log level", env("DTMFD_LOG_LEVEL", "loud"), nil, `invalid DTMFD_LOG_LEVEL="loud"`},
		{"stray argument", env(), []string{"extra"}, `unexpected argument "extra"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := parseConfig(tt.args, tt.env, &bytes.Buffer{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v, want it to say %q", err, tt.want)
			}
		})
	}
}

func TestHelpListsEverySetting(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	code := run([]string{"-h"}, &out, &out, env())
	if code != 2 {
		t.Errorf("exit code %d, want 2", code)
	}
	for _, s := range []string{"CXONE_TENANT", "CXONE_CLIENT_SECRET_FILE", "DTMFD_IVR", "DTMFD_INPUT_TIMEOUT", "DTMFD_ADDR",
		"DTMFD_JOURNAL", "DTMFD_DEAD_LETTERS", "DTMFD_SHUTDOWN_GRACE", "-input-timeout", "10s"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("-h does not mention %s", s)
		}
	}
}
