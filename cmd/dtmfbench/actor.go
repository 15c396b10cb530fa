package main

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/dtmfd/dtmfd/actors"
	"github.com/dtmfd/dtmfd/ivrspec"
	"github.com/dtmfd/dtmfd/transport/metrics"
	"github.com/dtmfd/dtmfd/transport/stream"
	"github.com/dtmfd/dtmfd/transport/token"
	"github.com/dtmfd/dtmfd/transport/variables"
)

// design is one implementation under measurement. start connects it to
// the platform in the background and returns at once; the probe says
// when its stream is up. stop ends it and waits for its goroutines.
type design struct {
	name  string
	label string
	start func(ctx context.Context, pf platform, p *probe, o designOptions) (stop func(), err error)
}

// designOptions are the settings a design is started with.
type designOptions struct {
	// inputTimeout is the example flow's timeout between keys.
	inputTimeout time.Duration
	// logLevel is the level of dtmfd's logger, which writes JSON to
	// nowhere: records at or above it are formatted, as in production.
	logLevel slog.Level

	// observe feeds the probe's key and write counts from the engine's
	// OnCall and OnWrite observers. The hand-written designs always count;
	// the actor design only when asked, since the service sets neither.
	observe bool
	// countKeys feeds the probe's key count from the engine's own metric
	// of accepted keys instead, so the engine runs with no observer, as
	// in a deployment.
	countKeys bool
	// latency, when set, records the actor design's per-call timings.
	latency *latencies
	// endedTTL overrides the engine's EndedTTL when non-zero.
	endedTTL time.Duration
	// writers overrides the engine's writer pool size, 64 as in cmd/dtmfd,
	// when non-zero.
	writers int
	// writeDelay is how long the emulator holds each write before it
	// answers, standing in for the platform's round trip.
	writeDelay time.Duration
}

var actorDesign = design{name: "actor", label: "actor (dtmfd)", start: startActor}

// startActor wires the stream client, the token source, the engine with
// its writer pool and the variables client as cmd/dtmfd does in its
// tutorial profile with its default settings, as a deployment with
// credentials runs it. It differs in two places: dead letters are counted
// instead of appended to a file, and the engine's observers are set only
// when o asks (the service sets them only for the local web keypad).
func startActor(ctx context.Context, pf platform, p *probe, o designOptions) (func(), error) {
	m := metrics.New(prometheus.NewRegistry())
	log := slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: o.logLevel}))
	hc := platformClient()
	tokens := token.New(token.Options{
		URL:          pf.base + "/oauth/token",
		ClientID:     pf.clientID,
		ClientSecret: pf.clientSecret,
		HTTPClient:   hc,
		Metrics:      m,
	})
	flow := ivrspec.Example(o.inputTimeout)

	cfg := actors.Config{
		Flow: func() *ivrspec.Flow { return flow },
		Sink: &variables.Sink{
			Client: variables.New(variables.Options{
				BaseURL: pf.base, Token: tokens.Token, HTTPClient: hc, Metrics: m,
			}),
			Invalidate: tokens.Invalidate,
		},
		DeadLetters: func(actors.DeadLetter) error {
			p.failed.Add(1)
			return nil
		},
		Writers:       cmp.Or(o.writers, 64),
		WriteDeadline: 2 * time.Minute,
		MaxBacklog:    100000,
		MaxCalls:      200000,
		MaxKeys:       256,
		EndedTTL:      o.endedTTL,
		Logger:        log,
		Metrics:       m,
	}
	if o.observe || o.latency != nil {
		cfg.OnCall = observeCall(p, o.latency)
		cfg.OnWrite = observeWrite(p, o.latency)
	}
	engine, err := actors.Start(cfg)
	if err != nil {
		return nil, fmt.Errorf("start actor design: %w", err)
	}

	client := stream.New(stream.Options{
		URL:        pf.streamURL(),
		Token:      tokens.Token,
		Invalidate: tokens.Invalidate,
		OnEvent:    onEvent(engine, p, o.latency),
		OnReject:   onReject(m),
		OnState: func(up bool) {
			if up {
				p.up()
			}
		},
		HTTPClient:   hc,
		PingInterval: 15 * time.Second,
		Logger:       log,
		Metrics:      m,
	})

	runCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { client.Run(runCtx) })
	if o.countKeys {
		wg.Go(func() { countAccepted(runCtx, m, p.keys) })
	}
	return func() {
		cancel()
		wg.Wait()
		engine.Close()
	}, nil
}

// platformClient is cmd/dtmfd's client for every request to the
// platform: the default transport keeping up to 64 idle connections, a
// 10 s timeout. Both reference designs use the same, so that transport
// tuning does not tell the designs apart.
func platformClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 64
	t.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	return &http.Client{Transport: t, Timeout: 10 * time.Second}
}

// onEvent is cmd/dtmfd's hand-off from the stream to the engine, with the
// probe noting when the first frame arrived.
func onEvent(engine *actors.Engine, p *probe, lat *latencies) func(stream.Event) {
	return func(ev stream.Event) {
		p.frame(ev.Received)
		if lat != nil {
			lat.received(ev.CallID, ev.Received)
		}
		engine.Digit(&actors.Digit{
			CallID:    ev.CallID,
			Key:       ev.Digit[0],
			Timestamp: ev.Timestamp,
			Received:  ev.Received,
		})
	}
}

// onReject counts a refused frame as cmd/dtmfd does.
func onReject(m *metrics.Metrics) func(error, string) {
	return func(kind error, typ string) {
		if typ != stream.TypeDTMF {
			typ = "other"
		}
		outcome := metrics.OutcomeMalformed
		if errors.Is(kind, stream.ErrUnknownType) {
			outcome = metrics.OutcomeIgnored
		}
		m.Event(typ, outcome)
	}
}

// countAccepted raises c to dtmfd's count of accepted keys, read every
// millisecond until ctx ends: a count reaches its target at most a
// millisecond late, and the polling costs a thousand wake-ups a second.
func countAccepted(ctx context.Context, m *metrics.Metrics, c *counter) {
	accepted := m.Events.WithLabelValues(stream.TypeDTMF, metrics.OutcomeAccepted)
	t := time.NewTicker(time.Millisecond)
	defer t.Stop()
	var sample dto.Metric
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := accepted.Write(&sample); err == nil {
			c.raise(int64(sample.GetCounter().GetValue()))
		}
	}
}

// observeCall counts each processed key; a call's start, which has no
// key, is not one.
func observeCall(p *probe, lat *latencies) func(actors.CallEvent) {
	return func(ev actors.CallEvent) {
		if ev.Key != "" {
			p.keys.add()
		}
		if ev.Decision != nil && lat != nil {
			lat.decided(ev.CallID, ev.At)
		}
	}
}

func observeWrite(p *probe, lat *latencies) func(actors.WriteEvent) {
	return func(ev actors.WriteEvent) {
		if ev.Err != nil {
			return
		}
		if lat != nil {
			lat.written(ev.InteractionID, time.Now())
		}
		p.writes.add()
	}
}
