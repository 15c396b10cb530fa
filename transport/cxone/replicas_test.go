package cxone_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dtmfd/dtmfd/ivrspec"
	"github.com/dtmfd/dtmfd/transport/emulator"
)

// logBuffer collects JSON log lines for a test to read back.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// records returns the decoded lines whose message contains msg.
func (b *logBuffer) records(t *testing.T, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for line := range strings.Lines(b.String()) {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if m, _ := rec["msg"].(string); strings.Contains(m, msg) {
			out = append(out, rec)
		}
	}
	return out
}

// wantStudio checks a Studio reply's action, status and node.
func wantStudio(t *testing.T, rep *emulator.StudioReply, err error, action, status, node string) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	if rep.Action != action || rep.Status != status || rep.Node != node {
		t.Fatalf("reply %+v, want %s %s at %q", rep, action, status, node)
	}
}

// wantVAH checks a VAH reply's branch, status and node.
func wantVAH(t *testing.T, rep *emulator.VAHResponse, err error, branch, status, node string) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	gotNode, _ := rep.CustomPayload["dtmfdNode"].(string)
	if rep.BranchName != branch || rep.CustomPayload["dtmfdStatus"] != status || gotNode != node {
		t.Fatalf("reply %s %v, want %s %s at %q", rep.BranchName, rep.CustomPayload,
			branch, status, node)
	}
}

// Two replicas over one engine: a turn whose session names the other
// replica goes on with the call the engine holds.
func TestStudioTurnsMoveBetweenReplicas(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		node bool // the script sends the node of the last reply
	}{
		{"session only", false},
		{"session and node", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			flow := ivrspec.Example(10 * time.Second)
			s := newStack(t, flow, []string{"ivr_status", "ivr_selection"}, nil)
			a, _ := s.serve(t, flow, "replica-a", nil)
			b, _ := s.serve(t, flow, "replica-b", nil)
			ctx := testContext(t)

			rep, err := a.Send(ctx, emulator.StudioRequest{ContactID: "4600500", Event: "start"})
			wantStudio(t, rep, err, "collect", "started", "main_menu")
			replicas := []emulator.StudioClient{a, b, a}
			wants := []string{"department", "confirm", ""}
			for i, d := range []string{"2", "A", "1"} {
				req := emulator.StudioRequest{ContactID: "4600500", Event: "digits", Digits: d,
					Session: rep.Session, Turn: i + 1}
				if tt.node {
					req.Node = rep.Node
				}
				rep, err = replicas[i].Send(ctx, req)
				if i < 2 {
					wantStudio(t, rep, err, "collect", "waiting", wants[i])
				} else {
					wantStudio(t, rep, err, "end", "decided", "")
				}
			}

			s.drain(t)
			want := [][]string{{"completed", `["2","A","1"]`}}
			if got := s.signals("4600500"); !slices.EqualFunc(got, want, slices.Equal) {
				t.Errorf("signals = %q, want %q", got, want)
			}
		})
	}
}

func TestVAHExchangesMoveBetweenReplicas(t *testing.T) {
	t.Parallel()
	flow := bank(t)
	s := newStack(t, flow, []string{"ivr_status", "account"}, nil)
	_, a := s.serve(t, flow, "replica-a", nil)
	_, b := s.serve(t, flow, "replica-b", nil)
	ctx := testContext(t)

	onA, onB := a.Call(4600501), b.Call(4600501)
	rep, err := onA.Exchange(ctx, "AUTOMATED_TEXT", "welcome")
	wantVAH(t, rep, err, "PromptAndCollectNextResponse", "started", "main_menu")
	rep, err = onA.Exchange(ctx, "DTMF_AS_TEXT", "1")
	wantVAH(t, rep, err, "PromptAndCollectNextResponse", "waiting", "account_number")

	// A state without a node leaves only the session to go by.
	onB.SetState(json.RawMessage(`{"dtmfd":1,"session":"replica-a","contactId":"4600501"}`))
	rep, err = onB.Exchange(ctx, "DTMF_AS_TEXT", "12345678")
	wantVAH(t, rep, err, "PromptAndCollectNextResponse", "waiting", "pin")
	onA.SetState(onB.State())
	rep, err = onA.Exchange(ctx, "DTMF_AS_TEXT", "4321")
	wantVAH(t, rep, err, "PromptAndCollectNextResponse", "waiting", "balance_menu")
	onB.SetState(onA.State())
	rep, err = onB.Exchange(ctx, "DTMF_AS_TEXT", "1")
	wantVAH(t, rep, err, "ReturnControlToScript", "decided", "")

	s.drain(t)
	want := [][]string{{"balance_checking", "12345678"}}
	if got := s.signals("4600501"); !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("signals = %q, want %q", got, want)
	}
}

// A session of another process that no engine holds, with no node to
// resume at, starts the flow again and applies its keys nowhere.
func TestForeignSessionTheEngineLacksStartsOver(t *testing.T) {
	t.Parallel()
	flow := bank(t)
	s := newStack(t, flow, []string{"ivr_status"}, nil)
	var logs logBuffer
	_, vah := s.serve(t, flow, "replica-b", logs.logger())
	ctx := testContext(t)

	call := vah.Call(4600502)
	call.SetState(json.RawMessage(`{"dtmfd":1,"session":"gone","contactId":"4600502"}`))
	rep, err := call.Exchange(ctx, "DTMF_AS_TEXT", "9")
	wantVAH(t, rep, err, "PromptAndCollectNextResponse", "restarted", "main_menu")
	if recs := logs.records(t, "starting the flow again"); len(recs) != 1 ||
		recs[0]["level"] != "WARN" || recs[0]["callId"] != "4600502" {
		t.Errorf("restart log = %v, want one warning naming the contact", recs)
	}

	s.drain(t)
	if got := s.signals("4600502"); len(got) != 0 {
		t.Errorf("signals = %q, want none: the 9 answered a prompt of the lost call", got)
	}
}

