package cxone

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dtmfd/dtmfd/actors"
	"github.com/dtmfd/dtmfd/ivrspec"
)

// fakeEngine answers Steps with answer, or with ctxAnswer when that is
// set, and records them.
type fakeEngine struct {
	mu        sync.Mutex
	steps     []actors.Step
	answer    func(*actors.Step) (*actors.StepReply, error)
	ctxAnswer func(context.Context, *actors.Step) (*actors.StepReply, error)
}

func (f *fakeEngine) Step(ctx context.Context, s *actors.Step) (*actors.StepReply, error) {
	f.mu.Lock()
	f.steps = append(f.steps, *s)
	f.mu.Unlock()
	if f.ctxAnswer != nil {
		return f.ctxAnswer(ctx, s)
	}
	return f.answer(s)
}

func (f *fakeEngine) recorded() []actors.Step {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]actors.Step(nil), f.steps...)
}

func bankFlow(t testing.TB) *ivrspec.Flow {
	t.Helper()
	f, err := ivrspec.LoadExample("bank.yaml", ivrspec.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// waitAt answers every Step with the call waiting at node.
func waitAt(flow *ivrspec.Flow, node, prompt string) func(*actors.Step) (*actors.StepReply, error) {
	return func(*actors.Step) (*actors.StepReply, error) {
		return &actors.StepReply{Node: flow.Nodes[node], Prompt: prompt}, nil
	}
}

// unknownCall answers as an engine that holds no such call.
func unknownCall(*actors.Step) (*actors.StepReply, error) {
	return &actors.StepReply{Unknown: true}, nil
}

// sameStep compares what a handler puts in a Step, its time aside.
func sameStep(a, b actors.Step) bool {
	a.Received, b.Received = time.Time{}, time.Time{}
	return a == b
}

const testAuth = "Bearer s3cret"

func testOptions(t testing.TB, eng Stepper, flow *ivrspec.Flow) Options {
	t.Helper()
	cred, err := ParseCredential("s3cret")
	if err != nil {
		t.Fatal(err)
	}
	return Options{Engine: eng, Flow: func() *ivrspec.Flow { return flow }, Auth: cred,
		Instance: "inst-1"}
}

// call posts body to h and returns the status and the reply.
func call(t *testing.T, h http.Handler, auth, body string) (int, http.Header, []byte) {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/cxone/x", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	b, _ := io.ReadAll(rec.Body)
	return rec.Code, rec.Header(), b
}

func decodeStudio(t *testing.T, b []byte) studioReply {
	t.Helper()
	var r studioReply
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		t.Fatalf("reply %s: %v", b, err)
	}
	return r
}

func TestStudioRefusesBadRequests(t *testing.T) {
	t.Parallel()
	flow := bankFlow(t)
	eng := &fakeEngine{answer: waitAt(flow, "main_menu", "")}
	h, err := NewStudio(testOptions(t, eng, flow))
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name   string
		auth   string
		body   string
		status int
		says   string
	}{
		{"no credential", "", `{"contactId":"1","event":"start"}`, 401, "credential"},
		{"wrong token", "Bearer s3cre", `{"contactId":"1","event":"start"}`, 401, "credential"},
		{"basic for bearer", "Basic czNjcmV0Og==", `{"contactId":"1","event":"start"}`, 401, "credential"},
		{"unknown field", testAuth, `{"contactId":"1","event":"digits","digit":"1"}`, 400, `unknown field \"digit`},
		{"not json", testAuth, `contactId=1&event=start`, 400, "decode"},
		{"two objects", testAuth, `{"contactId":"1","event":"start"}{}`, 400, "after"},
		{"no contact", testAuth, `{"event":"start"}`, 400, "contactId"},
		{"contact not a number", testAuth, `{"contactId":"abc","event":"start"}`, 400, "contactId"},
		{"contact object", testAuth, `{"contactId":{},"event":"start"}`, 400, "contact id"},
		{"unknown event", testAuth, `{"contactId":"1","event":"dtmf"}`, 400, "event"},
		{"not a key", testAuth, `{"contactId":"1","event":"digits","digits":"12x"}`, 400, "key 3"},
		{"digits on timeout", testAuth, `{"contactId":"1","event":"timeout","digits":"1"}`, 400, "no digits"},
		{"turn zero", testAuth, `{"contactId":"1","event":"start","turn":0}`, 400, "turn: not a whole number"},
		{"negative turn", testAuth, `{"contactId":"1","event":"start","turn":-2}`, 400, "turn: not"},
		{"fractional turn", testAuth, `{"contactId":"1","event":"start","turn":1.5}`, 400, "turn: not"},
		{"turn in exponent form", testAuth, `{"contactId":"1","event":"start","turn":1e2}`, 400, "turn: not"},
		{"turn not a number", testAuth, `{"contactId":"1","event":"start","turn":"two"}`, 400, "turn: not"},
		{"empty turn", testAuth, `{"contactId":"1","event":"start","turn":""}`, 400, "turn: not"},
		{"turn a boolean", testAuth, `{"contactId":"1","event":"start","turn":true}`, 400, "turn: not"},
		{"turn too large", testAuth, `{"contactId":"1","event":"start","turn":9223372036854775808}`, 400, "turn: not"},
		{"too big", testAuth, `{"contactId":"1","event":"start","session":"` +
			strings.Repeat("x", maxBody) + `"}`, 413, "larger"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			status, header, body := call(t, h, tt.auth, tt.body)
			if status != tt.status || !strings.Contains(string(body), tt.says) {
				t.Errorf("reply %d %s, want %d saying %s", status, body, tt.status, tt.says)
			}
			if status == 401 && header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
		})
	}
	if n := len(eng.recorded()); n != 0 {
		t.Errorf("%d refused requests reached the engine", n)
	}
}

