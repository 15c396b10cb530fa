// Package metrics defines every Prometheus family dtmfd exports and the
// small methods the rest of the service uses to move them.
//
// All methods are safe on a nil *Metrics, so packages and tests that do not
// care about metrics pass nil. No label takes an unbounded value: call ids
// never appear; node labels come from the loaded IVR definition.
package metrics

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Event outcomes for EventsTotal.
const (
	OutcomeAccepted     = "accepted"
	OutcomeInvalidDigit = "invalid_digit"
	OutcomeMalformed    = "malformed"
	OutcomeUnknownCall  = "unknown_call"
	OutcomeDuplicate    = "duplicate"
	OutcomeIgnored      = "ignored"
	OutcomeShed         = "shed"
	// OutcomeUnauthorized is a simulator request without the right token.
	OutcomeUnauthorized = "unauthorized"
)

// Event types for EventsTotal besides the voice stream's: requests to the
// simulator are counted under TypeSimulator.
const TypeSimulator = "simulator"

// closeCodes are the WebSocket close codes StreamDisconnects names: those
// RFC 6455 and the IANA registry define for the protocol. A peer may send
// any code from 1000 to 4999; the rest are counted as "other", so a peer
// cannot grow the label's values.
var closeCodes = map[int]string{
	1000: "1000", 1001: "1001", 1002: "1002", 1003: "1003", 1006: "1006",
	1007: "1007", 1008: "1008", 1009: "1009", 1010: "1010", 1011: "1011",
	1012: "1012", 1013: "1013", 1014: "1014",
}

// latencyBuckets span one millisecond to a minute: a digit decided in
// microseconds and a write that waited out a long Retry-After both land in a
// bucket of their own.
var latencyBuckets = []float64{
	.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5,
	1, 2.5, 5, 10, 20, 30, 60,
}

// Metrics holds dtmfd's metric families.
type Metrics struct {
	Events            *prometheus.CounterVec
	CallsOpen         prometheus.Gauge
	CallsEnded        *prometheus.CounterVec
	DecisionLatency   prometheus.Histogram
	WriteLatency      prometheus.Histogram
	WriteAttempts     *prometheus.CounterVec
	WriteRetries      prometheus.Counter
	WriteRateLimited  prometheus.Counter
	DeadLetters       prometheus.Counter
	WriteBacklog      prometheus.Gauge
	ClusterMembers    prometheus.Gauge
	StreamConnects    prometheus.Counter
	StreamDisconnects *prometheus.CounterVec
	TokenRefreshes    prometheus.Counter
	TokenFailures     prometheus.Counter
	IVRReloads        *prometheus.CounterVec
}

// New creates the families and registers them with reg. A nil reg creates
// them unregistered, which tests use to read values without a registry.
func New(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dtmfd_events_total",
			Help: "Events received from every ingress, by type (dtmf, other, simulator) and outcome.",
		}, []string{"type", "outcome"}),
		CallsOpen: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "dtmfd_calls_open",
			Help: "Calls with a live actor.",
		}),
		CallsEnded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dtmfd_calls_ended_total",
			Help: "Calls that reached a decision, by status and the node they ended at.",
		}, []string{"status", "node"}),
		DecisionLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "dtmfd_decision_latency_seconds",
			Help:    "Time from the digit that decided a call to the decision.",
			Buckets: latencyBuckets,
		}),
		WriteLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "dtmfd_write_latency_seconds",
			Help:    "Time from a decision to the platform accepting its write.",
			Buckets: latencyBuckets,
		}),
		WriteAttempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dtmfd_write_attempts_total",
			Help: "Write requests sent to the platform, by status class (2xx, 4xx, 5xx, error).",
		}, []string{"class"}),
		WriteRetries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dtmfd_write_retries_total",
			Help: "Write attempts scheduled again after a retryable failure.",
		}),
		WriteRateLimited: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dtmfd_write_rate_limited_total",
			Help: "Write attempts answered 429.",
		}),
		DeadLetters: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dtmfd_dead_letters_total",
			Help: "Writes given up on and recorded in the dead-letter file.",
		}),
		WriteBacklog: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "dtmfd_write_backlog",
			Help: "Interactions with a write waiting or in flight.",
		}),
		ClusterMembers: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "dtmfd_cluster_members",
			Help: "Members in this replica's view of its cluster, itself included; 0 when it runs alone.",
		}),
		StreamConnects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dtmfd_stream_connects_total",
			Help: "Voice stream connections established.",
		}),
		StreamDisconnects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dtmfd_stream_disconnects_total",
			Help: "Voice stream connections lost, by WebSocket close code (none when the link " +
				"dropped without one, other for a code the protocol does not define).",
		}, []string{"code"}),
		TokenRefreshes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dtmfd_token_refreshes_total",
			Help: "Access tokens obtained from the token endpoint.",
		}),
		TokenFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dtmfd_token_failures_total",
			Help: "Failed requests to the token endpoint.",
		}),
		IVRReloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dtmfd_ivr_reloads_total",
			Help: "IVR definition loads after startup, by result (applied, rejected).",
		}, []string{"result"}),
	}
	// Label values known in advance start at zero, so dashboards and
	// alerts see the series before the first event.
	for _, o := range []string{OutcomeAccepted, OutcomeInvalidDigit, OutcomeMalformed,
		OutcomeUnknownCall, OutcomeDuplicate, OutcomeShed} {
		m.Events.WithLabelValues("dtmf", o)
	}
	m.Events.WithLabelValues("other", OutcomeIgnored)
	m.Events.WithLabelValues(TypeSimulator, OutcomeMalformed)
	m.Events.WithLabelValues(TypeSimulator, OutcomeUnauthorized)
	for _, c := range []string{"2xx", "4xx", "5xx", "error"} {
		m.WriteAttempts.WithLabelValues(c)
	}
	for _, r := range []string{"applied", "rejected"} {
		m.IVRReloads.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(
			m.Events, m.CallsOpen, m.CallsEnded, m.DecisionLatency,
			m.WriteLatency, m.WriteAttempts, m.WriteRetries,
			m.WriteRateLimited, m.DeadLetters, m.WriteBacklog, m.ClusterMembers,
			m.StreamConnects, m.StreamDisconnects, m.TokenRefreshes,
			m.TokenFailures, m.IVRReloads,
		)
	}
	return m
}

