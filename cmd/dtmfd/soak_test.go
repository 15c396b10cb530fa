package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/dtmfd/dtmfd/transport/emulator"
	"github.com/dtmfd/dtmfd/transport/variables"
)

// soakPlatform is a platform lean enough to soak against: the emulator
// serves tokens and the voice stream, and writes are checked and counted
// here instead of kept, so the test process's heap measures dtmfd, not a
// growing record of what it wrote.
type soakPlatform struct {
	emu  *emulator.Emulator
	srv  *httptest.Server
	want []string        // each call's expected write, by call number
	got  []atomic.Uint32 // writes accepted, by call number

	wrong   atomic.Int64 // writes with other values or for unknown calls
	limited atomic.Int64 // 429 answers still to give

	mu     sync.Mutex
	tokens map[string]bool // tokens issued and not yet revoked
}

func newSoakPlatform(b *testing.B, calls []script) *soakPlatform {
	p := &soakPlatform{
		emu:    emulator.New(emulator.Options{ClientID: testID, ClientSecret: testSecret}),
		want:   make([]string, len(calls)),
		got:    make([]atomic.Uint32, len(calls)),
		tokens: map[string]bool{},
	}
	for i, c := range calls {
		p.want[i] = c.want
	}
	p.srv = httptest.NewServer(p)
	b.Cleanup(p.srv.Close)
	b.Cleanup(func() { p.emu.Close() })
	return p
}

func (p *soakPlatform) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	kind, call := classifyPath(r.URL.Path)
	switch kind {
	case "write":
		p.write(w, r, call)
	case "token":
		rec := &statusRecorder{ResponseWriter: w, keep: true}
		p.emu.Handler().ServeHTTP(rec, r)
		var reply struct {
			AccessToken string `json:"access_token"`
		}
		if json.Unmarshal(rec.body.Bytes(), &reply) == nil && reply.AccessToken != "" {
			p.mu.Lock()
			p.tokens[reply.AccessToken] = true
			p.mu.Unlock()
		}
	default:
		p.emu.Handler().ServeHTTP(w, r)
	}
}

// write answers a variables write as the emulator would: 429 while a
// burst lasts, 401 for a revoked token, and otherwise checks and counts
// it.
func (p *soakPlatform) write(w http.ResponseWriter, r *http.Request, call string) {
	if p.limited.Add(-1) >= 0 {
		w.Header().Set("Retry-After", "1")
		http.Error(w, `{"error":"too_many_requests"}`, http.StatusTooManyRequests)
		return
	}
	tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	p.mu.Lock()
	ok := p.tokens[tok]
	p.mu.Unlock()
	if !ok {
		http.Error(w, `{"error":"invalid_token"}`, http.StatusUnauthorized)
		return
	}

	var vars []variables.Variable
	if err := json.NewDecoder(r.Body).Decode(&vars); err != nil {
		http.Error(w, `{"error":"invalid_request"}`, http.StatusBadRequest)
		return
	}
	n, err := strconv.Atoi(strings.TrimPrefix(call, "call-"))
	if err != nil || n < 0 || n >= len(p.want) || wireVars(vars) != p.want[n] {
		p.wrong.Add(1)
	} else {
		p.got[n].Add(1)
	}
	w.WriteHeader(http.StatusOK)
}

// expireTokens revokes every token, on the platform and here.
func (p *soakPlatform) expireTokens() {
	p.emu.ExpireTokens()
	p.mu.Lock()
	clear(p.tokens)
	p.mu.Unlock()
}

// delivered counts the calls written exactly once among the first n.
func (p *soakPlatform) delivered(n int) int {
	done := 0
	for i := range n {
		if p.got[i].Load() == 1 {
			done++
		}
	}
	return done
}

