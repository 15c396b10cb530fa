package simulator

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/dtmfd/dtmfd/transport/metrics"
)

type recorder struct {
	mu   sync.Mutex
	keys []string
	err  error
}

func (r *recorder) ingest(callID string, key byte, _ time.Time) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return r.err
	}
	r.keys = append(r.keys, callID+":"+string(key))
	return nil
}

func TestSimulator(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		method   string
		body     string
		auth     string
		token    string
		down     bool
		wantCode int
		wantBody string
		wantKeys string
	}{
		{"one key", "POST", `{"callId":"c1","digit":"1"}`, "", "", false, 200, `{"status":"digit_processed"}`, "c1:1"},
		{"several keys in order", "POST", `{"callId":"c1","digits":"2A1"}`, "", "", false, 200, `{"status":"digit_processed"}`, "c1:2 c1:A c1:1"},
		{"GET refused", "GET", ``, "", "", false, 405, `{"error":"method not allowed: use POST"}`, ""},
		{"not JSON", "POST", `digit=1`, "", "", false, 400, "", ""},
		{"unknown field", "POST", `{"callId":"c1","digit":"1","extra":true}`, "", "", false, 400, `unknown field`, ""},
		{"missing call id", "POST", `{"digit":"1"}`, "", "", false, 400, `{"error":"callId is required"}`, ""},
		{"missing digit", "POST", `{"callId":"c1"}`, "", "", false, 400, `digit is required`, ""},
		{"two keys in digit", "POST", `{"callId":"c1","digit":"12"}`, "", "", false, 400, `must be a single key`, ""},
		{"not a DTMF key", "POST", `{"callId":"c1","digit":"E"}`, "", "", false, 400, `not a DTMF key`, ""},
		{"bad key in digits refuses all", "POST", `{"callId":"c1","digits":"12x"}`, "", "", false, 400, `not a DTMF key`, ""},
		{"trailing garbage", "POST", `{"callId":"c1","digit":"1"} {}`, "", "", false, 400, `more than one value`, ""},
		{"body too large", "POST", `{"callId":"` + strings.Repeat("x", 5000) + `","digit":"1"}`, "", "", false, 413, `body over`, ""},
		{"token required and missing", "POST", `{"callId":"c1","digit":"1"}`, "", "s3cret", false, 401, `bearer token`, ""},
		{"token required and given", "POST", `{"callId":"c1","digit":"1"}`, "Bearer s3cret", "s3cret", false, 200, `digit_processed`, "c1:1"},
		{"shutting down", "POST", `{"callId":"c1","digit":"1"}`, "", "", true, 503, `shutting down`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rec := &recorder{}
			if tt.down {
				rec.err = ErrUnavailable
			}
			srv := httptest.NewServer(&Handler{Ingest: rec.ingest, Token: tt.token})
			defer srv.Close()

			req, _ := http.NewRequest(tt.method, srv.URL+"/simulator", strings.NewReader(tt.body))
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body map[string]string
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
				t.Fatalf("reply is not a JSON object: %v", err)
			}
			raw, _ := json.Marshal(body)

			if resp.StatusCode != tt.wantCode {
				t.Errorf("status = %d, want %d (%s)", resp.StatusCode, tt.wantCode, raw)
			}
			if !strings.Contains(string(raw), tt.wantBody) {
				t.Errorf("body = %s, want it to contain %s", raw, tt.wantBody)
			}
			if got := strings.Join(rec.keys, " "); got != tt.wantKeys {
				t.Errorf("keys ingested = %q, want %q", got, tt.wantKeys)
			}
		})
	}
}

