package actors

import (
	"errors"
	"log/slog"
	"testing"
	"testing/synctest"
	"time"
)

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

func TestWriteAcceptedAtOnceIsLoggedAtDebug(t *testing.T) {
	for _, level := range []slog.Level{slog.LevelInfo, slog.LevelDebug} {
		t.Run(level.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				logs := &logBuffer{}
				h := newHarness(t, &memSink{}, func(c *Config) {
					c.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: level}))
				})
				defer h.close()

				h.press("c1", "2A1")
				synctest.Wait()

				if got := h.sink.got(); len(got) != 1 {
					t.Fatalf("writes = %q, want c1's", got)
				}
				if n := len(logs.records(t, "call decided")); n != 1 {
					t.Errorf("logged %d decisions at %s, want 1", n, level)
				}
				recs := logs.records(t, "variables written")
				want := 0
				if level == slog.LevelDebug {
					want = 1
				}
				if len(recs) != want {
					t.Fatalf("logged %d first-attempt writes at %s, want %d", len(recs), level, want)
				}
				if want == 1 && (recs[0]["level"] != "DEBUG" || recs[0]["attempts"] != float64(1)) {
					t.Errorf("write record = %v, want attempts 1 at DEBUG", recs[0])
				}
			})
		})
	}
}
