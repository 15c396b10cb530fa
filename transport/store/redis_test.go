package store_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dtmfd/dtmfd/actors"
	"github.com/dtmfd/dtmfd/transport/store"
)

// server is one throwaway redis-server shared by the package's tests.
// Each test keeps to its own key prefix, so tests may run in parallel.
var server struct {
	once sync.Once
	cmd  *exec.Cmd
	url  string
	err  error
}

// serverURL starts the shared server on first use and returns its URL.
func serverURL(t *testing.T) string {
	t.Helper()
	server.once.Do(func() { server.url, server.err = startServer() })
	if server.err != nil {
		t.Fatal(server.err)
	}
	return server.url
}

// startServer runs redis-server on a free loopback port, keeping nothing
// on disk, and waits until it accepts connections.
func startServer() (string, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return "", errors.New("redis-server is not installed (apt-get install redis-server)")
	}
	addr, err := freeAddr()
	if err != nil {
		return "", err
	}
	_, port, _ := net.SplitHostPort(addr)

	cmd := exec.Command(bin, "--port", port, "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no")
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("start redis-server: %w", err)
	}
	server.cmd = cmd

	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return "redis://" + addr + "/0", nil
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("redis-server did not start: %w", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stopServer ends the shared server if a test started it.
func stopServer() {
	if server.cmd == nil {
		return
	}
	_ = server.cmd.Process.Kill()
	_ = server.cmd.Wait()
}

// freeAddr returns a loopback address nothing listens on.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find free port: %w", err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr, nil
}

// openStore opens a store on the shared server under prefix, closed when
// the test ends.
func openStore(t *testing.T, prefix string) *store.Redis {
	t.Helper()
	s, err := store.Open(t.Context(), store.Options{URL: serverURL(t), Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// eventually polls cond until it holds, failing the test after a few
// seconds. Expiry is Redis's own, so the test waits on the real clock.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still not true after 5s: %s", what)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// load returns a call's state as a string, failing the test on an error.
func load(t *testing.T, s *store.Redis, id string) (string, int64) {
	t.Helper()
	state, v, err := s.Load(t.Context(), id)
	if err != nil {
		t.Fatalf("Load(%q): %v", id, err)
	}
	if state == nil {
		return "<none>", v
	}
	return string(state), v
}

// save saves a call with no timer, failing the test on an error.
func save(t *testing.T, s *store.Redis, id string, v int64, state string, ttl time.Duration) bool {
	t.Helper()
	ok, err := s.Save(t.Context(), id, v, []byte(state), time.Time{}, ttl)
	if err != nil {
		t.Fatalf("Save(%q, %d): %v", id, v, err)
	}
	return ok
}

func TestOpen(t *testing.T) {
	t.Parallel()
	const secret = "s3cret-pass"
	dead, err := freeAddr()
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		url     string
		wantErr string
	}{
		{name: "reachable server", url: serverURL(t)},
		{name: "empty URL", url: "", wantErr: "parse store URL"},
		{name: "wrong scheme", url: "http://127.0.0.1:6379/0", wantErr: "parse store URL"},
		{
			name:    "database not a number",
			url:     "redis://127.0.0.1:6379/zero",
			wantErr: "parse store URL",
		},
		{
			name:    "bad URL with a password",
			url:     "redis://:" + secret + "@127.0.0.1:port/0",
			wantErr: "parse store URL",
		},
		{
			name:    "nothing listening",
			url:     "redis://:" + secret + "@" + dead + "/0",
			wantErr: "connect store " + dead,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()

			s, err := store.Open(ctx, store.Options{URL: tt.url})
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				s.Close()
				return
			}

			if err == nil {
				s.Close()
				t.Fatalf("Open(%q) succeeded; want an error", tt.url)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Open error = %q; want it to contain %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("Open error %q shows the password", err)
			}
		})
	}
}

func TestLoadUnknownCall(t *testing.T) {
	t.Parallel()
	s := openStore(t, t.Name())

	state, v, err := s.Load(t.Context(), "never-saved")
	if err != nil || state != nil || v != 0 {
		t.Fatalf("Load of an unknown call = %q, %d, %v; want nil, 0, nil", state, v, err)
	}
}

