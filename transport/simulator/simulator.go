// Package simulator serves POST /simulator, which feeds keys into dtmfd
// through the same ingress as the voice stream, so a developer can walk an
// IVR flow with curl and no live call.
//
// The request body is {"callId":"c1","digit":"1"}; "digits":"2A1" feeds
// several keys in order. The reply is 200 {"status":"digit_processed"}
// once the keys are handed to the call's actor. A bad payload is answered
// 400 with {"error":"..."} saying what is wrong; any method but POST, 405;
// while dtmfd shuts down, 503.
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
)

// ErrUnavailable is returned by an Ingest func that takes no more input.
var ErrUnavailable = errors.New("not accepting input")

// maxBody bounds a request body; a real one is under 100 bytes.
const maxBody = 4 << 10

// maxCallID bounds a call id, as the stream's frames are bounded.
const maxCallID = 256

// Handler serves the simulator endpoint.
type Handler struct {
	// Ingest hands one key to the engine.
	Ingest func(callID string, key byte, at time.Time) error
	// Token, when set, is the bearer token every request must carry.
	Token string
	// Logger receives request problems at Debug.
	Logger *slog.Logger
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
		w.Header().Set("WWW-Authenticate", `Bearer realm="dtmfd"`)
		reply(w, http.StatusUnauthorized, "error", "missing or wrong bearer token")
		return
	}

	req, err := decode(w, r)
	if err != nil {
		h.logger().Debug("simulator request refused", "error", err)
		reply(w, http.StatusBadRequest, "error", err.Error())
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
			return req, fmt.Errorf("body over %d bytes", maxBody)
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
