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
		{"not a duration", env("DTMFD_INPUT_TIMEOUT", "soon"), nil,
			`DTMFD_INPUT_TIMEOUT: want a duration such as 10s, 1m30s or 2h, got "soon"`},
		{"not a duration, flag", env(), []string{"-input-timeout", "5"},
			`-input-timeout (DTMFD_INPUT_TIMEOUT): want a duration such as 10s, 1m30s or 2h, got "5"`},
		{"negative duration", env("DTMFD_SHUTDOWN_GRACE", "-1s"), nil,
			"DTMFD_SHUTDOWN_GRACE: want a positive duration such as 10s, got -1s"},
		{"negative duration, flag", env(), []string{"-shutdown-grace=-1s"},
			"-shutdown-grace (DTMFD_SHUTDOWN_GRACE): want a positive duration such as 10s, got -1s"},
		{"zero writers", env("DTMFD_WRITERS", "0"), nil,
			"DTMFD_WRITERS: want a whole number of at least 1, got 0"},
		{"zero writers, flag", env(), []string{"-writers", "0"},
			"-writers (DTMFD_WRITERS): want a whole number of at least 1, got 0"},
		{"not a number", env("DTMFD_MAX_CALLS", "many"), nil,
			`DTMFD_MAX_CALLS: want a whole number, got "many"`},
		{"not a number, flag", env(), []string{"-writers", "lots"},
			`-writers (DTMFD_WRITERS): want a whole number, got "lots"`},
		{"flag wins over a bad variable only when it parses", env("DTMFD_MAX_KEYS", "1.5"),
			[]string{"-max-keys", "9"}, `DTMFD_MAX_KEYS: want a whole number, got "1.5"`},
		{"not a bool", env("CXONE_TOKEN_FORM", "yes please"), nil,
			`CXONE_TOKEN_FORM: want true or false, got "yes please"`},
		{"not a bool, flag", env(), []string{"-token-form=maybe"},
			`-token-form (CXONE_TOKEN_FORM): want true or false, got "maybe"`},
		{"log level", env("DTMFD_LOG_LEVEL", "loud"), nil,
			`DTMFD_LOG_LEVEL: want one of debug, info, warn, error, got "loud"`},
		{"log level, flag", env(), []string{"-log-level", "loud"},
			`-log-level (DTMFD_LOG_LEVEL): want one of debug, info, warn, error, got "loud"`},
		{"log format", env("DTMFD_LOG_FORMAT", "xml"), nil,
			`DTMFD_LOG_FORMAT: want json, text or auto, got "xml"`},
		{"log format, flag", env(), []string{"-log-format", "xml"},
			`-log-format (DTMFD_LOG_FORMAT): want json, text or auto, got "xml"`},
		{"simulator", env("DTMFD_SIMULATOR", "yes"), nil,
			`DTMFD_SIMULATOR: want on, off or auto, got "yes"`},
		{"id without secret", env("CXONE_CLIENT_ID", "id", "CXONE_TENANT", "t"), nil,
			"CXONE_CLIENT_ID: set it together with CXONE_CLIENT_SECRET (or _FILE), " +
				"or neither for local mode"},
		{"secret twice", env("CXONE_CLIENT_ID", "id", "CXONE_CLIENT_SECRET", "a",
			"CXONE_CLIENT_SECRET_FILE", "/f", "CXONE_TENANT", "t"), nil,
			"CXONE_CLIENT_SECRET_FILE: give the secret or a file holding it, not both"},
		{"no tenant", env("CXONE_CLIENT_ID", "id", "CXONE_CLIENT_SECRET", "s"), nil,
			"CXONE_TENANT: required with credentials unless CXONE_BASE_URL is set"},
		{"base URL not http", env("CXONE_BASE_URL", "ftp://x"), nil,
			`CXONE_BASE_URL: want an http:// or https:// URL, got "ftp://x"`},
		{"base URL not http, flag", env(), []string{"-base-url", "ftp://x"},
			`-base-url (CXONE_BASE_URL): want an http:// or https:// URL, got "ftp://x"`},
		{"unknown flag", env(), []string{"-nope"}, "flag provided but not defined: -nope"},
		{"stray argument", env(), []string{"extra"}, `unexpected argument "extra"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var out bytes.Buffer
			_, err := parseConfig(tt.args, tt.env, &out)
			if err == nil || err.Error() != tt.want {
				t.Errorf("error = %v\nwant    %s", err, tt.want)
			}
			if out.Len() > 0 {
				t.Errorf("wrote %q for a bad value; only -h writes the usage", out.String())
			}
		})
	}
}

// TestConfigBoolFlagNeedsNoValue checks that wrapping the flags for their
// errors keeps a bare boolean flag meaning true.
func TestConfigBoolFlagNeedsNoValue(t *testing.T) {
	t.Parallel()
	c, err := parseConfig([]string{"-token-form"}, env(), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if !c.TokenForm {
		t.Error("-token-form left TokenForm false")
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
