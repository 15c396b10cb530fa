package cxone_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/dtmfd/dtmfd/actors"
	"github.com/dtmfd/dtmfd/ivrspec"
	"github.com/dtmfd/dtmfd/transport/cxone"
	"github.com/dtmfd/dtmfd/transport/emulator"
	"github.com/dtmfd/dtmfd/transport/metrics"
	"github.com/dtmfd/dtmfd/transport/variables"
)

const (
	clientID  = "dtmfd-app@example"
	clientSec = `c&l=i+e nt%`
	keyID     = "AK-1"
	keySecret = "s3:c/r+e t"
	ingress   = "ingress-token"
)

// stack is one dtmfd in the cxone profile against its own emulator: the
// real engine, the Signal sink, and both ingress endpoints on loopback.
type stack struct {
	emu    *emulator.CXone
	engine *actors.Engine
	tokens *cxone.Source
	studio emulator.StudioClient
	vah    emulator.VAHClient

	log     *slog.Logger
	metrics *metrics.Metrics

	mu   sync.Mutex
	dead []actors.DeadLetter
}

func newStack(t *testing.T, flow *ivrspec.Flow, params []string, emu *emulator.CXone) *stack {
	t.Helper()
	return newObservedStack(t, flow, params, emu, nil, nil)
}

