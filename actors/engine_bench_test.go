package actors

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/dtmfd/dtmfd/ivrspec"
	"github.com/dtmfd/dtmfd/transport/metrics"
)

// BenchmarkEngineKeys measures the engine alone, with no network: each
// op is one key handed to Engine.Digit and applied by its call actor.
// Every call gets the example tree's first two keys, which start it and
// move it along without ending it, as the ingress figure of dtmfbench
// does through the voice stream.
func BenchmarkEngineKeys(b *testing.B) {
	m := metrics.New(nil)
	flow := ivrspec.Example(time.Hour)
	eng, err := Start(Config{
		Flow:    func() *ivrspec.Flow { return flow },
		Sink:    &memSink{},
		Metrics: m,
		Logger:  slog.New(slog.NewJSONHandler(io.Discard, nil)),
		// Every call is still open when the last key is counted: past
		// the default limit, calls would be refused and never counted.
		MaxCalls: b.N/2 + 1,
	})
	if err != nil {
		b.Fatal(err)
	}
	defer eng.Close()
	accepted := m.Events.WithLabelValues("dtmf", metrics.OutcomeAccepted)

	ids := benchCallIDs(b.N/2 + 1)
	now := time.Now()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		key := byte('1' + i/2%3)
		if i%2 == 1 {
			key = 'A'
		}
		eng.Digit(&Digit{CallID: ids[i/2], Key: key, Received: now})
	}
	for testutil.ToFloat64(accepted) < float64(b.N) {
		time.Sleep(100 * time.Microsecond)
	}
}

// BenchmarkEngineCalls measures the engine alone on whole calls: each op
// is one call of the example tree, three keys, its decision, and the
// write handed to a sink that accepts it at once, so what is left is the
// engine's own cost per completed call.
func BenchmarkEngineCalls(b *testing.B) {
	sink := &countSink{}
	flow := ivrspec.Example(time.Hour)
	eng, err := Start(Config{
		Flow:    func() *ivrspec.Flow { return flow },
		Sink:    sink,
		Metrics: metrics.New(nil),
		Logger:  slog.New(slog.NewJSONHandler(io.Discard, nil)),
		// Neither limit may refuse a call or a write of the run.
		MaxCalls:   b.N + 1,
		MaxBacklog: b.N + 1,
	})
	if err != nil {
		b.Fatal(err)
	}
	defer eng.Close()

	ids := benchCallIDs(b.N)
	now := time.Now()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		for _, key := range [...]byte{'1' + byte(i%3), 'A' + byte(i%2), '1'} {
			eng.Digit(&Digit{CallID: ids[i], Key: key, Received: now})
		}
	}
	for sink.n.Load() < int64(b.N) {
		time.Sleep(100 * time.Microsecond)
	}
}

// countSink accepts every write and counts it.
type countSink struct{ n atomic.Int64 }

func (s *countSink) Write(context.Context, string, []ivrspec.Variable) error {
	s.n.Add(1)
	return nil
}

func (s *countSink) Retry(error, int) Verdict { return Verdict{} }

// benchCallIDs names n calls, before the timer starts.
func benchCallIDs(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = "call-" + strconv.Itoa(i)
	}
	return ids
}