func TestSaveVersions(t *testing.T) {
	t.Parallel()

	type step struct {
		version int64
		state   string
		wantOK  bool
	}
	tests := []struct {
		name        string
		steps       []step
		wantState   string
		wantVersion int64
	}{
		{
			name:        "first save is version one",
			steps:       []step{{1, "a", true}},
			wantState:   "a",
			wantVersion: 1,
		},
		{
			name:        "first save past version one is refused",
			steps:       []step{{2, "a", false}},
			wantState:   "<none>",
			wantVersion: 0,
		},
		{
			name:        "version zero is refused",
			steps:       []step{{0, "a", false}},
			wantState:   "<none>",
			wantVersion: 0,
		},
		{
			name:        "each save follows the last",
			steps:       []step{{1, "a", true}, {2, "b", true}, {3, "c", true}},
			wantState:   "c",
			wantVersion: 3,
		},
		{
			name:        "stale version keeps the newer state",
			steps:       []step{{1, "a", true}, {2, "b", true}, {2, "stale", false}},
			wantState:   "b",
			wantVersion: 2,
		},
		{
			name:        "older version keeps the newer state",
			steps:       []step{{1, "a", true}, {2, "b", true}, {3, "c", true}, {1, "old", false}},
			wantState:   "c",
			wantVersion: 3,
		},
		{
			name:        "skipped version is refused",
			steps:       []step{{1, "a", true}, {3, "c", false}},
			wantState:   "a",
			wantVersion: 1,
		},
		{
			name:        "empty state is kept",
			steps:       []step{{1, "", true}},
			wantState:   "",
			wantVersion: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := openStore(t, t.Name())

			for i, st := range tt.steps {
				if ok := save(t, s, "call", st.version, st.state, time.Hour); ok != st.wantOK {
					t.Fatalf("step %d: Save(version %d) = %v; want %v",
						i, st.version, ok, st.wantOK)
				}
			}

			state, v := load(t, s, "call")
			if state != tt.wantState || v != tt.wantVersion {
				t.Errorf("Load = %q, %d; want %q, %d", state, v, tt.wantState, tt.wantVersion)
			}
		})
	}
}

func TestSaveRaceHasOneWinner(t *testing.T) {
	t.Parallel()
	s := openStore(t, t.Name())
	save(t, s, "call", 1, "start", time.Hour)

	const activations = 8
	won := make([]bool, activations)
	errs := make([]error, activations)
	var wg sync.WaitGroup
	for i := range activations {
		wg.Go(func() {
			won[i], errs[i] = s.Save(t.Context(), "call", 2, fmt.Appendf(nil, "from %d", i),
				time.Time{}, time.Hour)
		})
	}
	wg.Wait()

	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	winner := slices.Index(won, true)
	if n := len(slices.DeleteFunc(slices.Clone(won), func(w bool) bool { return !w })); n != 1 {
		t.Fatalf("%d activations saved version 2; want exactly 1", n)
	}
	state, v := load(t, s, "call")
	if want := fmt.Sprintf("from %d", winner); state != want || v != 2 {
		t.Errorf("Load = %q, %d; want the winner's %q, 2", state, v, want)
	}
}

