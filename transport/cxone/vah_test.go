package cxone

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/dtmfd/dtmfd/actors"
	"github.com/dtmfd/dtmfd/ivrspec"
)

// exchange builds a request body the way Virtual Agent Hub sends it, with
// fields dtmfd does not read.
func exchange(inputType, input, state string) string {
	if state == "" {
		state = "null"
	}
	return `{"virtualAgentId":"dtmfd","botConfig":{"k":"v"},"userInput":` +
		mustJSON(input) + `,"userInputType":"` + inputType + `",` +
		`"executionInfo":{"contactId":4600123,"busNo":4600001,"requestId":3,` +
		`"actionType":"VoiceBotExchange","actionId":12,"scriptName":"S\\DTMF"},` +
		`"systemTelemetryData":{"consumerProcessName":"x"},"base64wavFile":null,` +
		`"botSessionState":` + state + `,"customPayload":{},"mediaType":"Voice",` +
		`"aFieldFromTheFuture":true}`
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

const ourState = `{"dtmfd":1,"session":"inst-1","contactId":"4600123","node":"main_menu"}`

func TestVAHMapsInputToTurns(t *testing.T) {
	t.Parallel()
	flow := bankFlow(t)

	foreign := strings.Replace(ourState, "inst-1", "inst-0", 1)
	tests := []struct {
		name   string
		body   string
		answer func(*actors.Step) (*actors.StepReply, error) // nil: waits at account_number
		step   *actors.Step                                  // nil: the engine is not asked
		start  bool                                          // answered with the start node
	}{
		{"welcome starts", exchange("AUTOMATED_TEXT", "welcome", ""), nil, nil, true},
		{"text without a session starts", exchange("TEXT", "hello", ""), nil, nil, true},
		{"dtmf", exchange("DTMF_AS_TEXT", "1", ourState), nil,
			&actors.Step{Keys: "1", At: "main_menu"}, false},
		{"dtmf with spaces", exchange("DTMF_AS_TEXT", " 1 2 3 4 ", ourState), nil,
			&actors.Step{Keys: "1234", At: "main_menu"}, false},
		{"dtmf as the first exchange", exchange("DTMF_AS_TEXT", "2", ""), nil,
			&actors.Step{Keys: "2"}, false},
		{"empty dtmf", exchange("DTMF_AS_TEXT", "", ourState), nil,
			&actors.Step{At: "main_menu"}, false},
		{"no input", exchange("NO_INPUT", "", ourState), nil, &actors.Step{At: "main_menu"}, false},
		{"text of keys", exchange("TEXT", "12#", ourState), nil,
			&actors.Step{Keys: "12#", At: "main_menu"}, false},
		{"speech in a session", exchange("TEXT", "operator please", ourState), nil,
			&actors.Step{At: "main_menu"}, false},
		{"user ended", exchange("USER_ENDED_SESSION", "", ourState), nil,
			&actors.Step{Hangup: true}, false},
		{"state as a string", exchange("DTMF_AS_TEXT", "1", mustJSON(ourState)), nil,
			&actors.Step{Keys: "1", At: "main_menu"}, false},
		{"foreign session goes to the engine with its node", exchange("DTMF_AS_TEXT", "1", foreign),
			nil, &actors.Step{Keys: "1", At: "main_menu"}, false},
		{"foreign session without a node the engine lacks restarts",
			exchange("DTMF_AS_TEXT", "1", `{"dtmfd":1,"session":"inst-0","contactId":"4600123"}`),
			unknownCall, &actors.Step{Keys: "1", Existing: true}, true},
		{"node the flow lacks restarts", exchange("DTMF_AS_TEXT", "1",
			strings.Replace(foreign, "main_menu", "gone", 1)),
			unknownCall, &actors.Step{Keys: "1", Existing: true}, true},
		{"state of another contact is ignored", exchange("TEXT", "x",
			strings.Replace(ourState, "4600123", "99", 1)), nil, nil, true},
		{"state of another layout is ignored", exchange("TEXT", "x",
			`{"dtmfd":2,"session":"inst-1","contactId":"4600123"}`), nil, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			eng := &fakeEngine{answer: tt.answer}
			if eng.answer == nil {
				eng.answer = waitAt(flow, "account_number", "enter_account_number")
			}
			h, err := NewVAH(testOptions(t, eng, flow))
			if err != nil {
				t.Fatal(err)
			}

			status, _, body := call(t, h, testAuth, tt.body)
			if status != 200 {
				t.Fatalf("status %d: %s", status, body)
			}
			var rep vahResponse
			if err := json.Unmarshal(body, &rep); err != nil {
				t.Fatal(err)
			}

			steps := eng.recorded()
			if tt.step == nil {
				if len(steps) != 0 {
					t.Errorf("engine stepped: %+v", steps)
				}
			} else if want := *tt.step; len(steps) != 1 ||
				!sameStep(steps[0], actors.Step{CallID: "4600123", Keys: want.Keys,
					Hangup: want.Hangup, At: want.At, Existing: want.Existing}) {
				t.Errorf("steps = %+v, want one like %+v", steps, tt.step)
			}
			if tt.start && rep.CustomPayload["dtmfdNode"] != "main_menu" {
				t.Errorf("reply %s, want the start node", body)
			}
		})
	}
}

