package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"iter"
	"net/http"
	"sync"
	"syscall"
	"time"

	"github.com/coder/websocket"

	"github.com/dtmfd/dtmfd/transport/emulator"
)

// throughput is one timed run: n items from the first frame read to the
// last item done, and the CPU time the whole process (emulator included)
// spent from connecting to the end. CPU per item depends far less than
// the rate on what else the machine is running.
type throughput struct {
	n       int
	elapsed time.Duration
	cpu     time.Duration
}

// cpuPerItem is the process's CPU time per item.
func (t throughput) cpuPerItem() time.Duration {
	return t.cpu / time.Duration(max(t.n, 1))
}

// processCPU returns the user and system CPU time of this process so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// perSecond is the rate over the run, counting intervals between items.
func (t throughput) perSecond() float64 {
	if t.elapsed <= 0 || t.n < 2 {
		return 0
	}
	return float64(t.n-1) / t.elapsed.Seconds()
}

// runCeiling measures how fast a bare client reads and decodes the
// emulator's frames: the frames are queued first, then the client
// connects and reads them all, doing nothing else.
func runCeiling(ctx context.Context, frames, window int) (throughput, error) {
	r, err := newRig()
	if err != nil {
		return throughput{}, err
	}
	defer r.Close()

	n := r.queue(events(0, frames/2, window, 0, 2))
	tok, err := fetchToken(ctx, r.platform)
	if err != nil {
		return throughput{}, err
	}
	cpu := processCPU()
	t, err := readBare(ctx, r.platform, tok, n)
	t.cpu = processCPU() - cpu
	return t, err
}

// readBare reads n frames with coder/websocket and decodes each into a
// struct, reusing one buffer, and times the first to the last.
func readBare(ctx context.Context, pf platform, tok string, n int) (throughput, error) {
	conn, _, err := websocket.Dial(ctx, pf.streamURL(), &websocket.DialOptions{
		HTTPHeader: http.Header{"Authorization": {"Bearer " + tok}},
	})
	if err != nil {
		return throughput{}, fmt.Errorf("dial stream: %w", err)
	}
	defer conn.CloseNow()

	var (
		buf   bytes.Buffer
		first time.Time
		ev    struct {
			Type      string `json:"type"`
			Digit     string `json:"digit"`
			CallID    string `json:"callId"`
			Timestamp int64  `json:"timestamp"`
		}
	)
	for i := 0; i < n; i++ {
		_, rd, err := conn.Reader(ctx)
		if err != nil {
			return throughput{}, fmt.Errorf("read frame %d: %w", i, err)
		}
		buf.Reset()
		if _, err := buf.ReadFrom(rd); err != nil {
			return throughput{}, fmt.Errorf("read frame %d: %w", i, err)
		}
		if i == 0 {
			first = time.Now()
		}
		if err := json.Unmarshal(buf.Bytes(), &ev); err != nil {
			return throughput{}, fmt.Errorf("decode frame %d: %w", i, err)
		}
	}
	return throughput{n: n, elapsed: time.Since(first)}, nil
}

// runIngress measures keys processed per second by dtmfd's stream client
// and engine: each call gets its first two keys, which move it along
// without completing it, and a key counts when the engine's metric of
// accepted keys counts it, so the engine runs with no observer.
func runIngress(ctx context.Context, keys, window int, o designOptions) (throughput, error) {
	r, err := newRig()
	if err != nil {
		return throughput{}, err
	}
	defer r.Close()

	n := r.queue(events(0, keys/2, window, 0, 2))
	p := newProbe(n, 0)
	o.countKeys = true
	o.inputTimeout = time.Hour
	cpu := processCPU()
	stop, err := actorDesign.start(ctx, r.platform, p, o)
	if err != nil {
		return throughput{}, err
	}
	defer stop()

	if err := p.keys.wait(ctx); err != nil {
		return throughput{}, fmt.Errorf("ingress: %w", err)
	}
	return throughput{
		n:       n,
		elapsed: p.keys.reachedAt().Sub(p.firstFrame()),
		cpu:     processCPU() - cpu,
	}, nil
}

// e2eResult is one end-to-end run of a design.
type e2eResult struct {
	throughput
	failed int64
}

