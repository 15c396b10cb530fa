package stream

import (
	"slices"
	"strings"
	"testing"
)

func TestParseFrame(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name    string
		frame   string
		want    Event
		wantErr error
	}{
		{"dtmf", `{"type":"dtmf","digit":"1","callId":"c1","timestamp":1700000000000}`,
			Event{Type: "dtmf", Digit: "1", CallID: "c1", Timestamp: 1700000000000}, nil},
		{"star", `{"type":"dtmf","digit":"*","callId":"c1"}`,
			Event{Type: "dtmf", Digit: "*", CallID: "c1"}, nil},
		{"hash", `{"type":"dtmf","digit":"#","callId":"c1"}`,
			Event{Type: "dtmf", Digit: "#", CallID: "c1"}, nil},
		{"extended key", `{"type":"dtmf","digit":"D","callId":"c1"}`,
			Event{Type: "dtmf", Digit: "D", CallID: "c1"}, nil},
		{"white space and extra fields",
			" \n{\"callId\":\"c1\",\"digit\":\"0\",\"type\":\"dtmf\",\"x\":[1]}\r\n",
			Event{Type: "dtmf", Digit: "0", CallID: "c1"}, nil},
		{"lowercase extended key", `{"type":"dtmf","digit":"a","callId":"c1"}`,
			Event{Type: "dtmf", CallID: "c1"}, ErrBadDigit},
		{"two digits", `{"type":"dtmf","digit":"12","callId":"c1"}`,
			Event{Type: "dtmf", CallID: "c1"}, ErrBadDigit},
		{"empty digit", `{"type":"dtmf","digit":"","callId":"c1"}`,
			Event{Type: "dtmf", CallID: "c1"}, ErrBadDigit},
		{"no digit", `{"type":"dtmf","callId":"c1"}`,
			Event{Type: "dtmf", CallID: "c1"}, ErrBadDigit},
		{"letter beyond D", `{"type":"dtmf","digit":"E","callId":"c1"}`,
			Event{Type: "dtmf", CallID: "c1"}, ErrBadDigit},
		{"no call id", `{"type":"dtmf","digit":"1"}`,
			Event{Type: "dtmf"}, ErrNoCallID},
		{"null call id", `{"type":"dtmf","digit":"1","callId":null}`,
			Event{Type: "dtmf"}, ErrNoCallID},
		{"unknown type", `{"type":"hangup","callId":"c1","timestamp":5}`,
			Event{Type: "hangup", CallID: "c1", Timestamp: 5}, ErrUnknownType},
		{"no type", `{"digit":"1","callId":"c1"}`,
			Event{CallID: "c1"}, ErrUnknownType},
		{"not json", `dtmf 1`, Event{}, ErrMalformed},
		{"empty", ``, Event{}, ErrMalformed},
		{"null", `null`, Event{}, ErrMalformed},
		{"array", `[{"type":"dtmf","digit":"1","callId":"c1"}]`, Event{}, ErrMalformed},
		{"two objects", `{"type":"dtmf","digit":"1","callId":"c1"}{}`, Event{}, ErrMalformed},
		{"digit as number", `{"type":"dtmf","digit":1,"callId":"c1"}`, Event{}, ErrMalformed},
		{"timestamp as string", `{"type":"dtmf","digit":"1","callId":"c1","timestamp":"1"}`,
			Event{}, ErrMalformed},
		{"truncated", `{"type":"dtmf","digit":"1","callId":"c`, Event{}, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			got, err := ParseFrame([]byte(tt.frame))
			if err != tt.wantErr {
				t.Fatalf("ParseFrame err = %v, want %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("ParseFrame = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func FuzzParseFrame(f *testing.F) {
	for _, seed := range []string{
		`{"type":"dtmf","digit":"1","callId":"c1","timestamp":1700000000000}`,
		`{"type":"dtmf","digit":"#","callId":"c1"}`,
		`{"type":"dtmf","digit":"a","callId":"c1"}`,
		`{"type":"dtmf","digit":"1"}`,
		`{"type":"hangup","callId":"c1"}`,
		`{"TYPE":"dtmf","Digit":"B","CALLID":"c1"}`,
		`{"type":"dtmf","digit":"\u0031","callId":"\ud800"}`,
		`{"type":"dtmf","digit":"1","callId":"c1","timestamp":1e3}`,
		`null`,
		`[]`,
		` {} `,
		"",
	} {
		f.Add([]byte(seed))
	}

	sentinels := []error{ErrMalformed, ErrNoCallID, ErrBadDigit, ErrUnknownType}
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, err := ParseFrame(b)
		if err != nil {
			if !slices.Contains(sentinels, err) {
				t.Fatalf("error %v is not a frame sentinel", err)
			}
			if ev.Digit != "" {
				t.Errorf("rejected frame carries digit %q", ev.Digit)
			}
			return
		}

		if ev.Type != TypeDTMF || ev.CallID == "" || !validDigit(ev.Digit) {
			t.Errorf("accepted invalid event %+v from %q", ev, b)
		}
		if len(ev.Digit) != 1 || !strings.Contains("0123456789*#ABCD", ev.Digit) {
			t.Errorf("accepted digit %q from %q", ev.Digit, b)
		}
		if !ev.Received.IsZero() {
			t.Errorf("ParseFrame set Received")
		}
	})
}

func BenchmarkParseFrame(b *testing.B) {
	frame := []byte(`{"type":"dtmf","digit":"7","callId":` +
		`"4f1c2a9e-0b7d-4c55-9a43-2d1e8f3b6a10","timestamp":1700000000000}`)
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()

	for b.Loop() {
		if _, err := ParseFrame(frame); err != nil {
			b.Fatal(err)
		}
	}
}