// newObservedStack is newStack with every part logging to log and
// counting in m; nil for either leaves it out.
func newObservedStack(t *testing.T, flow *ivrspec.Flow, params []string, emu *emulator.CXone,
	log *slog.Logger, m *metrics.Metrics) *stack {
	t.Helper()
	if emu == nil {
		emu = startEmulator(t)
	}
	s := &stack{emu: emu, log: log, metrics: m}

	disco := cxone.NewDiscovery(cxone.DiscoveryOptions{Issuer: emu.URL()})
	tokens, err := cxone.NewSource(cxone.AuthOptions{
		TokenEndpoint: disco.TokenEndpoint,
		ClientID:      clientID, ClientSecret: clientSec,
		AccessKeyID: keyID, AccessKeySecret: keySecret,
		Logger: log, Metrics: m,
	})
	if err != nil {
		t.Fatal(err)
	}
	s.tokens = tokens
	sink, err := cxone.NewSignal(cxone.SignalOptions{
		API:        disco.APIEndpointFor(tokens.TenantID),
		Token:      tokens.Token,
		Invalidate: tokens.Invalidate,
		Forget:     disco.ForgetAPIEndpoint,
		Params:     params,
		Policy:     variables.Policy{MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond},
		Logger:     log,
		Metrics:    m,
	})
	if err != nil {
		t.Fatal(err)
	}

	s.engine, err = actors.Start(actors.Config{
		Flow:          func() *ivrspec.Flow { return flow },
		Sink:          sink,
		WriteDeadline: 30 * time.Second,
		Logger:        log,
		Metrics:       m,
		DeadLetters: func(dl actors.DeadLetter) error {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.dead = append(s.dead, dl)
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.engine.Close)

	s.studio, s.vah = s.serve(t, flow, "", log)
	return s
}

// serve mounts both endpoints with the given instance on a new loopback
// server, as another replica or a restarted process would, and returns
// clients of them.
func (s *stack) serve(
	t *testing.T, flow *ivrspec.Flow, instance string, log *slog.Logger,
) (emulator.StudioClient, emulator.VAHClient) {
	t.Helper()
	cred, err := cxone.ParseCredential(ingress)
	if err != nil {
		t.Fatal(err)
	}
	opts := cxone.Options{Engine: s.engine, Flow: func() *ivrspec.Flow { return flow },
		Auth: cred, Instance: instance, Logger: log, Metrics: s.metrics}
	studio, err := cxone.NewStudio(opts)
	if err != nil {
		t.Fatal(err)
	}
	vah, err := cxone.NewVAH(opts)
	if err != nil {
		t.Fatal(err)
	}

	mux := http.NewServeMux()
	mux.Handle("POST /cxone/studio", studio)
	mux.Handle("POST /cxone/vah", vah)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	return emulator.StudioClient{URL: srv.URL + "/cxone/studio", Auth: "Bearer " + ingress},
		emulator.VAHClient{URL: srv.URL + "/cxone/vah", Auth: "Bearer " + ingress,
			VirtualAgentID: "dtmfd"}
}

func startEmulator(t *testing.T) *emulator.CXone {
	t.Helper()
	emu := emulator.NewCXone(emulator.CXoneOptions{
		ClientID: clientID, ClientSecret: clientSec,
		AccessKeyID: keyID, AccessKeySecret: keySecret,
		TenantID: "11e7-0001",
	})
	if err := emu.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { emu.Close() })
	return emu
}

// drain delivers every pending signal and stops taking calls.
func (s *stack) drain(t *testing.T) {
	t.Helper()
	if err := s.engine.Drain(testContext(t), time.Now()); err != nil {
		t.Fatalf("Drain: %v", err)
	}
}

// signals returns the parameters of every signal to contact.
func (s *stack) signals(contact string) [][]string {
	var out [][]string
	for _, sig := range s.emu.SignalsFor(contact) {
		out = append(out, sig.Params)
	}
	return out
}

func (s *stack) deadLetters() []actors.DeadLetter {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.dead)
}

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func bank(t *testing.T) *ivrspec.Flow {
	t.Helper()
	f, err := ivrspec.LoadExample("bank.yaml", ivrspec.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// studioTurn is one request of a Studio script and what it must answer.
type studioTurn struct {
	event, digits  string
	action, status string
	node           string
}

func TestStudioEndToEnd(t *testing.T) {
	t.Parallel()
	params := []string{"ivr_status", "ivr_selection"}
	tests := []struct {
		name    string
		turns   []studioTurn
		signals [][]string
		vars    map[string]string
	}{
		{
			name: "completion",
			turns: []studioTurn{
				{"start", "", "collect", "started", "main_menu"},
				{"digits", "2", "collect", "waiting", "department"},
				{"digits", "A", "collect", "waiting", "confirm"},
				{"digits", "1", "end", "decided", ""},
			},
			signals: [][]string{{"completed", `["2","A","1"]`}},
			vars:    map[string]string{"ivr_status": "completed", "ivr_selection": `["2","A","1"]`},
		},
		{
			name: "no input",
			turns: []studioTurn{
				{"start", "", "collect", "started", "main_menu"},
				{"digits", "3", "collect", "waiting", "department"},
				{"timeout", "", "end", "decided", ""},
			},
			signals: [][]string{{"timeout_fallback", ""}},
			vars:    map[string]string{"ivr_status": "timeout_fallback"},
		},
		{
			name: "wrong keys are ignored",
			turns: []studioTurn{
				{"start", "", "collect", "started", "main_menu"},
				{"digits", "9", "collect", "waiting", "main_menu"},
				{"digits", "1", "collect", "waiting", "department"},
				{"digits", "C", "collect", "waiting", "department"},
				{"digits", "B", "collect", "waiting", "confirm"},
				{"digits", "1", "end", "decided", ""},
			},
			signals: [][]string{{"completed", `["1","B","1"]`}},
		},
		{
			name: "hangup",
			turns: []studioTurn{
				{"start", "", "collect", "started", "main_menu"},
				{"digits", "1", "collect", "waiting", "department"},
				{"hangup", "", "end", "hangup", ""},
				{"digits", "A", "end", "ended", ""},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newStack(t, ivrspec.Example(10*time.Second), params, nil)
			ctx := testContext(t)

			var last *emulator.StudioReply
			for i, turn := range tt.turns {
				rep, err := s.studio.Step(ctx, "4600123", turn.digits, turn.event)
				if err != nil {
					t.Fatalf("turn %d: %v", i+1, err)
				}
				if rep.Action != turn.action || rep.Status != turn.status || rep.Node != turn.node {
					t.Fatalf("turn %d (%s %q): %+v, want %s %s at %q", i+1, turn.event, turn.digits,
						rep, turn.action, turn.status, turn.node)
				}
				last = rep
			}
			if tt.vars != nil && !equalMaps(last.Variables, tt.vars) {
				t.Errorf("end variables = %v, want %v", last.Variables, tt.vars)
			}

			s.drain(t)
			if got := s.signals("4600123"); !slices.EqualFunc(got, tt.signals, slices.Equal) {
				t.Errorf("signals = %q, want %q, each once", got, tt.signals)
			}
			if dl := s.deadLetters(); len(dl) != 0 {
				t.Errorf("dead letters: %+v", dl)
			}
		})
	}
}

// exchange is one Virtual Agent Hub exchange and what it must answer.
type exchange struct {
	inputType, input string
	branch           string
	node             string // the dtmfdNode of the payload
}

func TestVAHEndToEnd(t *testing.T) {
	t.Parallel()
	params := []string{"ivr_status", "account", "choice", "ivr_from", "ivr_reason"}
	tests := []struct {
		name      string
		exchanges []exchange
		signals   [][]string
		payload   map[string]any
	}{
		{
			name: "balance",
			exchanges: []exchange{
				{"AUTOMATED_TEXT", "welcome", "PromptAndCollectNextResponse", "main_menu"},
				{"DTMF_AS_TEXT", "1", "PromptAndCollectNextResponse", "account_number"},
				{"DTMF_AS_TEXT", "12345678", "PromptAndCollectNextResponse", "pin"},
				{"DTMF_AS_TEXT", "4321", "PromptAndCollectNextResponse", "balance_menu"},
				{"DTMF_AS_TEXT", "1", "ReturnControlToScript", ""},
			},
			signals: [][]string{{"balance_checking", "12345678", "1", "", ""}},
			payload: map[string]any{"account": "12345678", "choice": "1", "pin_entered": "true",
				"ivr_status": "balance_checking", "dtmfdStatus": "decided",
				"dtmfdEnd": "checking", "dtmfdReason": "completed"},
		},
		{
			name: "silence escalates to failed",
			exchanges: []exchange{
				{"AUTOMATED_TEXT", "welcome", "PromptAndCollectNextResponse", "main_menu"},
				{"NO_INPUT", "", "PromptAndCollectNextResponse", "main_menu"},
				{"NO_INPUT", "", "PromptAndCollectNextResponse", "main_menu"},
				{"NO_INPUT", "", "ReturnControlToScript", ""},
			},
			signals: [][]string{{"failed", "", "", "main_menu", "no_input"}},
		},
		{
			name: "short account numbers escalate to the operator",
			exchanges: []exchange{
				{"AUTOMATED_TEXT", "welcome", "PromptAndCollectNextResponse", "main_menu"},
				{"DTMF_AS_TEXT", "1", "PromptAndCollectNextResponse", "account_number"},
				{"DTMF_AS_TEXT", "123", "PromptAndCollectNextResponse", "account_number"},
				{"DTMF_AS_TEXT", "45", "PromptAndCollectNextResponse", "account_number"},
				{"DTMF_AS_TEXT", "6#", "ReturnControlToScript", ""},
			},
			signals: [][]string{{"operator", "", "", "account_number", "no_match"}},
		},
		{
			name: "caller hangs up",
			exchanges: []exchange{
				{"AUTOMATED_TEXT", "welcome", "PromptAndCollectNextResponse", "main_menu"},
				{"DTMF_AS_TEXT", "2", "PromptAndCollectNextResponse", "card_services"},
				{"USER_ENDED_SESSION", "", "ReturnControlToScript", ""},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newStack(t, bank(t), params, nil)
			call := s.vah.Call(4600123)
			ctx := testContext(t)

			var last *emulator.VAHResponse
			for i, ex := range tt.exchanges {
				rep, err := call.Exchange(ctx, ex.inputType, ex.input)
				if err != nil {
					t.Fatalf("exchange %d: %v", i+1, err)
				}
				node, _ := rep.CustomPayload["dtmfdNode"].(string)
				if rep.BranchName != ex.branch || node != ex.node {
					t.Fatalf("exchange %d (%s %q): %s at %q, want %s at %q", i+1, ex.inputType,
						ex.input, rep.BranchName, node, ex.branch, ex.node)
				}
				last = rep
			}
			if tt.payload != nil && !equalAny(last.CustomPayload, tt.payload) {
				t.Errorf("payload = %v, want %v", last.CustomPayload, tt.payload)
			}

			s.drain(t)
			if got := s.signals("4600123"); !slices.EqualFunc(got, tt.signals, slices.Equal) {
				t.Errorf("signals = %q, want %q, each once", got, tt.signals)
			}
		})
	}
}

func TestVAHCollectRulesComeFromTheNode(t *testing.T) {
	t.Parallel()
	s := newStack(t, bank(t), []string{"ivr_status"}, nil)
	call := s.vah.Call(4600124)
	ctx := testContext(t)

	if _, err := call.Exchange(ctx, "AUTOMATED_TEXT", "welcome"); err != nil {
		t.Fatal(err)
	}
	rep, err := call.Exchange(ctx, "DTMF_AS_TEXT", "1")
	if err != nil {
		t.Fatal(err)
	}
	b := rep.NextPromptBehaviors
	rules := b.AudioCollectionRules.DTMFRules
	if b.AudioCollectionRules.CollectionType != "SEND_DTMF_ONLY_AS_TEXT" || rules.MaxDigits != 12 ||
		rules.TerminationCharacters != "#" || !rules.StripTerminator ||
		rules.InterDigitTimeoutMilliseconds != 3000 || b.SilenceRules.MillisecondsToWaitForUserResponse != 8000 {
		t.Errorf("behaviors = %+v", b)
	}
	if p := rep.NextPromptSequence.Prompts; len(p) != 1 || p[0].Transcript != "enter_account_number" {
		t.Errorf("prompts = %+v", p)
	}
}

func TestSignalsSurviveFaults(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		fault func(*emulator.CXone)
		check func(*testing.T, *emulator.CXone)
	}{
		{
			name:  "429 with Retry-After",
			fault: func(e *emulator.CXone) { e.FailSignals(1, 429, http.Header{"Retry-After": {"1"}}) },
			check: func(t *testing.T, e *emulator.CXone) {
				if n := e.SignalRequests(); n != 2 {
					t.Errorf("signal requests = %d, want the 429 and one retry", n)
				}
			},
		},
		{
			name:  "5xx",
			fault: func(e *emulator.CXone) { e.FailSignals(3, 503, nil) },
			check: func(t *testing.T, e *emulator.CXone) {
				if n := e.SignalRequests(); n != 4 {
					t.Errorf("signal requests = %d, want 3 failures and a success", n)
				}
			},
		},
		{
			name:  "discovery down at first",
			fault: func(e *emulator.CXone) { e.FailDiscovery(4, 503) },
			check: func(t *testing.T, e *emulator.CXone) {
				if n := e.DiscoveryRequests(); n != 6 {
					t.Errorf("discovery requests = %d, want 4 failures and the two documents", n)
				}
			},
		},
		{
			name:  "token endpoint down at first",
			fault: func(e *emulator.CXone) { e.FailTokens(2, 500) },
			check: func(t *testing.T, e *emulator.CXone) {
				if n := e.PasswordGrants(); n != 1 {
					t.Errorf("password grants = %d, want 1 after the failures", n)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			emu := startEmulator(t)
			tt.fault(emu)
			s := newStack(t, ivrspec.Example(10*time.Second), []string{"ivr_status"}, emu)
			completeStudio(t, s, "4600200")

			s.drain(t)
			if got := s.signals("4600200"); !slices.EqualFunc(got, [][]string{{"completed"}}, slices.Equal) {
				t.Errorf("signals = %q, want one", got)
			}
			tt.check(t, emu)
		})
	}
}

func TestExpiredTokenIsRenewedWithTheRefreshToken(t *testing.T) {
	t.Parallel()
	s := newStack(t, ivrspec.Example(10*time.Second), []string{"ivr_status"}, nil)
	ctx := testContext(t)

	completeStudio(t, s, "4600300")
	if err := s.emu.WaitSignals(ctx, 1); err != nil {
		t.Fatal(err)
	}
	s.emu.ExpireTokens()
	completeStudio(t, s, "4600301")

	s.drain(t)
	for _, id := range []string{"4600300", "4600301"} {
		if got := s.signals(id); len(got) != 1 {
			t.Errorf("signals to %s = %q, want one", id, got)
		}
	}
	if p, r := s.emu.PasswordGrants(), s.emu.RefreshGrants(); p != 1 || r != 1 {
		t.Errorf("grants: password %d, refresh %d; want one sign-in and one refresh", p, r)
	}
	if !s.tokens.Ready() {
		t.Error("token source not ready after the refresh")
	}
}

func TestRefusedContactBecomesADeadLetter(t *testing.T) {
	t.Parallel()
	s := newStack(t, ivrspec.Example(10*time.Second), []string{"ivr_status"}, nil)
	s.emu.RejectContact("4600400", http.StatusNotFound)
	completeStudio(t, s, "4600400")

	s.drain(t)
	dl := s.deadLetters()
	if len(dl) != 1 || dl[0].InteractionID != "4600400" || dl[0].Attempts != 2 {
		t.Fatalf("dead letters = %+v, want one after the 404 and one attempt at the endpoint "+
			"discovered again", dl)
	}
	if got := s.signals("4600400"); len(got) != 0 {
		t.Errorf("signals = %q, want none", got)
	}
}

// A tenant's API that moves is found again: the signal that meets the
// old endpoint's 404 is delivered at the new one, and so is every later
// one, with one more discovery of the API endpoint.
func TestSignalFollowsAMovedAPIEndpoint(t *testing.T) {
	t.Parallel()
	s := newStack(t, ivrspec.Example(10*time.Second), []string{"ivr_status"}, nil)
	ctx := testContext(t)

	completeStudio(t, s, "4600600")
	if err := s.emu.WaitSignals(ctx, 1); err != nil {
		t.Fatal(err)
	}
	before := s.emu.DiscoveryRequests()
	s.emu.MoveAPI("eu1")
	completeStudio(t, s, "4600601")
	if err := s.emu.WaitSignals(ctx, 2); err != nil {
		t.Fatal(err)
	}
	completeStudio(t, s, "4600602")

	s.drain(t)
	for _, id := range []string{"4600600", "4600601", "4600602"} {
		if got := s.signals(id); len(got) != 1 {
			t.Errorf("signals to %s = %q, want one", id, got)
		}
	}
	if dl := s.deadLetters(); len(dl) != 0 {
		t.Errorf("dead letters: %+v", dl)
	}
	if n := s.emu.DiscoveryRequests() - before; n != 1 {
		t.Errorf("discovery requests after the move = %d, want 1", n)
	}
	if n := s.emu.SignalRequests(); n != 4 {
		t.Errorf("signal requests = %d, want 3 and the one the old endpoint refused", n)
	}
}

// completeStudio walks the example flow to completion for contact.
func completeStudio(t *testing.T, s *stack, contact string) {
	t.Helper()
	ctx := testContext(t)
	if _, err := s.studio.Step(ctx, contact, "", "start"); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"2", "A", "1"} {
		if _, err := s.studio.Step(ctx, contact, d, "digits"); err != nil {
			t.Fatal(err)
		}
	}
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func equalAny(a, b map[string]any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}