func TestOverdue(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_750_000_000, 0)

	// A save with timer set saves the call with a wake time of now+wake;
	// without it, the call has no timer.
	type save struct {
		id    string
		timer bool
		wake  time.Duration
	}
	due := func(id string, wake time.Duration) save { return save{id, true, wake} }
	idle := func(id string) save { return save{id: id} }

	tests := []struct {
		name  string
		saves []save
		limit int
		want  []string
	}{
		{
			name:  "nothing saved",
			limit: 10,
		},
		{
			name: "only wake times passed",
			saves: []save{
				due("late", -2*time.Second), due("later", time.Second), due("due", -time.Second),
			},
			limit: 10,
			want:  []string{"late", "due"},
		},
		{
			name: "at most the limit, longest overdue first",
			saves: []save{
				due("c", -time.Second), due("a", -3*time.Second), due("b", -2*time.Second),
			},
			limit: 2,
			want:  []string{"a", "b"},
		},
		{
			name:  "limit zero lists none",
			saves: []save{due("a", -time.Second)},
			limit: 0,
		},
		{
			name:  "call with no timer is not listed",
			saves: []save{idle("idle"), due("due", -time.Second)},
			limit: 10,
			want:  []string{"due"},
		},
		{
			name:  "timer cleared by a later save",
			saves: []save{due("a", -time.Second), idle("a")},
			limit: 10,
		},
		{
			name:  "timer moved past now",
			saves: []save{due("a", -time.Second), due("a", time.Hour)},
			limit: 10,
		},
		{
			name:  "timer moved before now",
			saves: []save{due("a", time.Hour), due("a", -time.Second)},
			limit: 10,
			want:  []string{"a"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := openStore(t, t.Name())

			versions := map[string]int64{}
			for _, sv := range tt.saves {
				var wake time.Time
				if sv.timer {
					wake = now.Add(sv.wake)
				}
				versions[sv.id]++
				ok, err := s.Save(t.Context(), sv.id, versions[sv.id], []byte("s"), wake, time.Hour)
				if err != nil || !ok {
					t.Fatalf("Save(%q) = %v, %v", sv.id, ok, err)
				}
			}

			got, err := s.Overdue(t.Context(), now, tt.limit)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("Overdue = %q; want %q", got, tt.want)
			}
		})
	}
}

func TestClaim(t *testing.T) {
	t.Parallel()

	// A step claims decision for owner, or, with no owner, accepts it.
	type step struct {
		decision string
		owner    string
		want     actors.Claim
	}
	claim := func(decision, owner string, want actors.Claim) step {
		return step{decision, owner, want}
	}
	accept := func(decision string) step { return step{decision: decision} }

	tests := []struct {
		name  string
		steps []step
	}{
		{
			name:  "free decision is mine",
			steps: []step{claim("d", "a", actors.ClaimMine)},
		},
		{
			name:  "owner claims again",
			steps: []step{claim("d", "a", actors.ClaimMine), claim("d", "a", actors.ClaimMine)},
		},
		{
			name: "another owner is held off",
			steps: []step{
				claim("d", "a", actors.ClaimMine),
				claim("d", "b", actors.ClaimHeld),
				claim("d", "b", actors.ClaimHeld),
				claim("d", "a", actors.ClaimMine),
			},
		},
		{
			name: "accepted decision is delivered to everyone",
			steps: []step{
				claim("d", "a", actors.ClaimMine),
				accept("d"),
				claim("d", "a", actors.ClaimDelivered),
				claim("d", "b", actors.ClaimDelivered),
			},
		},
		{
			name:  "accepted without a claim",
			steps: []step{accept("d"), claim("d", "a", actors.ClaimDelivered)},
		},
		{
			name: "decisions are claimed apart",
			steps: []step{
				claim("d1", "a", actors.ClaimMine),
				claim("d2", "b", actors.ClaimMine),
				accept("d1"),
				claim("d2", "a", actors.ClaimHeld),
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := openStore(t, t.Name())

			for i, st := range tt.steps {
				if st.owner == "" {
					if err := s.Accept(t.Context(), "c", st.decision, time.Hour); err != nil {
						t.Fatalf("step %d: Accept: %v", i, err)
					}
					continue
				}
				got, err := s.Claim(t.Context(), st.decision, st.owner, time.Hour)
				if err != nil {
					t.Fatalf("step %d: Claim: %v", i, err)
				}
				if got != st.want {
					t.Fatalf("step %d: Claim(%q, %q) = %v; want %v",
						i, st.decision, st.owner, got, st.want)
				}
			}
		})
	}
}