// TestRefusedRequestsAreLoggedAndCounted checks what an operator sees of
// a client sending nonsense: one log line per refused request, at Warn for
// a bad payload and Info for a bad token, with the call id when the body
// named one and the client's address, never the token; and a count under
// the simulator type.
func TestRefusedRequestsAreLoggedAndCounted(t *testing.T) {
	t.Parallel()
	const token = "s3cret-token"
	tests := []struct {
		name        string
		body        string
		auth        string
		wantCode    int
		wantLevel   string
		wantCallID  string
		wantReason  string
		wantOutcome string
	}{
		{"bad key", `{"callId":"c-42","digit":"E"}`, "Bearer " + token,
			400, "WARN", "c-42", "not a DTMF key", metrics.OutcomeMalformed},
		{"not JSON", `digit=1`, "Bearer " + token,
			400, "WARN", "", "invalid JSON", metrics.OutcomeMalformed},
		{"no call id", `{"digit":"1"}`, "Bearer " + token,
			400, "WARN", "", "callId is required", metrics.OutcomeMalformed},
		{"body too large", `{"callId":"c-7","digit":"1","pad":"` + strings.Repeat("x", 5000) + `"}`,
			"Bearer " + token, 413, "WARN", "", "body over", metrics.OutcomeMalformed},
		{"wrong token", `{"callId":"c-1","digit":"1"}`, "Bearer not-" + token,
			401, "INFO", "", "", metrics.OutcomeUnauthorized},
		{"no token", `{"callId":"c-1","digit":"1"}`, "",
			401, "INFO", "", "", metrics.OutcomeUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var logs bytes.Buffer
			m := metrics.New(nil)
			h := &Handler{Ingest: (&recorder{}).ingest, Token: token, Metrics: m,
				Logger: slog.New(slog.NewJSONHandler(&logs, nil))}
			req := httptest.NewRequest("POST", "/simulator", strings.NewReader(tt.body))
			req.RemoteAddr = "192.0.2.7:41000"
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)

			if w.Code != tt.wantCode {
				t.Errorf("status = %d, want %d", w.Code, tt.wantCode)
			}
			lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
			if len(lines) != 1 {
				t.Fatalf("logged %d lines, want one: %q", len(lines), lines)
			}
			var line map[string]any
			if err := json.Unmarshal([]byte(lines[0]), &line); err != nil {
				t.Fatal(err)
			}
			if line["level"] != tt.wantLevel || line["remote"] != "192.0.2.7:41000" {
				t.Errorf("logged %s, want level %s and the client's address", lines[0], tt.wantLevel)
			}
			if got, _ := line["callId"].(string); got != tt.wantCallID {
				t.Errorf("callId logged = %q, want %q", got, tt.wantCallID)
			}
			if got, _ := line["reason"].(string); !strings.Contains(got, tt.wantReason) {
				t.Errorf("reason logged = %q, want it to say %q", got, tt.wantReason)
			}
			if strings.Contains(lines[0], token) {
				t.Errorf("the token leaked into the log: %s", lines[0])
			}

			for _, o := range []string{metrics.OutcomeMalformed, metrics.OutcomeUnauthorized} {
				want := 0.0
				if o == tt.wantOutcome {
					want = 1
				}
				got := testutil.ToFloat64(m.Events.WithLabelValues(metrics.TypeSimulator, o))
				if got != want {
					t.Errorf("events{type=simulator,outcome=%s} = %v, want %v", o, got, want)
				}
			}
		})
	}
}

func FuzzSimulatorPayload(f *testing.F) {
	for _, s := range []string{`{"callId":"c1","digit":"1"}`, `{"callId":"c","digits":"2A1#"}`, `{}`, `[`, `{"callId":"","digit":"\u0000"}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		rec := &recorder{}
		h := &Handler{Ingest: rec.ingest}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("POST", "/simulator", strings.NewReader(body)))
		if w.Code != 200 && w.Code != 400 && w.Code != 413 {
			t.Fatalf("status %d for %q", w.Code, body)
		}
		if w.Code != 200 && len(rec.keys) > 0 {
			t.Fatalf("refused request still ingested %v", rec.keys)
		}
		for _, k := range rec.keys {
			if !strings.Contains("0123456789*#ABCD", k[len(k)-1:]) {
				t.Fatalf("ingested a non-DTMF key %q", k)
			}
		}
	})
}
