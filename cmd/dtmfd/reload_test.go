package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dtmfd/dtmfd/transport/emulator"
)

// flowVersion is the contract's tree with a recognisable completion status.
func flowVersion(status string) string {
	src, err := os.ReadFile("../../ivrspec/examples/contract.yaml")
	if err != nil {
		panic(err)
	}
	return strings.Replace(string(src), "ivr_status: completed", "ivr_status: "+status, 1)
}

// waitFor polls cond, as an operator watching a metric would.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// configMap lays files out as Kubernetes mounts a ConfigMap: flow.yaml is
// a symlink through ..data, a symlink to a versioned directory, and an
// update swaps ..data atomically.
type configMap struct {
	t   *testing.T
	dir string
	n   int
}

func (c *configMap) update(content string) {
	c.t.Helper()
	c.n++
	version := filepath.Join(c.dir, "..v"+strings.Repeat("i", c.n))
	must(c.t, os.Mkdir(version, 0o700))
	must(c.t, os.WriteFile(filepath.Join(version, "flow.yaml"), []byte(content), 0o600))
	tmp := filepath.Join(c.dir, "..data_tmp")
	must(c.t, os.Symlink(filepath.Base(version), tmp))
	must(c.t, os.Rename(tmp, filepath.Join(c.dir, "..data")))
	if c.n == 1 {
		must(c.t, os.Symlink(filepath.Join("..data", "flow.yaml"), filepath.Join(c.dir, "flow.yaml")))
	}
}

// editInPlace changes the current version's file without a swap, which
// the directory watch does not see: only SIGHUP picks it up.
func (c *configMap) editInPlace(content string) {
	c.t.Helper()
	version := filepath.Join(c.dir, "..v"+strings.Repeat("i", c.n))
	must(c.t, os.WriteFile(filepath.Join(version, "flow.yaml"), []byte(content), 0o600))
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestReloadSwapsFlowUnderRunningCalls(t *testing.T) {
	cm := &configMap{t: t, dir: t.TempDir()}
	cm.update(flowVersion("completed_v1"))
	path := filepath.Join(cm.dir, "flow.yaml")
	s := startService(t, map[string]string{"DTMFD_IVR": path, "DTMFD_INPUT_TIMEOUT": "30s"})
	send := func(call, keys string) {
		for i := range len(keys) {
			s.emu.Send(emulator.Event{Type: "dtmf", Digit: keys[i : i+1], CallID: call, Timestamp: time.Now().UnixNano()})
		}
	}
	applied := func() float64 { return counter(t, s.app, `dtmfd_ivr_reloads_total{result="applied"}`) }
	rejected := func() float64 { return counter(t, s.app, `dtmfd_ivr_reloads_total{result="rejected"}`) }

	send("old", "2A") // begins on v1
	waitFor(t, "the old call to start", func() bool { return counter(t, s.app, "dtmfd_calls_open") == 1 })

	cm.update(flowVersion("completed_v2"))
	waitFor(t, "the reload", func() bool { return applied() == 1 })

	send("new", "3B1")
	send("old", "1")
	ctx := testContext(t)
	if err := s.emu.WaitWrites(ctx, 2); err != nil {
		t.Fatal(err)
	}
	status := map[string]string{}
	for _, w := range s.emu.Writes() {
		status[w.InteractionID] = w.Variables[len(w.Variables)-1].Value
	}
	if status["old"] != "completed_v1" || status["new"] != "completed_v2" {
		t.Errorf("statuses = %v: want the running call on v1 and the new one on v2", status)
	}

	// An invalid file is rejected and the running version stays.
	cm.update("version: 1\nstart: nowhere\n")
	waitFor(t, "the rejection", func() bool { return rejected() == 1 })
	send("after-bad", "1A1")
	if err := s.emu.WaitWrites(ctx, 3); err != nil {
		t.Fatal(err)
	}
	if got := lastStatus(s.emu, "after-bad"); got != "completed_v2" {
		t.Errorf("a call after the bad file ran on %s, want v2 kept", got)
	}

	// A change the watch cannot see is picked up on SIGHUP.
	cm.editInPlace(flowVersion("completed_v3"))
	time.Sleep(2 * reloadSettle)
	if n := applied(); n != 1 {
		t.Fatalf("reloads = %v before SIGHUP, want 1", n)
	}
	must(t, syscall.Kill(os.Getpid(), syscall.SIGHUP))
	waitFor(t, "the SIGHUP reload", func() bool { return applied() == 2 })
	send("after-hup", "1A1")
	if err := s.emu.WaitWrites(ctx, 4); err != nil {
		t.Fatal(err)
	}
	if got := lastStatus(s.emu, "after-hup"); got != "completed_v3" {
		t.Errorf("a call after SIGHUP ran on %s, want v3", got)
	}
}

func lastStatus(emu *emulator.Emulator, call string) string {
	ws := emu.WritesFor(call)
	if len(ws) == 0 {
		return ""
	}
	vars := ws[len(ws)-1].Variables
	return vars[len(vars)-1].Value
}
