package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"time"
)

// warmCalls complete before the first sample, so the start figure is a
// service that has already handled calls: pools, connections and lazily
// built tables exist. They come as one burst, as the measured calls do,
// so that the writers open as many connections to the platform as they
// will hold at the end: a design keeps its idle connections, and with a
// smaller warm-up their buffers counted as memory the calls had left
// behind.
const warmCalls = 2000

// Environment variables that carry the emulator's credentials to a
// measured child process, kept off its command line.
const (
	envClientID     = "DTMFBENCH_CLIENT_ID"
	envClientSecret = "DTMFBENCH_CLIENT_SECRET"
)

// memSample is the process's memory at one point.
type memSample struct {
	// Heap is the live heap after a full collection.
	Heap uint64 `json:"heap"`
	// RSS is the resident set after freed memory went back to the OS.
	RSS uint64 `json:"rss"`
}

// memResult is one design's memory through the life of many calls.
type memResult struct {
	Calls int `json:"calls"`
	// Start is after warm-up; Open with every call waiting mid-menu;
	// Ended right after the last write; Settled after the ended-call
	// memory had time to expire.
	Start, Open, Ended, Settled memSample
	Failed                      int64 `json:"failed"`
}

// perCall returns heap and resident bytes per open call.
func (m memResult) perCall() (heap, rss float64) {
	n := float64(max(m.Calls, 1))
	return float64(int64(m.Open.Heap)-int64(m.Start.Heap)) / n,
		float64(int64(m.Open.RSS)-int64(m.Start.RSS)) / n
}

// sampleMemory collects, returns freed memory to the OS, and reads the
// live heap and the resident set.
func sampleMemory() memSample {
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return memSample{Heap: ms.HeapAlloc, RSS: residentBytes()}
}

// residentBytes reads the resident set size from /proc/self/statm, or 0
// where there is none.
func residentBytes() uint64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := bytes.Fields(b)
	if len(f) < 2 {
		return 0
	}
	pages, err := strconv.ParseUint(string(f[1]), 10, 64)
	if err != nil {
		return 0
	}
	return pages * uint64(os.Getpagesize())
}

// memoryRun takes one design through the memory scenario. cue is told of
// each stage and must queue its keys: warm (warm-up calls, complete),
// ready (every call's first key) and open (every call's other keys).
func memoryRun(ctx context.Context, d design, pf platform, calls int, settle time.Duration,
	o designOptions, cue func(stage string) error) (memResult, error) {
	p := newProbe(0, 0)
	o.observe = true
	stop, err := d.start(ctx, pf, p, o)
	if err != nil {
		return memResult{}, err
	}
	defer stop()
	if err := p.waitUp(ctx); err != nil {
		return memResult{}, err
	}

	res := memResult{Calls: calls}
	steps := []struct {
		stage string
		wait  func() error
		into  *memSample
	}{
		{"warm", func() error { return p.writes.atLeast(ctx, warmCalls) }, &res.Start},
		{"ready", func() error { return p.keys.atLeast(ctx, 3*warmCalls+calls) }, &res.Open},
		{"open", func() error { return p.writes.atLeast(ctx, warmCalls+calls) }, &res.Ended},
	}
	for _, s := range steps {
		if err := cue(s.stage); err != nil {
			return res, err
		}
		if err := s.wait(); err != nil {
			return res, fmt.Errorf("memory %s after %s: %w", d.name, s.stage, err)
		}
		*s.into = sampleMemory()
	}

	select {
	case <-time.After(settle):
	case <-ctx.Done():
		return res, ctx.Err()
	}
	res.Settled = sampleMemory()
	res.Failed = p.failed.Load()
	return res, nil
}

// rigCue queues each memory stage's keys into r.
func rigCue(r *rig, calls, window int) func(string) error {
	return func(stage string) error {
		switch stage {
		case "warm":
			r.queue(events(calls, calls+warmCalls, window, 0, 3))
		case "ready":
			r.queue(events(0, calls, window, 0, 1))
		case "open":
			r.queue(events(0, calls, window, 1, 3))
		default:
			return fmt.Errorf("unknown memory stage %q", stage)
		}
		return nil
	}
}