// soakSetting reads a whole number from the environment, or def.
func soakSetting(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// memoryInUse is the process's live heap and goroutines after collection.
func memoryInUse() (heap uint64, goroutines int) {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse, runtime.NumGoroutine()
}

// BenchmarkSoak runs 50,000 calls (DTMFD_SOAK_CALLS) through an
// in-process dtmfd at 400 calls a second (DTMFD_SOAK_RATE), with 429
// bursts, stream closes and token revocations mixed in. Every call must be
// written exactly once with the right values, and afterwards the heap and
// the goroutines must come back to where they were after a warm-up: a
// leak per call or per fault fails it.
//
// The warm-up (DTMFD_SOAK_WARMUP calls, 75 s worth by default) runs
// longer than the engine remembers ended calls, a minute, so the map of
// ended calls has reached its size at this rate before the heap is first
// measured: a Go map keeps its peak capacity. After the last call the
// check waits 95 s, for those ids to expire and for idle platform
// connections to close.
func BenchmarkSoak(b *testing.B) {
	n := soakSetting("DTMFD_SOAK_CALLS", 50000)
	rate := soakSetting("DTMFD_SOAK_RATE", 400)
	warmup := soakSetting("DTMFD_SOAK_WARMUP", 75*rate)
	rng := rand.New(rand.NewPCG(41, 42))
	calls := scripts(warmup+n, rng)
	p := newSoakPlatform(b, calls)
	if err := p.emu.Start(); err != nil {
		b.Fatal(err)
	}
	startSoakService(b, p)

	driveSoak(b, p, calls, 0, warmup, rate)
	heap0, g0 := memoryInUse()

	b.ResetTimer()
	start := time.Now()
	peak := driveSoak(b, p, calls, warmup, warmup+n, rate)
	took := time.Since(start)
	b.StopTimer()
	if p.wrong.Load() > 0 {
		b.Fatalf("%d writes with wrong values or for unknown calls", p.wrong.Load())
	}

	// Long enough for ended calls to be forgotten (a minute, swept every
	// 30 s) and idle platform connections to close (90 s).
	time.Sleep(95 * time.Second)
	heap1, g1 := memoryInUse()
	b.ReportMetric(float64(n)/took.Seconds(), "calls/s")
	b.ReportMetric(float64(heap0)/(1<<20), "heap-start-MiB")
	b.ReportMetric(float64(peak)/(1<<20), "heap-peak-MiB")
	b.ReportMetric(float64(heap1)/(1<<20), "heap-end-MiB")
	b.ReportMetric(float64(g0), "goroutines-start")
	b.ReportMetric(float64(g1), "goroutines-end")
	if heap1 > heap0+heap0/10+4<<20 {
		b.Fatalf("heap in use %d MiB after the soak, started at %d MiB: a leak", heap1>>20, heap0>>20)
	}
	if g1 > g0+10 {
		b.Fatalf("%d goroutines after the soak, %d before: a leak", g1, g0)
	}
}

// driveSoak plays calls[from:to] at rate a second with faults mixed in,
// waits until every call so far is written exactly once, and returns the
// peak heap in use.
func driveSoak(b *testing.B, p *soakPlatform, calls []script, from, to, rate int) uint64 {
	rng := rand.New(rand.NewPCG(43, 44))
	tick := time.NewTicker(time.Second)
	defer tick.Stop()

	var peak uint64
	var ms runtime.MemStats
	for sec, next := 0, from; next < to; sec++ {
		end := min(next+rate, to)
		play(p.emu, calls[next:end], rng)
		next = end
		switch {
		case sec%10 == 5:
			p.limited.Store(200)
		case sec%15 == 7:
			p.emu.CloseStreams(websocket.StatusInternalError, "maintenance")
		case sec%20 == 13:
			p.expireTokens()
		}
		runtime.ReadMemStats(&ms)
		peak = max(peak, ms.HeapInuse)
		<-tick.C
	}

	deadline := time.Now().Add(2 * time.Minute)
	for p.delivered(to) < to && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if got := p.delivered(len(p.want)); got != to {
		b.Fatalf("%d of %d calls written exactly once", got, to)
	}
	return peak
}

// startSoakService runs dtmfd against p, logging only what is lost.
func startSoakService(b *testing.B, p *soakPlatform) {
	dir := b.TempDir()
	settings := map[string]string{
		"CXONE_CLIENT_ID":     testID,
		"CXONE_CLIENT_SECRET": testSecret,
		"CXONE_BASE_URL":      p.srv.URL,
		"DTMFD_ADDR":          "127.0.0.1:0",
		"DTMFD_INPUT_TIMEOUT": "400ms",
		"DTMFD_DEAD_LETTERS":  filepath.Join(dir, "dead.jsonl"),
	}
	cfg, err := parseConfig(nil, func(k string) string { return settings[k] }, io.Discard)
	if err != nil {
		b.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	a, err := newApp(cfg, log)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.run(ctx) }()
	b.Cleanup(func() {
		cancel()
		<-done
	})

	wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer wcancel()
	if err := p.emu.WaitConnected(wctx); err != nil {
		b.Fatal(err)
	}
}
