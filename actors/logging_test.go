package actors

import (
	"context"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/dtmfd/dtmfd/ivrspec"
)

// logRecord is one record as a handler received it: its level and
// message, every attribute by its dotted group path, and the function
// that logged it.
type logRecord struct {
	level slog.Level
	msg   string
	attrs map[string]string
	fn    string
}

// recorder is a slog.Handler that keeps every record it is handed, as a
// log pipeline would receive it. Loggers derived with With and WithGroup
// share its records.
type recorder struct {
	min    slog.Level
	mu     *sync.Mutex
	recs   *[]logRecord
	prefix string
	attrs  map[string]string
}

func newRecorder(min slog.Level) *recorder {
	return &recorder{min: min, mu: new(sync.Mutex), recs: new([]logRecord), attrs: map[string]string{}}
}

func (h *recorder) Enabled(_ context.Context, l slog.Level) bool { return l >= h.min }

func (h *recorder) Handle(_ context.Context, r slog.Record) error {
	rec := logRecord{level: r.Level, msg: r.Message, attrs: cloneAttrs(h.attrs)}
	r.Attrs(func(a slog.Attr) bool {
		flatten(rec.attrs, h.prefix, a)
		return true
	})
	if r.PC != 0 {
		frame, _ := runtime.CallersFrames([]uintptr{r.PC}).Next()
		rec.fn = frame.Function
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	*h.recs = append(*h.recs, rec)
	return nil
}

func (h *recorder) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	c.attrs = cloneAttrs(h.attrs)
	for _, a := range attrs {
		flatten(c.attrs, h.prefix, a)
	}
	return &c
}

func (h *recorder) WithGroup(name string) slog.Handler {
	c := *h
	c.prefix = h.prefix + name + "."
	return &c
}

// records returns every record so far.
func (h *recorder) records() []logRecord {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(*h.recs)
}

func cloneAttrs(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func flatten(into map[string]string, prefix string, a slog.Attr) {
	v := a.Value.Resolve()
	if v.Kind() == slog.KindGroup {
		for _, g := range v.Group() {
			flatten(into, prefix+a.Key+".", g)
		}
		return
	}
	into[prefix+a.Key] = v.String()
}

// TestLibraryLogsReachTheEngineHandler starts an engine on a handler and
// makes protoactor-go log: it logs its start, and a dead letter for a
// message sent to an actor that does not exist, both at its Info. They
// reach the engine's handler one level quieter, at Debug, marked as the
// library's, so that at Info they stay out of the service's log.
func TestLibraryLogsReachTheEngineHandler(t *testing.T) {
	tests := []struct {
		name string
		min  slog.Level
		want []string
	}{
		{"handler at debug", slog.LevelDebug,
			[]string{"DEBUG actor system started", "DEBUG [DeadLetter] to nobody"}},
		{"handler at info", slog.LevelInfo, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				rec := newRecorder(tt.min)
				h := newHarness(t, &memSink{}, func(c *Config) { c.Logger = slog.New(rec) })
				defer h.close()

				system := h.eng.system
				system.Root.Send(actor.NewPID(system.Address(), "nobody"), "hello")
				synctest.Wait()

				var got []string
				for _, r := range rec.records() {
					if r.attrs["lib"] != "protoactor" {
						continue
					}
					line := r.level.String() + " " + r.msg
					if r.msg == "[DeadLetter]" && strings.Contains(r.attrs["pid"], "nobody") {
						line += " to nobody"
					}
					got = append(got, line)
				}
				if !slices.Equal(got, tt.want) {
					t.Errorf("library records %q, want %q", got, tt.want)
				}
			})
		})
	}
}

// TestLibraryLoggerIsQuieter logs through libraryLogger at each of the
// library's levels and checks the level the service's handler sees, and
// that a record below the handler's level never reaches it, through
// attributes and groups added afterwards too.
func TestLibraryLoggerIsQuieter(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		handler   slog.Level
		library   slog.Level
		want      slog.Level
		delivered bool
	}{
		{"info becomes debug", slog.LevelDebug, slog.LevelInfo, slog.LevelDebug, true},
		{"info is hidden at info", slog.LevelInfo, slog.LevelInfo, 0, false},
		{"warn becomes info", slog.LevelInfo, slog.LevelWarn, slog.LevelInfo, true},
		{"error becomes warn", slog.LevelInfo, slog.LevelError, slog.LevelWarn, true},
		{"error is hidden at error", slog.LevelError, slog.LevelError, 0, false},
		{"debug is hidden even at debug", slog.LevelDebug, slog.LevelDebug, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rec := newRecorder(tt.handler)
			log := libraryLogger(slog.New(rec)).With("actor", "calls").WithGroup("detail")
			log.Log(context.Background(), tt.library, "library says", "reason", "test")

			got := rec.records()
			if !tt.delivered {
				if len(got) != 0 {
					t.Errorf("handler at %v received %d records, want none", tt.handler, len(got))
				}
				return
			}
			if len(got) != 1 {
				t.Fatalf("handler received %d records, want 1", len(got))
			}
			r := got[0]
			if r.level != tt.want {
				t.Errorf("level %v, want %v", r.level, tt.want)
			}
			wantAttrs := map[string]string{"lib": "protoactor", "actor": "calls", "detail.reason": "test"}
			for k, v := range wantAttrs {
				if r.attrs[k] != v {
					t.Errorf("attribute %s = %q, want %q (all: %v)", k, r.attrs[k], v, r.attrs)
				}
			}
		})
	}
}

