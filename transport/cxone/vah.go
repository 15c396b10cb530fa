package cxone

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/dtmfd/dtmfd/ivrspec"
	"github.com/dtmfd/dtmfd/transport/metrics"
)

// The user input types of an ExternalIntegrationBotExchangeRequest.
const (
	inputNoInput   = "NO_INPUT"
	inputText      = "TEXT"
	inputAudio     = "BASE64_ENCODED_G711_ULAW_WAV_FILE"
	inputArchived  = "USER_INPUT_ARCHIVED_AS_SPECIFIED"
	inputEnded     = "USER_ENDED_SESSION"
	inputAutomated = "AUTOMATED_TEXT"
	inputDTMF      = "DTMF_AS_TEXT"
)

// The branches of a BotExchangeResponse that dtmfd answers with.
const (
	branchPromptAndCollect = "PromptAndCollectNextResponse"
	branchReturnControl    = "ReturnControlToScript"
	branchError            = "Error"
)

// stateVersion marks the botSessionState layout dtmfd writes.
const stateVersion = 1

// vahRequest is the part of an ExternalIntegrationBotExchangeRequest that
// dtmfd reads. Other fields (botConfig, systemTelemetryData,
// base64wavFile, mediaType, ...) are accepted and ignored.
type vahRequest struct {
	VirtualAgentID  string          `json:"virtualAgentId"`
	UserInput       string          `json:"userInput"`
	UserInputType   string          `json:"userInputType"`
	ExecutionInfo   *vahExecution   `json:"executionInfo"`
	BotSessionState json.RawMessage `json:"botSessionState"`
}

// vahExecution is the part of ActionExecutionInfo that dtmfd reads.
type vahExecution struct {
	ContactID contactID `json:"contactId"`
}

// vahState is the botSessionState dtmfd hands the platform and gets back
// on the next exchange. The call's real state lives in its actor; this
// tells a session this process runs from one it never saw, and names the
// node the call waits at, where a process that never saw the call (the
// one that had it is gone) resumes it.
type vahState struct {
	Version   int    `json:"dtmfd"`
	Session   string `json:"session"`
	ContactID string `json:"contactId"`
	Node      string `json:"node,omitempty"`
}

// vahResponse is a BotExchangeResponse.
type vahResponse struct {
	BranchName          string            `json:"branchName"`
	NextPromptSequence  *promptSequence   `json:"nextPromptSequence,omitempty"`
	IntentInfo          *intentInfo       `json:"intentInfo,omitempty"`
	NextPromptBehaviors *promptBehaviors  `json:"nextPromptBehaviors,omitempty"`
	CustomPayload       map[string]string `json:"customPayload,omitempty"`
	ErrorDetails        *botErrorDetails  `json:"errorDetails,omitempty"`
	BotSessionState     *vahState         `json:"botSessionState,omitempty"`
}

type promptSequence struct {
	Prompts []promptDefinition `json:"prompts"`
}

type promptDefinition struct {
	Transcript    string `json:"transcript"`
	AudioFilePath string `json:"audioFilePath,omitempty"`
}

type intentInfo struct {
	Intent           string  `json:"intent"`
	Context          string  `json:"context"`
	IntentConfidence float64 `json:"intentConfidence"`
}

type promptBehaviors struct {
	SilenceRules         silenceRules         `json:"silenceRules"`
	AudioCollectionRules audioCollectionRules `json:"audioCollectionRules"`
}

type silenceRules struct {
	EngageComfortSequence             bool `json:"engageComfortSequence"`
	MillisecondsToWaitForUserResponse int  `json:"millisecondsToWaitForUserResponse,omitempty"`
}

type audioCollectionRules struct {
	CollectionType string    `json:"collectionType"`
	DTMFRules      dtmfRules `json:"dtmfRules"`
}

