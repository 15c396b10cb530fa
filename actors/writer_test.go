package actors

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// logBuffer collects the JSON lines of a logger that several actors
// write to at once.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// records returns the logged records whose message is msg.
func (b *logBuffer) records(t *testing.T, msg string) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for _, line := range bytes.Split(bytes.TrimSpace(b.buf.Bytes()), []byte("\n")) {
		var r map[string]any
		if err := json.Unmarshal(line, &r); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if r["msg"] == msg {
			out = append(out, r)
		}
	}
	return out
}

func TestDeliveredWriteLogsItsLatencies(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// Each attempt takes 250 ms; the first fails and is retried a
		// second later.
		sink := &memSink{delay: 250 * time.Millisecond, fail: func(_ string, n int) error {
			if n == 1 {
				return errors.New("503")
			}
			return nil
		}}
		logs := &logBuffer{}
		h := newHarness(t, sink, func(c *Config) {
			c.Logger = slog.New(slog.NewJSONHandler(logs, nil))
		})
		defer h.close()

		h.press("c1", "2A1")
		time.Sleep(time.Minute)
		synctest.Wait()

		recs := logs.records(t, "variables written")
		if len(recs) != 1 {
			t.Fatalf("logged %d writes, want 1", len(recs))
		}
		r := recs[0]
		want := map[string]any{
			"callId":       "c1",
			"attempts":     float64(2),
			"restLatency":  "250ms",
			"digitToWrite": "1.5s",
		}
		for k, v := range want {
			if r[k] != v {
				t.Errorf("%s = %v, want %v (record %v)", k, r[k], v, r)
			}
		}
	})
}
