// Command dtmfbench measures dtmfd on one machine: how fast its voice
// stream ingress and its whole path from key to accepted write run, how
// long a caller waits for a decision under steady load, and what an open
// call costs in memory. It drives everything on loopback through the CXone
// emulator, and measures two designs a user might write instead, built
// into this tool for comparison, against the same emulator.
//
//	go run ./cmd/dtmfbench          # full sizes, a few minutes
//	go run ./cmd/dtmfbench -quick   # small sizes, about 20 seconds
//
// It prints one table. See -h for the sizes.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"strconv"
	"strings"
	"time"

	"github.com/dtmfd/dtmfd/actors"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// config is the command line.
type config struct {
	ceilingFrames int
	ingressKeys   int
	e2eCalls      []int
	memoryCalls   int
	latencyRate   int
	latencyFor    time.Duration
	reps          int
	window        int
	phases        map[string]bool
	designs       []design
	logLevel      slog.Level
	writeDelay    time.Duration
	writers       int

	cpuProfile  string
	traceFile   string
	memProfile  string
	heapProfile string

	// The measured side of the memory scenario.
	child        string
	url          string
	settle       time.Duration
	endedTTL     time.Duration
	inputTimeout time.Duration
}

// sizes are the defaults of the size flags, full and -quick.
var sizes = map[bool]map[string]string{
	false: {
		"ceiling-frames": "200000", "ingress-keys": "200000", "e2e-calls": "10000,100000",
		"memory-calls": "100000", "latency-for": "10s", "reps": "3",
	},
	true: {
		"ceiling-frames": "50000", "ingress-keys": "50000", "e2e-calls": "10000",
		"memory-calls": "10000", "latency-for": "2s", "reps": "1",
	},
}

func parseConfig(args []string, stderr io.Writer) (*config, error) {
	c := &config{}
	fs := flag.NewFlagSet("dtmfbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	quick := fs.Bool("quick", false, "small sizes: about 20 seconds")
	fs.IntVar(&c.ceilingFrames, "ceiling-frames", 200000,
		"frames the bare client reads per ceiling run")
	fs.IntVar(&c.ingressKeys, "ingress-keys", 200000, "keys per ingress run (two per call)")
	e2e := fs.String("e2e-calls", "10000,100000",
		"end-to-end run sizes, in calls, comma separated")
	fs.IntVar(&c.memoryCalls, "memory-calls", 100000,
		"calls held open mid-menu for the memory figures")
	fs.IntVar(&c.latencyRate, "latency-rate", 20000, "keys per second of the latency run")
	fs.DurationVar(&c.latencyFor, "latency-for", 10*time.Second, "length of the latency run")
	fs.IntVar(&c.reps, "reps", 3,
		"runs of the ceiling, the ingress, the smallest end-to-end size and the latency; the median counts")
	fs.IntVar(&c.window, "window", 1000, "calls that press their keys interleaved")
	only := fs.String("only", "ceiling,ingress,e2e,latency,memory",
		"phases to run: ceiling, ingress, e2e, latency, memory")
	designs := fs.String("designs", "actor,tutorial,pool",
		"designs for e2e and memory: actor, tutorial, pool")
	fs.TextVar(&c.logLevel, "log-level", slog.LevelInfo,
		"dtmfd's log level; records are formatted as JSON and dropped")
	fs.DurationVar(&c.writeDelay, "write-delay", 0,
		"how long the emulator holds each write before answering, as a platform's round trip")
	fs.IntVar(&c.writers, "writers", 64,
		"the actor design's writer pool size (cmd/dtmfd's DTMFD_WRITERS)")
	fs.StringVar(&c.traceFile, "trace", "",
		"write an execution trace of the runs in this process to `file` (go tool trace)")
	fs.StringVar(&c.cpuProfile, "cpuprofile", "",
		"write a CPU profile of the runs in this process to `file`")
	fs.StringVar(&c.memProfile, "memprofile", "", "write an allocation profile to `file` at the end")
	fs.StringVar(&c.heapProfile, "heapprofile", "",
		"write the live heap of each memory run once its calls ended to `file`.design, and at its start to file.design.start")
	fs.DurationVar(&c.inputTimeout, "input-timeout", 10*time.Second,
		"the example flow's timeout between keys")

	fs.StringVar(&c.child, "child", "", "internal: run the measured side of a scenario")
	fs.StringVar(&c.url, "url", "", "internal: the emulator's base URL")
	fs.DurationVar(&c.settle, "settle", 0,
		"internal: wait after the last write before the settled sample")
	fs.DurationVar(&c.endedTTL, "ended-ttl", 0, "internal: the engine's EndedTTL")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}

	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for name, v := range sizes[*quick] {
		if !set[name] {
			fs.Set(name, v)
		}
	}

	var err error
	if c.e2eCalls, err = parseInts(*e2e); err != nil {
		return nil, fmt.Errorf("parse -e2e-calls: %w", err)
	}
	c.phases = map[string]bool{}
	for _, p := range strings.Split(*only, ",") {
		c.phases[strings.TrimSpace(p)] = true
	}
	for _, name := range strings.Split(*designs, ",") {
		d, ok := designByName(strings.TrimSpace(name))
		if !ok {
			return nil, fmt.Errorf("parse -designs: unknown design %q", name)
		}
		c.designs = append(c.designs, d)
	}
	return c, nil
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("want positive numbers, got %q", f)
		}
		out = append(out, n)
	}
	return out, nil
}

