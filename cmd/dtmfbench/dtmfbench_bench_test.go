package main

import (
	"context"
	"log/slog"
	"testing"
	"time"
)

// The benchmarks run the tool's scenarios with b.N as the size: frames,
// keys or calls. Each reports its own rate, timed from the first frame
// read, and sets ns/op to match it, so setup does not count.

func BenchmarkCeiling(b *testing.B) {
	ctx := benchContext(b)
	t, err := runCeiling(ctx, max(b.N, 2), 1000)
	if err != nil {
		b.Fatal(err)
	}
	report(b, t, "frames/s")
}

func BenchmarkIngress(b *testing.B) {
	ctx := benchContext(b)
	t, err := runIngress(ctx, max(b.N, 2), 1000, benchOptions())
	if err != nil {
		b.Fatal(err)
	}
	report(b, t, "keys/s")
}

func BenchmarkEndToEnd(b *testing.B) {
	benchE2E(b, actorDesign)
}

func BenchmarkBaselineTutorial(b *testing.B) {
	benchE2E(b, tutorialDesign)
}

func BenchmarkBaselineMutexPool(b *testing.B) {
	benchE2E(b, poolDesign)
}

// BenchmarkOpenCalls reports what a call waiting mid-menu costs each
// design, in live heap and in resident memory, with 20,000 calls open.
func BenchmarkOpenCalls(b *testing.B) {
	for _, d := range []design{actorDesign, tutorialDesign, poolDesign} {
		b.Run(d.name, func(b *testing.B) {
			ctx := benchContext(b)
			r, err := newRig()
			if err != nil {
				b.Fatal(err)
			}
			defer r.Close()

			calls := 20000
			o := benchOptions()
			o.inputTimeout = memoryInputTimeout
			res, err := memoryRun(ctx, d, r.platform, calls, 0, o, rigCue(r, calls, 1000))
			if err != nil {
				b.Fatal(err)
			}
			heap, rss := res.perCall()
			b.ReportMetric(heap, "heap-bytes/call")
			b.ReportMetric(rss, "rss-bytes/call")
		})
	}
}

func benchE2E(b *testing.B, d design) {
	ctx := benchContext(b)
	res, err := runE2E(ctx, d, max(b.N, 2), 1000, benchOptions())
	if err != nil {
		b.Fatal(err)
	}
	report(b, res.throughput, "calls/s")
}

func benchContext(b *testing.B) context.Context {
	ctx, cancel := context.WithTimeout(b.Context(), runTimeout)
	b.Cleanup(cancel)
	return ctx
}

func benchOptions() designOptions {
	return designOptions{inputTimeout: 10 * time.Second, logLevel: slog.LevelInfo}
}

func report(b *testing.B, t throughput, unit string) {
	b.ReportMetric(t.perSecond(), unit)
	b.ReportMetric(float64(t.elapsed.Nanoseconds())/float64(max(t.n, 1)), "ns/op")
}
