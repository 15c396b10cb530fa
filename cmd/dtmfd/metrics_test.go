package main

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"

	"github.com/coder/websocket"
	promdto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// TestMetricsAfterARun scrapes /metrics after calls, a rate limit, a
// rejected write and a dropped stream, and checks every family an
// operator's dashboards rely on, with values that say what happened.
func TestMetricsAfterARun(t *testing.T) {
	s := startService(t, nil)
	rng := newRand()
	calls := scripts(40, rng)
	s.emu.FailWrites(3, http.StatusTooManyRequests, http.Header{"Retry-After": {"0"}})
	s.emu.RejectInteraction("rejected-call", http.StatusBadRequest)
	play(s.emu, calls[:20], rng)
	s.emu.CloseStreams(websocket.StatusInternalError, "maintenance")
	play(s.emu, calls[20:], rng)
	play(s.emu, []script{{id: "rejected-call", keys: "2A1"}}, rng)
	checkWrites(t, s.emu, calls)

	families := scrape(t, s.app)
	value := func(name string, labels map[string]string) float64 {
		var sum float64
		for _, m := range families[name].GetMetric() {
			if matches(m.GetLabel(), labels) {
				sum += m.GetCounter().GetValue() + m.GetGauge().GetValue() + float64(m.GetHistogram().GetSampleCount())
			}
		}
		return sum
	}

	for _, name := range []string{
		"dtmfd_events_total", "dtmfd_calls_open", "dtmfd_calls_ended_total",
		"dtmfd_decision_latency_seconds", "dtmfd_write_latency_seconds",
		"dtmfd_write_attempts_total", "dtmfd_write_retries_total", "dtmfd_write_rate_limited_total",
		"dtmfd_dead_letters_total", "dtmfd_write_backlog", "dtmfd_stream_connects_total",
		"dtmfd_stream_disconnects_total", "dtmfd_token_refreshes_total", "dtmfd_token_failures_total",
		"dtmfd_ivr_reloads_total", "dtmfd_build_info",
	} {
		if _, ok := families[name]; !ok {
			t.Errorf("family %s missing from /metrics", name)
		}
	}
	checks := []struct {
		name   string
		labels map[string]string
		want   func(float64) bool
		says   string
	}{
		{"dtmfd_calls_ended_total", map[string]string{"status": "completed"}, wantEq(21), "21 completions (20 scripted + the rejected one)"},
		{"dtmfd_calls_ended_total", map[string]string{"status": "no_input"}, wantEq(20), "20 timeouts"},
		{"dtmfd_write_rate_limited_total", nil, wantEq(3), "3 answers 429"},
		{"dtmfd_write_retries_total", nil, wantAtLeast(3), "a retry per 429"},
		{"dtmfd_dead_letters_total", nil, wantEq(1), "the rejected call dead-lettered"},
		{"dtmfd_write_attempts_total", map[string]string{"class": "4xx"}, wantEq(4), "3 × 429 and one 400"},
		{"dtmfd_stream_connects_total", nil, wantEq(2), "the first connection and the reconnect"},
		{"dtmfd_stream_disconnects_total", map[string]string{"code": "1011"}, wantEq(1), "one close with 1011"},
		{"dtmfd_calls_open", nil, wantEq(0), "no call left open"},
		{"dtmfd_write_backlog", nil, wantEq(0), "nothing waiting"},
		{"dtmfd_decision_latency_seconds", nil, wantEq(41), "one observation per decision"},
		{"dtmfd_write_latency_seconds", nil, wantEq(40), "one observation per accepted write"},
		{"dtmfd_token_refreshes_total", nil, wantAtLeast(1), "a token obtained"},
		{"dtmfd_events_total", map[string]string{"outcome": "accepted"}, wantAtLeast(60), "keys accepted"},
	}
	for _, c := range checks {
		if got := value(c.name, c.labels); !c.want(got) {
			t.Errorf("%s%v = %v: want %s", c.name, c.labels, got, c.says)
		}
	}
	for _, m := range families["dtmfd_events_total"].GetMetric() {
		for _, l := range m.GetLabel() {
			if strings.HasPrefix(l.GetValue(), "call-") {
				t.Errorf("a call id leaked into a label: %v", m.GetLabel())
			}
		}
	}
}

func wantEq(v float64) func(float64) bool      { return func(x float64) bool { return x == v } }
func wantAtLeast(v float64) func(float64) bool { return func(x float64) bool { return x >= v } }

func scrape(t *testing.T, a *app) map[string]*dto {
	t.Helper()
	families, err := scrapeURL("http://" + a.Addr())
	if err != nil {
		t.Fatal(err)
	}
	return families
}

// scrapeURL reads and parses the /metrics of the dtmfd at base.
func scrapeURL(base string) (map[string]*dto, error) {
	resp, err := testClient.Get(base + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		return nil, fmt.Errorf("/metrics is not valid exposition text: %w", err)
	}
	return families, nil
}

// scrapeGauge reads the unlabelled gauge name from the dtmfd at base.
func scrapeGauge(base, name string) (float64, error) {
	families, err := scrapeURL(base)
	if err != nil {
		return 0, err
	}
	f := families[name]
	if f == nil || len(f.GetMetric()) != 1 {
		return 0, fmt.Errorf("no gauge %s", name)
	}
	return f.GetMetric()[0].GetGauge().GetValue(), nil
}

type dto = promdto.MetricFamily

func matches(labels []*promdto.LabelPair, want map[string]string) bool {
	for k, v := range want {
		found := false
		for _, l := range labels {
			if l.GetName() == k && l.GetValue() == v {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func newRand() *rand.Rand { return rand.New(rand.NewPCG(7, 8)) }
