package stream

import (
	"encoding/json"
	"testing"
)

func FuzzFastMatchesJSON(f *testing.F) {
	f.Add([]byte(`{"type":"dtmf","digit":"1","callId":"call-0000001","timestamp":1764781234567}`))
	f.Add([]byte(` { "type" : "dtmf" , "timestamp" : -0 } `))
	f.Add([]byte(`{"type":"dtmf","type":"x"}`))
	f.Add([]byte(`{"Type":"dtmf","digit":"1","callId":"c","timestamp":1}`))
	f.Add([]byte(`{"type":"dtmf","digit":"1","callId":"c","timestamp":1e3}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var fast wireEvent
		if !parseFast(b, &fast) {
			return
		}
		var slow wireEvent
		if err := json.Unmarshal(b, &slow); err != nil {
			t.Fatalf("fast accepted %q, json refused: %v", b, err)
		}
		if fast != slow {
			t.Fatalf("%q: fast %+v, json %+v", b, fast, slow)
		}
	})
}

func TestFastPathDefersToJSON(t *testing.T) {
	t.Parallel()
	for _, frame := range []string{
		`{"Type":"dtmf","digit":"1","callId":"c","timestamp":1}`,
		`{"type":"dtmf","digit":"\u0031","callId":"c","timestamp":1}`,
		`{"type":"dtmf","digit":"1","callId":"c","timestamp":1,"extra":true}`,
	} {
		var w wireEvent
		if parseFast([]byte(frame), &w) {
			t.Errorf("fast path took %s; it must leave anything unusual to encoding/json", frame)
		}
		if ev, err := ParseFrame([]byte(frame)); err != nil || ev.Digit != "1" || ev.CallID != "c" {
			t.Errorf("ParseFrame(%s) = %+v, %v; want the event", frame, ev, err)
		}
	}
}