type dtmfRules struct {
	DetectDTMF                    bool   `json:"detectDtmf"`
	ClearDigits                   bool   `json:"clearDigits"`
	TerminationCharacters         string `json:"terminationCharacters"`
	StripTerminator               bool   `json:"stripTerminator"`
	InterDigitTimeoutMilliseconds int    `json:"interDigitTimeoutMilliseconds,omitempty"`
	MaxDigits                     int    `json:"maxDigits"`
}

type botErrorDetails struct {
	ErrorBehavior      string `json:"errorBehavior"`
	SystemErrorMessage string `json:"systemErrorMessage"`
}

// VAH serves a Virtual Agent Hub custom exchange endpoint. Unlike Studio,
// it accepts fields it does not know: NICE writes the requests and adds
// fields to the schema over time (mediaType is one), and refusing them
// would break every call the day one appears. The fields dtmfd needs are
// checked.
type VAH struct {
	c *core
}

// NewVAH returns the VAH handler for opts.
func NewVAH(opts Options) (*VAH, error) {
	c, err := newCore(opts, "vah")
	if err != nil {
		return nil, err
	}
	return &VAH{c: c}, nil
}

// ServeHTTP implements http.Handler.
func (h *VAH) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !h.c.guard(w, r) {
		return
	}
	body, status, err := readBody(w, r)
	if err != nil {
		h.c.refuse(w, r, status, "", err)
		return
	}
	t, err := h.parse(body)
	if err != nil {
		h.c.refuse(w, r, http.StatusBadRequest, t.contactID, err)
		return
	}

	o, err := h.c.run(r.Context(), t)
	if err != nil {
		h.c.opts.Metrics.Event(h.c.kind, metrics.OutcomeShed)
		h.c.log.Warn("turn failed", "callId", t.contactID, "error", err)
		writeJSON(w, http.StatusOK, vahResponse{
			BranchName: branchError,
			ErrorDetails: &botErrorDetails{
				ErrorBehavior:      "ReturnControlToScriptThroughErrorBranch",
				SystemErrorMessage: engineError(err),
			},
		})
		return
	}
	h.c.opts.Metrics.Event(h.c.kind, metrics.OutcomeAccepted)
	writeJSON(w, http.StatusOK, h.response(t, o))
}

// parse decodes an exchange request into a turn.
func (h *VAH) parse(body []byte) (turn, error) {
	req, err := parseVAHRequest(body)
	if err != nil {
		t := turn{}
		if req.ExecutionInfo != nil {
			t.contactID = validContact(string(req.ExecutionInfo.ContactID))
		}
		return t, err
	}
	t := turn{contactID: string(req.ExecutionInfo.ContactID)}

	st, ok := parseState(req.BotSessionState)
	switch {
	case ok && st.ContactID != t.contactID:
		h.c.log.Warn("session state names another contact; ignored", "callId", t.contactID)
	case ok:
		t.session, t.node = st.Session, st.Node
	}

	input := strings.TrimSpace(req.UserInput)
	switch req.UserInputType {
	case inputDTMF:
		t.kind, t.keys = turnKeys, strings.Join(strings.Fields(input), "")
		if t.keys == "" {
			t.kind = turnNoInput
		}
	case inputNoInput:
		t.kind = turnNoInput
	case inputEnded:
		t.kind = turnHangup
	case inputText, inputAutomated, inputAudio, inputArchived:
		t.kind = otherInput(t.session, input)
		if t.kind == turnKeys {
			t.keys = input
		}
	}
	if err := checkKeys(t.keys); err != nil {
		return turn{contactID: t.contactID}, fmt.Errorf("userInput: %w", err)
	}
	return t, nil
}

// otherInput places an exchange that is not DTMF. Without a session it is
// the platform's opening exchange (AUTOMATED_TEXT "welcome", usually):
// the call starts. Within one, text made only of keys is taken as keys,
// for scripts that send DTMF as plain text; anything else is input dtmfd
// cannot use and counts as none, so the node's no-input rules apply.
func otherInput(session, input string) turnKind {
	switch {
	case session == "":
		return turnStart
	case input != "" && checkKeys(input) == nil:
		return turnKeys
	}
	return turnNoInput
}