func TestVAHRefusesRequestsItCannotServe(t *testing.T) {
	t.Parallel()
	flow := bankFlow(t)
	eng := &fakeEngine{answer: waitAt(flow, "main_menu", "")}
	h, _ := NewVAH(testOptions(t, eng, flow))

	tests := []struct {
		name   string
		body   string
		status int
		says   string
	}{
		{"no execution info", `{"userInputType":"NO_INPUT"}`, 400, "executionInfo"},
		{"no contact", `{"userInputType":"NO_INPUT","executionInfo":{}}`, 400, "contactId"},
		{"no input type", `{"executionInfo":{"contactId":1}}`, 400, "userInputType"},
		{"unknown input type", `{"userInputType":"SMOKE","executionInfo":{"contactId":1}}`, 400, "SMOKE"},
		{"keys that are not DTMF", exchange("DTMF_AS_TEXT", "1x", ourState), 400, "userInput"},
		{"not json", `{`, 400, "decode"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			status, _, body := call(t, h, testAuth, tt.body)
			if status != tt.status || !strings.Contains(string(body), tt.says) {
				t.Errorf("reply %d %s, want %d saying %s", status, body, tt.status, tt.says)
			}
		})
	}
	if status, _, _ := call(t, h, "Bearer nope", exchange("NO_INPUT", "", "")); status != 401 {
		t.Errorf("wrong credential: status %d, want 401", status)
	}
}

func TestVAHPromptAndCollectReply(t *testing.T) {
	t.Parallel()
	flow := bankFlow(t)
	eng := &fakeEngine{answer: waitAt(flow, "account_number", "enter_account_number")}
	opts := testOptions(t, eng, flow)
	opts.PromptAudio = "dtmfd/{prompt}.wav"
	h, _ := NewVAH(opts)

	_, _, body := call(t, h, testAuth, exchange("DTMF_AS_TEXT", "1", ourState))
	want := `{"branchName":"PromptAndCollectNextResponse",` +
		`"nextPromptSequence":{"prompts":[{"transcript":"enter_account_number",` +
		`"audioFilePath":"dtmfd/enter_account_number.wav"}]},` +
		`"intentInfo":{"intent":"account_number","context":"dtmfd","intentConfidence":1},` +
		`"nextPromptBehaviors":{"silenceRules":{"engageComfortSequence":false,` +
		`"millisecondsToWaitForUserResponse":8000},` +
		`"audioCollectionRules":{"collectionType":"SEND_DTMF_ONLY_AS_TEXT","dtmfRules":{"detectDtmf":true,` +
		`"clearDigits":false,"terminationCharacters":"#","stripTerminator":true,` +
		`"interDigitTimeoutMilliseconds":3000,"maxDigits":12}}},` +
		`"customPayload":{"dtmfdNode":"account_number","dtmfdStatus":"waiting"},` +
		`"botSessionState":{"dtmfd":1,"session":"inst-1","contactId":"4600123","node":"account_number"}}`
	if got := strings.TrimSpace(string(body)); got != want {
		t.Errorf("reply\n got %s\nwant %s", got, want)
	}
}