// memLine is one line a measured child writes to its driver.
type memLine struct {
	Stage  string     `json:"stage"`
	Result *memResult `json:"result,omitempty"`
	Error  string     `json:"error,omitempty"`
}

// memoryChildArgs are what a measured child needs besides the
// credentials.
type memoryChildArgs struct {
	design design
	calls  int
	window int
	settle time.Duration
	base   string
	// heap, when set, is where the child writes its live heap profile
	// once its calls ended.
	heap    string
	options designOptions
}

// runMemory measures d in a child process of its own, so that neither
// this process's earlier runs nor the emulator's record of accepted
// writes count against it. The emulator stays here and feeds the child.
func runMemory(ctx context.Context, a memoryChildArgs) (memResult, error) {
	r, err := newRig()
	if err != nil {
		return memResult{}, err
	}
	defer r.Close()

	exe, err := os.Executable()
	if err != nil {
		return memResult{}, fmt.Errorf("find own executable: %w", err)
	}
	cmd := exec.CommandContext(ctx, exe,
		"-child=memory",
		"-designs="+a.design.name,
		"-memory-calls="+strconv.Itoa(a.calls),
		"-window="+strconv.Itoa(a.window),
		"-settle="+a.settle.String(),
		"-ended-ttl="+a.options.endedTTL.String(),
		"-input-timeout="+a.options.inputTimeout.String(),
		"-log-level="+a.options.logLevel.String(),
		"-url="+r.base)
	if a.heap != "" {
		cmd.Args = append(cmd.Args, "-heapprofile="+a.heap+"."+a.design.name)
	}
	cmd.Env = append(os.Environ(), envClientID+"="+r.clientID, envClientSecret+"="+r.clientSecret)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return memResult{}, fmt.Errorf("start memory child: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return memResult{}, fmt.Errorf("start memory child: %w", err)
	}

	res, derr := driveChild(out, rigCue(r, a.calls, a.window))
	io.Copy(io.Discard, out)
	werr := cmd.Wait()
	if derr != nil {
		return res, fmt.Errorf("memory %s: %w", a.design.name, derr)
	}
	if werr != nil {
		return res, fmt.Errorf("memory %s: child: %w", a.design.name, werr)
	}
	return res, nil
}

// driveChild follows a child's stages, cueing each, until its result.
func driveChild(out io.Reader, cue func(string) error) (memResult, error) {
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		var l memLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return memResult{}, fmt.Errorf("read child line: %w", err)
		}
		switch {
		case l.Error != "":
			return memResult{}, errors.New(l.Error)
		case l.Result != nil:
			return *l.Result, nil
		}
		if err := cue(l.Stage); err != nil {
			return memResult{}, err
		}
	}
	if err := sc.Err(); err != nil {
		return memResult{}, fmt.Errorf("read child: %w", err)
	}
	return memResult{}, errors.New("child ended without a result")
}

// memoryChild is the measured side: it runs the design against the
// driver's emulator and reports stages and the result on stdout.
func memoryChild(ctx context.Context, a memoryChildArgs, stdout io.Writer) error {
	pf := platform{
		base:         a.base,
		clientID:     os.Getenv(envClientID),
		clientSecret: os.Getenv(envClientSecret),
	}
	enc := json.NewEncoder(stdout)
	cue := func(stage string) error {
		// The start sample has just been taken: a profile of the same heap
		// is the base to compare the last one with.
		if stage == "ready" && a.heap != "" {
			if err := writeHeap(a.heap + ".start"); err != nil {
				return err
			}
		}
		return enc.Encode(memLine{Stage: stage})
	}

	res, err := memoryRun(ctx, a.design, pf, a.calls, a.settle, a.options, cue)
	if err == nil && a.heap != "" {
		err = writeHeap(a.heap)
	}
	if err != nil {
		enc.Encode(memLine{Error: err.Error()})
		return err
	}
	return enc.Encode(memLine{Result: &res})
}