// parseVAHRequest decodes a request and checks the fields dtmfd needs.
func parseVAHRequest(body []byte) (vahRequest, error) {
	var req vahRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return req, fmt.Errorf("decode request: %w", err)
	}
	if req.ExecutionInfo == nil {
		return req, errors.New("executionInfo: missing")
	}
	if err := checkContactID(string(req.ExecutionInfo.ContactID)); err != nil {
		return req, fmt.Errorf("executionInfo.contactId: %w", err)
	}
	switch req.UserInputType {
	case inputDTMF, inputNoInput, inputEnded, inputText, inputAutomated, inputAudio, inputArchived:
	case "":
		return req, errors.New("userInputType: missing")
	default:
		return req, fmt.Errorf("userInputType %q: not a known input type", req.UserInputType)
	}
	return req, nil
}

// parseState reads a botSessionState dtmfd wrote. The platform hands back
// what it was given, as an object or, from some scripts, as a string
// holding the object; anything else is no state.
func parseState(raw json.RawMessage) (vahState, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && raw[0] == '"' {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return vahState{}, false
		}
		raw = []byte(s)
	}

	var st vahState
	if json.Unmarshal(raw, &st) != nil || st.Version != stateVersion || st.Session == "" {
		return vahState{}, false
	}
	return st, true
}

// response builds the BotExchangeResponse for an outcome.
func (h *VAH) response(t turn, o outcome) vahResponse {
	payload := map[string]string{"dtmfdStatus": o.status}
	if o.node == nil {
		if d := o.decision; d != nil {
			payload = variableMap(d)
			payload["dtmfdStatus"] = o.status
			payload["dtmfdEnd"], payload["dtmfdReason"] = d.End, d.Reason
		}
		return vahResponse{
			BranchName:         branchReturnControl,
			NextPromptSequence: h.prompts(o.prompt),
			CustomPayload:      payload,
		}
	}

	payload["dtmfdNode"] = o.node.ID
	return vahResponse{
		BranchName:          branchPromptAndCollect,
		NextPromptSequence:  h.prompts(o.prompt),
		IntentInfo:          &intentInfo{Intent: o.node.ID, Context: "dtmfd", IntentConfidence: 1},
		NextPromptBehaviors: behaviors(o.node),
		CustomPayload:       payload,
		BotSessionState: &vahState{Version: stateVersion, Session: h.c.opts.Instance,
			ContactID: t.contactID, Node: o.node.ID},
	}
}

// prompts turns a prompt id into a prompt sequence; an empty id plays
// nothing.
func (h *VAH) prompts(id string) *promptSequence {
	seq := &promptSequence{Prompts: []promptDefinition{}}
	if id == "" {
		return seq
	}
	p := promptDefinition{Transcript: id}
	if h.c.opts.PromptAudio != "" {
		p.AudioFilePath = strings.ReplaceAll(h.c.opts.PromptAudio, "{prompt}", id)
	}
	seq.Prompts = append(seq.Prompts, p)
	return seq
}

// behaviors are the DTMF collection rules of node n. Keys pressed during
// the prompt are kept only when the node allows barge-in; the minimum
// length has no field and is enforced when the keys arrive.
func behaviors(n *ivrspec.Node) *promptBehaviors {
	r := collectRules(n)
	return &promptBehaviors{
		SilenceRules: silenceRules{
			MillisecondsToWaitForUserResponse: int(r.timeout.Milliseconds()),
		},
		AudioCollectionRules: audioCollectionRules{
			CollectionType: "SEND_DTMF_ONLY_AS_TEXT",
			DTMFRules: dtmfRules{
				DetectDTMF:                    true,
				ClearDigits:                   !n.BargeIn,
				TerminationCharacters:         r.terminators,
				StripTerminator:               r.strip,
				InterDigitTimeoutMilliseconds: int(r.interDigit.Milliseconds()),
				MaxDigits:                     r.maxDigits,
			},
		},
	}
}
