package main

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// latencies records, per call, when its latest key was read off the
// stream, when it decided and when its write was delivered, and keeps the
// two intervals that matter to a caller: digit to decision and decision
// to accepted write. Slots are indexed by the number in the call id, so
// recording costs an atomic store and no lock on the hot path.
type latencies struct {
	epoch    time.Time
	keyAt    []atomic.Int64 // nanoseconds after epoch
	decideAt []atomic.Int64

	mu         sync.Mutex
	toDecision []time.Duration
	toWrite    []time.Duration
}

func newLatencies(calls int) *latencies {
	return &latencies{
		epoch:      time.Now(),
		keyAt:      make([]atomic.Int64, calls),
		decideAt:   make([]atomic.Int64, calls),
		toDecision: make([]time.Duration, 0, calls),
		toWrite:    make([]time.Duration, 0, calls),
	}
}

// received notes a key of call id read at t. The reader hands keys to the
// engine in order, so when a call decides its slot holds the deciding key.
func (l *latencies) received(id string, t time.Time) {
	if i := callIndex(id); i >= 0 && i < len(l.keyAt) {
		l.keyAt[i].Store(int64(t.Sub(l.epoch)))
	}
}

func (l *latencies) decided(id string, t time.Time) {
	i := callIndex(id)
	if i < 0 || i >= len(l.keyAt) {
		return
	}
	at := int64(t.Sub(l.epoch))
	l.decideAt[i].Store(at)

	l.mu.Lock()
	l.toDecision = append(l.toDecision, time.Duration(at-l.keyAt[i].Load()))
	l.mu.Unlock()
}

func (l *latencies) written(id string, t time.Time) {
	i := callIndex(id)
	if i < 0 || i >= len(l.keyAt) {
		return
	}
	d := time.Duration(int64(t.Sub(l.epoch)) - l.decideAt[i].Load())

	l.mu.Lock()
	l.toWrite = append(l.toWrite, d)
	l.mu.Unlock()
}

// summary returns the percentiles of both intervals.
func (l *latencies) summary() (toDecision, toWrite percentiles) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return percentilesOf(l.toDecision), percentilesOf(l.toWrite)
}

// percentiles summarises a set of durations.
type percentiles struct {
	n                   int
	p50, p99, p999, max time.Duration
}

// percentilesOf sorts a copy of d and reads the nearest-rank percentiles.
func percentilesOf(d []time.Duration) percentiles {
	if len(d) == 0 {
		return percentiles{}
	}
	s := slices.Clone(d)
	slices.Sort(s)
	rank := func(q float64) time.Duration {
		i := int(q*float64(len(s))+0.5) - 1
		return s[min(max(i, 0), len(s)-1)]
	}
	return percentiles{
		n:   len(s),
		p50: rank(.50), p99: rank(.99), p999: rank(.999),
		max: s[len(s)-1],
	}
}

// median returns the middle of xs, or the mean of the two middle values.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
