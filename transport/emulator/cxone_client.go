package emulator

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
)

// maxClientReply bounds a reply the clients read. Studio's REST API
// action reads at most 32 KB; the clients read a little more so that a
// reply over that limit is reported as such rather than cut off.
const maxClientReply = 64 << 10

// studioReplyLimit is the largest reply a Studio REST API action takes.
const studioReplyLimit = 32 << 10

// StatusError is a reply other than 200 from an endpoint a client called.
type StatusError struct {
	Status int
	Body   string
}

// Error reports the status and the start of the reply.
func (e *StatusError) Error() string {
	return "endpoint answered " + strconv.Itoa(e.Status) + ": " + e.Body
}

// StudioRequest is what a Studio REST API action posts to dtmfd.
type StudioRequest struct {
	ContactID string `json:"contactId"`
	Event     string `json:"event"`
	Digits    string `json:"digits,omitempty"`
	Session   string `json:"session,omitempty"`
	// Turn numbers the turn, so that a request sent again is not applied
	// twice; 0 leaves it out.
	Turn int `json:"turn,omitempty"`
	// Node is the node of the reply the digits answer; "" leaves it out.
	Node string `json:"node,omitempty"`
}

// StudioReply is dtmfd's answer as a Studio script reads it.
type StudioReply struct {
	Action    string            `json:"action"`
	Status    string            `json:"status"`
	ContactID string            `json:"contactId"`
	Session   string            `json:"session"`
	Node      string            `json:"node"`
	Prompt    string            `json:"prompt"`
	Collect   *StudioCollect    `json:"collect"`
	NoInput   int               `json:"noInput"`
	NoMatch   int               `json:"noMatch"`
	End       string            `json:"end"`
	Reason    string            `json:"reason"`
	Variables map[string]string `json:"variables"`
	Error     string            `json:"error"`
}

// StudioCollect is the rules a Studio Capture action is given.
type StudioCollect struct {
	MinDigits                int    `json:"minDigits"`
	MaxDigits                int    `json:"maxDigits"`
	Terminators              string `json:"terminators"`
	StripTerminator          bool   `json:"stripTerminator"`
	TimeoutSeconds           int    `json:"timeoutSeconds"`
	InterDigitTimeoutSeconds int    `json:"interDigitTimeoutSeconds"`
}

// StudioClient plays a Studio script's REST API action against dtmfd's
// Studio endpoint. It sends what the action sends by default, a form
// content type over a JSON body, and refuses a reply the action could
// not read: not JSON, or over 32 KB.
type StudioClient struct {
	// URL is the endpoint, such as http://127.0.0.1:8080/cxone/studio.
	URL string
	// Auth is the Authorization header value, such as "Bearer x".
	Auth string
	// HTTPClient sends the requests; nil means http.DefaultClient.
	HTTPClient *http.Client
}

// Step posts one turn: event is start, digits, timeout or hangup.
func (c StudioClient) Step(
	ctx context.Context, contactID, digits, event string,
) (*StudioReply, error) {
	return c.Send(ctx, StudioRequest{ContactID: contactID, Event: event, Digits: digits})
}

// Send posts req as is.
func (c StudioClient) Send(ctx context.Context, req StudioRequest) (*StudioReply, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("encode studio request: %w", err)
	}
	var rep StudioReply
	err = post(ctx, c.HTTPClient, c.URL, c.Auth, "application/x-www-form-urlencoded",
		body, studioReplyLimit, &rep)
	if err != nil {
		return nil, err
	}
	return &rep, nil
}

// Call starts a series of turns for one contact, played as a Studio
// script that keeps the session and node of each reply and numbers its
// turns.
func (c StudioClient) Call(contactID string) *StudioCall {
	return &StudioCall{client: c, contactID: contactID}
}

// StudioCall is one contact's series of Studio turns. Its methods are
// safe for concurrent use, though a real script makes one turn at a time.
type StudioCall struct {
	client    StudioClient
	contactID string

	mu            sync.Mutex
	turn          int
	session, node string
}