func TestStudioRefusesOtherMethods(t *testing.T) {
	t.Parallel()
	flow := bankFlow(t)
	h, _ := NewStudio(testOptions(t, &fakeEngine{}, flow))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/cxone/studio", nil))
	if rec.Code != 405 || rec.Header().Get("Allow") != "POST" {
		t.Errorf("GET = %d Allow %q, want 405 POST", rec.Code, rec.Header().Get("Allow"))
	}
}

func TestStudioTurns(t *testing.T) {
	t.Parallel()
	flow := bankFlow(t)
	decision := &ivrspec.Decision{End: "checking", From: "balance_menu", Reason: "completed",
		Variables: []ivrspec.Variable{{Name: "account", Value: "12345678"},
			{Name: "ivr_status", Value: "balance_checking"}}}
	// The collect rules of the bank flow's nodes, as Studio gets them.
	menuRules := &studioCollect{MinDigits: 1, MaxDigits: 1, StripTerminator: true,
		TimeoutSeconds: 8, InterDigitTimeoutSeconds: 8}
	accountRules := &studioCollect{MinDigits: 8, MaxDigits: 12, Terminators: "#",
		StripTerminator: true, TimeoutSeconds: 8, InterDigitTimeoutSeconds: 3}
	pinRules := &studioCollect{MinDigits: 4, MaxDigits: 4, Terminators: "#",
		StripTerminator: true, TimeoutSeconds: 8, InterDigitTimeoutSeconds: 8}

	tests := []struct {
		name   string
		body   string
		answer func(*actors.Step) (*actors.StepReply, error)
		step   *actors.Step
		want   studioReply
	}{
		{
			name: "start answers from the flow",
			body: `{"contactId":"4600123","event":"start"}`,
			want: studioReply{Action: "collect", Status: "started", ContactID: "4600123",
				Session: "inst-1", Node: "main_menu", Prompt: "welcome_main_menu",
				Collect: menuRules},
		},
		{
			name:   "a turn number names the request",
			body:   `{"contactId":"4600123","event":"digits","digits":"1","turn":3}`,
			answer: waitAt(flow, "main_menu", ""),
			step:   &actors.Step{CallID: "4600123", RequestID: "studio:3", Keys: "1"},
			want: studioReply{Action: "collect", Status: "waiting", ContactID: "4600123",
				Session: "inst-1", Node: "main_menu",
				Collect: menuRules},
		},
		{
			name:   "a turn number in a string, as a snippet builds it",
			body:   `{"contactId":"4600123","event":"timeout","turn":"12"}`,
			answer: waitAt(flow, "main_menu", ""),
			step:   &actors.Step{CallID: "4600123", RequestID: "studio:12"},
			want: studioReply{Action: "collect", Status: "waiting", ContactID: "4600123",
				Session: "inst-1", Node: "main_menu",
				Collect: menuRules},
		},
		{
			name:   "digits lead to a collect node",
			body:   `{"contactId":4600123,"event":"digits","digits":"1","session":"inst-1"}`,
			answer: waitAt(flow, "account_number", "enter_account_number"),
			step:   &actors.Step{CallID: "4600123", Keys: "1"},
			want: studioReply{Action: "collect", Status: "waiting", ContactID: "4600123",
				Session: "inst-1", Node: "account_number", Prompt: "enter_account_number",
				Collect: accountRules},
		},
		{
			name: "timeout is a step without keys",
			body: `{"contactId":"4600123","event":"timeout"}`,
			answer: func(*actors.Step) (*actors.StepReply, error) {
				return &actors.StepReply{Node: flow.Nodes["main_menu"], Prompt: "please_choose",
					NoInput: 1}, nil
			},
			step: &actors.Step{CallID: "4600123"},
			want: studioReply{Action: "collect", Status: "waiting", ContactID: "4600123",
				Session: "inst-1", Node: "main_menu", Prompt: "please_choose", NoInput: 1,
				Collect: menuRules},
		},
		{
			name: "empty digits count as none",
			body: `{"contactId":"4600123","event":"digits","digits":""}`,
			answer: func(*actors.Step) (*actors.StepReply, error) {
				return &actors.StepReply{Ended: true, Decision: decision}, nil
			},
			step: &actors.Step{CallID: "4600123"},
			want: studioReply{Action: "end", Status: "decided", ContactID: "4600123",
				End: "checking", Reason: "completed",
				Variables: map[string]string{"account": "12345678", "ivr_status": "balance_checking"}},
		},
		{
			name: "hangup",
			body: `{"contactId":"4600123","event":"hangup"}`,
			answer: func(*actors.Step) (*actors.StepReply, error) {
				return &actors.StepReply{Ended: true}, nil
			},
			step: &actors.Step{CallID: "4600123", Hangup: true},
			want: studioReply{Action: "end", Status: "hangup", ContactID: "4600123"},
		},
		{
			name: "a step after the end",
			body: `{"contactId":"4600123","event":"digits","digits":"1"}`,
			answer: func(*actors.Step) (*actors.StepReply, error) {
				return &actors.StepReply{Ended: true}, nil
			},
			step: &actors.Step{CallID: "4600123", Keys: "1"},
			want: studioReply{Action: "end", Status: "ended", ContactID: "4600123"},
		},
		{
			name:   "a session of another instance the engine lacks starts again",
			body:   `{"contactId":"4600123","event":"digits","digits":"1","session":"old"}`,
			answer: unknownCall,
			step:   &actors.Step{CallID: "4600123", Keys: "1", Existing: true},
			want: studioReply{Action: "collect", Status: "restarted", ContactID: "4600123",
				Session: "inst-1", Node: "main_menu", Prompt: "welcome_main_menu",
				Collect: menuRules},
		},
		{
			name:   "a session of another instance the engine holds goes on",
			body:   `{"contactId":"4600123","event":"digits","digits":"1","session":"old"}`,
			answer: waitAt(flow, "account_number", "enter_account_number"),
			step:   &actors.Step{CallID: "4600123", Keys: "1", Existing: true},
			want: studioReply{Action: "collect", Status: "waiting", ContactID: "4600123",
				Session: "inst-1", Node: "account_number", Prompt: "enter_account_number",
				Collect: accountRules},
		},
		{
			name:   "the node goes to the engine",
			body:   `{"contactId":"4600123","event":"digits","digits":"1","node":"main_menu"}`,
			answer: waitAt(flow, "account_number", "enter_account_number"),
			step:   &actors.Step{CallID: "4600123", Keys: "1", At: "main_menu"},
			want: studioReply{Action: "collect", Status: "waiting", ContactID: "4600123",
				Session: "inst-1", Node: "account_number", Prompt: "enter_account_number",
				Collect: accountRules},
		},
		{
			name: "a node the call is not at is answered with the call's node",
			body: `{"contactId":"4600123","event":"digits","digits":"1","node":"main_menu"}`,
			answer: func(*actors.Step) (*actors.StepReply, error) {
				return &actors.StepReply{Node: flow.Nodes["account_number"],
					Prompt: "enter_account_number", Elsewhere: true}, nil
			},
			step: &actors.Step{CallID: "4600123", Keys: "1", At: "main_menu"},
			want: studioReply{Action: "collect", Status: "corrected", ContactID: "4600123",
				Session: "inst-1", Node: "account_number", Prompt: "enter_account_number",
				Collect: accountRules},
		},
		{
			name: "a call the engine lacks resumes at the node",
			body: `{"contactId":"4600123","event":"digits","digits":"12345678","node":"account_number"}`,
			answer: func(*actors.Step) (*actors.StepReply, error) {
				return &actors.StepReply{Node: flow.Nodes["pin"], Prompt: "enter_pin",
					Resumed: true}, nil
			},
			step: &actors.Step{CallID: "4600123", Keys: "12345678", At: "account_number"},
			want: studioReply{Action: "collect", Status: "resumed", ContactID: "4600123",
				Session: "inst-1", Node: "pin", Prompt: "enter_pin",
				Collect: pinRules},
		},
		{
			name:   "a node the flow lacks asks for an existing call",
			body:   `{"contactId":"4600123","event":"digits","digits":"1","node":"gone"}`,
			answer: unknownCall,
			step:   &actors.Step{CallID: "4600123", Keys: "1", Existing: true},
			want: studioReply{Action: "collect", Status: "restarted", ContactID: "4600123",
				Session: "inst-1", Node: "main_menu", Prompt: "welcome_main_menu",
				Collect: menuRules},
		},
		{
			name: "engine refuses",
			body: `{"contactId":"4600123","event":"digits","digits":"1"}`,
			answer: func(*actors.Step) (*actors.StepReply, error) {
				return nil, actors.ErrDraining
			},
			step: &actors.Step{CallID: "4600123", Keys: "1"},
			want: studioReply{Action: "error", ContactID: "4600123", Error: "dtmfd is shutting down"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			eng := &fakeEngine{answer: tt.answer}
			h, err := NewStudio(testOptions(t, eng, flow))
			if err != nil {
				t.Fatal(err)
			}

			status, _, body := call(t, h, testAuth, tt.body)
			if status != 200 {
				t.Fatalf("status %d: %s", status, body)
			}
			got := decodeStudio(t, body)
			wantJSON, _ := json.Marshal(tt.want)
			gotJSON, _ := json.Marshal(got)
			if !bytes.Equal(gotJSON, wantJSON) {
				t.Errorf("reply\n got %s\nwant %s", gotJSON, wantJSON)
			}

			steps := eng.recorded()
			switch {
			case tt.step == nil && len(steps) > 0:
				t.Errorf("engine stepped: %+v", steps)
			case tt.step != nil && (len(steps) != 1 || !sameStep(steps[0], *tt.step) ||
				steps[0].RequestID != tt.step.RequestID):
				t.Errorf("steps = %+v, want one like %+v", steps, tt.step)
			}
		})
	}
}