// A process that never saw a call resumes it at the node its
// botSessionState names, when the current flow still has that node.
func TestVAHResumesAtTheNodeOfItsState(t *testing.T) {
	t.Parallel()
	before := newStack(t, bank(t), []string{"ivr_status", "account"}, nil)
	ctx := testContext(t)
	call := before.vah.Call(4600503)
	for _, in := range [][2]string{{"AUTOMATED_TEXT", "welcome"}, {"DTMF_AS_TEXT", "1"}} {
		if _, err := call.Exchange(ctx, in[0], in[1]); err != nil {
			t.Fatal(err)
		}
	}
	state := call.State()

	tests := []struct {
		name string
		flow *ivrspec.Flow
		// exchanges after the move, each with the status and node it gets
		keys    []string
		status  []string
		nodes   []string
		logged  string
		signals [][]string
	}{
		{
			name:    "the node is in the flow",
			flow:    bank(t),
			keys:    []string{"12345678", "4321", "1"},
			status:  []string{"resumed", "waiting", "decided"},
			nodes:   []string{"pin", "balance_menu", ""},
			logged:  "resumed at the node the platform named",
			signals: [][]string{{"balance_checking", "12345678"}},
		},
		{
			name:   "the flow lost the node",
			flow:   ivrspec.Example(10 * time.Second),
			keys:   []string{"12345678"},
			status: []string{"restarted"},
			nodes:  []string{"main_menu"},
			logged: "not resumed there",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			after := newStack(t, tt.flow, []string{"ivr_status", "account"}, nil)
			var logs logBuffer
			_, vah := after.serve(t, tt.flow, "", logs.logger())
			again := vah.Call(4600503)
			again.SetState(state)

			for i, k := range tt.keys {
				rep, err := again.Exchange(ctx, "DTMF_AS_TEXT", k)
				branch := "PromptAndCollectNextResponse"
				if tt.nodes[i] == "" {
					branch = "ReturnControlToScript"
				}
				wantVAH(t, rep, err, branch, tt.status[i], tt.nodes[i])
			}
			recs := logs.records(t, tt.logged)
			if len(recs) != 1 || recs[0]["callId"] != "4600503" {
				t.Errorf("log %q = %v, want one naming the contact", tt.logged, recs)
			}

			after.drain(t)
			if got := after.signals("4600503"); !slices.EqualFunc(got, tt.signals, slices.Equal) {
				t.Errorf("signals = %q, want %q", got, tt.signals)
			}
		})
	}
}

// A Studio request that names the node it answers: a call at another
// node answers with its own and applies nothing; a call the engine lacks
// starts at the node.
func TestStudioNodeField(t *testing.T) {
	t.Parallel()
	t.Run("the call is elsewhere", func(t *testing.T) {
		t.Parallel()
		s := newStack(t, bank(t), []string{"ivr_status", "account"}, nil)
		var logs logBuffer
		studio, _ := s.serve(t, bank(t), "", logs.logger())
		ctx := testContext(t)
		send := func(digits, node string) (*emulator.StudioReply, error) {
			return studio.Send(ctx, emulator.StudioRequest{ContactID: "4600504", Event: "digits",
				Digits: digits, Node: node})
		}

		rep, err := studio.Step(ctx, "4600504", "", "start")
		wantStudio(t, rep, err, "collect", "started", "main_menu")
		rep, err = send("1", "main_menu")
		wantStudio(t, rep, err, "collect", "waiting", "account_number")
		rep, err = send("1", "main_menu")
		wantStudio(t, rep, err, "collect", "corrected", "account_number")
		if rep.Prompt != "enter_account_number" {
			t.Errorf("prompt %q, want the call's node's prompt again", rep.Prompt)
		}
		rec := logs.records(t, "another node than the call waits at")
		if len(rec) != 1 || rec[0]["level"] != "WARN" || rec[0]["callId"] != "4600504" ||
			rec[0]["node"] != "main_menu" || rec[0]["callNode"] != "account_number" {
			t.Errorf("warning = %v, want one naming the contact and both nodes", rec)
		}
		rep, err = send("12345678", "account_number")
		wantStudio(t, rep, err, "collect", "waiting", "pin")
	})

	t.Run("the call is unknown", func(t *testing.T) {
		t.Parallel()
		s := newStack(t, bank(t), []string{"ivr_status", "account"}, nil)
		ctx := testContext(t)
		send := func(digits, node string) (*emulator.StudioReply, error) {
			return s.studio.Send(ctx, emulator.StudioRequest{ContactID: "4600505",
				Event: "digits", Digits: digits, Node: node, Session: "old-process"})
		}

		rep, err := send("12345678", "account_number")
		wantStudio(t, rep, err, "collect", "resumed", "pin")
		rep, err = send("4321", "pin")
		wantStudio(t, rep, err, "collect", "waiting", "balance_menu")
		rep, err = send("1", "balance_menu")
		wantStudio(t, rep, err, "end", "decided", "")
		if rep.Variables["account"] != "12345678" {
			t.Errorf("variables = %v, want the account keyed after the resume", rep.Variables)
		}
	})
}