func TestExpiry(t *testing.T) {
	t.Parallel()
	const ttl = time.Second

	t.Run("state", func(t *testing.T) {
		t.Parallel()
		s := openStore(t, t.Name())
		save(t, s, "call", 1, "a", ttl)
		if state, _ := load(t, s, "call"); state != "a" {
			t.Fatalf("Load right after Save = %q; want %q", state, "a")
		}

		eventually(t, "state gone", func() bool {
			state, _ := load(t, s, "call")
			return state == "<none>"
		})
		if !save(t, s, "call", 1, "again", time.Hour) {
			t.Error("Save of version 1 after expiry refused; want the call to start afresh")
		}
	})

	t.Run("later save renews the TTL", func(t *testing.T) {
		t.Parallel()
		s := openStore(t, t.Name())
		save(t, s, "call", 1, "a", ttl)
		save(t, s, "call", 2, "b", time.Hour)
		save(t, s, "marker", 1, "m", ttl)

		eventually(t, "marker gone", func() bool {
			state, _ := load(t, s, "marker")
			return state == "<none>"
		})
		if state, v := load(t, s, "call"); state != "b" || v != 2 {
			t.Errorf("Load = %q, %d; want %q, 2 kept by the longer TTL", state, v, "b")
		}
	})

	t.Run("expired call leaves the overdue list", func(t *testing.T) {
		t.Parallel()
		s := openStore(t, t.Name())
		now := time.Now()
		ok, err := s.Save(t.Context(), "call", 1, []byte("a"), now.Add(-time.Second), ttl)
		if err != nil || !ok {
			t.Fatalf("Save = %v, %v", ok, err)
		}

		eventually(t, "state gone", func() bool {
			state, _ := load(t, s, "call")
			return state == "<none>"
		})
		ids, err := s.Overdue(t.Context(), now, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(ids) != 0 {
			t.Errorf("Overdue = %q after the call expired; want none", ids)
		}
	})

	t.Run("expired calls do not crowd out overdue ones", func(t *testing.T) {
		t.Parallel()
		s := openStore(t, t.Name())
		now := time.Now()
		for _, id := range []string{"gone1", "gone2", "gone3"} {
			ok, err := s.Save(t.Context(), id, 1, []byte("a"), now.Add(-time.Hour), ttl)
			if err != nil || !ok {
				t.Fatalf("Save(%q) = %v, %v", id, ok, err)
			}
		}
		ok, err := s.Save(t.Context(), "live", 1, []byte("a"), now.Add(-time.Second), time.Hour)
		if err != nil || !ok {
			t.Fatalf("Save(live) = %v, %v", ok, err)
		}

		eventually(t, "expired calls gone", func() bool {
			state, _ := load(t, s, "gone3")
			return state == "<none>"
		})
		ids, err := s.Overdue(t.Context(), now, 2)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(ids, []string{"live"}) {
			t.Errorf("Overdue = %q; want [live]", ids)
		}
	})

	t.Run("claim", func(t *testing.T) {
		t.Parallel()
		s := openStore(t, t.Name())
		claimBy := func(owner string) actors.Claim {
			c, err := s.Claim(t.Context(), "d", owner, ttl)
			if err != nil {
				t.Fatal(err)
			}
			return c
		}
		if c := claimBy("a"); c != actors.ClaimMine {
			t.Fatalf("first Claim = %v; want ClaimMine", c)
		}
		if c := claimBy("b"); c != actors.ClaimHeld {
			t.Fatalf("Claim by another owner = %v; want ClaimHeld", c)
		}

		eventually(t, "claim passes to another owner", func() bool {
			return claimBy("b") == actors.ClaimMine
		})
	})

	t.Run("accepted", func(t *testing.T) {
		t.Parallel()
		s := openStore(t, t.Name())
		if err := s.Accept(t.Context(), "c", "d", ttl); err != nil {
			t.Fatal(err)
		}
		claimBy := func(owner string) actors.Claim {
			c, err := s.Claim(t.Context(), "d", owner, time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			return c
		}
		if c := claimBy("a"); c != actors.ClaimDelivered {
			t.Fatalf("Claim after Accept = %v; want ClaimDelivered", c)
		}

		eventually(t, "delivery forgotten", func() bool {
			return claimBy("a") == actors.ClaimMine
		})
	})
}

func TestPrefixKeepsClustersApart(t *testing.T) {
	t.Parallel()
	a := openStore(t, t.Name()+"/a")
	b := openStore(t, t.Name()+"/b")
	now := time.Now()

	ok, err := a.Save(t.Context(), "call", 1, []byte("in a"), now.Add(-time.Second), time.Hour)
	if err != nil || !ok {
		t.Fatalf("Save in a = %v, %v", ok, err)
	}
	if state, _ := load(t, b, "call"); state != "<none>" {
		t.Errorf("Load in b = %q; want a's call unseen", state)
	}
	if !save(t, b, "call", 1, "in b", time.Hour) {
		t.Error("Save of version 1 in b refused; want b's call apart from a's")
	}
	if state, _ := load(t, a, "call"); state != "in a" {
		t.Errorf("Load in a = %q; want %q", state, "in a")
	}

	ids, err := b.Overdue(t.Context(), now, 10)
	if err != nil || len(ids) != 0 {
		t.Errorf("Overdue in b = %q, %v; want none of a's calls", ids, err)
	}

	for owner, s := range map[string]*store.Redis{"member-a": a, "member-b": b} {
		c, err := s.Claim(t.Context(), "d", owner, time.Hour)
		if err != nil || c != actors.ClaimMine {
			t.Errorf("Claim by %s = %v, %v; want each cluster's claim its own", owner, c, err)
		}
	}
}

func TestDefaultPrefix(t *testing.T) {
	t.Parallel()
	unset := openStore(t, "")
	named := openStore(t, "dtmfd")
	id := "call-" + t.Name()

	if !save(t, unset, id, 1, "a", time.Minute) {
		t.Fatal("Save refused")
	}
	if state, _ := load(t, named, id); state != "a" {
		t.Errorf("Load under prefix dtmfd = %q; want the call saved with no prefix", state)
	}
}

func TestClosedStoreFails(t *testing.T) {
	t.Parallel()
	s, err := store.Open(t.Context(), store.Options{URL: serverURL(t), Prefix: t.Name()})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		op   func(ctx context.Context) error
	}{
		{"Load", func(ctx context.Context) error {
			_, _, err := s.Load(ctx, "call")
			return err
		}},
		{"Save", func(ctx context.Context) error {
			_, err := s.Save(ctx, "call", 1, []byte("a"), time.Now(), time.Hour)
			return err
		}},
		{"Overdue", func(ctx context.Context) error {
			_, err := s.Overdue(ctx, time.Now(), 10)
			return err
		}},
		{"Claim", func(ctx context.Context) error {
			_, err := s.Claim(ctx, "d", "a", time.Hour)
			return err
		}},
		{"Accept", func(ctx context.Context) error {
			return s.Accept(ctx, "c", "d", time.Hour)
		}},
		{"Close", func(context.Context) error {
			return s.Close()
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if err := tt.op(t.Context()); err == nil {
				t.Errorf("%s on a closed store succeeded; want an error", tt.name)
			}
		})
	}
}

// A decided call is woken until its decision is delivered; accepting the
// decision stops that, and leaves other calls' wakes alone.
func TestAcceptStopsWaking(t *testing.T) {
	t.Parallel()
	s := openStore(t, t.Name())
	past := time.Now().Add(-time.Minute)
	for _, id := range []string{"decided", "waiting"} {
		ok, err := s.Save(t.Context(), id, 1, []byte("state"), past, time.Hour)
		if err != nil || !ok {
			t.Fatalf("Save %s = %v, %v", id, ok, err)
		}
	}
	if err := s.Accept(t.Context(), "decided", "decided#1", time.Hour); err != nil {
		t.Fatal(err)
	}
	got, err := s.Overdue(t.Context(), time.Now(), 10)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []string{"waiting"}) {
		t.Errorf("Overdue after Accept = %q, want only the call still waiting", got)
	}
}