func TestStudioReplyStaysUnder32KB(t *testing.T) {
	t.Parallel()
	flow := bankFlow(t)
	big := &ivrspec.Decision{End: "e", Variables: []ivrspec.Variable{
		{Name: "blob", Value: strings.Repeat("x", 40<<10)}}}
	eng := &fakeEngine{answer: func(*actors.Step) (*actors.StepReply, error) {
		return &actors.StepReply{Ended: true, Decision: big}, nil
	}}
	h, _ := NewStudio(testOptions(t, eng, flow))

	status, _, body := call(t, h, testAuth, `{"contactId":"1","event":"digits","digits":"1"}`)
	if status != 200 || len(body) > maxReplyBytes {
		t.Fatalf("status %d, %d bytes", status, len(body))
	}
	if r := decodeStudio(t, body); r.Action != "error" || r.Status != "decided" {
		t.Errorf("reply = %+v, want an error that keeps the status", r)
	}
}

func TestCredentials(t *testing.T) {
	t.Parallel()
	tests := []struct {
		setting string
		header  string
		ok      bool
	}{
		{"tok", "Bearer tok", true},
		{"tok", "bearer tok", true},
		{"tok", "Bearer tok2", false},
		{"tok", "Basic dG9rOg==", false},
		{"user:p:w", "Basic dXNlcjpwOnc=", true},
		{"user:p:w", "Basic dXNlcjpwOng=", false},
		{"user:p:w", "Bearer user:p:w", false},
	}
	for _, tt := range tests {
		t.Run(tt.setting+" "+tt.header, func(t *testing.T) {
			t.Parallel()
			c, err := ParseCredential(tt.setting)
			if err != nil {
				t.Fatal(err)
			}
			r := httptest.NewRequest(http.MethodPost, "/", nil)
			r.Header.Set("Authorization", tt.header)
			if got := c.Check(r); got != tt.ok {
				t.Errorf("Check = %v, want %v", got, tt.ok)
			}
		})
	}
	for _, bad := range []string{"", ":p", "u:"} {
		if _, err := ParseCredential(bad); err == nil {
			t.Errorf("ParseCredential(%q) succeeded", bad)
		}
	}
}

func TestHandlersNeedTheirOptions(t *testing.T) {
	t.Parallel()
	flow := bankFlow(t)
	full := testOptions(t, &fakeEngine{}, flow)
	noAuth := full
	noAuth.Auth = Credential{}
	noEngine := full
	noEngine.Engine = nil

	for _, opts := range []Options{noAuth, noEngine} {
		if _, err := NewStudio(opts); err == nil {
			t.Error("NewStudio succeeded")
		}
		if _, err := NewVAH(opts); err == nil {
			t.Error("NewVAH succeeded")
		}
	}
}
