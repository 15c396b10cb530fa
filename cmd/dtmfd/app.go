package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/dtmfd/dtmfd/actors"
	"github.com/dtmfd/dtmfd/ivrspec"
	"github.com/dtmfd/dtmfd/transport/deadletter"
	"github.com/dtmfd/dtmfd/transport/emulator"
	"github.com/dtmfd/dtmfd/transport/journal"
	"github.com/dtmfd/dtmfd/transport/metrics"
	"github.com/dtmfd/dtmfd/transport/simulator"
	"github.com/dtmfd/dtmfd/transport/stream"
	"github.com/dtmfd/dtmfd/transport/token"
	"github.com/dtmfd/dtmfd/transport/variables"
	"github.com/dtmfd/dtmfd/transport/web"
)

// app is one running dtmfd: its transports, its engine and its HTTP
// server, wired from a config.
type app struct {
	cfg     *config
	log     *slog.Logger
	reg     *prometheus.Registry
	metrics *metrics.Metrics

	flow atomic.Pointer[ivrspec.Flow]
	// ivrSource is the file content the running flow was loaded from,
	// touched only by the goroutine that reloads it after startup.
	ivrSource []byte

	emu    *emulator.Emulator
	tokens *token.Source
	engine *actors.Engine
	stream *stream.Client
	dead   *deadletter.File
	jrnl   *journal.Journal

	// cx is the cxone profile's transports; nil in the tutorial profile.
	cx       *cxoneProfile
	hub      *web.Hub
	server   *http.Server
	listener net.Listener
	// simServer serves the simulator on its own address, when one is set.
	simServer   *http.Server
	simListener net.Listener

	// storeCloser releases the cluster's store after the engine closes.
	storeCloser io.Closer

	streamUp atomic.Bool
	draining atomic.Bool
}

// newApp loads the IVR flow, opens the dead-letter file, starts the
// emulator in local mode, builds the engine and listens on cfg.Addr. It
// starts no connection to the platform; run does.
func newApp(cfg *config, log *slog.Logger) (_ *app, err error) {
	a := &app{cfg: cfg, log: log, reg: prometheus.NewRegistry()}
	a.reg.MustRegister(collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), buildInfo())
	a.metrics = metrics.New(a.reg)
	defer func() {
		if err != nil {
			a.closeAll()
		}
	}()

	if err := a.loadFlow(); err != nil {
		return nil, err
	}
	if a.dead, err = deadletter.Open(cfg.DeadLetters); err != nil {
		return nil, fmt.Errorf("DTMFD_DEAD_LETTERS: %w", err)
	}
	var jrnl actors.Journal
	if cfg.Journal != "" {
		if a.jrnl, err = journal.Open(cfg.Journal); err != nil {
			return nil, fmt.Errorf("DTMFD_JOURNAL: %w", err)
		}
		jrnl = a.jrnl
	}

	hc, err := platformClient(cfg.CAFile)
	if err != nil {
		return nil, err
	}
	a.hub = a.webHub()
	sink, err := a.platformSink(hc)
	if err != nil {
		return nil, err
	}
	var onCall func(actors.CallEvent)
	var onWrite func(actors.WriteEvent)
	if a.hub != nil {
		onCall, onWrite = a.hub.OnCall, a.hub.OnWrite
	}
	// In a cluster the voice stream is a singleton: one member holds it.
	var single func(context.Context) error
	if cfg.Cluster.enabled() && a.stream != nil {
		single = a.stream.Run
	}
	a.engine, a.storeCloser, err = startEngine(context.Background(), cfg.Cluster, cfg.Tenant, actors.Config{
		Flow:          a.flow.Load,
		Sink:          sink,
		DeadLetters:   recordDeadLetter(a.dead),
		Journal:       jrnl,
		Writers:       cfg.Writers,
		WriteDeadline: cfg.WriteDeadline,
		MaxBacklog:    cfg.MaxBacklog,
		MaxCalls:      cfg.MaxCalls,
		MaxKeys:       cfg.MaxKeys,
		EndedTTL:      cfg.EndedTTL,
		OnCall:        onCall,
		OnWrite:       onWrite,
		Logger:        log,
		Metrics:       a.metrics,
	}, single)
	if err != nil {
		return nil, err
	}
	if err := a.resume(); err != nil {
		return nil, err
	}
	if a.cx != nil {
		if err := a.cx.serve(a.engine, a.flow.Load); err != nil {
			return nil, err
		}
	}

	if a.listener, err = net.Listen("tcp", cfg.Addr); err != nil {
		return nil, fmt.Errorf("DTMFD_ADDR: %w", err)
	}
	main, sim := a.routes()
	a.server = a.newServer(main)
	if sim != nil {
		if a.simListener, err = net.Listen("tcp", cfg.SimulatorAddr); err != nil {
			return nil, fmt.Errorf("DTMFD_SIMULATOR_ADDR: %w", err)
		}
		a.simServer = a.newServer(sim)
	}
	return a, nil
}

