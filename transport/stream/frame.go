package stream

import (
	"encoding/json"
	"errors"
	"time"
)

// TypeDTMF is the event type of a key press.
const TypeDTMF = "dtmf"

// Frame errors. ParseFrame returns exactly one of them, unwrapped, so that
// the ingress can count rejected frames by kind with a comparison.
var (
	// ErrMalformed reports a frame that is not a JSON object of the
	// expected shape, or not a text frame.
	ErrMalformed = errors.New("stream: malformed frame")

	// ErrNoCallID reports a dtmf event without a call id.
	ErrNoCallID = errors.New("stream: dtmf event has no call id")

	// ErrBadDigit reports a dtmf event whose digit is not one key.
	ErrBadDigit = errors.New("stream: dtmf event has an invalid digit")

	// ErrUnknownType reports a well-formed event of a type dtmfd ignores.
	ErrUnknownType = errors.New("stream: unknown event type")
)

// Event is one event read from the voice stream.
type Event struct {
	// Type is the event type; TypeDTMF for every event handed to OnEvent.
	Type string

	// Digit is the key pressed: one of 0-9, *, #, A-D.
	Digit string

	// CallID names the call the event belongs to.
	CallID string

	// Timestamp is the platform's time of the event in UNIX milliseconds,
	// or 0 if the frame had none.
	Timestamp int64

	// Received is when dtmfd read the frame. ParseFrame leaves it zero.
	Received time.Time
}

// wireEvent is the JSON form of an event.
type wireEvent struct {
	Type      string `json:"type"`
	Digit     string `json:"digit"`
	CallID    string `json:"callId"`
	Timestamp int64  `json:"timestamp"`
}

// ParseFrame decodes one text frame of the voice stream.
//
// A frame must be a single JSON object whose fields, where present, have
// the right JSON types; keys match as encoding/json matches them, ignoring
// case. An event of another type than dtmf is rejected with ErrUnknownType
// and a dtmf event needs a call id and a digit that is exactly one of
// 0-9, *, #, A-D. Lowercase a-d is rejected: DTMF has four extended keys,
// and a platform that sends them lowercase is sending something else.
//
// On ErrUnknownType, ErrNoCallID and ErrBadDigit the returned Event holds
// the frame's type, call id and timestamp, so a rejection can be counted by
// type and traced to its call. Its Digit is always empty, so a rejected
// frame never carries caller input further.
func ParseFrame(b []byte) (Event, error) {
	if !isObject(b) {
		return Event{}, ErrMalformed
	}

	var w wireEvent
	if !parseFast(b, &w) {
		w = wireEvent{}
		if err := json.Unmarshal(b, &w); err != nil {
			return Event{}, ErrMalformed
		}
	}

	ev := Event{Type: w.Type, CallID: w.CallID, Timestamp: w.Timestamp}
	switch {
	case w.Type != TypeDTMF:
		return ev, ErrUnknownType
	case w.CallID == "":
		return ev, ErrNoCallID
	case !validDigit(w.Digit):
		return ev, ErrBadDigit
	}

	ev.Digit = w.Digit
	return ev, nil
}

// isObject reports whether b starts, after JSON white space, with '{'.
// encoding/json decodes null and other values into a struct without
// complaint; this keeps them out.
func isObject(b []byte) bool {
	for _, c := range b {
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		case '{':
			return true
		default:
			return false
		}
	}
	return false
}

// validDigit reports whether d is one DTMF key.
func validDigit(d string) bool {
	if len(d) != 1 {
		return false
	}

	c := d[0]
	return c >= '0' && c <= '9' || c >= 'A' && c <= 'D' || c == '*' || c == '#'
}
