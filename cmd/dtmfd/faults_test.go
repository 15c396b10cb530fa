package main

import (
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/dtmfd/dtmfd/transport/deadletter"
	"github.com/dtmfd/dtmfd/transport/emulator"
	"github.com/dtmfd/dtmfd/transport/variables"
)

// faultRun is one row of TestFaults in progress: the first half of its
// calls are delivered, the rest wait for the row to play them.
type faultRun struct {
	t *testing.T
	*rigged
	rng  *rand.Rand
	rest []script
}

// playRest sends the second half of the calls.
func (f *faultRun) playRest() { play(f.p.emu, f.rest, f.rng) }

// waitLost waits until n stream connections in all have been lost.
func (f *faultRun) waitLost(n int, within time.Duration) {
	f.t.Helper()
	waitWithin(f.t, "the stream to drop", within, func() bool {
		return counter(f.t, f.app, "dtmfd_stream_disconnects_total") >= float64(n)
	})
}

// waitAttempts waits until the platform has seen n stream handshakes.
func (f *faultRun) waitAttempts(n int) {
	f.t.Helper()
	waitWithin(f.t, "stream handshakes", 10*time.Second, func() bool {
		return len(f.p.emu.StreamAttempts()) >= n
	})
}

// waitTokenRequests waits until the platform has seen n token requests.
func (f *faultRun) waitTokenRequests(n int) {
	f.t.Helper()
	waitWithin(f.t, "token requests", 10*time.Second, func() bool {
		return len(f.p.seen("token")) >= n
	})
}

// waitDecided waits until n calls have reached a decision.
func (f *faultRun) waitDecided(n int) {
	f.t.Helper()
	waitWithin(f.t, "decisions", 10*time.Second, func() bool {
		return counter(f.t, f.app, "dtmfd_calls_ended_total") >= float64(n)
	})
}

// waitSettled waits until dtmfd has seen n writes accepted and holds
// none: no reply is still on its way, so a fault that cuts connections
// now cannot make dtmfd send an accepted write again.
func (f *faultRun) waitSettled(n int) {
	f.t.Helper()
	waitWithin(f.t, "writes to settle", 10*time.Second, func() bool {
		return counter(f.t, f.app, "dtmfd_write_latency_seconds_count") >= float64(n) &&
			counter(f.t, f.app, "dtmfd_write_backlog") == 0
	})
}

// waitWrites waits until the platform accepted n writes.
func (f *faultRun) waitWrites(n int) {
	f.t.Helper()
	ctx := testContext(f.t)
	if err := f.p.emu.WaitWrites(ctx, n); err != nil {
		f.t.Fatalf("%d writes accepted: %v", len(f.p.emu.Writes()), err)
	}
}

// checkBackoff asserts that nothing retried in a tight loop: stream
// handshakes and token requests at most five in any second, and each
// write retried no sooner than the minimum backoff after a failure.
func (f *faultRun) checkBackoff() {
	f.t.Helper()
	if n := maxInWindow(f.p.emu.StreamAttempts(), time.Second); n > 5 {
		f.t.Errorf("%d stream handshakes within one second: reconnecting does not back off", n)
	}
	if n := maxInWindow(requestTimes(f.p.seen("token")), time.Second); n > 5 {
		f.t.Errorf("%d token requests within one second: token fetches do not back off", n)
	}

	for id, rs := range f.p.writesByCall() {
		for i := 1; i < len(rs); i++ {
			prev := rs[i-1]
			if prev.status == http.StatusUnauthorized {
				continue // a refused token is replaced at once
			}
			if gap := rs[i].at.Sub(prev.at); gap < 150*time.Millisecond {
				f.t.Errorf("%s: attempt %d came %v after a %d: writes do not back off",
					id, i+1, gap, prev.status)
			}
		}
	}
}

func requestTimes(rs []seenRequest) []time.Time {
	out := make([]time.Time, len(rs))
	for i, r := range rs {
		out[i] = r.at
	}
	return out
}

