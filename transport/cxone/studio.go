package cxone

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/dtmfd/dtmfd/transport/metrics"
)

// The events a Studio script reports.
const (
	EventStart   = "start"
	EventDigits  = "digits"
	EventTimeout = "timeout"
	EventHangup  = "hangup"
)

// The actions a Studio reply asks for.
const (
	ActionCollect = "collect"
	ActionEnd     = "end"
	ActionError   = "error"
)

// studioRequest is the body a Studio REST API action posts: the contact,
// what happened, and the keys its Capture action collected. Session is
// the session value of the previous reply, if the script keeps it. Turn,
// if the script counts its turns, tells a turn sent again from a new one.
// Node, if the script keeps the node of the previous reply, is the node
// whose prompt the digits answer.
type studioRequest struct {
	ContactID contactID       `json:"contactId"`
	Event     string          `json:"event"`
	Digits    string          `json:"digits,omitempty"`
	Session   string          `json:"session,omitempty"`
	Turn      json.RawMessage `json:"turn,omitempty"`
	Node      string          `json:"node,omitempty"`
}

// studioReply is the JSON a Studio script reads into a dynamic variable.
// Action says what to do next: collect (play Prompt, capture by Collect,
// post again), end (route on Status and Variables), or error (route to a
// fallback; Error says why).
type studioReply struct {
	Action    string         `json:"action"`
	Status    string         `json:"status,omitempty"`
	ContactID string         `json:"contactId,omitempty"`
	Session   string         `json:"session,omitempty"`
	Node      string         `json:"node,omitempty"`
	Prompt    string         `json:"prompt,omitempty"`
	Collect   *studioCollect `json:"collect,omitempty"`
	NoInput   int            `json:"noInput"`
	NoMatch   int            `json:"noMatch"`
	// End and Reason say where and how a decided call ended.
	End       string            `json:"end,omitempty"`
	Reason    string            `json:"reason,omitempty"`
	Variables map[string]string `json:"variables,omitempty"`
	Error     string            `json:"error,omitempty"`
}

// studioCollect holds the rules for the script's Capture action. Times are
// whole seconds, rounded up, as Capture takes them.
type studioCollect struct {
	MinDigits                int    `json:"minDigits"`
	MaxDigits                int    `json:"maxDigits"`
	Terminators              string `json:"terminators"`
	StripTerminator          bool   `json:"stripTerminator"`
	TimeoutSeconds           int    `json:"timeoutSeconds"`
	InterDigitTimeoutSeconds int    `json:"interDigitTimeoutSeconds"`
}

// Studio serves the endpoint a Studio REST API action posts to, such as
// POST /cxone/studio. It refuses unknown fields: the request is written
// by hand in a script, and a misspelt field silently ignored would cost a
// caller their input.
type Studio struct {
	c *core
}

// NewStudio returns the Studio handler for opts.
func NewStudio(opts Options) (*Studio, error) {
	c, err := newCore(opts, "studio")
	if err != nil {
		return nil, err
	}
	return &Studio{c: c}, nil
}

// ServeHTTP implements http.Handler.
func (h *Studio) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !h.c.guard(w, r) {
		return
	}
	body, status, err := readBody(w, r)
	if err != nil {
		h.c.refuse(w, r, status, "", err)
		return
	}
	req, t, err := parseStudioRequest(body)
	if err != nil {
		h.c.refuse(w, r, http.StatusBadRequest, validContact(string(req.ContactID)), err)
		return
	}

	// The REST API action sends a request again when it sees no reply. A
	// request with a turn number is applied once: the call answers a repeat
	// of its last turn with the reply that turn got. Without one, a turn
	// whose reply was lost in transit is applied twice. Failures dtmfd sees
	// are answered 200, so the action has no failure to send again.
	o, err := h.c.run(r.Context(), t)
	if err != nil {
		h.c.opts.Metrics.Event(h.c.kind, metrics.OutcomeShed)
		h.c.log.Warn("turn failed", "callId", t.contactID, "error", err)
		h.reply(w, studioReply{Action: ActionError, ContactID: string(req.ContactID),
			Error: engineError(err)})
		return
	}
	h.c.opts.Metrics.Event(h.c.kind, metrics.OutcomeAccepted)
	h.reply(w, h.studioReply(t, o))
}

