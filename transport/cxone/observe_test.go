package cxone_test

import (
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/dtmfd/dtmfd/transport/emulator"
	"github.com/dtmfd/dtmfd/transport/metrics"
)

const (
	// accountCanary is keyed as the bank flow's account number, and
	// pinCanary as its PIN, a sensitive value.
	accountCanary = "84736251"
	pinCanary     = "7395"
)

// playBank keys a balance enquiry through Studio for contact 4600800 and
// through VAH for 4600801, with a refused request of each kind on each
// endpoint, and waits for both signals.
func playBank(t *testing.T, s *stack) {
	t.Helper()
	ctx := testContext(t)

	studio := s.studio.Call("4600800")
	wantStudio := []string{"main_menu", "account_number", "pin", "balance_menu", ""}
	for i, d := range []string{"", "1", accountCanary, pinCanary, "1"} {
		event := "digits"
		if i == 0 {
			event = "start"
		}
		rep, err := studio.Send(ctx, event, d)
		if err != nil || rep.Node != wantStudio[i] {
			t.Fatalf("studio turn %d: %+v, %v; want node %q", i+1, rep, err, wantStudio[i])
		}
	}

	vah := s.vah.Call(4600801)
	wantVAH := []string{"main_menu", "account_number", "pin", "balance_menu", ""}
	for i, in := range [][2]string{{"AUTOMATED_TEXT", "welcome"}, {"DTMF_AS_TEXT", "1"},
		{"DTMF_AS_TEXT", accountCanary}, {"DTMF_AS_TEXT", pinCanary}, {"DTMF_AS_TEXT", "1"}} {
		rep, err := vah.Exchange(ctx, in[0], in[1])
		node, _ := rep.CustomPayload["dtmfdNode"].(string)
		if err != nil || node != wantVAH[i] {
			t.Fatalf("vah exchange %d: %+v, %v; want node %q", i+1, rep, err, wantVAH[i])
		}
	}

	// A PIN with a key that is not DTMF, and a wrong credential.
	_, err := s.studio.Send(ctx, emulator.StudioRequest{ContactID: "4600800", Event: "digits",
		Digits: pinCanary + "x"})
	wantStatus(t, err, 400)
	_, err = vah.Exchange(ctx, "DTMF_AS_TEXT", pinCanary+"x")
	wantStatus(t, err, 400)
	wrong := s.studio
	wrong.Auth = "Bearer wrong"
	_, err = wrong.Step(ctx, "4600800", pinCanary, "digits")
	wantStatus(t, err, 401)
	wrongVAH := s.vah
	wrongVAH.Auth = "Bearer wrong"
	_, err = wrongVAH.Call(4600801).Exchange(ctx, "DTMF_AS_TEXT", pinCanary)
	wantStatus(t, err, 401)

	s.drain(t)
	for _, id := range []string{"4600800", "4600801"} {
		if got := s.signals(id); len(got) != 1 || got[0][1] != accountCanary {
			t.Fatalf("signals to %s = %q, want one with the account", id, got)
		}
	}
}

func wantStatus(t *testing.T, err error, status int) {
	t.Helper()
	var se *emulator.StatusError
	if !errors.As(err, &se) || se.Status != status {
		t.Fatalf("err = %v, want status %d", err, status)
	}
}

// Keys of a sensitive node reach the decision and the signal, and no log
// line of any part of the profile, at Debug, refused requests included.
func TestSensitiveKeysAreNeverLogged(t *testing.T) {
	t.Parallel()
	var logs logBuffer
	s := newObservedStack(t, bank(t), []string{"ivr_status", "account"}, nil, logs.logger(), nil)
	playBank(t, s)

	out := logs.String()
	for _, rec := range logs.records(t, "") {
		if holdsDigits(rec, pinCanary) {
			t.Errorf("a log record holds the PIN %s: %v", pinCanary, rec)
		}
	}
	// The logs are not empty by accident: each turn, refusal and the
	// decision are there.
	for _, msg := range []string{"turn", "request refused", "call decided"} {
		if len(logs.records(t, msg)) == 0 {
			t.Errorf("no %q record; logs:\n%s", msg, out)
		}
	}
	for _, rec := range logs.records(t, "request refused") {
		if rec["level"] != "WARN" || rec["remoteAddr"] == nil {
			t.Errorf("refusal logged as %v, want a warning with the remote address", rec)
		}
	}
}

// holdsDigits reports whether a value of rec, other than its time, holds
// digits once the ids, durations and addresses that hold digits of their
// own are taken out: a 4-digit PIN is otherwise found, now and then, in
// a timestamp or a UUID.
func holdsDigits(rec map[string]any, digits string) bool {
	for k, v := range rec {
		if k == "time" {
			continue
		}
		if valueHolds(v, digits) {
			return true
		}
	}
	return false
}

func valueHolds(v any, digits string) bool {
	switch v := v.(type) {
	case string:
		return strings.Contains(digitNoise.ReplaceAllString(v, ""), digits)
	case map[string]any:
		return holdsDigits(v, digits)
	case []any:
		for _, e := range v {
			if valueHolds(e, digits) {
				return true
			}
		}
	}
	return false
}

// digitNoise matches UUIDs, Go durations and host:port addresses.
var digitNoise = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}` +
	`|(\d+(\.\d+)?(ns|µs|us|ms|s|m|h))+|\d+\.\d+\.\d+\.\d+:\d+`)

// Studio and VAH turns are counted by outcome, and signals by status.
func TestIngressAndSignalMetrics(t *testing.T) {
	t.Parallel()
	m := metrics.New(prometheus.NewRegistry())
	s := newObservedStack(t, bank(t), []string{"ivr_status", "account"}, nil, nil, m)
	playBank(t, s)

	for _, c := range []struct {
		typ, outcome string
		want         float64
	}{
		{"studio", metrics.OutcomeAccepted, 5},
		{"vah", metrics.OutcomeAccepted, 5},
		{"studio", metrics.OutcomeMalformed, 1},
		{"vah", metrics.OutcomeMalformed, 1},
		{"studio", metrics.OutcomeUnauthorized, 1},
		{"vah", metrics.OutcomeUnauthorized, 1},
	} {
		if got := testutil.ToFloat64(m.Events.WithLabelValues(c.typ, c.outcome)); got != c.want {
			t.Errorf("dtmfd_events_total{type=%s,outcome=%s} = %v, want %v",
				c.typ, c.outcome, got, c.want)
		}
	}
	if got := testutil.ToFloat64(m.WriteAttempts.WithLabelValues("2xx")); got != 2 {
		t.Errorf("signal attempts answered 2xx = %v, want 2", got)
	}
	ended := m.CallsEnded.WithLabelValues("completed", "balance_menu")
	if got := testutil.ToFloat64(ended); got != 2 {
		t.Errorf("calls ended at balance_menu = %v, want 2", got)
	}
}
