package main

import (
	"cmp"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"
)

// config is every setting of the service. Each is a flag and an
// environment variable; a flag given on the command line wins.
type config struct {
	Tenant           string
	ClientID         string
	ClientSecret     string
	ClientSecretFile string
	BaseURL          string
	TokenForm        bool
	CAFile           string

	IVR          string
	InputTimeout time.Duration
	Addr         string
	Grace        time.Duration
	DeadLetters  string
	Journal      string

	Writers       int
	WriteDeadline time.Duration
	MaxCalls      int
	MaxBacklog    int
	MaxKeys       int
	EndedTTL      time.Duration

	PingInterval time.Duration
	LogLevel     slog.Level
	LogFormat    string

	Simulator      string
	SimulatorToken string
	SimulatorAddr  string

	CXone   cxoneSettings
	Cluster clusterSettings

	// fromFlag holds the environment variable of each setting given as
	// a flag, so an error names the form the user typed.
	fromFlag map[string]string
}

// setting describes one flag and its environment variable.
type setting struct {
	flag, env, usage string
}

// binder registers settings on a flag set and lists them with their
// environment variables, for parseConfig and the -h text.
type binder struct {
	fs   *flag.FlagSet
	list []setting
}

func (b *binder) add(name, env, usage string) {
	b.list = append(b.list, setting{name, env, usage})
}

func (b *binder) str(p *string, name, env, def, usage string) {
	b.fs.StringVar(p, name, def, usage)
	b.add(name, env, usage)
}

func (b *binder) dur(p *time.Duration, name, env string, def time.Duration, usage string) {
	b.fs.DurationVar(p, name, def, usage)
	b.add(name, env, usage)
}

func (b *binder) num(p *int, name, env string, def int, usage string) {
	b.fs.IntVar(p, name, def, usage)
	b.add(name, env, usage)
}

func (b *binder) flag(p *bool, name, env string, usage string) {
	b.fs.BoolVar(p, name, false, usage)
	b.add(name, env, usage)
}

// bind registers every setting on fs with its default.
func (c *config) bind(fs *flag.FlagSet) []setting {
	b := &binder{fs: fs}
	str, dur, num := b.str, b.dur, b.num

	str(&c.Tenant, "tenant", "CXONE_TENANT", "",
		"CXone tenant name; without credentials dtmfd runs in local mode")
	str(&c.ClientID, "client-id", "CXONE_CLIENT_ID", "", "OAuth client id")
	str(&c.ClientSecret, "client-secret", "CXONE_CLIENT_SECRET", "", "OAuth client secret")
	str(&c.ClientSecretFile, "client-secret-file", "CXONE_CLIENT_SECRET_FILE", "",
		"file holding the OAuth client secret")
	str(&c.BaseURL, "base-url", "CXONE_BASE_URL", "",
		"API base URL (default https://{tenant}.cxone.com); the stream URL is the same with ws(s)")
	b.flag(&c.TokenForm, "token-form", "CXONE_TOKEN_FORM",
		"send the token request form-encoded (RFC 6749) instead of JSON")

	str(&c.CAFile, "ca-file", "CXONE_CA_FILE", "",
		"PEM file of CA certificates trusted for the platform, in addition to the system's")

	str(&c.IVR, "ivr", "DTMFD_IVR", "",
		"IVR definition file, YAML or JSON (default: the built-in example tree)")
	dur(&c.InputTimeout, "input-timeout", "DTMFD_INPUT_TIMEOUT", 10*time.Second,
		"timeout for a key when the IVR definition sets none")
	str(&c.Addr, "addr", "DTMFD_ADDR", ":8080", "HTTP listen address")
	dur(&c.Grace, "shutdown-grace", "DTMFD_SHUTDOWN_GRACE", 25*time.Second,
		"time allowed on shutdown for open calls to decide and writes to be delivered")
	str(&c.DeadLetters, "dead-letters", "DTMFD_DEAD_LETTERS", "dtmfd-dead-letters.jsonl",
		"file that records writes given up on (JSON lines)")

	str(&c.Journal, "journal", "DTMFD_JOURNAL", "",
		"file that keeps decisions until delivered, so a crash loses none (default: none)")
	num(&c.Writers, "writers", "DTMFD_WRITERS", 64, "writes in flight at once")
	dur(&c.WriteDeadline, "write-deadline", "DTMFD_WRITE_DEADLINE", 2*time.Minute,
		"how long a write is retried before it is recorded as a dead letter")
	num(&c.MaxCalls, "max-calls", "DTMFD_MAX_CALLS", 200000,
		"open calls at most; new calls past it are refused")
	num(&c.MaxBacklog, "max-backlog", "DTMFD_MAX_BACKLOG", 100000,
		"interactions waiting to be written at most; past it decisions go to the dead letters")
	num(&c.MaxKeys, "max-keys", "DTMFD_MAX_KEYS", 256, "keys one call may press at most")
	dur(&c.EndedTTL, "ended-ttl", "DTMFD_ENDED_TTL", 4*time.Hour,
		"how long keys of an ended call are refused; a key after it starts a new call")
	dur(&c.PingInterval, "ping-interval", "DTMFD_PING_INTERVAL", 15*time.Second,
		"voice stream keep-alive ping interval")

	fs.TextVar(&c.LogLevel, "log-level", slog.LevelInfo, "log level: debug, info, warn or error")
	b.add("log-level", "DTMFD_LOG_LEVEL", "log level: debug, info, warn or error")
	str(&c.LogFormat, "log-format", "DTMFD_LOG_FORMAT", "auto",
		"log format: json, text, or auto (text on a terminal, JSON otherwise)")

	str(&c.Simulator, "simulator", "DTMFD_SIMULATOR", "auto",
		"serve POST /simulator and the web keypad: on, off, or auto (on in local mode only)")
	str(&c.SimulatorToken, "simulator-token", "DTMFD_SIMULATOR_TOKEN", "",
		"bearer token the simulator requires; needed to turn it on outside local mode")
	str(&c.SimulatorAddr, "simulator-addr", "DTMFD_SIMULATOR_ADDR", "",
		"separate listen address for the simulator (default: DTMFD_ADDR)")
	c.CXone.bind(b)
	c.Cluster.bind(b)
	return b.list
}