// retryAfterHonoured checks that no write followed a 429 sooner than d.
func retryAfterHonoured(d time.Duration) func(*faultRun) {
	return func(f *faultRun) {
		limited := 0
		for id, rs := range f.p.writesByCall() {
			for i := 1; i < len(rs); i++ {
				if rs[i-1].status != http.StatusTooManyRequests {
					continue
				}
				limited++
				if gap := rs[i].at.Sub(rs[i-1].at); gap < d {
					f.t.Errorf("%s: retried %v after a 429 that asked for %v", id, gap, d)
				}
			}
		}
		if limited == 0 {
			f.t.Error("no write was answered 429: the fault never applied")
		}
	}
}

// disconnected checks that a lost stream was counted under code.
func lostWithCode(code string) func(*faultRun) {
	return func(f *faultRun) {
		if n := counter(f.t, f.app, `dtmfd_stream_disconnects_total{code="`+code+`"}`); n < 1 {
			f.t.Errorf("stream disconnects with code %s = %v, want at least 1", code, n)
		}
	}
}

// atLeast checks that the metric lines starting with prefix sum to n or more.
func metricAtLeast(prefix string, n float64) func(*faultRun) {
	return func(f *faultRun) {
		if got := counter(f.t, f.app, prefix); got < n {
			f.t.Errorf("%s = %v, want at least %v", prefix, got, n)
		}
	}
}

// handshakeRefused makes the next three handshakes fail with status and
// then drops the stream, so dtmfd must dial through them.
func handshakeRefused(status int) func(*faultRun) {
	return func(f *faultRun) {
		before := len(f.p.emu.StreamAttempts())
		f.p.emu.FailHandshakes(3, status)
		f.p.emu.CloseStreams(websocket.StatusGoingAway, "restarting")
		f.waitAttempts(before + 4)
		f.playRest()
	}
}

// writeFault makes the next n writes fail with status and header.
func writeFault(n, status int, header func() http.Header) func(*faultRun) {
	return func(f *faultRun) {
		var h http.Header
		if header != nil {
			h = header()
		}
		f.p.emu.FailWrites(n, status, h)
		f.playRest()
	}
}

// tokenRefused makes dtmfd need a new token while fault answers the
// token endpoint, then ends the fault once it was met n times.
func tokenRefused(fault func(http.ResponseWriter, *http.Request) bool, n int) func(*faultRun) {
	return func(f *faultRun) {
		before := len(f.p.seen("token"))
		f.p.setFault("token", fault)
		f.p.emu.ExpireTokens()
		f.p.emu.CloseStreams(websocket.StatusGoingAway, "restarting")
		f.waitTokenRequests(before + n)
		f.p.setFault("token", nil)
		f.playRest()
	}
}

// ignoredFrame is a frame of a type dtmfd ignores, padded to size bytes,
// for faults that must land on a frame without costing a key.
func ignoredFrame(size int) []byte {
	head := `{"type":"call_started","callId":"padding","timestamp":1,"pad":"`
	return []byte(head + strings.Repeat("x", max(size-len(head)-2, 0)) + `"}`)
}