// Send posts the next turn with the session and node of the last reply,
// and keeps those of this reply for the next turn.
func (c *StudioCall) Send(ctx context.Context, event, digits string) (*StudioReply, error) {
	c.mu.Lock()
	c.turn++
	req := StudioRequest{ContactID: c.contactID, Event: event, Digits: digits, Turn: c.turn,
		Session: c.session, Node: c.node}
	c.mu.Unlock()

	rep, err := c.client.Send(ctx, req)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.session, c.node = rep.Session, rep.Node
	c.mu.Unlock()
	return rep, nil
}

// VAHRequest is an ExternalIntegrationBotExchangeRequest as Virtual Agent
// Hub sends it.
type VAHRequest struct {
	VirtualAgentID      string           `json:"virtualAgentId"`
	BotConfig           json.RawMessage  `json:"botConfig"`
	UserInput           string           `json:"userInput"`
	UserInputType       string           `json:"userInputType"`
	ExecutionInfo       VAHExecutionInfo `json:"executionInfo"`
	SystemTelemetryData json.RawMessage  `json:"systemTelemetryData"`
	Base64WavFile       *string          `json:"base64wavFile"`
	BotSessionState     json.RawMessage  `json:"botSessionState"`
	CustomPayload       json.RawMessage  `json:"customPayload"`
	MediaType           string           `json:"mediaType"`
}

// VAHExecutionInfo is the ActionExecutionInfo of a request.
type VAHExecutionInfo struct {
	ContactID  int64  `json:"contactId"`
	BusNo      int32  `json:"busNo"`
	RequestID  int32  `json:"requestId"`
	ActionType string `json:"actionType"`
	ActionID   int32  `json:"actionId"`
	ScriptName string `json:"scriptName"`
}

// VAHResponse is a BotExchangeResponse.
type VAHResponse struct {
	BranchName          string             `json:"branchName"`
	NextPromptSequence  *VAHPromptSequence `json:"nextPromptSequence"`
	IntentInfo          *VAHIntentInfo     `json:"intentInfo"`
	NextPromptBehaviors *VAHBehaviors      `json:"nextPromptBehaviors"`
	CustomPayload       map[string]any     `json:"customPayload"`
	ErrorDetails        *VAHErrorDetails   `json:"errorDetails"`
	BotSessionState     json.RawMessage    `json:"botSessionState"`
}

// VAHPromptSequence is a PromptSequence.
type VAHPromptSequence struct {
	Prompts []VAHPrompt `json:"prompts"`
}

// VAHPrompt is a PromptDefinition.
type VAHPrompt struct {
	Transcript                         string `json:"transcript"`
	Base64EncodedG711ulawWithWavHeader string `json:"base64EncodedG711ulawWithWavHeader"`
	AudioFilePath                      string `json:"audioFilePath"`
	TextToSpeech                       string `json:"textToSpeech"`
}

// VAHIntentInfo is an IntentInfo.
type VAHIntentInfo struct {
	Intent           string  `json:"intent"`
	Context          string  `json:"context"`
	IntentConfidence float64 `json:"intentConfidence"`
}

// VAHBehaviors is a PromptBehaviors.
type VAHBehaviors struct {
	SilenceRules struct {
		EngageComfortSequence             bool `json:"engageComfortSequence"`
		BotResponseDelayTolerance         int  `json:"botResponseDelayTolerance"`
		MillisecondsToWaitForUserResponse int  `json:"millisecondsToWaitForUserResponse"`
	} `json:"silenceRules"`
	AudioCollectionRules struct {
		CollectionType string       `json:"collectionType"`
		DTMFRules      VAHDTMFRules `json:"dtmfRules"`
	} `json:"audioCollectionRules"`
}

// VAHDTMFRules is a CollectDtmfRules.
type VAHDTMFRules struct {
	DetectDTMF                    bool   `json:"detectDtmf"`
	ClearDigits                   bool   `json:"clearDigits"`
	TerminationCharacters         string `json:"terminationCharacters"`
	StripTerminator               bool   `json:"stripTerminator"`
	InterDigitTimeoutMilliseconds int    `json:"interDigitTimeoutMilliseconds"`
	MaxDigits                     int    `json:"maxDigits"`
}

