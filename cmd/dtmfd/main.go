// Command dtmfd turns the keys callers press in a NICE CXone IVR into
// decisions and writes them back to the call.
//
// Run with no credentials, it starts in local mode against a built-in
// emulator of the platform, so the whole path runs on one machine. See
// dtmfd -h for every setting.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/term"

	"github.com/dtmfd/dtmfd/actors"
	"github.com/dtmfd/dtmfd/ivrspec"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr, os.Getenv))
}

// run is main without the process: it returns the exit code.
func run(args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	if len(args) > 0 {
		switch args[0] {
		case "version":
			fmt.Fprintln(stdout, versionString())
			return 0
		case "ivr":
			return ivrCommand(args[1:], stdout, stderr)
		case "sleep":
			return sleepCommand(args[1:], stderr)
		case "deadletter":
			return deadletterCommand(args[1:], stdout, stderr, getenv)
		case "serve":
			args = args[1:]
		}
	}

	cfg, err := parseConfig(args, getenv, stderr)
	if err != nil {
		if err.Error() != "flag: help requested" {
			fmt.Fprintln(stderr, "dtmfd:", err)
		}
		return 2
	}
	log := newLogger(cfg, stderr, isTerminal)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	a, err := newApp(cfg, log)
	if err != nil {
		log.Error("dtmfd cannot start", "error", err)
		return 1
	}
	gc, gcErr := actors.TuneGC(getenv, log)
	if gcErr != nil {
		log.Warn("memory limit not set; the collector runs on GOGC alone", "error", gcErr)
	}
	log.Info("garbage collector set", "gc", gc)
	if err := a.run(ctx); err != nil {
		log.Error("dtmfd stopped on an error", "error", err)
		return 1
	}
	return 0
}

// newLogger builds the service's logger on w: text when the config asks
// for it, or leaves the choice to auto and terminal reports w as one;
// JSON otherwise.
func newLogger(cfg *config, w io.Writer, terminal func(io.Writer) bool) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	text := cfg.LogFormat == "text"
	if cfg.LogFormat == "auto" {
		text = terminal(w)
	}
	if text {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// isTerminal reports whether w is a terminal; /dev/null and other
// character devices are not.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func versionString() string {
	revision, goVersion := buildDetails()
	return strings.Join(strings.Fields("dtmfd "+version+" "+revision+" "+goVersion), " ")
}

// buildDetails returns the VCS revision and Go version the binary was
// built with, where the build recorded them.
func buildDetails() (revision, goVersion string) {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "", ""
	}
	for _, kv := range bi.Settings {
		if kv.Key == "vcs.revision" {
			revision = kv.Value
		}
	}
	return revision, bi.GoVersion
}

// ivrCommand runs "dtmfd ivr check FILE" and "dtmfd ivr graph FILE".
func ivrCommand(args []string, stdout, stderr io.Writer) int {
	if len(args) != 2 || (args[0] != "check" && args[0] != "graph") {
		fmt.Fprintln(stderr, "usage: dtmfd ivr check FILE | dtmfd ivr graph FILE")
		return 2
	}
	f, err := ivrspec.LoadFile(args[1], ivrspec.Options{})
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if args[0] == "graph" {
		fmt.Fprint(stdout, f.Mermaid())
		return 0
	}
	fmt.Fprintf(stdout, "%s: ok, %d nodes\n", args[1], len(f.Order))
	return 0
}

// sleepCommand waits, for a Kubernetes preStop hook in an image with no
// shell: it gives the endpoints controller time to stop sending traffic
// before dtmfd starts to shut down.
func sleepCommand(args []string, stderr io.Writer) int {
	if len(args) != 1 {
		fmt.Fprintln(stderr, "usage: dtmfd sleep DURATION")
		return 2
	}
	d, err := time.ParseDuration(args[0])
	if err != nil || d < 0 {
		fmt.Fprintf(stderr, "dtmfd sleep: want a duration such as 5s, got %q\n", args[0])
		return 2
	}
	time.Sleep(d)
	return 0
}

// buildInfo is dtmfd_build_info: always 1, labelled with the version.
func buildInfo() prometheus.Collector {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "dtmfd_build_info",
		Help: "Always 1; labels say which build is running.",
	}, []string{"version", "revision", "goversion"})
	revision, goVersion := buildDetails()
	g.WithLabelValues(version, revision, goVersion).Set(1)
	return g
}