func TestVAHReturnsControlWithTheDecision(t *testing.T) {
	t.Parallel()
	flow := bankFlow(t)
	tests := []struct {
		name    string
		input   string
		reply   *actors.StepReply
		payload map[string]any
		prompts int
	}{
		{
			name:  "decided",
			input: "DTMF_AS_TEXT",
			reply: &actors.StepReply{Ended: true, Prompt: "transferring_to_operator",
				Decision: &ivrspec.Decision{End: "operator", From: "main_menu", Reason: "completed",
					Variables: []ivrspec.Variable{{Name: "ivr_status", Value: "operator"}}}},
			payload: map[string]any{"ivr_status": "operator", "dtmfdStatus": "decided",
				"dtmfdEnd": "operator", "dtmfdReason": "completed"},
			prompts: 1,
		},
		{
			name:    "hung up",
			input:   "USER_ENDED_SESSION",
			reply:   &actors.StepReply{Ended: true},
			payload: map[string]any{"dtmfdStatus": "hangup"},
		},
		{
			name:    "already ended",
			input:   "DTMF_AS_TEXT",
			reply:   &actors.StepReply{Ended: true},
			payload: map[string]any{"dtmfdStatus": "ended"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			eng := &fakeEngine{answer: func(*actors.Step) (*actors.StepReply, error) { return tt.reply, nil }}
			h, _ := NewVAH(testOptions(t, eng, flow))

			_, _, body := call(t, h, testAuth, exchange(tt.input, "0", ourState))
			var rep struct {
				BranchName         string          `json:"branchName"`
				CustomPayload      map[string]any  `json:"customPayload"`
				NextPromptSequence promptSequence  `json:"nextPromptSequence"`
				BotSessionState    json.RawMessage `json:"botSessionState"`
			}
			if err := json.Unmarshal(body, &rep); err != nil {
				t.Fatal(err)
			}
			if rep.BranchName != "ReturnControlToScript" || mustJSON(rep.CustomPayload) != mustJSON(tt.payload) {
				t.Errorf("reply %s, want ReturnControlToScript with %v", body, tt.payload)
			}
			if len(rep.NextPromptSequence.Prompts) != tt.prompts || rep.BotSessionState != nil {
				t.Errorf("reply %s: want %d prompts and no session state", body, tt.prompts)
			}
		})
	}
}

func TestVAHEngineFailureTakesTheErrorBranch(t *testing.T) {
	t.Parallel()
	flow := bankFlow(t)
	eng := &fakeEngine{answer: func(*actors.Step) (*actors.StepReply, error) {
		return nil, actors.ErrTooManyCalls
	}}
	h, _ := NewVAH(testOptions(t, eng, flow))

	status, _, body := call(t, h, testAuth, exchange("DTMF_AS_TEXT", "1", ourState))
	want := `{"branchName":"Error","errorDetails":{"errorBehavior":"ReturnControlToScriptThroughErrorBranch",` +
		`"systemErrorMessage":"dtmfd is at its call limit"}}`
	if status != 200 || strings.TrimSpace(string(body)) != want {
		t.Errorf("reply %d %s\nwant 200 %s", status, body, want)
	}
}

func TestParseState(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		raw  string
		ok   bool
	}{
		{"object", ourState, true},
		{"string", mustJSON(ourState), true},
		{"null", `null`, false},
		{"empty", ``, false},
		{"other layout", `{"dtmfd":2,"session":"a","contactId":"1"}`, false},
		{"no session", `{"dtmfd":1,"contactId":"1"}`, false},
		{"array", `[1]`, false},
		{"string of junk", `"{{"`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if _, ok := parseState(json.RawMessage(tt.raw)); ok != tt.ok {
				t.Errorf("parseState(%s) ok = %v, want %v", tt.raw, ok, tt.ok)
			}
		})
	}
}
