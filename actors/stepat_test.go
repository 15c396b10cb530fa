package actors

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/cluster/clusterproviders/test"

	"github.com/dtmfd/dtmfd/ivrspec"
)

// atTurn is one Step naming the node it answers, or asking for an
// existing call, and what it must be told.
type atTurn struct {
	keys     string
	at       string
	existing bool
	want     string
}

// flagged renders a reply with the marks At and Existing give it.
func flagged(r *StepReply) string {
	switch {
	case r.Unknown:
		return "unknown"
	case r.Elsewhere:
		return "elsewhere " + summary(r)
	case r.Resumed:
		return "resumed " + summary(r)
	}
	return summary(r)
}

// The engine a platform turn reaches decides what a node named by the
// platform means, on one process and in a cluster alike.
func TestStepAtAndExisting(t *testing.T) {
	flow := ivrspec.Example(10 * time.Minute)
	engines := []struct {
		name  string
		start func(Config) (*Engine, error)
	}{
		{"single", Start},
		{"one member", func(cfg Config) (*Engine, error) {
			return StartCluster(cfg, ClusterConfig{Name: "at-test", Host: "127.0.0.1",
				Provider: test.NewTestProvider(test.NewInMemAgent()), Store: newMemStore()})
		}},
	}
	tests := []struct {
		name   string
		turns  []atTurn
		writes []string
	}{
		{
			name: "an existing call that is not open starts nowhere",
			turns: []atTurn{
				{keys: "2", existing: true, want: "unknown"},
				{keys: "2", want: "department noInput=0 noMatch=0"},
				{keys: "A", existing: true, want: "confirm noInput=0 noMatch=0"},
			},
		},
		{
			name: "keys for another node are not applied",
			turns: []atTurn{
				{keys: "2", at: "main_menu", want: "department noInput=0 noMatch=0"},
				{keys: "1", at: "main_menu", want: "elsewhere department noInput=0 noMatch=0"},
				{keys: "A", at: "department", want: "confirm noInput=0 noMatch=0"},
				{keys: "1", at: "confirm",
					want: `decided ivr_selection=["2","A","1"] ivr_status=completed`},
			},
			writes: []string{`c ivr_selection=["2","A","1"] ivr_status=completed`},
		},
		{
			name: "a call not open resumes at the node",
			turns: []atTurn{
				{keys: "A", at: "department", want: "resumed confirm noInput=0 noMatch=0"},
				{keys: "1", at: "confirm", want: `decided ivr_selection=["A","1"] ivr_status=completed`},
			},
			writes: []string{`c ivr_selection=["A","1"] ivr_status=completed`},
		},
	}
	for _, eng := range engines {
		for _, tt := range tests {
			t.Run(eng.name+"/"+tt.name, func(t *testing.T) {
				sink := &memSink{}
				cfg := Config{Flow: func() *ivrspec.Flow { return flow }, Sink: sink}
				e, err := eng.start(cfg)
				if err != nil {
					t.Fatal(err)
				}
				defer e.Close()
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()

				for i, tu := range tt.turns {
					r, err := e.Step(ctx, &Step{CallID: "c", Keys: tu.keys, At: tu.at,
						Existing: tu.existing, Received: time.Now()})
					if err != nil {
						t.Fatalf("turn %d: %v", i+1, err)
					}
					if got := flagged(r); got != tu.want {
						t.Fatalf("turn %d (%q at %q): %s, want %s", i+1, tu.keys, tu.at,
							got, tu.want)
					}
				}
				if err := e.Drain(ctx, time.Now()); err != nil {
					t.Fatalf("drain: %v", err)
				}
				if got := sink.got(); !slices.Equal(got, tt.writes) {
					t.Errorf("writes = %q, want %q", got, tt.writes)
				}
			})
		}
	}
}
