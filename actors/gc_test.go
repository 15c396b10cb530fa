package actors

import (
	"errors"
	"math"
	"os"
	"runtime/debug"
	"testing"

	"github.com/KimMachineGun/automemlimit/memlimit"
)

// keepGC restores the collector's settings after a test changed them.
func keepGC(t *testing.T) {
	percent := debug.SetGCPercent(100)
	debug.SetGCPercent(percent)
	limit := debug.SetMemoryLimit(-1)
	t.Cleanup(func() {
		debug.SetGCPercent(percent)
		debug.SetMemoryLimit(limit)
	})
}

// unsetenv unsets keys for the test, and sets them back after it.
func unsetenv(t *testing.T, keys ...string) {
	for _, k := range keys {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
}

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

func TestTuneGCDefaultsAndContainerLimit(t *testing.T) {
	keepGC(t)
	unsetenv(t, "GOMEMLIMIT", "AUTOMEMLIMIT")
	debug.SetGCPercent(100)

	const container = 1 << 30
	s, err := tuneGC(env(nil), memlimit.Limit(container), nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.Percent != DefaultGCPercent || s.PercentFromEnv {
		t.Errorf("settings = %+v, want GOGC %d by default", s, DefaultGCPercent)
	}
	if got := debug.SetGCPercent(100); got != DefaultGCPercent {
		t.Errorf("the runtime collects at GOGC %d, want %d", got, DefaultGCPercent)
	}
	c := float64(container)
	want := int64(c * 0.9)
	if s.MemoryLimit != want {
		t.Errorf("memory limit = %d, want 90%% of the container's 1 GiB (%d)", s.MemoryLimit, want)
	}
	if got := debug.SetMemoryLimit(-1); got != want {
		t.Errorf("the runtime's memory limit is %d, want %d", got, want)
	}
}

func TestTuneGCLeavesTheEnvironmentsChoices(t *testing.T) {
	keepGC(t)
	// The runtime read GOGC and GOMEMLIMIT at start; these stand for what
	// it applied.
	debug.SetGCPercent(150)
	debug.SetMemoryLimit(300 << 20)
	t.Setenv("GOMEMLIMIT", "300MiB")

	asked := false
	provider := func() (uint64, error) { asked = true; return 1 << 30, nil }
	s, err := tuneGC(env(map[string]string{"GOGC": "150"}), provider, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.Percent != 150 || !s.PercentFromEnv {
		t.Errorf("settings = %+v, want the environment's GOGC 150 kept", s)
	}
	if got := debug.SetGCPercent(100); got != 150 {
		t.Errorf("the runtime collects at GOGC %d, want the environment's 150", got)
	}
	if asked || s.MemoryLimit != 300<<20 {
		t.Errorf("memory limit %d (container asked: %v), want GOMEMLIMIT's %d kept", s.MemoryLimit, asked, 300<<20)
	}
}

func TestTuneGCWithoutAContainerLimit(t *testing.T) {
	keepGC(t)
	unsetenv(t, "GOMEMLIMIT", "AUTOMEMLIMIT")
	none := func() (uint64, error) { return 0, memlimit.ErrNoLimit }
	s, err := tuneGC(env(nil), none, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.MemoryLimit != math.MaxInt64 {
		t.Errorf("memory limit = %d with no container limit, want none", s.MemoryLimit)
	}

	broken := func() (uint64, error) { return 0, errors.New("cgroup unreadable") }
	if _, err := tuneGC(env(nil), broken, nil); err == nil {
		t.Error("an unreadable container limit gave no error")
	}
	if got := debug.SetGCPercent(100); got != DefaultGCPercent {
		t.Errorf("GOGC %d after a failed limit, want %d still set", got, DefaultGCPercent)
	}
}