// callLogFlow collects a PIN, which is sensitive, after a menu.
const callLogFlow = `
version: 1
start: menu
nodes:
  menu: {type: menu, branches: {"1": pin, "2": done}}
  pin: {type: collect, minDigits: 4, sensitive: true, next: done}
  done: {type: end, variables: {pin: "${value.pin}", ivr_status: done}}
`

// TestCallLogsNameTheCallAndItsNode runs calls to their ends and reads
// every record their actors log: each names its call and the node the
// call was at, so that one call's story can be read from a busy log. A
// PIN entered at a sensitive node appears in no attribute of any record.
func TestCallLogsNameTheCallAndItsNode(t *testing.T) {
	pinFlow, err := ivrspec.Parse("pin.yaml", []byte(callLogFlow), ivrspec.Options{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		flow *ivrspec.Flow
		tune func(*Config)
		do   func(h *harness)
		// want is, per call, the message and node of each record, in order.
		want map[string][]string
	}{
		{
			name: "keys to a decision",
			do: func(h *harness) {
				h.press("c1", "2A1")
				h.press("c2", "3")
			},
			want: map[string][]string{
				"c1": {"key@main_menu", "key@department", "key@confirm", "call decided@confirm"},
				"c2": {"key@main_menu"},
			},
		},
		{
			name: "silence after a key",
			do: func(h *harness) {
				h.press("c1", "2")
				synctest.Wait()
				time.Sleep(11 * time.Second)
			},
			want: map[string][]string{
				"c1": {"key@main_menu", "timer fired@department", "call decided@department"},
			},
		},
		{
			name: "key limit",
			tune: func(c *Config) { c.MaxKeys = 2 },
			do:   func(h *harness) { h.press("c1", "999") },
			want: map[string][]string{
				"c1": {"key@main_menu", "key@main_menu",
					"call reached its key limit; further keys are dropped@main_menu"},
			},
		},
		{
			name: "caller hangs up",
			do: func(h *harness) {
				ctx := context.Background()
				if _, err := h.eng.Step(ctx, &Step{CallID: "c1", Keys: "2", Received: time.Now()}); err != nil {
					panic(err)
				}
				if _, err := h.eng.Step(ctx, &Step{CallID: "c1", Hangup: true, Received: time.Now()}); err != nil {
					panic(err)
				}
			},
			want: map[string][]string{
				"c1": {"key@main_menu", "caller hung up before a decision@department"},
			},
		},
		{
			name: "PIN at a sensitive node",
			flow: pinFlow,
			do:   func(h *harness) { h.press("c1", "12045") },
			want: map[string][]string{
				"c1": {"key@menu", "key@pin", "key@pin", "key@pin", "key@pin", "call decided@pin"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				rec := newRecorder(slog.LevelDebug)
				h := newHarness(t, &memSink{}, func(c *Config) {
					c.Logger = slog.New(rec)
					if tt.flow != nil {
						c.Flow = func() *ivrspec.Flow { return tt.flow }
					}
					if tt.tune != nil {
						tt.tune(c)
					}
				})
				tt.do(h)
				synctest.Wait()
				h.close()

				got := map[string][]string{}
				for _, r := range rec.records() {
					if !strings.Contains(r.fn, "actors.(*call).") {
						continue
					}
					id, node := r.attrs["callId"], r.attrs["node"]
					if id == "" || node == "" {
						t.Errorf("%s logged %q without its call and node: %v", r.fn, r.msg, r.attrs)
					}
					got[id] = append(got[id], r.msg+"@"+node)
					checkNoPIN(t, r, "2045")
				}
				for id, want := range tt.want {
					if !slices.Equal(got[id], want) {
						t.Errorf("call %s logged\n%q\nwant\n%q", id, got[id], want)
					}
				}
				for id := range got {
					if _, ok := tt.want[id]; !ok {
						t.Errorf("records for a call %q that was never made", id)
					}
				}
			})
		})
	}
}

// checkNoPIN fails if any attribute of r holds the PIN or one of its
// keys, shown where the call was at the sensitive node.
func checkNoPIN(t *testing.T, r logRecord, pin string) {
	t.Helper()
	for k, v := range r.attrs {
		// A decision id is a random UUID, which holds a given 4 digits
		// about once in 2,000 calls.
		if k != "decisionId" && strings.Contains(v, pin) {
			t.Errorf("record %q holds the PIN in %s=%q", r.msg, k, v)
		}
	}
	if r.msg == "key" && r.attrs["node"] == "pin" && r.attrs["key"] != "*" {
		t.Errorf("a PIN key logged as %q, want it masked", r.attrs["key"])
	}
}