// newServer is an HTTP server with timeouts that keep a slow or stuck
// client from holding a connection.
func (a *app) newServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      15 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelWarn),
	}
}

func (a *app) loadFlow() error {
	opts := ivrspec.Options{DefaultTimeout: a.cfg.InputTimeout}
	if a.cfg.IVR == "" {
		a.flow.Store(ivrspec.Example(a.cfg.InputTimeout))
		return nil
	}
	data, err := os.ReadFile(a.cfg.IVR)
	if err != nil {
		return fmt.Errorf("DTMFD_IVR: %w", err)
	}
	f, err := ivrspec.Parse(a.cfg.IVR, data, opts)
	if err != nil {
		return fmt.Errorf("DTMFD_IVR: %w", err)
	}
	a.ivrSource = data
	a.flow.Store(f)
	return nil
}

// platformSink builds the transports of the configured profile and
// returns where decisions are written: the Signal API in the cxone
// profile; the tutorial's variables endpoint, fed by its voice stream,
// otherwise.
func (a *app) platformSink(hc *http.Client) (actors.Sink, error) {
	if a.cfg.CXone.enabled() {
		cx, err := newCXoneProfile(a.cfg.CXone, a.cfg.ClientID, a.cfg.ClientSecret,
			a.cfg.ClientSecretFile, hc, a.log, a.metrics)
		if err != nil {
			return nil, err
		}
		a.cx = cx
		return cx.Sink(), nil
	}

	base, id, secret, err := a.platform()
	if err != nil {
		return nil, err
	}
	a.tokens = token.New(token.Options{
		URL:          base + "/oauth/token",
		ClientID:     id,
		ClientSecret: secret,
		Form:         a.cfg.TokenForm,
		HTTPClient:   hc,
		Metrics:      a.metrics,
	})
	a.stream = stream.New(stream.Options{
		URL:          streamURL(base),
		Token:        a.tokens.Token,
		Invalidate:   a.tokens.Invalidate,
		OnEvent:      a.onEvent,
		OnReject:     a.onReject,
		OnState:      a.streamUp.Store,
		HTTPClient:   hc,
		PingInterval: a.cfg.PingInterval,
		Logger:       a.log,
		Metrics:      a.metrics,
	})
	return &variables.Sink{
		Client: variables.New(variables.Options{BaseURL: base, Token: a.tokens.Token,
			HTTPClient: hc, Metrics: a.metrics}),
		Invalidate: a.tokens.Invalidate,
	}, nil
}

