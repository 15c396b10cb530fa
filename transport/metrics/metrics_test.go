package metrics

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestStreamDisconnectedGroupsCloseCodes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		code int
		want string
	}{
		{"normal closure", 1000, "1000"},
		{"going away", 1001, "1001"},
		{"abnormal closure", 1006, "1006"},
		{"policy violation", 1008, "1008"},
		{"message too big", 1009, "1009"},
		{"internal error", 1011, "1011"},
		{"service restart", 1012, "1012"},
		{"try again later", 1013, "1013"},
		{"dropped without a close frame", -1, "none"},
		{"reserved code", 1004, "other"},
		{"application code", 4000, "other"},
		{"private code", 4999, "other"},
		{"out of range", 65535, "other"},
		{"zero", 0, "other"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := New(nil)
			m.StreamDisconnected(tt.code)
			if got := testutil.ToFloat64(m.StreamDisconnects.WithLabelValues(tt.want)); got != 1 {
				t.Errorf("disconnects{code=%q} = %v after code %d, want 1", tt.want, got, tt.code)
			}
			if n := testutil.CollectAndCount(m.StreamDisconnects); n != 1 {
				t.Errorf("%d code series after one disconnect, want 1", n)
			}
		})
	}
}

// TestCloseCodeLabelsAreBounded feeds every code a peer can send and
// checks the label takes a small fixed set of values.
func TestCloseCodeLabelsAreBounded(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for code := -1; code <= 0xffff; code++ {
		seen[CloseCodeLabel(code)] = true
	}
	if len(seen) > len(closeCodes)+2 {
		t.Errorf("%d label values for close codes, want at most %d: %v", len(seen), len(closeCodes)+2, seen)
	}
}

// TestSimulatorOutcomesStartAtZero checks that a dashboard sees the
// simulator's refusals as zero before the first one.
func TestSimulatorOutcomesStartAtZero(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	New(reg)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{OutcomeMalformed: false, OutcomeUnauthorized: false}
	for _, f := range families {
		if f.GetName() != "dtmfd_events_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if _, ok := want[labels["outcome"]]; ok && labels["type"] == TypeSimulator {
				want[labels["outcome"]] = true
			}
		}
	}
	for o, found := range want {
		if !found {
			t.Errorf("events{type=simulator,outcome=%s} not exported before the first request", o)
		}
	}
}

func TestWriteAttemptCountsByStatusClass(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		status      int
		class       string
		rateLimited float64
	}{
		{"accepted", 202, "2xx", 0},
		{"no content", 204, "2xx", 0},
		{"rate limited", 429, "4xx", 1},
		{"not found", 404, "4xx", 0},
		{"unavailable", 503, "5xx", 0},
		{"no status: the request failed", 0, "error", 0},
		{"a status past 5xx", 799, "7xx", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := New(nil)
			m.WriteAttempt(tt.status)
			if got := testutil.ToFloat64(m.WriteAttempts.WithLabelValues(tt.class)); got != 1 {
				t.Errorf("write attempts{class=%q} = %v after status %d, want 1", tt.class, got, tt.status)
			}
			for _, other := range []string{"2xx", "4xx", "5xx", "error"} {
				if other == tt.class {
					continue
				}
				if got := testutil.ToFloat64(m.WriteAttempts.WithLabelValues(other)); got != 0 {
					t.Errorf("write attempts{class=%q} = %v after status %d, want 0", other, got, tt.status)
				}
			}
			if got := testutil.ToFloat64(m.WriteRateLimited); got != tt.rateLimited {
				t.Errorf("rate limited = %v after status %d, want %v", got, tt.status, tt.rateLimited)
			}
		})
	}
}

// TestMetricsFollowPrometheusConventions lints every family, each with a
// sample, as Prometheus' own promlint does: names, units, suffixes and
// help texts.
func TestMetricsFollowPrometheusConventions(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m := New(reg)
	m.Event("dtmf", OutcomeAccepted)
	m.CallOpened()
	m.CallEnded("completed", "confirm", 3*time.Millisecond)
	m.WriteAttempt(202)
	m.WriteRetry()
	m.WriteAccepted(5 * time.Millisecond)
	m.DeadLetter()
	m.Backlog(1)
	m.Members(1)
	m.StreamConnected()
	m.StreamDisconnected(1000)
	m.TokenRefreshed()
	m.TokenFailed()
	m.IVRReloaded("applied")

	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}

	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(families) < 15 {
		t.Errorf("%d metric families gathered, want every one of dtmfd's", len(families))
	}
}
