package main

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// logLine is one line of dtmfd's log, read back in whichever format it
// was written.
type logLine struct {
	format string // "json" or "text"
	level  string
	msg    string
}

var textLine = regexp.MustCompile(`^time=\S+ level=(\S+) msg=("(?:[^"\\]|\\.)*"|\S+)`)

// readLogLine parses a line as slog's JSON or text handler writes it.
func readLogLine(t *testing.T, line string) logLine {
	t.Helper()
	var rec struct{ Level, Msg string }
	if json.Unmarshal([]byte(line), &rec) == nil {
		return logLine{"json", rec.Level, rec.Msg}
	}
	m := textLine.FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("log line is neither JSON nor slog text: %q", line)
	}
	msg := m[2]
	if strings.HasPrefix(msg, `"`) {
		if err := json.Unmarshal([]byte(msg), &msg); err != nil {
			t.Fatalf("quoted message of %q: %v", line, err)
		}
	}
	return logLine{"text", m[1], msg}
}

func readLog(t *testing.T, out string) []logLine {
	t.Helper()
	var lines []logLine
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l != "" {
			lines = append(lines, readLogLine(t, l))
		}
	}
	return lines
}

// TestLoggerFormatAndLevel checks the logger a config and its terminal
// give: the format each choice of -log-format selects, on and off a
// terminal, and that -log-level keeps out every record below it.
func TestLoggerFormatAndLevel(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		args       []string
		env        func(string) string
		terminal   bool
		wantFormat string
		wantLevels []string
	}{
		{"default, not a terminal", nil, env(), false, "json", []string{"INFO", "WARN", "ERROR"}},
		{"default, on a terminal", nil, env(), true, "text", []string{"INFO", "WARN", "ERROR"}},
		{"auto named, not a terminal", nil, env("DTMFD_LOG_FORMAT", "auto"), false, "json",
			[]string{"INFO", "WARN", "ERROR"}},
		{"json on a terminal", nil, env("DTMFD_LOG_FORMAT", "json"), true, "json",
			[]string{"INFO", "WARN", "ERROR"}},
		{"text, not a terminal", []string{"-log-format", "text"}, env(), false, "text",
			[]string{"INFO", "WARN", "ERROR"}},
		{"flag wins over the variable", []string{"-log-format=text"},
			env("DTMFD_LOG_FORMAT", "json"), false, "text", []string{"INFO", "WARN", "ERROR"}},
		{"debug from the variable", nil, env("DTMFD_LOG_LEVEL", "debug"), false, "json",
			[]string{"DEBUG", "INFO", "WARN", "ERROR"}},
		{"warn from the flag", []string{"-log-level", "warn"}, env(), true, "text",
			[]string{"WARN", "ERROR"}},
		{"error only", nil, env("DTMFD_LOG_LEVEL", "ERROR"), false, "json", []string{"ERROR"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := parseConfig(tt.args, tt.env, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			var asked io.Writer
			log := newLogger(cfg, &out, func(w io.Writer) bool {
				asked = w
				return tt.terminal
			})
			log.Debug("d")
			log.Info("i")
			log.Warn("w")
			log.Error("e")

			var levels []string
			for _, l := range readLog(t, out.String()) {
				if l.format != tt.wantFormat {
					t.Errorf("record %q written as %s, want %s", l.msg, l.format, tt.wantFormat)
				}
				levels = append(levels, l.level)
			}
			if !slices.Equal(levels, tt.wantLevels) {
				t.Errorf("levels written %v, want %v", levels, tt.wantLevels)
			}
			if cfg.LogFormat == "auto" && asked != &out {
				t.Errorf("auto asked whether %v is a terminal, want the log's own writer", asked)
			}
		})
	}
}

// TestIsTerminal checks what auto takes for a terminal: a pseudo-terminal
// is one; a buffer, a pipe and a file, where a container runtime or a
// redirect sends stderr, are not.
func TestIsTerminal(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		open func(t *testing.T) io.Writer
		want bool
	}{
		{"buffer", func(*testing.T) io.Writer { return &bytes.Buffer{} }, false},
		{"pipe", func(t *testing.T) io.Writer {
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { r.Close(); w.Close() })
			return w
		}, false},
		{"regular file", func(t *testing.T) io.Writer {
			f, err := os.Create(filepath.Join(t.TempDir(), "log"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { f.Close() })
			return f
		}, false},
		{"a character device that is no terminal", func(t *testing.T) io.Writer {
			f, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { f.Close() })
			return f
		}, false},
		{"pseudo-terminal", func(t *testing.T) io.Writer {
			f, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
			if err != nil {
				t.Skipf("no pseudo-terminal here: %v", err)
			}
			t.Cleanup(func() { f.Close() })
			return f
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := isTerminal(tt.open(t)); got != tt.want {
				t.Errorf("isTerminal = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestRunLogsInTheChosenFormat runs dtmfd as main does, with stderr a
// buffer, and reads the error it logs when it cannot start: JSON unless
// told otherwise, since a buffer is no terminal.
func TestRunLogsInTheChosenFormat(t *testing.T) {
	t.Parallel()
	missing := filepath.Join(t.TempDir(), "missing.yaml")
	tests := []struct {
		name       string
		args       []string
		env        func(string) string
		wantFormat string
	}{
		{"default", nil, env("DTMFD_IVR", missing), "json"},
		{"text from the variable", nil, env("DTMFD_IVR", missing, "DTMFD_LOG_FORMAT", "text"), "text"},
		{"text from the flag", []string{"-log-format", "text", "-ivr", missing}, env(), "text"},
		{"json from the flag over the variable", []string{"-log-format", "json"},
			env("DTMFD_IVR", missing, "DTMFD_LOG_FORMAT", "text"), "json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			if code := run(tt.args, &stdout, &stderr, tt.env); code != 1 {
				t.Fatalf("exit code %d, want 1; stderr:\n%s", code, stderr.String())
			}
			lines := readLog(t, stderr.String())
			want := logLine{tt.wantFormat, "ERROR", "dtmfd cannot start"}
			if len(lines) != 1 || lines[0] != want {
				t.Errorf("stderr holds %+v, want one record %+v:\n%s", lines, want, stderr.String())
			}
			if !strings.Contains(stderr.String(), missing) {
				t.Errorf("the error does not name the missing file:\n%s", stderr.String())
			}
		})
	}
}