// parseConfig reads the environment, then args, and checks the result.
// Only -h writes to out: the usage text.
func parseConfig(args []string, getenv func(string) string, out io.Writer) (*config, error) {
	c := &config{fromFlag: map[string]string{}}
	fs := flag.NewFlagSet("dtmfd", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	list := c.bind(fs)
	fs.Usage = func() {}

	for _, s := range list {
		v := getenv(s.env)
		if v == "" {
			continue
		}
		if err := fs.Set(s.flag, v); err != nil {
			return nil, valueError(s.env, fs.Lookup(s.flag).Value, v)
		}
	}
	if err := c.parseFlags(fs, list, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage(out, fs, list)
		}
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return c, c.check()
}

// parseFlags parses args into fs, noting which settings they gave. A
// value a setting does not accept is reported with the setting's
// variable and what it takes.
func (c *config) parseFlags(fs *flag.FlagSet, list []setting, args []string) error {
	var bad error
	for _, s := range list {
		f := fs.Lookup(s.flag)
		value := f.Value
		f.Value = &settingValue{Value: value, onSet: func(v string, err error) {
			c.fromFlag[s.env] = flagName(s)
			if err != nil {
				bad = cmp.Or(bad, valueError(flagName(s), value, v))
			}
		}}
	}

	if err := fs.Parse(args); err != nil {
		return cmp.Or(bad, err)
	}
	return nil
}

// flagName is how an error names a setting given as a flag: the flag and
// its variable, "-writers (DTMFD_WRITERS)".
func flagName(s setting) string {
	return "-" + s.flag + " (" + s.env + ")"
}

// settingValue is a flag's value that reports each value given to it and
// whether it was accepted, so an error can say which setting it was, in
// which form, and what it takes.
type settingValue struct {
	flag.Value
	onSet func(v string, err error)
}

func (v *settingValue) Set(s string) error {
	err := v.Value.Set(s)
	v.onSet(s, err)
	return err
}

// IsBoolFlag keeps "-token-form" working without "=true".
func (v *settingValue) IsBoolFlag() bool {
	b, ok := v.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// valueError says that setting name was given v, which its value does not
// accept, and what it does accept.
func valueError(name string, value flag.Value, v string) error {
	return fmt.Errorf("%s: want %s, got %q", name, accepts(value), v)
}

// accepts describes the values a flag's value parses.
func accepts(v flag.Value) string {
	g, ok := v.(flag.Getter)
	if !ok {
		return "a valid value"
	}
	switch g.Get().(type) {
	case int, int64, uint, uint64:
		return "a whole number"
	case float64:
		return "a number such as 0.5"
	case time.Duration:
		return "a duration such as 10s, 1m30s or 2h"
	case bool:
		return "true or false"
	case *slog.Level:
		return "one of debug, info, warn, error"
	}
	return "a valid value"
}

// settingName is how an error names the setting of variable env: the
// flag too when the value came from one.
func (c *config) settingName(env string) string {
	if name, ok := c.fromFlag[env]; ok {
		return name
	}
	return env
}

// check rejects values the service cannot run with, naming the setting.
func (c *config) check() error {
	var errs []error
	bad := func(env, format string, args ...any) {
		name := c.settingName(env)
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{name}, args...)...))
	}

	if c.ClientSecret != "" && c.ClientSecretFile != "" {
		bad("CXONE_CLIENT_SECRET_FILE", "give the secret or a file holding it, not both")
	}
	hasSecret := c.ClientSecret != "" || c.ClientSecretFile != ""
	if (c.ClientID == "") != !hasSecret {
		bad("CXONE_CLIENT_ID",
			"set it together with CXONE_CLIENT_SECRET (or _FILE), or neither for local mode")
	}
	errs = append(errs, c.CXone.check(c.ClientID, hasSecret)...)
	errs = append(errs, c.Cluster.check()...)
	if !c.CXone.enabled() && !c.local() && c.BaseURL == "" && c.Tenant == "" {
		bad("CXONE_TENANT", "required with credentials unless CXONE_BASE_URL is set")
	}
	if c.BaseURL != "" {
		u, err := url.Parse(c.BaseURL)
		switch {
		case err != nil:
			// The parser's error quotes the URL, which may hold a password.
			bad("CXONE_BASE_URL", "want an http:// or https:// URL; this one does not parse")
		case (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
			bad("CXONE_BASE_URL", "want an http:// or https:// URL, got %q", u.Redacted())
		}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"DTMFD_INPUT_TIMEOUT", c.InputTimeout},
		{"DTMFD_SHUTDOWN_GRACE", c.Grace},
		{"DTMFD_WRITE_DEADLINE", c.WriteDeadline},
		{"DTMFD_ENDED_TTL", c.EndedTTL},
		{"DTMFD_PING_INTERVAL", c.PingInterval},
	} {
		if d.v <= 0 {
			bad(d.name, "want a positive duration such as 10s, got %s", d.v)
		}
	}
	for _, n := range []struct {
		name string
		v    int
	}{
		{"DTMFD_WRITERS", c.Writers},
		{"DTMFD_MAX_CALLS", c.MaxCalls},
		{"DTMFD_MAX_BACKLOG", c.MaxBacklog},
		{"DTMFD_MAX_KEYS", c.MaxKeys},
	} {
		if n.v < 1 {
			bad(n.name, "want a whole number of at least 1, got %d", n.v)
		}
	}
	switch c.Simulator {
	case "auto", "on", "off":
	default:
		bad("DTMFD_SIMULATOR", "want on, off or auto, got %q", c.Simulator)
	}
	if c.Simulator == "on" && !c.local() && c.SimulatorToken == "" {
		bad("DTMFD_SIMULATOR_TOKEN", "required to turn the simulator on outside local mode")
	}
	switch c.LogFormat {
	case "auto", "json", "text":
	default:
		bad("DTMFD_LOG_FORMAT", "want json, text or auto, got %q", c.LogFormat)
	}
	return errors.Join(errs...)
}

