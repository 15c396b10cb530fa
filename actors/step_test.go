package actors

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dtmfd/dtmfd/ivrspec"
)

// stepTurn is one Step of a test call and what the platform must be told.
type stepTurn struct {
	id     string
	keys   string
	hangup bool
	want   string
}

// summary renders a reply as the platform acts on it.
func summary(r *StepReply) string {
	switch {
	case r.Decision != nil:
		var b strings.Builder
		b.WriteString("decided")
		for _, v := range r.Decision.Variables {
			fmt.Fprintf(&b, " %s=%s", v.Name, v.Value)
		}
		return b.String()
	case r.Ended:
		return "ended"
	}
	return fmt.Sprintf("%s noInput=%d noMatch=%d", r.Node.ID, r.NoInput, r.NoMatch)
}

func exampleFlow(t *testing.T, name string) func(*Config) {
	t.Helper()
	flow, err := ivrspec.LoadExample(name, ivrspec.Options{DefaultTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return func(c *Config) { c.Flow = func() *ivrspec.Flow { return flow } }
}

func TestRepeatedStepIsAppliedOnce(t *testing.T) {
	completed := `decided ivr_selection=["2","A","1"] ivr_status=completed`
	checking := "account=12345678 pin_entered=true choice=1 ivr_status=balance_checking"
	tests := []struct {
		name   string
		flow   string
		turns  []stepTurn
		writes []string
	}{
		{
			name: "a repeated key is pressed once",
			flow: "bank.yaml",
			turns: []stepTurn{
				{id: "1", keys: "1", want: "account_number noInput=0 noMatch=0"},
				{id: "1", keys: "1", want: "account_number noInput=0 noMatch=0"},
				{id: "2", keys: "12345678", want: "pin noInput=0 noMatch=0"},
				{id: "3", keys: "4321", want: "balance_menu noInput=0 noMatch=0"},
				{id: "4", keys: "1", want: "decided " + checking},
			},
			writes: []string{"s " + checking},
		},
		{
			name: "a repeated silence counts once",
			flow: "bank.yaml",
			turns: []stepTurn{
				{id: "1", want: "main_menu noInput=1 noMatch=0"},
				{id: "1", want: "main_menu noInput=1 noMatch=0"},
				{id: "2", want: "main_menu noInput=2 noMatch=0"},
				{id: "3", want: "decided ivr_status=failed ivr_from=main_menu ivr_reason=no_input"},
			},
			writes: []string{"s ivr_status=failed ivr_from=main_menu ivr_reason=no_input"},
		},
		{
			name: "the final turn repeated gets the same decision",
			flow: "contract.yaml",
			turns: []stepTurn{
				{id: "1", keys: "2", want: "department noInput=0 noMatch=0"},
				{id: "2", keys: "A1", want: completed},
				{id: "2", keys: "A1", want: completed},
				{id: "2", keys: "A1", want: completed},
				{id: "3", keys: "1", want: "ended"},
			},
			writes: []string{`s ivr_selection=["2","A","1"] ivr_status=completed`},
		},
		{
			name: "a repeated hangup",
			flow: "contract.yaml",
			turns: []stepTurn{
				{id: "1", keys: "2", want: "department noInput=0 noMatch=0"},
				{id: "2", hangup: true, want: "ended"},
				{id: "2", hangup: true, want: "ended"},
			},
		},
		{
			name: "without a request id every turn is applied",
			flow: "bank.yaml",
			turns: []stepTurn{
				{want: "main_menu noInput=1 noMatch=0"},
				{want: "main_menu noInput=2 noMatch=0"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := newHarness(t, &memSink{}, exampleFlow(t, tt.flow))
				defer h.close()

				var prev *StepReply
				for i, tu := range tt.turns {
					r, err := h.eng.Step(context.Background(), &Step{CallID: "s",
						RequestID: tu.id, Keys: tu.keys, Hangup: tu.hangup, Received: time.Now()})
					if err != nil {
						t.Fatalf("turn %d: %v", i+1, err)
					}
					if got := summary(r); got != tu.want {
						t.Fatalf("turn %d (%q): %s, want %s", i+1, tu.keys, got, tu.want)
					}
					repeat := i > 0 && tu.id != "" && tu.id == tt.turns[i-1].id
					if repeat && !reflect.DeepEqual(r, prev) {
						t.Errorf("turn %d repeats turn %d: reply %+v, want %+v", i+1, i, r, prev)
					}
					prev = r
					synctest.Wait()
				}

				time.Sleep(time.Hour)
				synctest.Wait()
				if got := h.sink.got(); !slices.Equal(got, tt.writes) {
					t.Errorf("writes = %q, want %q", got, tt.writes)
				}
			})
		})
	}
}

func TestFinalStepSentTwiceAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, &memSink{}, nil)
		defer h.close()
		ctx := context.Background()
		for i, keys := range []string{"2", "A"} {
			s := &Step{CallID: "s", RequestID: fmt.Sprint(i), Keys: keys, Received: time.Now()}
			if _, err := h.eng.Step(ctx, s); err != nil {
				t.Fatal(err)
			}
		}

		// The platform gave up waiting and sent the turn again while the
		// first was still on its way.
		replies := make(chan *StepReply, 2)
		for range 2 {
			go func() {
				r, err := h.eng.Step(ctx, &Step{CallID: "s", RequestID: "final", Keys: "1",
					Received: time.Now()})
				if err != nil {
					t.Error(err)
				}
				replies <- r
			}()
		}
		a, b := <-replies, <-replies
		if a == nil || b == nil {
			t.Fatal("a turn failed")
		}
		if a.Decision == nil || !reflect.DeepEqual(a, b) {
			t.Errorf("replies %s and %s, want the same decision twice", summary(a), summary(b))
		}

		synctest.Wait()
		want := []string{`s ivr_selection=["2","A","1"] ivr_status=completed`}
		if got := h.sink.got(); !slices.Equal(got, want) {
			t.Errorf("writes = %q, want %q", got, want)
		}
	})
}
