package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The process tests run the real dtmfd binary as a child process against
// the emulator in the test process, and stop it the way Kubernetes and
// the kernel do: SIGTERM, and SIGKILL.

var (
	binaryOnce sync.Once
	binaryDir  string
	binaryPath string
	binaryErr  error
)

// dtmfdBinary builds dtmfd once per test binary, with the race detector
// when the tests have it.
func dtmfdBinary(t testing.TB) string {
	t.Helper()
	binaryOnce.Do(func() {
		binaryDir, binaryErr = os.MkdirTemp("", "dtmfd-bin-")
		if binaryErr != nil {
			return
		}
		binaryPath = filepath.Join(binaryDir, "dtmfd")
		args := []string{"build", "-o", binaryPath}
		if raceEnabled() {
			args = append(args, "-race")
		}
		out, err := exec.Command("go", append(args, ".")...).CombinedOutput()
		if err != nil {
			binaryErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binaryErr != nil {
		t.Fatal(binaryErr)
	}
	return binaryPath
}

// removeBinary deletes what dtmfdBinary built.
func removeBinary() {
	if binaryDir != "" {
		os.RemoveAll(binaryDir)
	}
}

func raceEnabled() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}

// child is one dtmfd process.
type child struct {
	cmd  *exec.Cmd
	logs *capturedLogs
	// done is closed when the process has exited; err then says how.
	done chan struct{}
	err  error
}

// startChild runs dtmfd against p with env on top of the process tests'
// settings.
func startChild(t *testing.T, p *proxied, env map[string]string) *child {
	t.Helper()
	settings := map[string]string{
		"CXONE_CLIENT_ID":      testID,
		"CXONE_CLIENT_SECRET":  testSecret,
		"CXONE_BASE_URL":       p.url,
		"DTMFD_ADDR":           "127.0.0.1:0",
		"DTMFD_INPUT_TIMEOUT":  "300ms",
		"DTMFD_SHUTDOWN_GRACE": "10s",
		"DTMFD_LOG_FORMAT":     "json",
		"DTMFD_LOG_LEVEL":      "debug",
	}
	maps.Copy(settings, env)
	return startProcess(t, settings)
}

// startProcess runs dtmfd with exactly the environment settings. The
// test's end kills it if it is still running, and prints its logs if the
// test failed.
func startProcess(t testing.TB, settings map[string]string) *child {
	t.Helper()
	c := &child{logs: &capturedLogs{t: t}, done: make(chan struct{})}
	c.cmd = exec.Command(dtmfdBinary(t))
	for _, k := range slices.Sorted(maps.Keys(settings)) {
		c.cmd.Env = append(c.cmd.Env, k+"="+settings[k])
	}
	c.cmd.Stdout, c.cmd.Stderr = c.logs, c.logs
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		c.err = c.cmd.Wait()
		close(c.done)
	}()
	t.Cleanup(func() {
		select {
		case <-c.done:
		default:
			c.cmd.Process.Kill()
			<-c.done
		}
		if t.Failed() {
			c.logs.dump()
		}
	})
	return c
}

// wait waits for the process to exit and returns how it ended.
func (c *child) wait(t testing.TB, within time.Duration) error {
	t.Helper()
	select {
	case <-c.done:
		return c.err
	case <-time.After(within):
		t.Fatalf("dtmfd did not exit within %v", within)
		return nil
	}
}

// waitConnects waits until the platform has accepted n stream
// connections in all.
func waitConnects(t *testing.T, p *proxied, n int) {
	t.Helper()
	waitWithin(t, "dtmfd's stream", 20*time.Second, func() bool { return p.emu.StreamConnects() >= n })
}

// waitAttempted waits until every call's decision has reached the
// platform at least once, whatever the answer.
func waitAttempted(t *testing.T, p *proxied, calls []script) {
	t.Helper()
	waitWithin(t, "a write attempt for every call", 20*time.Second, func() bool {
		seen := map[string]bool{}
		for _, r := range p.seen("write") {
			seen[r.call] = true
		}
		return !slices.ContainsFunc(calls, func(c script) bool { return !seen[c.id] })
	})
}

func TestSIGTERMDeliversBacklog(t *testing.T) {
	t.Parallel()
	p := newProxied(t)
	p.emu.DelayWrites(100 * time.Millisecond)
	c := startChild(t, p, map[string]string{
		"DTMFD_WRITERS":      "2",
		"DTMFD_DEAD_LETTERS": filepath.Join(t.TempDir(), "dead.jsonl"),
	})
	waitConnects(t, p, 1)

	rng := rand.New(rand.NewPCG(21, 22))
	calls := scripts(40, rng)
	play(p.emu, calls, rng)
	if err := p.emu.WaitWrites(testContext(t), 1); err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := c.wait(t, 20*time.Second); err != nil {
		t.Fatalf("dtmfd exited with %v after SIGTERM, want status 0", err)
	}
	if n := len(p.emu.Writes()); n != len(calls) {
		t.Fatalf("%d of %d decisions delivered before exit", n, len(calls))
	}
	checkWrites(t, p.emu, calls)
}

// crashWithBacklog runs calls through a dtmfd whose every write fails,
// kills it with SIGKILL once each call has decided, and starts it again
// on a healthy platform.
func crashWithBacklog(t *testing.T, env map[string]string) (*proxied, []script) {
	t.Helper()
	p := newProxied(t)
	p.emu.FailWrites(1<<30, http.StatusServiceUnavailable, nil)
	env["DTMFD_DEAD_LETTERS"] = filepath.Join(t.TempDir(), "dead.jsonl")
	first := startChild(t, p, env)
	waitConnects(t, p, 1)

	rng := rand.New(rand.NewPCG(31, 32))
	calls := scripts(40, rng)
	play(p.emu, calls, rng)
	waitAttempted(t, p, calls)

	if err := first.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	var exit *exec.ExitError
	err := first.wait(t, 10*time.Second)
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("dtmfd ended with %v, want killed by SIGKILL", err)
	}
	if n := len(p.emu.Writes()); n != 0 {
		t.Fatalf("%d writes accepted before the crash, want none", n)
	}

	p.emu.FailWrites(0, 0, nil)
	second := startChild(t, p, env)
	waitConnects(t, p, 2)
	t.Cleanup(func() {
		second.cmd.Process.Signal(syscall.SIGTERM)
		second.wait(t, 20*time.Second)
	})
	if dead := readDeadLetters(t, env["DTMFD_DEAD_LETTERS"]); len(dead) > 0 {
		t.Errorf("%d dead letters, want none: %+v", len(dead), dead)
	}
	return p, calls
}

func TestSIGKILLWithJournalLosesNoDecision(t *testing.T) {
	t.Parallel()
	p, calls := crashWithBacklog(t, map[string]string{
		"DTMFD_JOURNAL": filepath.Join(t.TempDir(), "journal.db"),
	})
	checkWrites(t, p.emu, calls)
}

// TestSIGKILLWithoutJournalLosesBacklog shows what the journal is for:
// without one, a crash loses every decision not yet delivered, and
// leaves no dead letter behind.
func TestSIGKILLWithoutJournalLosesBacklog(t *testing.T) {
	t.Parallel()
	p, _ := crashWithBacklog(t, map[string]string{})

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := p.emu.WaitWrites(ctx, 1); err == nil {
		t.Fatalf("%d writes after a restart without a journal; the test's premise is wrong",
			len(p.emu.Writes()))
	}
}