// The fault tests run 40 calls per row, half before the fault and half
// during or after it, and assert what a user of dtmfd sees: every
// decision written exactly once with the right values and nothing
// written for another call; no tight retry loops; ready again once the
// fault ends.
var faultCases = []struct {
	name string
	env  map[string]string
	run  func(*faultRun)
	// rejected is a call the platform refuses for good: it must be
	// dead-lettered and every other call delivered.
	rejected string
	// atLeastOnce rows lose replies to writes the platform accepted:
	// dtmfd cannot tell those from writes that never arrived, so it
	// sends them again, with the same values.
	atLeastOnce bool
	check       func(*faultRun)
}{
	// The voice stream.
	{name: "stream closed 1001 going away", run: func(f *faultRun) {
		f.p.emu.CloseStreams(websocket.StatusGoingAway, "restarting")
		f.playRest()
	}, check: lostWithCode("1001")},
	{name: "stream closed 1008 policy violation", run: func(f *faultRun) {
		f.p.emu.CloseStreams(websocket.StatusPolicyViolation, "token revoked")
		f.playRest()
	}, check: lostWithCode("1008")},
	{name: "stream closed 1011 internal error", run: func(f *faultRun) {
		f.p.emu.CloseStreams(websocket.StatusInternalError, "maintenance")
		f.playRest()
	}, check: lostWithCode("1011")},
	{name: "stream dropped without a close frame (1006)", run: func(f *faultRun) {
		f.p.emu.DropStreams()
		f.playRest()
	}, check: lostWithCode("none")},
	{name: "stream reset by the network (1006)", run: func(f *faultRun) {
		remove := f.p.toxic(f.t, "reset_peer", "downstream", map[string]any{"timeout": 0})
		f.p.emu.SendRaw(ignoredFrame(100))
		f.waitLost(1, 10*time.Second)
		remove()
		f.playRest()
	}, check: lostWithCode("none")},
	{name: "stream reset in the middle of a frame", run: func(f *faultRun) {
		remove := f.p.toxic(f.t, "limit_data", "downstream", map[string]any{"bytes": 200})
		f.p.emu.SendRaw(ignoredFrame(4000))
		f.waitLost(1, 10*time.Second)
		remove()
		f.playRest()
	}, check: lostWithCode("none")},
	{name: "handshake refused 401", run: handshakeRefused(http.StatusUnauthorized),
		check: func(f *faultRun) {
			if n := len(f.p.seen("token")); n < 4 {
				f.t.Errorf("%d token requests, want one more for each refused handshake", n)
			}
		}},
	{name: "handshake refused 403", run: handshakeRefused(http.StatusForbidden)},
	{name: "handshake refused 503", run: handshakeRefused(http.StatusServiceUnavailable)},
	{name: "handshake never answered", run: func(f *faultRun) {
		before := f.p.emu.StreamConnects()
		remove := f.p.toxic(f.t, "timeout", "downstream", map[string]any{"timeout": 0})
		f.p.emu.DropStreams()
		waitWithin(f.t, "the unanswered upgrade", 10*time.Second, func() bool {
			return f.p.emu.StreamConnects() > before
		})
		// dtmfd gives up on the handshake when its HTTP client's 10 s
		// timeout passes; removing the toxic sooner would close the
		// connection and end the wait early.
		waitWithin(f.t, "dtmfd to give up on the handshake", 15*time.Second, func() bool {
			return f.logs.count("stream connect failed") >= 1
		})
		remove()
		f.waitReady(f.t, 10*time.Second)
		f.playRest()
	}},
	{name: "pings unanswered", env: map[string]string{"DTMFD_PING_INTERVAL": "300ms"},
		run: func(f *faultRun) {
			f.p.emu.StopPongs(true)
			f.waitLost(1, 20*time.Second)
			f.p.emu.StopPongs(false)
			f.playRest()
		}, check: lostWithCode("none")},
	{name: "latency on every packet", run: func(f *faultRun) {
		down := f.p.toxic(f.t, "latency", "downstream", map[string]any{"latency": 150, "jitter": 50})
		up := f.p.toxic(f.t, "latency", "upstream", map[string]any{"latency": 150, "jitter": 50})
		f.playRest()
		f.waitWrites(40)
		down()
		up()
	}},
	{name: "slow trickle of bytes", env: map[string]string{"DTMFD_INPUT_TIMEOUT": "2s"},
		run: func(f *faultRun) {
			bw := f.p.toxic(f.t, "bandwidth", "downstream", map[string]any{"rate": 4})
			sl := f.p.toxic(f.t, "slicer", "downstream",
				map[string]any{"average_size": 16, "size_variation": 8, "delay": 2000})
			f.playRest()
			f.waitWrites(40)
			sl()
			bw()
		}},
	{name: "platform unreachable", run: func(f *faultRun) {
		f.p.emu.ExpireTokens()
		f.p.proxy.Stop()
		waitWithin(f.t, "failed connects", 10*time.Second, func() bool {
			return f.logs.count("stream connect failed") >= 2
		})
		if err := f.p.proxy.Start(); err != nil {
			f.t.Fatal(err)
		}
		f.playRest()
	}},

	// The token endpoint.
	{name: "token endpoint down", run: tokenRefused(tokenHangUp, 3),
		check: metricAtLeast("dtmfd_token_failures_total", 2)},
	{name: "token endpoint slow", run: func(f *faultRun) {
		f.p.setFault("token", tokenStall(2*time.Second))
		f.p.emu.ExpireTokens()
		f.p.emu.CloseStreams(websocket.StatusGoingAway, "restarting")
		f.playRest()
		f.waitWrites(40)
		f.p.setFault("token", nil)
	}},
	{name: "token endpoint answers 500", run: func(f *faultRun) {
		f.p.emu.FailTokens(3, http.StatusInternalServerError)
		f.p.emu.ExpireTokens()
		f.p.emu.CloseStreams(websocket.StatusGoingAway, "restarting")
		f.playRest()
	}, check: metricAtLeast("dtmfd_token_failures_total", 3)},
	{name: "token endpoint answers nonsense", run: tokenRefused(tokenNonsense, 3),
		check: metricAtLeast("dtmfd_token_failures_total", 2)},
	{name: "tokens expire early", run: func(f *faultRun) {
		f.p.emu.ExpireTokens()
		f.playRest()
	}, check: metricAtLeast("dtmfd_token_refreshes_total", 2)},
	{name: "token endpoint down while writes wait", run: func(f *faultRun) {
		f.p.emu.FailWrites(1<<30, http.StatusServiceUnavailable, nil)
		f.playRest()
		f.waitDecided(40)
		before := len(f.p.seen("token"))
		f.p.setFault("token", tokenHangUp)
		f.p.emu.ExpireTokens()
		f.p.emu.FailWrites(0, 0, nil)
		waitWithin(f.t, "token requests", 10*time.Second, func() bool {
			rs := f.p.seen("token")
			return len(rs) > before && time.Since(rs[before].at) > 1500*time.Millisecond
		})
		f.p.setFault("token", nil)
	}},

	// The variables endpoint.
	{name: "writes answered 429 with Retry-After seconds",
		run: writeFault(15, http.StatusTooManyRequests, func() http.Header {
			return http.Header{"Retry-After": {"1"}}
		}), check: retryAfterHonoured(950 * time.Millisecond)},
	{name: "writes answered 429 with Retry-After date",
		run: writeFault(15, http.StatusTooManyRequests, func() http.Header {
			at := time.Now().Add(3 * time.Second).UTC().Format(http.TimeFormat)
			return http.Header{"Retry-After": {at}}
		}), check: retryAfterHonoured(time.Second)},
	{name: "writes answered 500", run: writeFault(15, http.StatusInternalServerError, nil)},
	{name: "writes answered 502", run: writeFault(15, http.StatusBadGateway, nil)},
	{name: "writes answered 503", run: writeFault(15, http.StatusServiceUnavailable, nil)},
	{name: "writes answered 504", run: writeFault(15, http.StatusGatewayTimeout, nil)},
	{name: "writes time out", run: func(f *faultRun) {
		// Longer than the platform client's 10 s timeout.
		f.p.emu.DelayWrites(11 * time.Second)
		f.playRest()
		waitWithin(f.t, "a write to hang", 10*time.Second, func() bool {
			return f.p.emu.WriteRequests() > 20
		})
		f.p.emu.DelayWrites(0)
	}},
	{name: "write connections reset", run: func(f *faultRun) {
		remove := f.p.toxic(f.t, "reset_peer", "upstream", map[string]any{"timeout": 0})
		f.playRest()
		waitWithin(f.t, "writes to fail", 10*time.Second, func() bool {
			return f.logs.count("write failed; retrying") >= 10
		})
		remove()
	}},
	{name: "write replies lost after the platform accepted them", atLeastOnce: true,
		run: func(f *faultRun) {
			f.p.emu.FailWrites(1<<30, http.StatusServiceUnavailable, nil)
			f.playRest()
			f.waitDecided(40)
			remove := f.p.toxic(f.t, "reset_peer", "downstream", map[string]any{"timeout": 0})
			f.p.emu.FailWrites(0, 0, nil)
			waitWithin(f.t, "a write accepted twice", 10*time.Second, func() bool {
				return len(f.p.emu.Writes()) > 40
			})
			remove()
		}},
	{name: "one interaction rejected with 400", rejected: "call-0025", run: func(f *faultRun) {
		f.p.emu.RejectInteraction("call-0025", http.StatusBadRequest)
		f.playRest()
	}, check: metricAtLeast("dtmfd_dead_letters_total", 1)},
}

