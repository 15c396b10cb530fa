// Package simulator serves POST /simulator, which feeds keys into dtmfd
// through the same ingress as the voice stream, so a developer can walk an
// IVR flow with curl and no live call.
//
// The request body is {"callId":"c1","digit":"1"}; "digits":"2A1" feeds
// several keys in order. The reply is 200 {"status":"digit_processed"}
// once the keys are handed to the call's actor. A bad payload is answered
// 400 with {"error":"..."} saying what is wrong, a body over 4 KiB 413;
// any method but POST, 405; while dtmfd shuts down, 503. Refused requests
// are logged and counted, so a client sending nonsense shows up.
package simulator

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/dtmfd/dtmfd/ivrspec"
	"github.com/dtmfd/dtmfd/transport/metrics"
)

// ErrUnavailable is returned by an Ingest func that takes no more input.
var ErrUnavailable = errors.New("not accepting input")

// maxBody bounds a request body; a real one is under 100 bytes.
const maxBody = 4 << 10

// errTooLarge is a body over maxBody, answered 413.
var errTooLarge = fmt.Errorf("body over %d bytes", maxBody)

// maxCallID bounds a call id, as the stream's frames are bounded.
const maxCallID = 256

// Handler serves the simulator endpoint.
type Handler struct {
	// Ingest hands one key to the engine.
	Ingest func(callID string, key byte, at time.Time) error
	// Token, when set, is the bearer token every request must carry.
	Token string
	// Logger receives refused requests: a bad payload at Warn, a missing
	// or wrong token at Info. Nil discards them.
	Logger *slog.Logger
	// Metrics counts refused requests under the simulator event type.
	Metrics *metrics.Metrics
}

type request struct {
	CallID string `json:"callId"`
	Digit  string `json:"digit"`
	Digits string `json:"digits"`
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		reply(w, http.StatusMethodNotAllowed, "error", "method not allowed: use POST")
		return
	}
	if h.Token != "" && !authorized(r, h.Token) {
		h.Metrics.Event(metrics.TypeSimulator, metrics.OutcomeUnauthorized)
		h.logger().Info("simulator request refused: missing or wrong bearer token",
			"remote", r.RemoteAddr)
		w.Header().Set("WWW-Authenticate", `Bearer realm="dtmfd"`)
		reply(w, http.StatusUnauthorized, "error", "missing or wrong bearer token")
		return
	}

	req, err := decode(w, r)
	if err != nil {
		h.refuse(w, r, req.CallID, err)
		return
	}

	now := time.Now()
	for i := 0; i < len(req.Digits); i++ {
		if err := h.Ingest(req.CallID, req.Digits[i], now); err != nil {
			reply(w, http.StatusServiceUnavailable, "error", "shutting down: "+err.Error())
			return
		}
	}
	reply(w, http.StatusOK, "status", "digit_processed")
}

// refuse answers a bad payload, then logs and counts it. The call id is
// logged when the body named one.
func (h *Handler) refuse(w http.ResponseWriter, r *http.Request, callID string, err error) {
	status := http.StatusBadRequest
	if errors.Is(err, errTooLarge) {
		status = http.StatusRequestEntityTooLarge
	}
	h.Metrics.Event(metrics.TypeSimulator, metrics.OutcomeMalformed)

	attrs := []any{"status", status, "remote", r.RemoteAddr, "reason", err.Error()}
	if callID != "" {
		attrs = append(attrs, "callId", callID[:min(len(callID), maxCallID)])
	}
	h.logger().Warn("simulator request refused", attrs...)
	reply(w, status, "error", err.Error())
}

func (h *Handler) logger() *slog.Logger {
	if h.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return h.Logger
}

// decode reads and checks a request; the error says what is wrong in
// words a caller can act on.
func decode(w http.ResponseWriter, r *http.Request) (request, error) {
	var req request
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return req, errTooLarge
		}
		return req, fmt.Errorf("invalid JSON: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return req, errors.New("invalid JSON: more than one value in the body")
	}

	switch {
	case req.CallID == "":
		return req, errors.New("callId is required")
	case len(req.CallID) > maxCallID:
		return req, fmt.Errorf("callId is longer than %d bytes", maxCallID)
	case req.Digit != "" && req.Digits != "":
		return req, errors.New("give digit or digits, not both")
	case req.Digit == "" && req.Digits == "":
		return req, errors.New("digit is required: one of 0-9 * # A-D")
	case req.Digit != "" && len(req.Digit) != 1:
		return req, fmt.Errorf("digit %q must be a single key: one of 0-9 * # A-D", req.Digit)
	}
	req.Digits += req.Digit
	for i := 0; i < len(req.Digits); i++ {
		if !ivrspec.ValidKey(req.Digits[i]) {
			return req, fmt.Errorf("digit %q is not a DTMF key: use 0-9 * # A-D", req.Digits[i:i+1])
		}
	}
	return req, nil
}

func authorized(r *http.Request, token string) bool {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && subtle.ConstantTimeCompare([]byte(got), []byte(token)) == 1
}

func reply(w http.ResponseWriter, code int, key, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{key: msg})
}