// platform returns the API base and credentials: the emulator's in local
// mode, the configured ones otherwise.
func (a *app) platform() (base, id, secret string, err error) {
	if !a.cfg.local() {
		secret, err = token.ReadSecret(a.cfg.ClientSecret, a.cfg.ClientSecretFile)
		if err != nil {
			return "", "", "", fmt.Errorf("CXONE_CLIENT_SECRET_FILE: %w", err)
		}
		return a.cfg.apiBase(), a.cfg.ClientID, secret, nil
	}

	id, secret = "local-"+uuid.NewString(), uuid.NewString()
	a.emu = emulator.New(emulator.Options{
		ClientID:     id,
		ClientSecret: secret,
		Logger:       a.log.With("component", "emulator"),
		OnWrite:      a.emulatorWrites(),
	})
	if err := a.emu.Start(); err != nil {
		return "", "", "", fmt.Errorf("start emulator: %w", err)
	}
	return a.emu.URL(), id, secret, nil
}

// resume hands the decisions a previous run left in the journal to the
// writer pool.
func (a *app) resume() error {
	if a.jrnl == nil {
		return nil
	}
	pending, err := a.jrnl.Pending()
	if err != nil && pending == nil {
		return fmt.Errorf("DTMFD_JOURNAL: %w", err)
	}
	if err != nil {
		a.log.Error("journal holds unreadable records; delivering the rest", "error", err)
	}
	if len(pending) > 0 {
		a.log.Info("delivering decisions left in the journal by the previous run", "decisions", len(pending))
		a.engine.Resume(pending)
	}
	return nil
}

// onEvent hands a stream event to the engine; it never blocks.
func (a *app) onEvent(ev stream.Event) {
	a.engine.Digit(&actors.Digit{
		CallID:    ev.CallID,
		Key:       ev.Digit[0],
		Timestamp: ev.Timestamp,
		Received:  ev.Received,
	})
}

// onReject counts a frame the stream client refused. The type label is
// dtmf or other: the platform's type strings are not a bounded set.
func (a *app) onReject(kind error, typ string) {
	if typ != stream.TypeDTMF {
		typ = "other"
	}
	outcome := metrics.OutcomeMalformed
	if errors.Is(kind, stream.ErrUnknownType) {
		outcome = metrics.OutcomeIgnored
	}
	a.metrics.Event(typ, outcome)
}

// ingest feeds a simulated key, unless dtmfd is shutting down.
func (a *app) ingest(callID string, key byte, at time.Time) error {
	if a.draining.Load() {
		return simulator.ErrUnavailable
	}
	a.engine.Digit(&actors.Digit{CallID: callID, Key: key, Received: at})
	return nil
}

// Addr is the address the HTTP server listens on.
func (a *app) Addr() string { return a.listener.Addr().String() }

// run serves until ctx ends, then shuts down without losing a decision:
// it turns unready, closes the stream with a normal close, refuses new
// simulator input, lets open calls decide, and delivers every pending
// write, all within the grace period.
func (a *app) run(ctx context.Context) error {
	var wg sync.WaitGroup
	streamCtx, stopStream := context.WithCancel(context.Background())
	if a.stream != nil && !a.cfg.Cluster.enabled() {
		wg.Go(func() {
			if err := a.stream.Run(streamCtx); err != nil {
				a.log.Error("voice stream stopped", "error", err)
			}
		})
	}
	if a.cx != nil {
		wg.Go(func() { a.cx.keepSignedIn(streamCtx, 30*time.Second) })
	}
	if a.stream != nil && a.cfg.Cluster.enabled() {
		// A member may never hold the stream, whose handshake would sign
		// it in, and must be ready to write: it signs in by itself.
		wg.Go(func() {
			keepSignedIn(streamCtx, a.log, 30*time.Second, "cannot get an access token; trying again",
				func(ctx context.Context) error {
					_, err := a.tokens.Token(ctx)
					return err
				})
		})
	}

	hup, stopHUP := notifyReload()
	defer stopHUP()
	events, stopWatch := a.watchIVRFile()
	defer stopWatch()
	wg.Go(func() { a.watchIVR(streamCtx, hup, events) })
	serveErr := make(chan error, 2)
	go func() { serveErr <- a.server.Serve(a.listener) }()
	if a.simServer != nil {
		go func() { serveErr <- a.simServer.Serve(a.simListener) }()
	}
	a.logStart()

	select {
	case <-ctx.Done():
	case err := <-serveErr:
		stopStream()
		wg.Wait()
		a.closeAll()
		return fmt.Errorf("serve http: %w", err)
	}

	start := time.Now()
	a.log.Info("shutting down", "grace", a.cfg.Grace.String())
	a.draining.Store(true)
	stopStream()
	wg.Wait()

	graceCtx, cancel := context.WithDeadline(context.Background(), start.Add(a.cfg.Grace))
	defer cancel()
	err := a.engine.Drain(graceCtx, start.Add(a.cfg.Grace/2))
	if err != nil {
		keptIn := a.cfg.DeadLetters
		if a.jrnl != nil {
			keptIn = a.cfg.Journal
		}
		a.log.Error("shutdown grace period ended with writes pending",
			"keptIn", keptIn, "error", err)
	}

	if a.hub != nil {
		a.hub.Close()
	}
	httpCtx, cancelHTTP := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancelHTTP()
	for _, srv := range []*http.Server{a.server, a.simServer} {
		if srv == nil {
			continue
		}
		if err := srv.Shutdown(httpCtx); err != nil {
			a.log.Warn("http server did not close in time; closing its connections", "error", err)
			srv.Close()
		}
	}
	a.closeAll()
	a.log.Info("stopped", "took", time.Since(start).Round(time.Millisecond).String())
	return nil
}

