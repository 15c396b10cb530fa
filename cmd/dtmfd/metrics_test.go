package main

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	promdto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/dtmfd/dtmfd/transport/emulator"
)

// TestMetricsAfterARun scrapes /metrics after calls, wrong and repeated
// keys, malformed frames, a rate limit, a rejected write and a dropped
// stream, and checks every family an operator's dashboards rely on, with
// values that say what happened.
func TestMetricsAfterARun(t *testing.T) {
	s := startService(t, nil)
	rng := newRand()
	calls := scripts(40, rng)
	s.emu.FailWrites(3, http.StatusTooManyRequests, http.Header{"Retry-After": {"0"}})
	s.emu.RejectInteraction("rejected-call", http.StatusBadRequest)
	malformed := play(s.emu, calls[:20], rng)
	s.emu.CloseStreams(websocket.StatusInternalError, "maintenance")
	malformed += play(s.emu, calls[20:], rng)
	malformed += play(s.emu, []script{{id: "rejected-call", keys: "2A1"}}, rng)
	repeated := playRepeated(s.emu)
	checkWrites(t, s.emu, append(calls, repeated))

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

	// A registered family is listed before its first event, so this
	// proves registration only; the values below say what happened.
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
		{"dtmfd_calls_ended_total", map[string]string{"status": "completed"}, wantEq(22),
			"22 completions (20 scripted, the rejected one and the repeated one)"},
		{"dtmfd_calls_ended_total", map[string]string{"status": "no_input"}, wantEq(20), "20 timeouts"},
		{"dtmfd_write_rate_limited_total", nil, wantEq(3), "3 answers 429"},
		{"dtmfd_write_retries_total", nil, wantAtLeast(3), "a retry per 429"},
		{"dtmfd_dead_letters_total", nil, wantEq(1), "the rejected call dead-lettered"},
		{"dtmfd_write_attempts_total", map[string]string{"class": "4xx"}, wantEq(4), "3 × 429 and one 400"},
		{"dtmfd_stream_connects_total", nil, wantEq(2), "the first connection and the reconnect"},
		{"dtmfd_stream_disconnects_total", map[string]string{"code": "1011"}, wantEq(1), "one close with 1011"},
		{"dtmfd_calls_open", nil, wantEq(0), "no call left open"},
		{"dtmfd_write_backlog", nil, wantEq(0), "nothing waiting"},
		{"dtmfd_decision_latency_seconds", nil, wantEq(42), "one observation per decision"},
		{"dtmfd_write_latency_seconds", nil, wantEq(41), "one observation per accepted write"},
		{"dtmfd_token_refreshes_total", nil, wantAtLeast(1), "a token obtained"},
		// The faults tests move the token failures and the reload test
		// the reloads; nothing in this run may.
		{"dtmfd_token_failures_total", nil, wantEq(0), "no token request failed"},
		{"dtmfd_ivr_reloads_total", nil, wantEq(0), "no IVR file to reload"},
		{"dtmfd_events_total", dtmf("accepted"), wantEq(86),
			"3 keys of each of 20 completions, 2 of each of 10 mid-path silences, " +
				"and 3 each of the rejected and the repeated call"},
		{"dtmfd_events_total", dtmf("invalid_digit"), wantEq(51),
			"4 wrong keys in each of 10 calls, a lone * in each of 10, and the repeated call's 7"},
		{"dtmfd_events_total", dtmf("duplicate"), wantEq(1), "the repeated call's second 2"},
		{"dtmfd_events_total", dtmf("unknown_call"), wantEq(0), "no key after its call ended"},
		{"dtmfd_events_total", dtmf("shed"), wantEq(0), "no key over a limit"},
		{"dtmfd_events_total", map[string]string{"outcome": "malformed"}, wantEq(float64(malformed + 1)),
			fmt.Sprintf("the %d malformed frames played and the repeated call's E", malformed)},
		{"dtmfd_events_total", map[string]string{"type": "other", "outcome": "ignored"}, wantAtLeast(1),
			"the call_started frames played"},
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
	checkBuildInfo(t, families["dtmfd_build_info"])
}

func dtmf(outcome string) map[string]string {
	return map[string]string{"type": "dtmf", "outcome": outcome}
}

// playRepeated sends one call whose first key the platform delivers
// twice, with the same call id and timestamp, which presses a key its
// node has no branch for, and one of whose frames carries a digit that is
// no DTMF key. It returns the call's script: the repeat is one key, the
// wrong key and the bad frame change nothing.
func playRepeated(emu *emulator.Emulator) script {
	const id = "repeated-call"
	ts := time.Now().UnixMilli()
	for _, k := range []struct {
		digit string
		at    int64
	}{{"2", ts}, {"2", ts}, {"7", ts + 1}, {"E", ts + 2}, {"A", ts + 3}, {"1", ts + 4}} {
		emu.Send(emulator.Event{Type: "dtmf", Digit: k.digit, CallID: id, Timestamp: k.at})
	}
	return script{id: id, keys: "227EA1", want: `ivr_selection=["2","A","1"] ivr_status=completed`}
}

// checkBuildInfo checks dtmfd_build_info against what "dtmfd version"
// prints: the same version, revision and Go version, with the value 1.
func checkBuildInfo(t *testing.T, f *dto) {
	t.Helper()
	if len(f.GetMetric()) != 1 {
		t.Fatalf("dtmfd_build_info has %d series, want 1", len(f.GetMetric()))
	}
	m := f.GetMetric()[0]
	labels := map[string]string{}
	for _, l := range m.GetLabel() {
		labels[l.GetName()] = l.GetValue()
	}
	var out bytes.Buffer
	if code := run([]string{"version"}, &out, io.Discard, env()); code != 0 {
		t.Fatalf("dtmfd version exited %d", code)
	}
	printed := strings.TrimSpace(out.String())
	fromLabels := strings.Join(strings.Fields(strings.Join([]string{
		"dtmfd", labels["version"], labels["revision"], labels["goversion"]}, " ")), " ")
	if fromLabels != printed {
		t.Errorf("dtmfd_build_info labels %v read %q; dtmfd version prints %q", labels, fromLabels, printed)
	}
	if labels["version"] != version || labels["goversion"] != runtime.Version() {
		t.Errorf("dtmfd_build_info labels %v, want version %q and goversion %q",
			labels, version, runtime.Version())
	}
	if v := m.GetGauge().GetValue(); v != 1 {
		t.Errorf("dtmfd_build_info = %v, want 1", v)
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
