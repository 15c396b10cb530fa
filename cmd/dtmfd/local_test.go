package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startLocalService runs dtmfd as a newcomer does: with no credentials
// at all, so it starts its built-in emulator. env adds settings on top;
// nothing comes from the test process's environment. Its logs are kept
// at Debug.
func startLocalService(t *testing.T, env map[string]string) (*service, *capturedLogs) {
	t.Helper()
	settings := map[string]string{
		"DTMFD_ADDR":         "127.0.0.1:0",
		"DTMFD_DEAD_LETTERS": filepath.Join(t.TempDir(), "dead.jsonl"),
	}
	maps.Copy(settings, env)
	cfg, err := parseConfig(nil, func(k string) string { return settings[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.local() {
		t.Fatal("settings without credentials did not select local mode")
	}

	logs := &capturedLogs{t: t}
	a, err := newApp(cfg, slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &service{app: a, emu: a.emu, done: make(chan error, 1), stop: cancel}
	go func() { s.done <- a.run(ctx) }()
	t.Cleanup(testClient.CloseIdleConnections)
	t.Cleanup(func() {
		if t.Failed() {
			logs.dump()
		}
	})
	t.Cleanup(func() { s.shutdown(t) })
	return s, logs
}

// walkthrough is the README's "Try it" section: its commands, in order,
// the JSON it says the last one prints, and its text.
type walkthrough struct {
	commands []curl
	want     string
	text     string
}

// curl is one command of the walkthrough: a POST of body when body is
// set, else a GET.
type curl struct{ body, path string }

// curlLine matches the only two forms of curl the walkthrough uses.
var curlLine = regexp.MustCompile(`^curl (?:-d '([^']*)' )?localhost:8080(/\S*)$`)

// readWalkthrough reads the "Try it" section of the README.
func readWalkthrough(t *testing.T) walkthrough {
	t.Helper()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "\n## Try it\n")
	if !ok {
		t.Fatal(`README.md has no "## Try it" section`)
	}
	section, _, _ = strings.Cut(section, "\n## ")

	w := walkthrough{text: section}
	for _, line := range strings.Split(fenced(t, section, "sh"), "\n") {
		m := curlLine.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("the README's walkthrough runs %q, which this test does not know how to run", line)
		}
		w.commands = append(w.commands, curl{body: m[1], path: m[2]})
	}
	w.want = fenced(t, section, "json")
	return w
}

// fenced returns the first code block of language lang in text.
func fenced(t *testing.T, text, lang string) string {
	t.Helper()
	_, rest, ok := strings.Cut(text, "```"+lang+"\n")
	if !ok {
		t.Fatalf("the README's walkthrough has no %s block", lang)
	}
	block, _, _ := strings.Cut(rest, "```")
	return strings.TrimSpace(block)
}

// do runs one walkthrough command against the dtmfd at base and returns
// the reply's status and body.
func (c curl) do(t *testing.T, base string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+c.path, nil)
	if c.body != "" {
		// curl -d posts form-encoded, which the simulator does not check.
		req, err = http.NewRequest(http.MethodPost, base+c.path, strings.NewReader(c.body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if err != nil {
		t.Fatal(err)
	}
	resp, err := testClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, strings.TrimSpace(string(body))
}

// anyTime replaces the times of writes, which the README shows as "...".
var anyTime = regexp.MustCompile(`"at":"[^"]*"`)

// TestLocalModeWalkthrough runs the README's "Try it" section word for
// word against dtmfd started without credentials, and checks that the
// platform shows what the README says it shows.
func TestLocalModeWalkthrough(t *testing.T) {
	t.Parallel()
	w := readWalkthrough(t)
	if len(w.commands) != 2 || w.commands[0].body == "" || w.commands[1].path != "/emulator/writes" {
		t.Fatalf("the walkthrough is %+v: want a POST to the simulator, then GET /emulator/writes", w.commands)
	}
	s, _ := startLocalService(t, map[string]string{"DTMFD_INPUT_TIMEOUT": "500ms"})
	base := "http://" + s.app.Addr()

	if code, body := w.commands[0].do(t, base); code != http.StatusOK || body != `{"status":"digit_processed"}` {
		t.Fatalf("%s answered %d %s, want 200 digit_processed", w.commands[0].path, code, body)
	}
	var got string
	waitWithin(t, "the write to reach the emulator", 10*time.Second, func() bool {
		_, got = w.commands[1].do(t, base)
		return got != "[]"
	})
	if got = anyTime.ReplaceAllString(got, `"at":"..."`); got != w.want {
		t.Errorf("GET /emulator/writes shows\n%s\nthe README shows\n%s", got, w.want)
	}

	// Fewer keys: the call times out and writes the fallback status.
	if !strings.Contains(w.text, "(`\"digits\":\"2\"`) and ten seconds later") {
		t.Fatal(`the README no longer says that "digits":"2" times out after ten seconds`)
	}
	if def := defaultConfig(t); def.InputTimeout != 10*time.Second {
		t.Errorf("the default input timeout is %v; the README says ten seconds", def.InputTimeout)
	}
	post := curl{body: `{"callId":"call-2","digits":"2"}`, path: "/simulator"}
	if code, body := post.do(t, base); code != http.StatusOK {
		t.Fatalf("POST /simulator answered %d %s", code, body)
	}
	waitWithin(t, "the timeout's write", 10*time.Second, func() bool {
		return len(s.emu.WritesFor("call-2")) > 0
	})
	writes := writesOf(t, base)
	want := []emulatorWrite{{"call-1", `ivr_selection=["2","A","1"] ivr_status=completed`},
		{"call-2", "ivr_status=timeout_fallback"}}
	if !equalWrites(writes, want) {
		t.Errorf("the emulator shows %v, want %v", writes, want)
	}

	// The voice stream connected too: the service is ready.
	waitWithin(t, "local mode to be ready", 10*time.Second, func() bool {
		return probe(base, "/readyz") == http.StatusOK
	})
}

// defaultConfig is the configuration of a dtmfd started with no settings.
func defaultConfig(t *testing.T) *config {
	t.Helper()
	cfg, err := parseConfig(nil, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// emulatorWrite is one write as GET /emulator/writes lists it, its
// variables as "name=value" joined by spaces.
type emulatorWrite struct{ call, vars string }

// writesOf reads GET /emulator/writes of the dtmfd at base.
func writesOf(t *testing.T, base string) []emulatorWrite {
	t.Helper()
	_, body := curl{path: "/emulator/writes"}.do(t, base)
	var listed []struct {
		InteractionID string `json:"interactionId"`
		Variables     []struct{ Name, Value string }
	}
	if err := json.Unmarshal([]byte(body), &listed); err != nil {
		t.Fatalf("GET /emulator/writes is not the JSON list the README shows: %v\n%s", err, body)
	}
	out := make([]emulatorWrite, len(listed))
	for i, w := range listed {
		parts := make([]string, len(w.Variables))
		for j, v := range w.Variables {
			parts[j] = v.Name + "=" + v.Value
		}
		out[i] = emulatorWrite{w.InteractionID, strings.Join(parts, " ")}
	}
	return out
}

func equalWrites(a, b []emulatorWrite) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestSIGHUPWithoutIVRFileKeepsServing sends SIGHUP to a dtmfd running
// the built-in flow, as `kill -HUP` or a careless reload script would:
// it has nothing to reload, says so, and goes on serving. The signal goes
// to the whole test process, so this test does not run in parallel.
func TestSIGHUPWithoutIVRFileKeepsServing(t *testing.T) {
	s, logs := startLocalService(t, map[string]string{"DTMFD_INPUT_TIMEOUT": "500ms"})
	base := "http://" + s.app.Addr()
	waitWithin(t, "dtmfd to be ready", 10*time.Second, func() bool {
		return probe(base, "/readyz") == http.StatusOK
	})

	must(t, syscall.Kill(os.Getpid(), syscall.SIGHUP))
	waitWithin(t, "the SIGHUP to be answered", 10*time.Second, func() bool {
		return logs.count("SIGHUP: nothing to reload; the built-in IVR flow runs (set DTMFD_IVR to load a file)") >= 1
	})

	post := curl{body: `{"callId":"after-hup","digits":"3B1"}`, path: "/simulator"}
	if code, body := post.do(t, base); code != http.StatusOK {
		t.Fatalf("after SIGHUP POST /simulator answered %d %s", code, body)
	}
	waitWithin(t, "the call after SIGHUP to be written", 10*time.Second, func() bool {
		return len(s.emu.WritesFor("after-hup")) == 1
	})
	select {
	case err := <-s.done:
		s.done <- err
		t.Fatalf("dtmfd stopped after SIGHUP: %v", err)
	default:
	}
}
