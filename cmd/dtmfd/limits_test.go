package main

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dtmfd/dtmfd/transport/emulator"
)

// Each limit refuses or sheds new work with a log line and a metric; none
// crashes dtmfd or loses work it had accepted.

// keyStamp numbers the keys pressKeys sends, so none repeats another's
// timestamp and is taken for a duplicate.
var keyStamp atomic.Int64

// pressKeys sends one call's keys in order.
func pressKeys(emu *emulator.Emulator, callID, keys string) {
	for i := range len(keys) {
		emu.Send(emulator.Event{Type: "dtmf", Digit: keys[i : i+1], CallID: callID,
			Timestamp: 1700000000000 + keyStamp.Add(1)})
	}
}

// checkAlive asserts that /healthz answers 200.
func checkAlive(t *testing.T, r *rigged) {
	t.Helper()
	resp, err := http.Get("http://" + r.app.Addr() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("healthz = %d, want 200", resp.StatusCode)
	}
}

func TestOversizedFrameClosesWith1009(t *testing.T) {
	t.Parallel()
	p := newProxied(t)
	r := launchAgainst(t, p, nil)
	rng := rand.New(rand.NewPCG(11, 12))
	calls := scripts(20, rng)
	play(p.emu, calls[:10], rng)

	// Over the stream client's 64 KiB read limit.
	p.emu.SendRaw(ignoredFrame(70 << 10))
	waitWithin(t, "the platform to see close 1009", 10*time.Second, func() bool {
		return p.emuLogs.count("stream disconnected") >= 1
	})
	if got := p.emuLogs.all(); !slices.ContainsFunc(got, func(l string) bool {
		return strings.Contains(l, `"msg":"stream disconnected"`) && strings.Contains(l, `"code":1009`)
	}) {
		t.Errorf("the platform saw no close with 1009:\n%s", strings.Join(got, "\n"))
	}
	waitWithin(t, "the stream back", 10*time.Second, func() bool { return p.emu.StreamConnects() >= 2 })
	r.waitReady(t, 10*time.Second)

	play(p.emu, calls[10:], rng)
	checkWrites(t, p.emu, calls)
	if n := r.logs.count("stream disconnected"); n != 1 {
		t.Errorf("%d stream disconnects logged, want 1", n)
	}
	if n := counter(t, r.app, "dtmfd_stream_disconnects_total"); n != 1 {
		t.Errorf("dtmfd_stream_disconnects_total = %v, want 1", n)
	}
	checkAlive(t, r)
}

func TestOpenCallLimitRefusesNewCalls(t *testing.T) {
	t.Parallel()
	p := newProxied(t)
	r := launchAgainst(t, p, map[string]string{"DTMFD_MAX_CALLS": "5", "DTMFD_INPUT_TIMEOUT": "30s"})

	var open []script
	for i := range 5 {
		id := fmt.Sprintf("open-%d", i)
		pressKeys(p.emu, id, "2")
		open = append(open, script{id: id, want: `ivr_selection=["2","A","1"] ivr_status=completed`})
	}
	waitWithin(t, "five open calls", 10*time.Second, func() bool {
		return counter(t, r.app, "dtmfd_calls_open") == 5
	})

	pressKeys(p.emu, "refused", "2A1")
	waitWithin(t, "the refusal", 10*time.Second, func() bool {
		return counter(t, r.app, `dtmfd_events_total{outcome="shed",type="dtmf"}`) == 3
	})
	if n := r.logs.count("new call refused: open call limit reached"); n != 3 {
		t.Errorf("%d refusals logged, want one per refused key (3)", n)
	}

	for _, c := range open {
		pressKeys(p.emu, c.id, "A1")
	}
	waitWithin(t, "the open calls to end", 10*time.Second, func() bool {
		return counter(t, r.app, "dtmfd_calls_open") == 0
	})
	pressKeys(p.emu, "after", "3B1")
	want := append(open, script{id: "after", want: `ivr_selection=["3","B","1"] ivr_status=completed`})
	checkWrites(t, p.emu, want)
	checkAlive(t, r)
}

func TestKeyLimitShedsKeysNotTheCall(t *testing.T) {
	t.Parallel()
	p := newProxied(t)
	r := launchAgainst(t, p, map[string]string{"DTMFD_MAX_KEYS": "4"})

	// Four wrong keys use up the limit; the three right ones after them
	// are shed, and the call still ends, on its timeout.
	pressKeys(p.emu, "chatty", "99992A1")
	pressKeys(p.emu, "quiet", "2A1")
	checkWrites(t, p.emu, []script{
		{id: "chatty", keys: "99992A1", want: "ivr_status=timeout_fallback"},
		{id: "quiet", keys: "2A1", want: `ivr_selection=["2","A","1"] ivr_status=completed`},
	})
	if n := counter(t, r.app, `dtmfd_events_total{outcome="shed",type="dtmf"}`); n != 3 {
		t.Errorf("shed keys = %v, want 3", n)
	}
	if n := r.logs.count("call reached its key limit; further keys are dropped"); n != 1 {
		t.Errorf("key limit logged %d times, want once per call", n)
	}
	checkAlive(t, r)
}

func TestBacklogLimitDeadLettersNewDecisions(t *testing.T) {
	t.Parallel()
	p := newProxied(t)
	r := launchAgainst(t, p, map[string]string{"DTMFD_MAX_BACKLOG": "3"})
	p.emu.FailWrites(1<<30, http.StatusServiceUnavailable, nil)

	want := map[string]string{}
	for i := range 10 {
		id := fmt.Sprintf("call-%d", i)
		pressKeys(p.emu, id, "1B1")
		want[id] = `ivr_selection=["1","B","1"] ivr_status=completed`
	}
	waitWithin(t, "the backlog to overflow", 10*time.Second, func() bool {
		return counter(t, r.app, "dtmfd_dead_letters_total") == 7
	})
	if n := counter(t, r.app, "dtmfd_write_backlog"); n != 3 {
		t.Errorf("backlog = %v while writes fail, want the limit, 3", n)
	}
	p.emu.FailWrites(0, 0, nil)
	ctx := testContext(t)
	if err := p.emu.WaitWrites(ctx, 3); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond) // no late writes

	seen := map[string]string{}
	for _, w := range p.emu.Writes() {
		vars := make([]string, len(w.Variables))
		for i, v := range w.Variables {
			vars[i] = v.Name + "=" + v.Value
		}
		seen[w.InteractionID] += strings.Join(vars, " ")
	}
	dead := readDeadLetters(t, r.dead)
	for _, rec := range dead {
		if _, twice := seen[rec.InteractionID]; twice {
			t.Errorf("%s both delivered and dead-lettered", rec.InteractionID)
		}
		if !strings.Contains(rec.Error, "backlog full") {
			t.Errorf("dead letter for %s says %q, want the backlog named", rec.InteractionID, rec.Error)
		}
		seen[rec.InteractionID] += wireVars(rec.Variables)
	}
	if len(dead) != 7 || len(p.emu.Writes()) != 3 {
		t.Errorf("%d dead letters and %d writes, want 7 and 3", len(dead), len(p.emu.Writes()))
	}
	for id, w := range want {
		if seen[id] != w {
			t.Errorf("%s: delivered or dead-lettered %q, want %q exactly once", id, seen[id], w)
		}
	}
	if n := r.logs.count("write given up; recorded as a dead letter"); n != 7 {
		t.Errorf("%d dead letters logged, want 7", n)
	}
	checkAlive(t, r)
}