// Event counts one received event.
func (m *Metrics) Event(typ, outcome string) {
	if m == nil {
		return
	}
	m.Events.WithLabelValues(typ, outcome).Inc()
}

// CallOpened and CallClosed track live call actors.
func (m *Metrics) CallOpened() {
	if m != nil {
		m.CallsOpen.Inc()
	}
}

// CallClosed is the counterpart of CallOpened.
func (m *Metrics) CallClosed() {
	if m != nil {
		m.CallsOpen.Dec()
	}
}

// CallEnded counts a decision and observes its latency from the last digit.
func (m *Metrics) CallEnded(status, node string, sinceDigit time.Duration) {
	if m == nil {
		return
	}
	m.CallsEnded.WithLabelValues(status, node).Inc()
	if sinceDigit >= 0 {
		m.DecisionLatency.Observe(sinceDigit.Seconds())
	}
}

// WriteAttempt counts one write request by its HTTP status, or 0 for a
// request that got no response.
func (m *Metrics) WriteAttempt(status int) {
	if m == nil {
		return
	}
	m.WriteAttempts.WithLabelValues(statusClass(status)).Inc()
	if status == 429 {
		m.WriteRateLimited.Inc()
	}
}

// WriteRetry counts a write scheduled again.
func (m *Metrics) WriteRetry() {
	if m != nil {
		m.WriteRetries.Inc()
	}
}

// WriteAccepted observes the time from decision to accepted write.
func (m *Metrics) WriteAccepted(sinceDecision time.Duration) {
	if m != nil {
		m.WriteLatency.Observe(sinceDecision.Seconds())
	}
}

// DeadLetter counts a write given up on.
func (m *Metrics) DeadLetter() {
	if m != nil {
		m.DeadLetters.Inc()
	}
}

// Backlog sets the number of interactions waiting to be written.
func (m *Metrics) Backlog(n int) {
	if m != nil {
		m.WriteBacklog.Set(float64(n))
	}
}

// Members sets the number of cluster members this replica sees.
func (m *Metrics) Members(n int) {
	if m != nil {
		m.ClusterMembers.Set(float64(n))
	}
}

// StreamConnected counts an established voice stream connection.
func (m *Metrics) StreamConnected() {
	if m != nil {
		m.StreamConnects.Inc()
	}
}

// StreamDisconnected counts a lost connection by close code; code < 0
// means the link dropped without a close frame.
func (m *Metrics) StreamDisconnected(code int) {
	if m == nil {
		return
	}
	m.StreamDisconnects.WithLabelValues(CloseCodeLabel(code)).Inc()
}

// CloseCodeLabel is the code label of StreamDisconnects for a close code:
// the code itself when the protocol defines it, "none" for a link that
// dropped without a close frame (code < 0), and "other" for the rest.
func CloseCodeLabel(code int) string {
	if code < 0 {
		return "none"
	}
	if label, ok := closeCodes[code]; ok {
		return label
	}
	return "other"
}

// TokenRefreshed counts a token obtained; TokenFailed a failed request.
func (m *Metrics) TokenRefreshed() {
	if m != nil {
		m.TokenRefreshes.Inc()
	}
}

// TokenFailed counts a failed request to the token endpoint.
func (m *Metrics) TokenFailed() {
	if m != nil {
		m.TokenFailures.Inc()
	}
}

// IVRReloaded counts a reload by result: "applied" or "rejected".
func (m *Metrics) IVRReloaded(result string) {
	if m != nil {
		m.IVRReloads.WithLabelValues(result).Inc()
	}
}

// statusClass is the class label of an HTTP status: "2xx" for 204, and
// "error" for no status (the request failed before one came).
func statusClass(status int) string {
	switch {
	case status <= 0:
		return "error"
	case status < 600:
		return classes[status/100]
	}
	return strconv.Itoa(status/100) + "xx"
}

// classes names the status classes HTTP defines, without an allocation.
var classes = [...]string{"0xx", "1xx", "2xx", "3xx", "4xx", "5xx"}