// parseStudioRequest decodes and checks a request strictly, the Content-
// Type aside: the REST API action sends a form content type by default
// whatever the body holds.
func parseStudioRequest(body []byte) (studioRequest, turn, error) {
	var req studioRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return req, turn{}, fmt.Errorf("decode request: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return req, turn{}, errors.New("decode request: data after the JSON object")
	}

	t := turn{contactID: string(req.ContactID), keys: req.Digits, session: req.Session,
		node: req.Node}
	if err := checkContactID(t.contactID); err != nil {
		return req, turn{}, fmt.Errorf("contactId: %w", err)
	}
	n, err := parseTurnNumber(req.Turn)
	if err != nil {
		return req, turn{}, fmt.Errorf("turn: %w", err)
	}
	if n > 0 {
		t.requestID = "studio:" + strconv.FormatInt(n, 10)
	}
	if err := checkKeys(req.Digits); err != nil {
		return req, turn{}, fmt.Errorf("digits: %w", err)
	}
	if len(req.Node) > maxNodeID {
		return req, turn{}, fmt.Errorf("node: longer than %d bytes", maxNodeID)
	}
	switch req.Event {
	case EventStart:
		t.kind = turnStart
	case EventDigits:
		t.kind = turnKeys
		if req.Digits == "" {
			t.kind = turnNoInput
		}
	case EventTimeout:
		t.kind = turnNoInput
	case EventHangup:
		t.kind = turnHangup
	default:
		return req, turn{}, fmt.Errorf("event %q: want start, digits, timeout or hangup", req.Event)
	}
	if req.Digits != "" && t.kind != turnKeys {
		return req, turn{}, fmt.Errorf("event %s takes no digits", req.Event)
	}
	return req, t, nil
}

// parseTurnNumber reads the turn field: a whole number from 1, as a JSON
// number or as a string holding one, which is what a script's snippet
// builds. It returns 0 when the field is absent or null.
func parseTurnNumber(raw json.RawMessage) (int64, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return 0, nil
	}
	s := string(raw)
	if raw[0] == '"' {
		if err := json.Unmarshal(raw, &s); err != nil {
			return 0, fmt.Errorf("decode string: %w", err)
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 1 {
		return 0, errors.New("not a whole number of 1 or more")
	}
	return n, nil
}

func (h *Studio) studioReply(t turn, o outcome) studioReply {
	rep := studioReply{Status: o.status, ContactID: t.contactID, NoInput: o.noInput,
		NoMatch: o.noMatch, Prompt: o.prompt}
	if o.node != nil {
		rep.Action = ActionCollect
		rep.Session = h.c.opts.Instance
		rep.Node = o.node.ID
		rep.Collect = newStudioCollect(collectRules(o.node))
		return rep
	}

	rep.Action = ActionEnd
	if d := o.decision; d != nil {
		rep.End, rep.Reason = d.End, d.Reason
		rep.Variables = variableMap(d)
	}
	return rep
}

func newStudioCollect(r rules) *studioCollect {
	return &studioCollect{
		MinDigits:                r.minDigits,
		MaxDigits:                r.maxDigits,
		Terminators:              r.terminators,
		StripTerminator:          r.strip,
		TimeoutSeconds:           seconds(r.timeout),
		InterDigitTimeoutSeconds: seconds(r.interDigit),
	}
}

// seconds rounds d up to whole seconds; zero stays zero.
func seconds(d time.Duration) int {
	return int(math.Ceil(d.Seconds()))
}

// reply writes rep, or an error in its place if it would exceed what the
// REST API action reads. Decision variables are the only unbounded part,
// and they also reach the script by the Signal API.
func (h *Studio) reply(w http.ResponseWriter, rep studioReply) {
	b, err := json.Marshal(rep)
	if err == nil && len(b) > maxReplyBytes {
		h.c.log.Warn("reply too large for a Studio REST API action; sent an error instead",
			"callId", rep.ContactID, "bytes", len(b))
		b, err = json.Marshal(studioReply{Action: ActionError, Status: rep.Status,
			ContactID: rep.ContactID, Error: "reply too large; the decision goes by signal"})
	}
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, errorReply{Error: "encode reply"})
		return
	}

	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}