// runE2E measures completed calls per second: every call's three keys are
// queued, the design connects, and the run ends when the emulator has
// accepted one write per call. The design is then stopped and the writes
// checked, so a late duplicate counts against it too.
func runE2E(ctx context.Context, d design, calls, window int, o designOptions) (e2eResult, error) {
	r, err := newRig()
	if err != nil {
		return e2eResult{}, err
	}
	defer r.Close()
	r.emu.DelayWrites(o.writeDelay)

	r.queue(events(0, calls, window, 0, 3))
	p := newProbe(3*calls, calls)
	cpu := processCPU()
	stop, err := d.start(ctx, r.platform, p, o)
	if err != nil {
		return e2eResult{}, err
	}
	stop = sync.OnceFunc(stop)
	defer stop()

	if err := waitWrites(ctx, r, p, calls); err != nil {
		return e2eResult{}, fmt.Errorf("%s: %w", d.name, err)
	}
	res := e2eResult{
		throughput: throughput{
			n:       calls,
			elapsed: time.Since(p.firstFrame()),
			cpu:     processCPU() - cpu,
		},
		failed: p.failed.Load(),
	}
	stop()
	if err := checkWrites(r.emu.Writes(), 0, calls); err != nil {
		return res, fmt.Errorf("%s: %w", d.name, err)
	}
	return res, nil
}

// waitWrites waits until the emulator has accepted n writes, giving up
// as soon as the design gives up on one: the count would never be
// reached.
func waitWrites(ctx context.Context, r *rig, p *probe, n int) error {
	for {
		wctx, cancel := context.WithTimeout(ctx, 250*time.Millisecond)
		err := r.emu.WaitWrites(wctx, n)
		cancel()
		switch {
		case err == nil:
			return nil
		case p.failed.Load() > 0:
			return fmt.Errorf("%d writes given up", p.failed.Load())
		case ctx.Err() != nil:
			return err
		}
	}
}

// checkWrites reports whether writes are exactly one completed write for
// each call in [first, last), with that call's path.
func checkWrites(writes []emulator.Write, first, last int) error {
	seen := make(map[int]bool, last-first)
	for _, w := range writes {
		i := callIndex(w.InteractionID)
		if i < first || i >= last {
			return fmt.Errorf("write for unexpected interaction %q", w.InteractionID)
		}
		if seen[i] {
			return fmt.Errorf("second write for %s", w.InteractionID)
		}
		seen[i] = true

		got := map[string]string{}
		for _, v := range w.Variables {
			got[v.Name] = v.Value
		}
		want := selectionFor(keysFor(i))
		if len(got) != 2 || got["ivr_selection"] != want || got["ivr_status"] != "completed" {
			return fmt.Errorf("write for %s is %v, want ivr_selection=%s ivr_status=completed",
				w.InteractionID, w.Variables, want)
		}
	}
	if len(seen) != last-first {
		return fmt.Errorf("%d writes for %d calls", len(seen), last-first)
	}
	return nil
}

// latencyResult is the actor design's timings under a steady load.
type latencyResult struct {
	rate       float64 // events per second actually sent
	toDecision percentiles
	toWrite    percentiles
	// runs is how many runs this one is the median of.
	runs int
}

// runLatency paces the example flow's keys into the emulator at rate
// events per second for d, with the actor design connected, and reports
// digit-to-decision and decision-to-write percentiles.
func runLatency(ctx context.Context, rate int, d time.Duration, window int,
	o designOptions) (latencyResult, error) {
	r, err := newRig()
	if err != nil {
		return latencyResult{}, err
	}
	defer r.Close()
	r.emu.DelayWrites(o.writeDelay)

	calls := int(float64(rate)*d.Seconds()) / 3
	lat := newLatencies(calls)
	o.latency = lat
	p := newProbe(3*calls, calls)
	stop, err := actorDesign.start(ctx, r.platform, p, o)
	if err != nil {
		return latencyResult{}, err
	}
	defer stop()
	if err := p.waitUp(ctx); err != nil {
		return latencyResult{}, err
	}

	sent, took, err := pace(ctx, r, events(0, calls, window, 0, 3), rate)
	if err != nil {
		return latencyResult{}, err
	}
	if err := waitWrites(ctx, r, p, calls); err != nil {
		return latencyResult{}, fmt.Errorf("latency: %w", err)
	}
	if err := p.writes.wait(ctx); err != nil {
		return latencyResult{}, fmt.Errorf("latency: %w", err)
	}

	res := latencyResult{rate: float64(sent) / took.Seconds()}
	res.toDecision, res.toWrite = lat.summary()
	return res, nil
}

// pace sends evs at rate per second, topping up to the due count every
// millisecond, and returns how many it sent and how long that took.
func pace(ctx context.Context, r *rig, evs iter.Seq[emulator.Event],
	rate int) (int, time.Duration, error) {
	next, done := iter.Pull(evs)
	defer done()

	t := time.NewTicker(time.Millisecond)
	defer t.Stop()
	start, sent := time.Now(), 0
	for {
		due := int(time.Since(start).Seconds() * float64(rate))
		for ; sent < due; sent++ {
			ev, ok := next()
			if !ok {
				return sent, time.Since(start), nil
			}
			r.emu.Send(ev)
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return sent, time.Since(start), fmt.Errorf("pace keys: %w", ctx.Err())
		}
	}
}
