package main

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/dtmfd/dtmfd/transport/emulator"
	"github.com/dtmfd/dtmfd/transport/store"
)

// The cluster tests run dtmfd as separate processes on loopback, members
// of one cluster through the local (automanaged) provider, with their
// calls' state in a real redis-server and the platform played by the
// CXone emulator in the test process. Each call's Studio turns go to
// random members, as a Kubernetes Service would spread them.

// clusterRun is one cluster of dtmfd processes and what they share.
type clusterRun struct {
	t testing.TB
	// profile is the members' platform settings.
	profile map[string]string
	// alone runs the processes without a cluster, for comparison.
	alone bool
	emu   *emulator.CXone
	redis string
	name  string
	// slots are the members' addresses, fixed up front: every member
	// lists every discovery address, those of members still to join too.
	slots []memberSlot

	mu      sync.Mutex
	members []*member
}

// memberSlot is the ports of one member.
type memberSlot struct {
	http, remote, discovery int
}

// member is one running dtmfd process of the cluster.
type member struct {
	*child
	url string
	// leaving stops new requests to the member; inFlight counts those
	// already sent.
	leaving  atomic.Bool
	inFlight sync.WaitGroup
}

const (
	clusterIngressAuth = "cluster-test-ingress"
	clusterAccessKey   = "cluster-test-key"
	clusterKeySecret   = "cluster-test-key-secret"
)

// newClusterRun prepares slots for up to n members; none runs yet.
func newClusterRun(t testing.TB, n int) *clusterRun {
	t.Helper()
	emu := emulator.NewCXone(emulator.CXoneOptions{
		ClientID: testID, ClientSecret: testSecret,
		AccessKeyID: clusterAccessKey, AccessKeySecret: clusterKeySecret,
	})
	if err := emu.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { emu.Close() })

	r := newMembers(t, n, map[string]string{
		"DTMFD_PROFILE":           "cxone",
		"CXONE_ISSUER":            emu.URL(),
		"CXONE_CLIENT_ID":         testID,
		"CXONE_CLIENT_SECRET":     testSecret,
		"CXONE_ACCESS_KEY_ID":     clusterAccessKey,
		"CXONE_ACCESS_KEY_SECRET": clusterKeySecret,
		"DTMFD_INGRESS_AUTH":      clusterIngressAuth,
	})
	r.emu = emu
	return r
}

// newMembers prepares slots for up to n members on platform settings
// profile, with a redis-server of their own.
func newMembers(t testing.TB, n int, profile map[string]string) *clusterRun {
	t.Helper()
	r := &clusterRun{t: t, profile: profile, redis: startRedis(t),
		name: "dtmfd-" + strconv.Itoa(rand.IntN(1e9))}
	for range n {
		r.slots = append(r.slots,
			memberSlot{http: freePort(t), remote: freePort(t), discovery: freePort(t)})
	}
	return r
}

// start runs the member of slot i and waits until it is ready.
func (r *clusterRun) start(i int) *member {
	r.t.Helper()
	var peers []string
	for _, s := range r.slots {
		peers = append(peers, "127.0.0.1:"+strconv.Itoa(s.discovery))
	}
	s := r.slots[i]
	settings := map[string]string{
		"DTMFD_ADDR":                   "127.0.0.1:" + strconv.Itoa(s.http),
		"DTMFD_SHUTDOWN_GRACE":         "20s",
		"DTMFD_LOG_FORMAT":             "json",
		"DTMFD_LOG_LEVEL":              "info",
		"DTMFD_CLUSTER":                "local",
		"DTMFD_CLUSTER_NAME":           r.name,
		"DTMFD_CLUSTER_PORT":           strconv.Itoa(s.remote),
		"DTMFD_CLUSTER_DISCOVERY_PORT": strconv.Itoa(s.discovery),
		"DTMFD_CLUSTER_PEERS":          strings.Join(peers, ","),
		"DTMFD_STORE_URL":              r.redis,
		"DTMFD_DEAD_LETTERS":           filepath.Join(r.t.TempDir(), "dead-letters.jsonl"),
		// Races are told apart by where they happen, below; the exit
		// status stays that of dtmfd.
		"GORACE": "exitcode=0",
	}
	maps.Copy(settings, r.profile)
	if r.alone {
		settings["DTMFD_CLUSTER"] = "off"
	}
	c := startProcess(r.t, settings)
	m := &member{child: c, url: "http://127.0.0.1:" + strconv.Itoa(s.http)}
	r.t.Cleanup(func() {
		ours, library := raceReports(c.logs.all())
		for _, rep := range ours {
			r.t.Errorf("member %d reported a data race in dtmfd's code:\n%s", i, rep)
		}
		if len(library) > 0 {
			r.t.Logf("member %d reported %d data races inside protoactor-go alone "+
				"(see the README); the first:\n%s",
				i, len(library), library[0])
		}
	})
	waitHTTPReady(r.t, m.url, c)

	r.mu.Lock()
	r.members = append(r.members, m)
	r.mu.Unlock()
	return m
}

