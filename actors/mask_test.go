package actors

import (
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/dtmfd/dtmfd/ivrspec"
)

// TestTypeaheadPINKeyMaskedInLogs: a key pressed while the node before a
// sensitive collect waits for an optional terminator becomes the first
// digit of the PIN. It must be masked in the Debug log and in the call
// events, as every other PIN key is.
func TestTypeaheadPINKeyMaskedInLogs(t *testing.T) {
	const src = `
version: 1
start: branch
nodes:
  branch: {type: collect, maxDigits: 1, termTimeout: 2s, next: pin}
  pin: {type: collect, minDigits: 4, sensitive: true, next: done}
  done: {type: end, variables: {ivr_status: done}}
`
	flow, err := ivrspec.Parse("pin.yaml", []byte(src), ivrspec.Options{})
	if err != nil {
		t.Fatal(err)
	}

	synctest.Test(t, func(t *testing.T) {
		var logs logBuffer
		var mu sync.Mutex
		var shown []string
		h := newHarness(t, &memSink{}, func(c *Config) {
			c.Flow = func() *ivrspec.Flow { return flow }
			c.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			c.OnCall = func(ev CallEvent) {
				mu.Lock()
				defer mu.Unlock()
				if ev.Key != "" {
					shown = append(shown, ev.Key)
				}
			}
		})
		defer h.close()

		h.press("c1", "75689")
		synctest.Wait()

		var keys []string
		for _, line := range strings.Split(logs.String(), "\n") {
			if strings.Contains(line, "msg=key ") {
				_, k, _ := strings.Cut(line, " key=")
				k, _, _ = strings.Cut(k, " ")
				keys = append(keys, k)
			}
		}
		if got := strings.Join(keys, " "); got != "7 * * * *" {
			t.Errorf("keys logged %q, want the branch key and four masked PIN keys", got)
		}
		mu.Lock()
		defer mu.Unlock()
		if got := strings.Join(shown, " "); got != "7 * * * *" {
			t.Errorf("keys in call events %q, want the branch key and four masked PIN keys", got)
		}
	})
}
