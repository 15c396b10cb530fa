package main

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// TestDesignsWriteEachCallOnce holds every measured design to the same
// standard: a thousand calls through the example flow end in exactly one
// write each, carrying that call's own path. A design that drops, repeats
// or mixes up writes would make its figures meaningless.
func TestDesignsWriteEachCallOnce(t *testing.T) {
	for _, d := range []design{actorDesign, tutorialDesign, poolDesign} {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
			defer cancel()

			o := designOptions{inputTimeout: time.Minute, logLevel: slog.LevelInfo}
			res, err := runE2E(ctx, d, 1000, 100, o)
			if err != nil {
				t.Fatal(err)
			}
			if res.failed != 0 {
				t.Errorf("%d writes given up, want none", res.failed)
			}
		})
	}
}

// TestSessionMap checks the reference designs' IVR engine against the
// contract's example tree, with time driven by synctest.
func TestSessionMap(t *testing.T) {
	type write struct {
		id   string
		vars []restVariable
	}
	completed := []restVariable{
		{Name: "ivr_selection", Value: `["2","A","1"]`},
		{Name: "ivr_status", Value: "completed"},
	}
	fallback := []restVariable{{Name: "ivr_status", Value: "timeout_fallback"}}

	tests := []struct {
		name string
		keys []string      // pressed one second apart
		wait time.Duration // after the last key
		want []write
	}{
		{"completes", []string{"2", "A", "1"}, time.Minute, []write{{"c", completed}}},
		{"ignores a wrong key", []string{"2", "9", "A", "1"}, time.Minute,
			[]write{{"c", completed}}},
		{"times out after silence", []string{"2", "A"}, 10 * time.Second, []write{{"c", fallback}}},
		{"waits out the timeout", []string{"2", "A"}, 9 * time.Second, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				var (
					mu  sync.Mutex
					got []write
				)
				m := newSessionMap(10*time.Second, func(id string, vars []restVariable) {
					mu.Lock()
					defer mu.Unlock()
					got = append(got, write{id, vars})
				}, func() {})
				defer m.close()

				for _, k := range tt.keys {
					m.digit("c", k)
					time.Sleep(time.Second)
				}
				time.Sleep(tt.wait - time.Second)
				synctest.Wait()

				mu.Lock()
				defer mu.Unlock()
				if !slices.EqualFunc(got, tt.want, func(a, b write) bool {
					return a.id == b.id && slices.Equal(a.vars, b.vars)
				}) {
					t.Errorf("writes = %v, want %v", got, tt.want)
				}
			})
		})
	}
}

func TestPercentiles(t *testing.T) {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	thousand := make([]time.Duration, 1000)
	for i := range thousand {
		thousand[i] = ms(1000 - i)
	}
	tests := []struct {
		name string
		in   []time.Duration
		want percentiles
	}{
		{"empty", nil, percentiles{}},
		{"one", []time.Duration{ms(3)},
			percentiles{n: 1, p50: ms(3), p99: ms(3), p999: ms(3), max: ms(3)}},
		{"thousand, unsorted", thousand,
			percentiles{n: 1000, p50: ms(500), p99: ms(990), p999: ms(999), max: ms(1000)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := percentilesOf(tt.in); got != tt.want {
				t.Errorf("percentilesOf = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestIngressRowsCompareWithFastestCeiling checks the ingress share is
// taken of the best ceiling run, while the ingress itself is the median.
func TestIngressRowsCompareWithFastestCeiling(t *testing.T) {
	run := func(perSecond int) throughput {
		return throughput{n: perSecond + 1, elapsed: time.Second, cpu: time.Second}
	}
	b := &bench{
		c:       &config{ceilingFrames: 1000, ingressKeys: 1000},
		ceiling: []throughput{run(200000), run(400000), run(250000)},
		ingress: []throughput{run(300000), run(280000), run(320000)},
	}
	rows := b.ingressRows()
	if len(rows) != 2 {
		t.Fatalf("got %d rows, want 2", len(rows))
	}
	if got := rows[0].cells[0]; !strings.HasPrefix(got, "400,000 ") {
		t.Errorf("ceiling cell = %q, want the fastest run, 400,000", got)
	}
	if got := rows[1].cells[0]; !strings.HasPrefix(got, "300,000 = 75% of ceiling") {
		t.Errorf("ingress cell = %q, want the median, 300,000 = 75%% of ceiling", got)
	}
}

func TestCommas(t *testing.T) {
	tests := []struct {
		in   float64
		want string
	}{
		{0, "0"},
		{999.4, "999"},
		{1000, "1,000"},
		{212345.6, "212,346"},
		{-1234567, "-1,234,567"},
	}
	for _, tt := range tests {
		if got := commas(tt.in); got != tt.want {
			t.Errorf("commas(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestEventsInterleaveWindows(t *testing.T) {
	var got []string
	for ev := range events(0, 3, 2, 0, 3) {
		got = append(got, ev.CallID[len(ev.CallID)-1:]+ev.Digit)
	}
	want := []string{"01", "12", "0A", "1B", "01", "11", "23", "2A", "21"}
	if !slices.Equal(got, want) {
		t.Errorf("events = %v, want %v", got, want)
	}
}

func FuzzParseInts(f *testing.F) {
	f.Add("10000,100000")
	f.Add(" 5 ")
	f.Add("1,,2")
	f.Fuzz(func(t *testing.T, s string) {
		ns, err := parseInts(s)
		if err != nil {
			return
		}
		for _, n := range ns {
			if n < 1 {
				t.Fatalf("parseInts(%q) accepted %d", s, n)
			}
		}
	})
}

func FuzzCallIndex(f *testing.F) {
	f.Add(0)
	f.Add(1234567)
	f.Fuzz(func(t *testing.T, i int) {
		if i < 0 {
			return
		}
		if got := callIndex(callID(i)); got != i {
			t.Fatalf("callIndex(callID(%d)) = %d", i, got)
		}
	})
}