// raceReports returns the race detector's reports among a process's
// output lines, split into those where one of the racing accesses is made
// by dtmfd's own code and those made inside its libraries alone (the
// access's innermost frame decides).
func raceReports(lines []string) (ours, library []string) {
	var report []string
	mine, top := false, false
	for _, l := range lines {
		t := strings.TrimSpace(l)
		switch {
		case t == "WARNING: DATA RACE":
			report, mine, top = []string{t}, false, false
			continue
		case report == nil:
			continue
		case t == "==================":
			if mine {
				ours = append(ours, strings.Join(report, "\n"))
			} else {
				library = append(library, strings.Join(report, "\n"))
			}
			report = nil
			continue
		case strings.Contains(t, " at 0x"):
			// "Write at 0x... by goroutine 7:", "Previous read at ...":
			// the next function line is the access's innermost frame.
			top = true
		case top && strings.HasSuffix(t, ")"):
			top = false
			if strings.HasPrefix(t, "github.com/dtmfd/dtmfd/") || strings.HasPrefix(t, "main.") {
				mine = true
			}
		}
		report = append(report, t)
	}
	return ours, library
}

// waitMembers waits until every running member counts want members.
func (r *clusterRun) waitMembers(want int) {
	r.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for _, m := range r.live() {
		for {
			got, err := scrapeGauge(m.url, "dtmfd_cluster_members")
			if err == nil && got == float64(want) {
				break
			}
			if time.Now().After(deadline) {
				r.t.Fatalf("member at %s sees %v members (%v), want %d", m.url, got, err, want)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// live returns the members that take requests.
func (r *clusterRun) live() []*member {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*member
	for _, m := range r.members {
		if !m.leaving.Load() {
			out = append(out, m)
		}
	}
	return out
}

// pick returns a random member that takes requests, counted in flight.
func (r *clusterRun) pick() *member {
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		m := r.members[rand.IntN(len(r.members))]
		if !m.leaving.Load() {
			m.inFlight.Add(1)
			return m
		}
	}
}

// stop takes m away: SIGTERM once its requests in flight are answered,
// as a Service stops sending to a terminating pod first; SIGKILL at once,
// a crash in the middle of requests.
func (r *clusterRun) stop(m *member, sig syscall.Signal) {
	// Under pick's lock: a pick that saw the member still in has counted
	// its request by the time the lock is free, so Wait waits for it.
	r.mu.Lock()
	m.leaving.Store(true)
	r.mu.Unlock()
	if sig != syscall.SIGKILL {
		m.inFlight.Wait()
	}
	if err := m.cmd.Process.Signal(sig); err != nil {
		r.t.Errorf("signal %v: %v", sig, err)
	}
	err := m.wait(r.t, 30*time.Second)
	if sig == syscall.SIGTERM && err != nil {
		r.t.Errorf("member did not exit cleanly after SIGTERM: %v", err)
	}
}

// turn sends one numbered Studio turn of a call through a random member,
// and sends it again through another while the member fails to answer,
// as the REST API action does.
func (r *clusterRun) turn(ctx context.Context, contact, event, digits string,
	n int) (*emulator.StudioReply, error) {
	for {
		m := r.pick()
		studio := emulator.StudioClient{URL: m.url + studioPath, Auth: "Bearer " + clusterIngressAuth,
			HTTPClient: clusterHTTP}
		rep, err := studio.Send(ctx, emulator.StudioRequest{ContactID: contact, Event: event,
			Digits: digits, Turn: n})
		m.inFlight.Done()
		if err == nil || ctx.Err() != nil || !m.leaving.Load() {
			return rep, err
		}
	}
}

var clusterHTTP = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

// contactOf is the contact id of the i-th call.
func contactOf(i int) string { return strconv.Itoa(7_000_000 + i) }

// runCalls walks calls through the example flow, a turn at a time on
// random members, from 32 callers at once; event runs once a third of
// the calls are done, while the others go on.
func (r *clusterRun) runCalls(calls int, event func()) {
	r.t.Helper()
	var done atomic.Int64
	var wg, ev sync.WaitGroup
	work := make(chan int)
	errs := make(chan error, calls)
	for range 32 {
		wg.Go(func() {
			for i := range work {
				if err := r.walk(contactOf(i)); err != nil {
					errs <- err
				}
				if done.Add(1) == int64(calls/3) && event != nil {
					ev.Go(event)
				}
			}
		})
	}
	for i := range calls {
		work <- i
	}
	close(work)
	wg.Wait()
	ev.Wait()
	close(errs)
	n := 0
	for err := range errs {
		if n++; n <= 5 {
			r.t.Error(err)
		}
	}
	if n > 0 {
		r.t.Errorf("%d of %d calls failed", n, calls)
	}
}

// walk runs one call: its start, then keys 2, A and 1, the last of which
// must end it with the caller's selection.
func (r *clusterRun) walk(contact string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	turns := [][2]string{{"start", ""}, {"digits", "2"}, {"digits", "A"}, {"digits", "1"}}
	for i, tr := range turns {
		rep, err := r.turn(ctx, contact, tr[0], tr[1], i+1)
		if err != nil {
			return fmt.Errorf("call %s, turn %q: %w", contact, tr[1], err)
		}
		if rep.Error != "" {
			return fmt.Errorf("call %s, turn %q: %s", contact, tr[1], rep.Error)
		}
		if tr[1] == "1" && rep.End != "completed" {
			return fmt.Errorf("call %s: last turn answered %+v, want the call completed", contact, rep)
		}
	}
	return nil
}

// checkSignals waits for one signal per call and checks that each call
// got exactly one, with its selection. Up to repeats calls may have been
// signalled twice with the same values: a member killed after the
// platform accepted a write, and before it recorded that, leaves the
// decision to another member, and the platform's write has no idempotency
// key to tell the two apart.
func (r *clusterRun) checkSignals(calls, repeats int) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := r.emu.WaitSignals(ctx, calls); err != nil {
		r.t.Errorf("%v (got %d)", err, len(r.emu.Signals()))
	}
	time.Sleep(time.Second) // no late second writes

	got := map[string][][]string{}
	for _, s := range r.emu.Signals() {
		got[s.ContactID] = append(got[s.ContactID], s.Params)
	}
	want := []string{"completed", `["2","A","1"]`}
	bad, repeated := 0, 0
	for i := range calls {
		c := contactOf(i)
		if len(got[c]) == 2 && slices.Equal(got[c][0], want) && slices.Equal(got[c][1], want) {
			if repeated++; repeated <= repeats {
				r.t.Logf("call %s signalled twice with the same values", c)
				delete(got, c)
				continue
			}
		}
		if len(got[c]) != 1 || !slices.Equal(got[c][0], want) {
			if bad++; bad <= 5 {
				r.t.Errorf("call %s was signalled %v, want once with %q", c, got[c], want)
			}
		}
		delete(got, c)
	}
	if bad > 0 {
		r.t.Errorf("%d of %d calls without exactly their one signal", bad, calls)
	}
	if len(got) > 0 {
		r.t.Errorf("signals for %d contacts that made no call", len(got))
	}
}

func clusterCalls(t *testing.T) int {
	if s := os.Getenv("DTMFD_CLUSTER_CALLS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	return 10_000
}

func TestClusterCallsSurviveMembership(t *testing.T) {
	if testing.Short() {
		t.Skip("runs three dtmfd processes through 10,000 calls each")
	}
	tests := []struct {
		name  string
		event func(r *clusterRun)
		// repeats bounds the calls signalled twice: none, except after a
		// kill, where at most the killed member's writes in flight (its
		// 64 writers) may have been accepted and not yet recorded.
		repeats int
	}{
		{"member leaves on SIGTERM", func(r *clusterRun) { r.stop(r.members[1], syscall.SIGTERM) }, 0},
		{"member killed", func(r *clusterRun) { r.stop(r.members[1], syscall.SIGKILL) }, 64},
		{"member joins", func(r *clusterRun) { r.start(3) }, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newClusterRun(t, 4)
			for i := range 3 {
				r.start(i)
			}
			r.waitMembers(3)
			calls := clusterCalls(t)
			start := time.Now()
			r.runCalls(calls, func() { tt.event(r) })
			r.checkSignals(calls, tt.repeats)
			t.Logf("%d calls in %s", calls, time.Since(start).Round(time.Millisecond))
		})
	}
}

// freePort returns a loopback port that is free now. It is drawn from
// below the ephemeral range (32768 and up here), from which the kernel
// hands out the ports of outgoing connections and of ":0" listeners: a
// port from that range can go to another socket between this check and
// the member binding it, and a cluster run opens thousands of
// connections.
func freePort(t testing.TB) int {
	t.Helper()
	for range 1000 {
		port := 20000 + rand.IntN(12000)
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			continue
		}
		l.Close()
		return port
	}
	t.Fatal("no free loopback port from 20000 to 31999")
	return 0
}

// waitHTTPReady waits until url's /readyz answers 200, and fails at once
// if the process c serving it exits first.
func waitHTTPReady(t testing.TB, url string, c *child) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-c.done:
			t.Fatalf("%s exited before it was ready: %v", url, c.err)
		default:
		}
		res, err := http.Get(url + "/readyz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready: %v", url, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// startRedis runs a throwaway redis-server on a free loopback port and
// returns its URL. It keeps nothing on disk.
func startRedis(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatal("redis-server is not installed (apt-get install redis-server)")
	}
	port := freePort(t)
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})

	url := fmt.Sprintf("redis://127.0.0.1:%d/0", port)
	deadline := time.Now().Add(10 * time.Second)
	for {
		s, err := store.Open(context.Background(), store.Options{URL: url})
		if err == nil {
			s.Close()
			return url
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-server did not start: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// holder returns the running member that holds the voice stream.
func (r *clusterRun) holder() *member {
	r.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		var held []*member
		for _, m := range r.live() {
			if m.logs.count("singleton started on this member") > m.logs.count("singleton stopped on this member") {
				held = append(held, m)
			}
		}
		if len(held) == 1 {
			return held[0]
		}
		time.Sleep(50 * time.Millisecond)
	}
	r.t.Fatal("no single member holds the voice stream")
	return nil
}

// The tutorial's voice stream is one connection, held by one member. The
// calls it carries wait on dtmfd's own timers, kept by their grains.
// Taking away a member that hosts calls while they wait, and then the
// stream's holder, must lose neither a timeout nor a key.
func TestClusterStreamAndTimersSurviveMembers(t *testing.T) {
	if testing.Short() {
		t.Skip("runs three dtmfd processes")
	}
	emu := emulator.New(emulator.Options{ClientID: testID, ClientSecret: testSecret})
	if err := emu.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { emu.Close() })
	r := newMembers(t, 3, map[string]string{
		"CXONE_BASE_URL":      emu.URL(),
		"CXONE_CLIENT_ID":     testID,
		"CXONE_CLIENT_SECRET": testSecret,
		"DTMFD_INPUT_TIMEOUT": "4s",
	})
	for i := range 3 {
		r.start(i)
	}
	r.waitMembers(3)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	if err := emu.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}

	// Calls that stop after two keys and must time out, wherever their
	// grain lived, and calls that complete, keyed while the stream moves.
	const n = 300
	var waiting, completing []script
	for i := range n {
		waiting = append(waiting, script{id: fmt.Sprintf("wait-%03d", i), keys: "2A",
			want: "ivr_status=timeout_fallback"})
		completing = append(completing, script{id: fmt.Sprintf("done-%03d", i), keys: "2A1",
			want: `ivr_selection=["2","A","1"] ivr_status=completed`})
	}
	rng := newRand()
	play(emu, waiting, rng)
	for emu.Pending() > 0 && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}

	// Kill a member that does not hold the stream while its calls wait:
	// their timers go with it, and the others must wake them.
	holder := r.holder()
	for _, m := range r.live() {
		if m != holder {
			r.stop(m, syscall.SIGKILL)
			break
		}
	}

	// Then stop the holder, and key calls while no member holds the
	// stream: the platform keeps the frames, and the member that takes
	// the stream over must receive every one. (A frame already on the wire
	// when its holder closes can be lost: the tutorial's stream has no
	// acknowledgements.)
	r.stop(holder, syscall.SIGTERM)
	play(emu, completing, rng)
	if next := r.holder(); next == holder {
		t.Fatal("the stream stayed with the member that left")
	}

	checkWrites(t, emu, append(waiting, completing...))
}