// VAHErrorDetails is a BotErrorDetails.
type VAHErrorDetails struct {
	ErrorBehavior      string `json:"errorBehavior"`
	SystemErrorMessage string `json:"systemErrorMessage"`
}

// VAHClient plays Virtual Agent Hub's custom exchange against dtmfd's VAH
// endpoint.
type VAHClient struct {
	// URL is the endpoint, such as http://127.0.0.1:8080/cxone/vah.
	URL string
	// Auth is the Authorization header value.
	Auth string
	// VirtualAgentID names the app, as the platform sends it.
	VirtualAgentID string
	// HTTPClient sends the requests; nil means http.DefaultClient.
	HTTPClient *http.Client
}

// Exchange posts req as is.
func (c VAHClient) Exchange(ctx context.Context, req VAHRequest) (*VAHResponse, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("encode exchange request: %w", err)
	}
	var rep VAHResponse
	err = post(ctx, c.HTTPClient, c.URL, c.Auth, "application/json", body, maxClientReply, &rep)
	if err != nil {
		return nil, err
	}
	return &rep, nil
}

// Call starts a conversation for one contact that keeps botSessionState
// between exchanges, as the platform does.
func (c VAHClient) Call(contactID int64) *VAHCall {
	return &VAHCall{client: c, contactID: contactID}
}

// VAHCall is one contact's series of exchanges. Its methods are safe for
// concurrent use, though a real contact makes one exchange at a time.
type VAHCall struct {
	client    VAHClient
	contactID int64

	mu        sync.Mutex
	state     json.RawMessage
	requestID int32
}

// Exchange sends one exchange with the state the last reply handed back,
// and keeps the state of this reply for the next.
func (c *VAHCall) Exchange(ctx context.Context, inputType, input string) (*VAHResponse, error) {
	c.mu.Lock()
	c.requestID++
	req := VAHRequest{
		VirtualAgentID: c.client.VirtualAgentID,
		BotConfig:      json.RawMessage(`{}`),
		UserInput:      input,
		UserInputType:  inputType,
		ExecutionInfo: VAHExecutionInfo{
			ContactID: c.contactID, BusNo: 4600001, RequestID: c.requestID,
			ActionType: "VoiceBotExchange", ActionID: 7, ScriptName: "Emulator\\DTMF",
		},
		SystemTelemetryData: json.RawMessage(`{"consumerProcessName":"cxone-emulator"}`),
		BotSessionState:     c.state,
		CustomPayload:       json.RawMessage(`{}`),
		MediaType:           "Voice",
	}
	c.mu.Unlock()

	rep, err := c.client.Exchange(ctx, req)
	if err != nil {
		return nil, err
	}
	c.SetState(rep.BotSessionState)
	return rep, nil
}

// State returns the botSessionState the next exchange will send.
func (c *VAHCall) State() json.RawMessage {
	c.mu.Lock()
	defer c.mu.Unlock()
	return bytes.Clone(c.state)
}

// SetState replaces the botSessionState the next exchange will send, as
// a test that plays a lost or foreign session needs.
func (c *VAHCall) SetState(state json.RawMessage) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(state) == 0 || string(state) == "null" {
		c.state = nil
		return
	}
	c.state = bytes.Clone(state)
}

// post sends body and decodes a 200 JSON reply of at most limit bytes
// into out.
func post(ctx context.Context, hc *http.Client, url, auth, contentType string,
	body []byte, limit int, out any) error {
	if hc == nil {
		hc = http.DefaultClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Accept", "application/json")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}

	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("post: %w", err)
	}
	defer resp.Body.Close()

	reply, err := io.ReadAll(io.LimitReader(resp.Body, maxClientReply+1))
	if err != nil {
		return fmt.Errorf("read reply: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return &StatusError{Status: resp.StatusCode, Body: strings.TrimSpace(string(reply))}
	}
	if len(reply) > limit {
		return fmt.Errorf("reply of %d bytes exceeds the %d the platform reads", len(reply), limit)
	}
	if err := json.Unmarshal(reply, out); err != nil {
		return fmt.Errorf("decode reply: %w", err)
	}
	return nil
}
