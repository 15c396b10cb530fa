package actors

import (
	"context"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/cluster/clusterproviders/test"

	"github.com/dtmfd/dtmfd/ivrspec"
)

// memStore is a Store in memory, for one member.
type memStore struct {
	mu       sync.Mutex
	state    map[string][]byte
	version  map[string]int64
	accepted map[string]bool
}

func newMemStore() *memStore {
	return &memStore{state: make(map[string][]byte), version: make(map[string]int64),
		accepted: make(map[string]bool)}
}

func (s *memStore) Load(_ context.Context, callID string) ([]byte, int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state[callID], s.version[callID], nil
}

func (s *memStore) Save(_ context.Context, callID string, version int64, state []byte,
	_ time.Time, _ time.Duration) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if version != s.version[callID]+1 {
		return false, nil
	}
	s.state[callID], s.version[callID] = state, version
	return true, nil
}

func (s *memStore) Overdue(context.Context, time.Time, int) ([]string, error) { return nil, nil }

func (s *memStore) Claim(_ context.Context, decisionID, _ string, _ time.Duration) (Claim, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.accepted[decisionID] {
		return ClaimDelivered, nil
	}
	return ClaimMine, nil
}

func (s *memStore) Accept(_ context.Context, _, decisionID string, _ time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.accepted[decisionID] = true
	return nil
}

func TestClusterStepRepeatedIsAppliedOnce(t *testing.T) {
	sink := &memSink{}
	flow := ivrspec.Example(10 * time.Minute)
	eng, err := StartCluster(Config{Flow: func() *ivrspec.Flow { return flow }, Sink: sink},
		ClusterConfig{Name: "step-test", Host: "127.0.0.1",
			Provider: test.NewTestProvider(test.NewInMemAgent()), Store: newMemStore()})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	turns := []stepTurn{
		{id: "1", keys: "2", want: "department noInput=0 noMatch=0"},
		{id: "1", keys: "2", want: "department noInput=0 noMatch=0"},
		{id: "2", keys: "A1", want: `decided ivr_selection=["2","A","1"] ivr_status=completed`},
		{id: "2", keys: "A1", want: `decided ivr_selection=["2","A","1"] ivr_status=completed`},
		{id: "3", keys: "1", want: "ended"},
	}
	var prev *StepReply
	for i, tu := range turns {
		r, err := eng.Step(ctx, &Step{CallID: "c", RequestID: tu.id, Keys: tu.keys,
			Received: time.Now()})
		if err != nil {
			t.Fatalf("turn %d: %v", i+1, err)
		}
		if got := summary(r); got != tu.want {
			t.Fatalf("turn %d (%q): %s, want %s", i+1, tu.keys, got, tu.want)
		}
		if i > 0 && tu.id == turns[i-1].id && !reflect.DeepEqual(r, prev) {
			t.Errorf("turn %d repeats turn %d: reply %+v, want %+v", i+1, i, r, prev)
		}
		prev = r
	}

	if err := eng.Drain(ctx, time.Now()); err != nil {
		t.Fatalf("drain: %v", err)
	}
	want := []string{`c ivr_selection=["2","A","1"] ivr_status=completed`}
	if got := sink.got(); !slices.Equal(got, want) {
		t.Errorf("writes = %q, want %q", got, want)
	}
}