// keepSignedIn runs signIn now and every interval until ctx ends, and
// every few seconds while it fails, logging failing once per outage.
func keepSignedIn(ctx context.Context, log *slog.Logger, every time.Duration, failing string,
	signIn func(context.Context) error) {
	retry := min(every, 5*time.Second)
	t := time.NewTimer(0)
	defer t.Stop()

	down := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}

		err := signIn(ctx)
		switch {
		case err != nil && ctx.Err() != nil:
			return
		case err != nil:
			log.Warn(failing, "in", retry.String(), "error", err)
			down = true
			t.Reset(retry)
		default:
			if down {
				log.Info("signed in again")
				down = false
			}
			t.Reset(every)
		}
	}
}

func (a *app) logStart() {
	defer a.logKeypad()
	if a.cx != nil {
		a.log.Info("dtmfd started with the cxone profile", "addr", a.Addr(), "ivr", a.flow.Load().Name,
			"studio", studioPath, "vah", vahPath)
		return
	}
	if a.emu == nil {
		a.log.Info("dtmfd started", "addr", a.Addr(), "api", redacted(a.cfg.apiBase()),
			"ivr", a.flow.Load().Name)
		return
	}
	url := "http://" + hostPort(a.Addr())
	a.log.Info("dtmfd started in local mode, against its built-in CXone emulator",
		"url", url, "emulator", a.emu.URL(), "ivr", a.flow.Load().Name)
}

// redacted returns a URL with any password replaced, for logs.
func redacted(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// hostPort makes a listen address dialable: ":8080" becomes
// "localhost:8080".
func hostPort(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if host == "" || host == "::" || host == "0.0.0.0" {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}

// closeAll releases whatever newApp opened.
func (a *app) closeAll() {
	if a.engine != nil {
		a.engine.Close()
	}
	if a.storeCloser != nil {
		if err := a.storeCloser.Close(); err != nil {
			a.log.Warn("store did not close cleanly", "error", err)
		}
	}
	if a.cx != nil {
		a.cx.close()
	}
	if a.emu != nil {
		if err := a.emu.Close(); err != nil {
			a.log.Warn("emulator did not close cleanly", "error", err)
		}
	}
	if a.jrnl != nil {
		if err := a.jrnl.Close(); err != nil {
			a.log.Error("journal did not close cleanly", "error", err)
		}
	}
	if a.dead != nil {
		if err := a.dead.Close(); err != nil {
			a.log.Error("dead-letter file did not close cleanly", "error", err)
		}
	}
	for _, l := range []net.Listener{a.listener, a.simListener} {
		if l != nil {
			l.Close()
		}
	}
}
