package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/dtmfd/dtmfd/actors"
)

// runTimeout bounds any one run, so a design that stalls fails its cell
// instead of hanging the tool.
const runTimeout = 5 * time.Minute

// Memory scenario settings: calls wait mid-menu far longer than it takes
// to measure them, and ended calls are forgotten soon after.
const (
	memoryInputTimeout = 10 * time.Minute
	memoryEndedTTL     = time.Second
	memorySettle       = 3 * memoryEndedTTL
)

// bench runs the phases and keeps their results for the table.
type bench struct {
	c      *config
	log    io.Writer
	host   hostInfo
	failed bool

	ceiling, ingress []throughput
	e2e              map[int]map[string][]throughput
	latency          *latencyResult
	memory           map[string]memResult
}

func (b *bench) options() designOptions {
	return designOptions{inputTimeout: b.c.inputTimeout, logLevel: b.c.logLevel,
		writeDelay: b.c.writeDelay, writers: b.c.writers}
}

// runAll runs the selected phases in order, logging progress.
func (b *bench) runAll(ctx context.Context) {
	b.e2e = map[int]map[string][]throughput{}
	b.memory = map[string]memResult{}
	if b.c.phases["ceiling"] || b.c.phases["ingress"] {
		b.runIngress(ctx)
	}
	if b.c.phases["e2e"] {
		b.runE2E(ctx)
	}
	if b.c.phases["latency"] {
		b.runLatency(ctx)
	}
	if b.c.phases["memory"] {
		b.runMemory(ctx)
	}
	b.host.loadEnd = loadAverage()
}

// timed runs f with the run timeout, after a collection, so one run's
// garbage is not collected on the next one's time. It collects twice:
// what a closed connection's finalizer holds is freed only by the
// collection after the one that ran the finalizer, and a single one left
// 15 to 22 MiB of the last latency run live through the next.
func timed[T any](ctx context.Context, f func(context.Context) (T, error)) (T, error) {
	runtime.GC()
	runtime.GC()
	ctx, cancel := context.WithTimeout(ctx, runTimeout)
	defer cancel()
	return f(ctx)
}

func (b *bench) fail(what string, err error) {
	b.failed = true
	fmt.Fprintf(b.log, "%s: FAILED: %v\n", what, err)
}

// runIngress alternates ceiling and ingress runs, so that both see the
// same machine.
func (b *bench) runIngress(ctx context.Context) {
	for rep := 1; rep <= b.c.reps; rep++ {
		if b.c.phases["ceiling"] {
			c, err := timed(ctx, func(ctx context.Context) (throughput, error) {
				return runCeiling(ctx, b.c.ceilingFrames, b.c.window)
			})
			if err != nil {
				b.fail("ceiling", err)
				return
			}
			b.ceiling = append(b.ceiling, c)
			fmt.Fprintf(b.log, "ceiling %d/%d: %s frames/s, %s CPU per frame\n",
				rep, b.c.reps, commas(c.perSecond()), c.cpuPerItem())
		}
		if !b.c.phases["ingress"] {
			continue
		}
		in, err := timed(ctx, func(ctx context.Context) (throughput, error) {
			return runIngress(ctx, b.c.ingressKeys, b.c.window, b.options())
		})
		if err != nil {
			b.fail("ingress", err)
			return
		}
		b.ingress = append(b.ingress, in)
		fmt.Fprintf(b.log, "ingress %d/%d: %s keys/s, %s CPU per key\n",
			rep, b.c.reps, commas(in.perSecond()), in.cpuPerItem())
	}
}

func (b *bench) runE2E(ctx context.Context) {
	smallest := slices.Min(b.c.e2eCalls)
	for _, calls := range b.c.e2eCalls {
		reps := 1
		if calls == smallest {
			reps = b.c.reps
		}
		b.e2e[calls] = map[string][]throughput{}
		for _, d := range b.c.designs {
			if runs := b.e2eRuns(ctx, d, calls, reps, b.options()); len(runs) > 0 {
				b.e2e[calls][d.name] = runs
			}
		}
	}
}