func TestFaults(t *testing.T) {
	// The rows spend their time waiting on timers and the network, so
	// they run side by side, more at once than -parallel's default of
	// one per core; t.Run may be called from several goroutines.
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for _, tt := range faultCases {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			t.Run(tt.name, func(t *testing.T) {
				p := newProxied(t)
				r := launchAgainst(t, p, tt.env)
				rng := rand.New(rand.NewPCG(7, 8))
				calls := scripts(40, rng)
				f := &faultRun{t: t, rigged: r, rng: rng, rest: calls[20:]}

				play(p.emu, calls[:20], rng)
				f.waitSettled(20)
				tt.run(f)

				r.waitReady(t, 20*time.Second)
				want := slices.DeleteFunc(slices.Clone(calls), func(c script) bool { return c.id == tt.rejected })
				if tt.atLeastOnce {
					checkAtLeastOnce(t, p.emu, want)
				} else {
					checkWrites(t, p.emu, want)
				}
				f.checkBackoff()
				checkDeadLetters(t, r.dead, calls, tt.rejected)
				if tt.check != nil {
					tt.check(f)
				}
			})
		})
	}
	wg.Wait()
}

// checkAtLeastOnce asserts that each call got its expected write, any
// copies of it carry the same values, nothing else was written, and at
// least one write did arrive twice (else the row tested nothing).
func checkAtLeastOnce(t *testing.T, emu *emulator.Emulator, calls []script) {
	t.Helper()
	got := map[string][]string{}
	waitWithin(t, "a write for every call", 30*time.Second, func() bool {
		clear(got)
		for _, w := range emu.Writes() {
			vars := make([]variables.Variable, len(w.Variables))
			for i, v := range w.Variables {
				vars[i] = variables.Variable(v)
			}
			got[w.InteractionID] = append(got[w.InteractionID], wireVars(vars))
		}
		return !slices.ContainsFunc(calls, func(c script) bool { return len(got[c.id]) == 0 })
	})
	twice := 0
	for _, c := range calls {
		g := got[c.id]
		if len(g) == 0 || slices.ContainsFunc(g, func(s string) bool { return s != c.want }) {
			t.Errorf("%s: writes %q, want [%s] at least once and nothing else", c.id, g, c.want)
		}
		if len(g) > 1 {
			twice++
		}
		delete(got, c.id)
	}
	if len(got) > 0 {
		t.Errorf("writes for calls that were never made: %v", keys(got))
	}
	if twice == 0 {
		t.Error("no write arrived twice: the replies were not lost")
	}
}

