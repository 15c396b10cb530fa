package cxone

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dtmfd/dtmfd/actors"
)

// slowEngine answers a Step after delay, or fails when the Step's
// context ends first, as the engine's ask does.
func slowEngine(t *testing.T, delay time.Duration) *fakeEngine {
	flow := bankFlow(t)
	answer := func(ctx context.Context, _ *actors.Step) (*actors.StepReply, error) {
		select {
		case <-time.After(delay):
			return &actors.StepReply{Node: flow.Nodes["account_number"]}, nil
		case <-ctx.Done():
			return nil, context.DeadlineExceeded
		}
	}
	return &fakeEngine{ctxAnswer: answer}
}

// A turn the engine does not answer within StepTimeout (10 s unless set)
// is answered at that moment with an error the script can route on, far
// inside the 90 s the platform waits; one answered just in time is not.
func TestTurnTimeout(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		timeout  time.Duration // StepTimeout; zero is the default
		delay    time.Duration // how long the engine takes
		answered time.Duration // when the reply goes out
		failed   bool
	}{
		{"default limit", 0, time.Minute, 10 * time.Second, true},
		{"just inside the default", 0, 9 * time.Second, 9 * time.Second, false},
		{"configured limit", 3 * time.Second, time.Minute, 3 * time.Second, true},
	}
	endpoints := []struct {
		name string
		new  func(Options) (http.Handler, error)
		body string
		// failedWith reports whether the reply is the timeout error.
		failedWith func(*testing.T, []byte) bool
	}{
		{"studio", func(o Options) (http.Handler, error) { return NewStudio(o) },
			`{"contactId":"4600123","event":"digits","digits":"1"}`,
			func(t *testing.T, b []byte) bool {
				r := decodeStudio(t, b)
				return r.Action == ActionError && r.Error == "dtmfd did not answer in time"
			}},
		{"vah", func(o Options) (http.Handler, error) { return NewVAH(o) },
			exchange("DTMF_AS_TEXT", "1", ourState),
			func(t *testing.T, b []byte) bool {
				var r vahResponse
				if err := json.Unmarshal(b, &r); err != nil {
					t.Fatal(err)
				}
				return r.BranchName == branchError && r.ErrorDetails != nil &&
					r.ErrorDetails.SystemErrorMessage == "dtmfd did not answer in time"
			}},
	}
	for _, ep := range endpoints {
		for _, tt := range tests {
			t.Run(ep.name+"/"+tt.name, func(t *testing.T) {
				t.Parallel()
				synctest.Test(t, func(t *testing.T) {
					opts := testOptions(t, slowEngine(t, tt.delay), bankFlow(t))
					opts.StepTimeout = tt.timeout
					h, err := ep.new(opts)
					if err != nil {
						t.Fatal(err)
					}

					start := time.Now()
					status, _, body := call(t, h, testAuth, ep.body)
					if took := time.Since(start); took != tt.answered {
						t.Errorf("answered after %v, want %v", took, tt.answered)
					}
					if status != http.StatusOK {
						t.Fatalf("status %d: %s", status, body)
					}
					if got := ep.failedWith(t, body); got != tt.failed {
						t.Errorf("reply %s: timed out %v, want %v", body, got, tt.failed)
					}
				})
			})
		}
	}
}
