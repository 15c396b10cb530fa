package main

import (
	"bytes"
	"encoding/json"
	"io"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// brokenFlow has five problems on four lines: two branches to nodes that
// do not exist, an end node with no variables and no way in, and a field
// that does not belong where it is.
const brokenFlow = `version: 1
start: main_menu
nodes:
  main_menu:
    type: menu
    branches:
      "1": nowhere
      "2": department
  department:
    type: menu
    branches:
      A: gone
  done:
    type: end
    timeout: soon
`

// TestReloadRejectionLogsEveryProblem replaces a running IVR file with
// one that has several problems and reads the rejection in the log: it
// lists every problem, each at its file, line and column, as
// "dtmfd ivr check" prints them, so the operator can fix them all at once.
func TestReloadRejectionLogsEveryProblem(t *testing.T) {
	cm := &configMap{t: t, dir: t.TempDir()}
	cm.update(flowVersion("completed"))
	path := filepath.Join(cm.dir, "flow.yaml")
	s, logs := startLocalService(t, map[string]string{"DTMFD_IVR": path})
	waitReady(t, s.app)

	const msg = "IVR reload rejected; keeping the running version"
	updateUntil(cm, brokenFlow, func() bool { return logs.count(msg) > 0 })

	var rec struct {
		Level, Path, Trigger string
		Count                int
		Problems             []string
	}
	for _, line := range logs.all() {
		if strings.Contains(line, msg) {
			if err := json.Unmarshal([]byte(line), &rec); err != nil {
				t.Fatalf("rejection is not a JSON record: %v\n%s", err, line)
			}
		}
	}
	if rec.Level != "ERROR" || rec.Path != path || rec.Trigger != "file change" {
		t.Errorf("rejection logged at %s for %q on %q, want ERROR for %q on a file change",
			rec.Level, rec.Path, rec.Trigger, path)
	}

	var positions []string
	at := regexp.MustCompile(`^` + regexp.QuoteMeta(path) + `:(\d+:\d+): \S`)
	for _, p := range rec.Problems {
		m := at.FindStringSubmatch(p)
		if m == nil {
			t.Errorf("problem %q does not start with %s:line:col", p, path)
			continue
		}
		positions = append(positions, m[1])
	}
	if want := []string{"7:12", "12:10", "13:3", "13:3", "15:5"}; !slices.Equal(positions, want) {
		t.Errorf("problems logged at %v, want one at each of %v", positions, want)
	}
	if rec.Count != len(rec.Problems) {
		t.Errorf("count %d, but %d problems listed", rec.Count, len(rec.Problems))
	}

	if checked := ivrCheck(t, path); !slices.Equal(rec.Problems, checked) {
		t.Errorf("the log lists\n%s\ndtmfd ivr check prints\n%s",
			strings.Join(rec.Problems, "\n"), strings.Join(checked, "\n"))
	}
}

// updateUntil swaps content into cm until seen holds. The watch starts
// beside the HTTP server, so an update may come before it; each try waits
// a few of the watch's settle periods, and ten tries fail the test.
func updateUntil(cm *configMap, content string, seen func() bool) {
	cm.t.Helper()
	for range 10 {
		cm.update(content)
		for range 5 {
			time.Sleep(reloadSettle)
			if seen() {
				return
			}
		}
	}
	cm.t.Fatal("the IVR file's watch never reported the change")
}

// ivrCheck returns the problems "dtmfd ivr check" prints for path.
func ivrCheck(t *testing.T, path string) []string {
	t.Helper()
	var stderr bytes.Buffer
	if code := run([]string{"ivr", "check", path}, io.Discard, &stderr, env()); code != 1 {
		t.Fatalf("dtmfd ivr check %s exited %d, want 1", path, code)
	}
	return strings.Split(strings.TrimSpace(stderr.String()), "\n")
}