func (b *bench) e2eRuns(ctx context.Context, d design, calls, reps int,
	o designOptions) []throughput {
	var runs []throughput
	for rep := 1; rep <= reps; rep++ {
		res, err := timed(ctx, func(ctx context.Context) (e2eResult, error) {
			return runE2E(ctx, d, calls, b.c.window, o)
		})
		if err != nil {
			b.fail(fmt.Sprintf("e2e %s %d calls", d.name, calls), err)
			return nil
		}
		runs = append(runs, res.throughput)
		fmt.Fprintf(b.log, "e2e %s %s calls %d/%d: %s calls/s in %v, %s CPU per call\n",
			d.name, commas(float64(calls)), rep, reps, commas(res.perSecond()),
			res.elapsed.Round(time.Millisecond), res.cpuPerItem())
	}
	return runs
}

// medians returns the median rate and the median CPU time per item of
// runs.
func medians(runs []throughput) (rate float64, cpu time.Duration) {
	rates := make([]float64, len(runs))
	cpus := make([]float64, len(runs))
	for i, r := range runs {
		rates[i], cpus[i] = r.perSecond(), float64(r.cpuPerItem())
	}
	return median(rates), time.Duration(median(cpus))
}

// fastest returns the rate and CPU per item of the fastest run: the
// ceiling is an upper bound, and its fastest run is the one least held
// back by whatever else the machine was running.
func fastest(runs []throughput) (rate float64, cpu time.Duration) {
	for _, r := range runs {
		if r.perSecond() > rate {
			rate, cpu = r.perSecond(), r.cpuPerItem()
		}
	}
	return rate, cpu
}

func (b *bench) runLatency(ctx context.Context) {
	// On a shared two-core machine one run's tail moves by half a
	// millisecond with what else runs, so the phase runs as often as the
	// throughput phases and the run with the median p99 from digit to
	// decision counts.
	var runs []latencyResult
	for range max(b.c.reps, 1) {
		res, err := timed(ctx, func(ctx context.Context) (latencyResult, error) {
			return runLatency(ctx, b.c.latencyRate, b.c.latencyFor, b.c.window, b.options())
		})
		if err != nil {
			b.fail("latency", err)
			return
		}
		fmt.Fprintf(b.log, "latency at %s keys/s: digit to decision %s; decision to write %s\n",
			commas(res.rate), res.toDecision, res.toWrite)
		runs = append(runs, res)
	}
	slices.SortFunc(runs, func(x, y latencyResult) int { return cmp.Compare(x.toDecision.p99, y.toDecision.p99) })
	res := runs[len(runs)/2]
	res.runs = len(runs)
	b.latency = &res
}

func (b *bench) runMemory(ctx context.Context) {
	for _, d := range b.c.designs {
		o := b.options()
		o.inputTimeout = memoryInputTimeout
		o.endedTTL = memoryEndedTTL
		a := memoryChildArgs{
			design: d, calls: b.c.memoryCalls, window: b.c.window, heap: b.c.heapProfile, options: o,
		}
		if d.name == actorDesign.name {
			// Only the engine remembers ended calls for a while.
			a.settle = memorySettle
		}
		res, err := timed(ctx, func(ctx context.Context) (memResult, error) {
			return runMemory(ctx, a)
		})
		if err != nil {
			b.fail("memory "+d.name, err)
			continue
		}
		b.memory[d.name] = res
		heap, rss := res.perCall()
		fmt.Fprintf(b.log, "memory %s: %.0f B heap, %.0f B resident per open call; "+
			"heap %s at start, %s after\n",
			d.name, heap, rss, mib(res.Start.Heap), mib(res.Settled.Heap))
	}
}

// hostInfo describes the machine and its load.
type hostInfo struct {
	date      string
	cpus      int
	model     string
	goVersion string
	loadStart string
	loadEnd   string
	gc        actors.GCSettings
}

func describeHost(gc actors.GCSettings) hostInfo {
	return hostInfo{
		gc:        gc,
		date:      time.Now().Format(time.DateOnly),
		cpus:      runtime.NumCPU(),
		model:     cpuModel(),
		goVersion: runtime.Version(),
		loadStart: loadAverage(),
	}
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if name, ok := strings.CutPrefix(line, "model name"); ok {
			return strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(name), ":"))
		}
	}
	return "unknown"
}

// loadAverage returns the 1, 5 and 15 minute load averages.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func (p percentiles) String() string {
	return fmt.Sprintf("p50 %s, p99 %s, p99.9 %s (n=%d)", ms(p.p50), ms(p.p99), ms(p.p999), p.n)
}

func goMaxProcs() int { return runtime.GOMAXPROCS(0) }
