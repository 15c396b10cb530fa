package actors

import (
	"fmt"
	"log/slog"
	"math"
	"runtime/debug"
	"strconv"

	"github.com/KimMachineGun/automemlimit/memlimit"
)

// DefaultGCPercent is the GOGC the engine's process runs with when the
// environment sets none.
//
// dtmfd's live heap is small (about 1 KiB per open call) and it
// allocates quickly (the frames, the messages, the HTTP requests), so
// with Go's default of 100 the collector ran about ten times a second at
// 20,000 keys/s on two cores, and a key that arrived during a cycle
// waited for the mark work it was charged: digit to decision reached
// 2.1 to 2.9 ms at the 99th percentile (cmd/dtmfbench -only latency).
// At 400 it collects a quarter as often and the same runs gave 1.2 to
// 1.4 ms. The price is a heap that may grow to five times the live one
// between collections; the memory limit set beside it makes the
// collector work harder instead of letting that growth reach the
// container's limit.
const DefaultGCPercent = 400

// memoryLimitRatio is the share of the container's memory limit that
// becomes the Go runtime's soft limit, leaving the rest for stacks, the
// runtime's own structures and memory not yet returned to the OS.
const memoryLimitRatio = 0.9

// GCSettings are the collector settings a process runs with.
type GCSettings struct {
	// Percent is GOGC; -1 when collection is off.
	Percent int
	// PercentFromEnv is true when GOGC came from the environment.
	PercentFromEnv bool
	// MemoryLimit is the soft memory limit in bytes, math.MaxInt64 for
	// none.
	MemoryLimit int64
}

// LogValue implements slog.LogValuer.
func (s GCSettings) LogValue() slog.Value {
	limit := "none"
	if s.MemoryLimit != math.MaxInt64 {
		limit = strconv.FormatInt(s.MemoryLimit, 10)
	}
	return slog.GroupValue(
		slog.Int("gogc", s.Percent),
		slog.Bool("gogcFromEnv", s.PercentFromEnv),
		slog.String("memoryLimit", limit),
	)
}

// TuneGC sets the collector for a process that runs an engine: GOGC
// DefaultGCPercent unless the environment's GOGC says otherwise, and a
// soft memory limit of 90% of the container's memory limit unless
// GOMEMLIMIT is set (AUTOMEMLIMIT=off leaves it alone, AUTOMEMLIMIT=0.8
// takes another share). Outside a container with a limit there is no
// limit.
// getenv reads GOGC; the memory limit's variables are read from the
// process's environment, where the runtime reads them too.
func TuneGC(getenv func(string) string, log *slog.Logger) (GCSettings, error) {
	return tuneGC(getenv, memlimit.FromCgroup, log)
}

func tuneGC(getenv func(string) string, limit memlimit.Provider, log *slog.Logger) (GCSettings, error) {
	s := GCSettings{PercentFromEnv: getenv("GOGC") != ""}
	if s.PercentFromEnv {
		// The runtime has already applied it; reading it back is the
		// only way to learn what it made of the value.
		s.Percent = debug.SetGCPercent(100)
		debug.SetGCPercent(s.Percent)
	} else {
		debug.SetGCPercent(DefaultGCPercent)
		s.Percent = DefaultGCPercent
	}

	opts := []memlimit.Option{memlimit.WithProvider(limit), memlimit.WithRatio(memoryLimitRatio)}
	if log != nil {
		opts = append(opts, memlimit.WithLogger(log))
	}
	var err error
	s.MemoryLimit, err = memlimit.Set(opts...)
	if err != nil {
		return s, fmt.Errorf("set the memory limit: %w", err)
	}
	return s, nil
}
