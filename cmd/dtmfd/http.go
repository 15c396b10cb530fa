package main

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/dtmfd/dtmfd/transport/simulator"
)

// routes is dtmfd's HTTP surface: the main handler, and the simulator's
// own when it listens on an address of its own (nil otherwise). The
// simulator is served only in local mode unless turned on, and then only
// with a bearer token.
func (a *app) routes() (main, sim http.Handler) {
	mux := http.NewServeMux()
	simMux := mux
	if a.cfg.simulatorOn() && a.cfg.SimulatorAddr != "" {
		simMux = http.NewServeMux()
		sim = simMux
	}
	if a.cfg.simulatorOn() {
		simMux.Handle("/simulator", &simulator.Handler{Ingest: a.ingest,
			Token: a.cfg.SimulatorToken, Logger: a.log, Metrics: a.metrics})
		simMux.Handle("/", a.hub.Handler())
	}
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok"))
	})
	mux.Handle("GET /healthz", healthz(a.engine))
	mux.HandleFunc("GET /readyz", a.readyz)
	mux.Handle("GET /metrics", promhttp.HandlerFor(a.reg, promhttp.HandlerOpts{}))
	if a.emu != nil {
		mux.Handle("GET /emulator/writes", a.emu.Handler())
	}
	if a.cx != nil {
		a.cx.mount(mux)
	}
	return mux, sim
}

// pinger is what liveness asks: the engine, or a stand-in that does not
// answer in tests.
type pinger interface {
	Ping(ctx context.Context) error
}

// livenessTimeout is how long the actor system has to answer a probe.
const livenessTimeout = time.Second

// healthz is liveness: the process serves and the actor system answers
// within livenessTimeout. A stuck engine makes it fail, so Kubernetes
// restarts the pod.
func healthz(engine pinger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), livenessTimeout)
		defer cancel()
		if err := engine.Ping(ctx); err != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{
				"status": "failing", "reason": "actor system did not answer: " + err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"status": "ok"})
	}
}

// readyz is readiness: a token obtained, the stream connected, an IVR
// flow loaded, and not shutting down.
func (a *app) readyz(w http.ResponseWriter, r *http.Request) {
	var reasons []string
	if a.draining.Load() {
		reasons = append(reasons, "shutting down")
	}
	if a.cx != nil {
		reasons = append(reasons, a.cx.notReady()...)
	} else {
		if !a.tokens.Ready() {
			reasons = append(reasons, "no access token yet")
		}
		// In a cluster one member holds the stream; readiness must not
		// depend on being that member.
		if !a.streamUp.Load() && !a.cfg.Cluster.enabled() {
			reasons = append(reasons, "voice stream not connected")
		}
	}
	if a.flow.Load() == nil {
		reasons = append(reasons, "no IVR flow loaded")
	}
	if len(reasons) > 0 {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "not ready", "reasons": reasons})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "ready"})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
