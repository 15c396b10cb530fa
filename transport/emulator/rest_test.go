package emulator

import (
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
)

func TestWriteLogHoldsNamesNotValues(t *testing.T) {
	t.Parallel()
	var logs syncBuffer
	log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e, c := start(t, Options{ClientID: testID, ClientSecret: testSecret, Logger: log})
	token := getToken(t, c, e)

	const pin = "73914"
	r := postWrite(t, c, e, token, "c1",
		`[{"name":"pin","value":"`+pin+`"},{"name":"ivr_status","value":"completed"}]`)
	if r.status != http.StatusOK {
		t.Fatalf("write status %d: %s", r.status, r.body)
	}

	out := logs.String()
	if !strings.Contains(out, `"variables":["pin","ivr_status"]`) {
		t.Errorf("log does not name the variables written:\n%s", out)
	}
	for _, value := range []string{pin, "completed"} {
		if strings.Contains(out, value) {
			t.Errorf("log holds the value %q:\n%s", value, out)
		}
	}
}

// writeWatcher records what Options.OnWrite is told.
type writeWatcher struct {
	mu     sync.Mutex
	writes []Write
}

func (w *writeWatcher) onWrite(wr Write) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writes = append(w.writes, wr)
}

func (w *writeWatcher) seen() []Write {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.writes)
}

func TestOnWriteSeesEveryAcceptedWrite(t *testing.T) {
	t.Parallel()
	var watch writeWatcher
	e, c := start(t, Options{ClientID: testID, ClientSecret: testSecret, OnWrite: watch.onWrite})
	token := getToken(t, c, e)

	tests := []struct {
		name   string
		token  string
		id     string
		body   string
		status int
	}{
		{"accepted", token, "c1", `[{"name":"ivr_status","value":"completed"}]`, http.StatusOK},
		{"wrong token", "nope", "c2", `[{"name":"ivr_status","value":"completed"}]`,
			http.StatusUnauthorized},
		{"bad body", token, "c3", `[]`, http.StatusBadRequest},
		{"second accepted", token, "c4", `[{"name":"pin","value":"1234"}]`, http.StatusOK},
	}
	for _, tt := range tests {
		if r := postWrite(t, c, e, tt.token, tt.id, tt.body); r.status != tt.status {
			t.Fatalf("%s: status %d, want %d: %s", tt.name, r.status, tt.status, r.body)
		}
	}

	// The hook runs before the reply, so every accepted write is seen by
	// now, and seen as Writes lists it.
	got, listed := watch.seen(), e.Writes()
	if len(got) != 2 || got[0].InteractionID != "c1" || got[1].InteractionID != "c4" {
		t.Fatalf("OnWrite saw %+v, want the writes to c1 and c4 only", got)
	}
	for i := range got {
		if !got[i].At.Equal(listed[i].At) || !slices.Equal(got[i].Variables, listed[i].Variables) {
			t.Errorf("OnWrite saw %+v, Writes lists %+v", got[i], listed[i])
		}
	}
	if v := got[1].Variables; len(v) != 1 || v[0] != (Variable{Name: "pin", Value: "1234"}) {
		t.Errorf("OnWrite got variables %+v, want pin=1234 as received", v)
	}
}