func designByName(name string) (design, bool) {
	for _, d := range []design{actorDesign, tutorialDesign, poolDesign} {
		if d.name == name {
			return d, true
		}
	}
	return design{}, false
}

func run(args []string, stdout, stderr io.Writer) int {
	c, err := parseConfig(args, stderr)
	if err != nil {
		if err != flag.ErrHelp {
			fmt.Fprintln(stderr, "dtmfbench:", err)
		}
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	// Every design runs in this process and shares its collector, so all
	// of them run with the settings cmd/dtmfd gives itself.
	gc, err := actors.TuneGC(os.Getenv, nil)
	if err != nil {
		fmt.Fprintln(stderr, "dtmfbench:", err)
	}

	if c.child != "" {
		return runChild(ctx, c, stdout, stderr)
	}
	if c.traceFile != "" {
		f, err := os.Create(c.traceFile)
		if err != nil {
			fmt.Fprintln(stderr, "dtmfbench:", err)
			return 1
		}
		defer f.Close()
		if err := trace.Start(f); err != nil {
			fmt.Fprintln(stderr, "dtmfbench:", err)
			return 1
		}
		defer trace.Stop()
	}
	if c.cpuProfile != "" {
		f, err := os.Create(c.cpuProfile)
		if err != nil {
			fmt.Fprintln(stderr, "dtmfbench:", err)
			return 1
		}
		defer f.Close()
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}

	b := &bench{c: c, log: stderr, host: describeHost(gc)}
	b.runAll(ctx)
	b.print(stdout)

	if c.memProfile != "" {
		if err := writeAllocs(c.memProfile); err != nil {
			fmt.Fprintln(stderr, "dtmfbench:", err)
			return 1
		}
	}
	if b.failed {
		return 1
	}
	return 0
}

func runChild(ctx context.Context, c *config, stdout, stderr io.Writer) int {
	if c.child != "memory" || len(c.designs) == 0 {
		fmt.Fprintln(stderr, "dtmfbench: unknown child", c.child)
		return 2
	}
	a := memoryChildArgs{
		design: c.designs[0],
		calls:  c.memoryCalls,
		window: c.window,
		settle: c.settle,
		base:   c.url,
		heap:   c.heapProfile,
		options: designOptions{
			inputTimeout: c.inputTimeout,
			logLevel:     c.logLevel,
			endedTTL:     c.endedTTL,
		},
	}
	if err := memoryChild(ctx, a, stdout); err != nil {
		fmt.Fprintln(stderr, "dtmfbench child:", err)
		return 1
	}
	return 0
}

func writeAllocs(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("write allocation profile: %w", err)
	}
	defer f.Close()
	runtime.GC()
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		return fmt.Errorf("write allocation profile: %w", err)
	}
	return nil
}

// writeHeap writes the live heap, after a collection, to path.
func writeHeap(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("write heap profile: %w", err)
	}
	defer f.Close()
	runtime.GC()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		return fmt.Errorf("write heap profile: %w", err)
	}
	return nil
}
