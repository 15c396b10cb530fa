package actors

import (
	"io"
	"log/slog"
	"strconv"
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
	})
	if err != nil {
		b.Fatal(err)
	}
	defer eng.Close()
	accepted := m.Events.WithLabelValues("dtmf", metrics.OutcomeAccepted)

	ids := make([]string, b.N/2+1)
	for i := range ids {
		ids[i] = "call-" + strconv.Itoa(i)
	}
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