// BenchmarkClusterMembers reports the calls per second that one, two and
// three member processes complete together (and, as members=0, one dtmfd
// process with no cluster and no store), each call four Studio turns
// sent to random members by 32 callers at once, its state saved in Redis
// at every turn and its decision signalled to the emulator. On two cores
// the members share the same CPUs, so more members add no capacity: the
// figures show what the cluster costs, and that nothing is lost.
//
//	go test -run '^$' -bench BenchmarkClusterMembers -benchtime 3000x ./cmd/dtmfd
func BenchmarkClusterMembers(b *testing.B) {
	for _, members := range []int{0, 1, 2, 3} {
		b.Run(fmt.Sprintf("members=%d", members), func(b *testing.B) {
			// No members: one process alone, calls in memory only.
			r := newClusterRun(b, max(members, 1))
			r.alone = members == 0
			for i := range max(members, 1) {
				r.start(i)
			}
			r.waitMembers(members)

			var next atomic.Int64
			var failed atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for range 32 {
				wg.Go(func() {
					for {
						i := next.Add(1) - 1
						if i >= int64(b.N) {
							return
						}
						if err := r.walk(contactOf(int(i))); err != nil {
							failed.Add(1)
						}
					}
				})
			}
			wg.Wait()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := r.emu.WaitSignals(ctx, b.N); err != nil {
				b.Fatal(err)
			}
			elapsed := time.Since(start)
			b.StopTimer()

			if n := failed.Load(); n > 0 {
				b.Fatalf("%d of %d calls failed", n, b.N)
			}
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "calls/s")
		})
	}
}