// checkDeadLetters asserts that the dead-letter file holds exactly the
// rejected call, with its decision, or nothing when rejected is empty.
func checkDeadLetters(t *testing.T, path string, calls []script, rejected string) {
	t.Helper()
	recs := readDeadLetters(t, path)
	if rejected == "" {
		if len(recs) > 0 {
			t.Errorf("%d dead letters, want none: %+v", len(recs), recs)
		}
		return
	}
	if len(recs) != 1 || recs[0].InteractionID != rejected || recs[0].Status != http.StatusBadRequest {
		t.Fatalf("dead letters = %+v, want one for %s with status 400", recs, rejected)
	}
	for _, c := range calls {
		if c.id == rejected && wireVars(recs[0].Variables) != c.want {
			t.Errorf("dead letter holds %s, want %s", wireVars(recs[0].Variables), c.want)
		}
	}
	if recs[0].Attempts != 1 {
		t.Errorf("a 400 was tried %d times, want once: it is permanent", recs[0].Attempts)
	}
}

// readDeadLetters reads a dead-letter file; a missing one holds none.
func readDeadLetters(t testing.TB, path string) []deadletter.Record {
	t.Helper()
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := deadletter.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// wireVars renders variables as checkWrites compares them.
func wireVars(vars []variables.Variable) string {
	parts := make([]string, len(vars))
	for i, v := range vars {
		parts[i] = v.Name + "=" + v.Value
	}
	return strings.Join(parts, " ")
}
