package emulator

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// recorder is an endpoint that keeps what it was sent and answers with
// the reply func.
type recorder struct {
	mu     sync.Mutex
	bodies []string
	header http.Header
	reply  func(n int) (int, string)
}

func (rc *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	rc.bodies = append(rc.bodies, string(b))
	rc.header = r.Header.Clone()
	n := len(rc.bodies)
	rc.mu.Unlock()

	status, body := rc.reply(n)
	w.WriteHeader(status)
	io.WriteString(w, body)
}

func serveRecorder(t *testing.T, rc *recorder) string {
	t.Helper()
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestStudioClientSendsWhatTheActionSends(t *testing.T) {
	t.Parallel()
	rc := &recorder{reply: func(int) (int, string) {
		return 200, `{"action":"collect","node":"main_menu","collect":{"maxDigits":1}}`
	}}
	c := StudioClient{URL: serveRecorder(t, rc), Auth: "Bearer x"}

	rep, err := c.Step(testContext(t), "4600123", "12", "digits")
	if err != nil {
		t.Fatal(err)
	}
	if rep.Action != "collect" || rep.Collect == nil || rep.Collect.MaxDigits != 1 {
		t.Errorf("reply = %+v", rep)
	}
	if got := rc.bodies[0]; got != `{"contactId":"4600123","event":"digits","digits":"12"}` {
		t.Errorf("body = %s", got)
	}
	if rc.header.Get("Content-Type") != "application/x-www-form-urlencoded" ||
		rc.header.Get("Authorization") != "Bearer x" {
		t.Errorf("headers = %v", rc.header)
	}
}

// A StudioCall numbers its turns and sends back the session and node of
// the last reply, as the README's Studio snippet does.
func TestStudioCallKeepsTheSessionAndNode(t *testing.T) {
	t.Parallel()
	rc := &recorder{reply: func(n int) (int, string) {
		return 200, `{"action":"collect","session":"s1","node":"n` + strings.Repeat("x", n) + `"}`
	}}
	call := StudioClient{URL: serveRecorder(t, rc)}.Call("4600123")
	ctx := testContext(t)

	for _, turn := range [][2]string{{"start", ""}, {"digits", "1"}, {"timeout", ""}} {
		if _, err := call.Send(ctx, turn[0], turn[1]); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{
		`{"contactId":"4600123","event":"start","turn":1}`,
		`{"contactId":"4600123","event":"digits","digits":"1","session":"s1","turn":2,"node":"nx"}`,
		`{"contactId":"4600123","event":"timeout","session":"s1","turn":3,"node":"nxx"}`,
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for i := range want {
		if rc.bodies[i] != want[i] {
			t.Errorf("body %d = %s, want %s", i+1, rc.bodies[i], want[i])
		}
	}
}

func TestStudioClientRefusesWhatTheActionCannotRead(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		status int
		body   string
		says   string
	}{
		{"status", 503, `{"error":"x"}`, "503"},
		{"not json", 200, `<html>`, "decode"},
		{"over 32 KB", 200, `{"error":"` + strings.Repeat("x", 33<<10) + `"}`, "exceeds"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rc := &recorder{reply: func(int) (int, string) { return tt.status, tt.body }}
			c := StudioClient{URL: serveRecorder(t, rc)}
			_, err := c.Step(testContext(t), "1", "", "start")
			if err == nil || !strings.Contains(err.Error(), tt.says) {
				t.Errorf("err = %v, want one saying %s", err, tt.says)
			}
			var se *StatusError
			if (tt.status != 200) != errors.As(err, &se) {
				t.Errorf("err = %T, want *StatusError only for a status", err)
			}
		})
	}
}

func TestVAHCallKeepsTheSessionState(t *testing.T) {
	t.Parallel()
	rc := &recorder{reply: func(n int) (int, string) {
		if n == 1 {
			return 200, `{"branchName":"PromptAndCollectNextResponse","botSessionState":{"s":1}}`
		}
		return 200, `{"branchName":"ReturnControlToScript","botSessionState":null}`
	}}
	call := VAHClient{URL: serveRecorder(t, rc), VirtualAgentID: "dtmfd"}.Call(4600123)
	ctx := testContext(t)

	for _, input := range [][2]string{{"AUTOMATED_TEXT", "welcome"}, {"DTMF_AS_TEXT", "1"}} {
		if _, err := call.Exchange(ctx, input[0], input[1]); err != nil {
			t.Fatal(err)
		}
	}
	if call.State() != nil {
		t.Errorf("state after a null = %s, want none", call.State())
	}

	var reqs [2]map[string]any
	for i := range reqs {
		if err := json.Unmarshal([]byte(rc.bodies[i]), &reqs[i]); err != nil {
			t.Fatal(err)
		}
	}
	if reqs[0]["botSessionState"] != nil {
		t.Errorf("first exchange sent state %v", reqs[0]["botSessionState"])
	}
	if st, _ := json.Marshal(reqs[1]["botSessionState"]); string(st) != `{"s":1}` {
		t.Errorf("second exchange sent state %s, want the first reply's", st)
	}
	info := reqs[1]["executionInfo"].(map[string]any)
	if info["contactId"] != float64(4600123) || info["requestId"] != float64(2) {
		t.Errorf("executionInfo = %v, want the contact as a number and requestId 2", info)
	}
	if reqs[1]["userInputType"] != "DTMF_AS_TEXT" || reqs[1]["userInput"] != "1" {
		t.Errorf("input = %v %v", reqs[1]["userInputType"], reqs[1]["userInput"])
	}
}