// simulatorOn reports whether the simulator is served.
func (c *config) simulatorOn() bool {
	return c.Simulator == "on" || (c.Simulator == "auto" && c.local())
}

// local reports whether dtmfd runs against its built-in emulator.
func (c *config) local() bool {
	return c.ClientID == "" && c.ClientSecret == "" && c.ClientSecretFile == ""
}

// apiBase is the platform's REST base URL.
func (c *config) apiBase() string {
	if c.BaseURL != "" {
		return strings.TrimRight(c.BaseURL, "/")
	}
	return "https://" + c.Tenant + ".cxone.com"
}

// streamURL is the voice stream's WebSocket URL: the API base with
// http(s) swapped for ws(s).
func streamURL(base string) string {
	switch {
	case strings.HasPrefix(base, "https://"):
		base = "wss://" + strings.TrimPrefix(base, "https://")
	case strings.HasPrefix(base, "http://"):
		base = "ws://" + strings.TrimPrefix(base, "http://")
	}
	return base + "/api/v2/voice/websocket"
}

func usage(out io.Writer, fs *flag.FlagSet, list []setting) {
	fmt.Fprint(out, `dtmfd turns the keys callers press in a CXone IVR into decisions and writes
them back to the call.

Usage:
  dtmfd [flags]                 run the service (local mode without credentials)
  dtmfd ivr check FILE          validate an IVR definition
  dtmfd ivr graph FILE          print an IVR definition as a Mermaid flowchart
  dtmfd deadletter replay FILE  deliver the writes a dead-letter file holds
  dtmfd sleep DURATION          wait, for a preStop hook in an image with no shell
  dtmfd version                 print the version

Settings (flag, environment variable, default):
`)
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	for _, s := range list {
		def := fs.Lookup(s.flag).DefValue
		if def == "" {
			def = "-"
		}
		fmt.Fprintf(tw, "  -%s\t%s\t%s\t%s\n", s.flag, s.env, def, s.usage)
	}
	tw.Flush()
}
