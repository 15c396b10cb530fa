package cxone

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/dtmfd/dtmfd/actors"
	"github.com/dtmfd/dtmfd/ivrspec"
	"github.com/dtmfd/dtmfd/transport/metrics"
)

const (
	// maxBody bounds a request body to an ingress endpoint.
	maxBody = 64 << 10

	// maxReplyBytes is the largest reply a Studio REST API action takes.
	maxReplyBytes = 32 << 10

	// maxTurnKeys bounds the keys of one turn.
	maxTurnKeys = 128

	// maxNodeID bounds the node id a request may name.
	maxNodeID = 128

	// defaultStepTimeout bounds one turn, far below the 90 s the platform
	// waits, so a stuck engine is answered with an error the script can
	// route on rather than with the platform's own timeout.
	defaultStepTimeout = 10 * time.Second
)

// Stepper runs one platform-driven turn of a call; *actors.Engine is one.
type Stepper interface {
	Step(ctx context.Context, s *actors.Step) (*actors.StepReply, error)
}

// Credential is what a caller of an ingress endpoint must present in its
// Authorization header: a bearer token, or a user and password for HTTP
// Basic. The zero value admits no one.
type Credential struct {
	token, user, pass string
}

// ParseCredential reads a credential setting: "user:password" means HTTP
// Basic, anything else is a bearer token. An empty setting is an error, so
// an endpoint is never left open by mistake.
func ParseCredential(s string) (Credential, error) {
	if s == "" {
		return Credential{}, errors.New("parse credential: empty")
	}
	if user, pass, ok := strings.Cut(s, ":"); ok {
		if user == "" || pass == "" {
			return Credential{}, errors.New("parse credential: user:password with an empty part")
		}
		return Credential{user: user, pass: pass}, nil
	}
	return Credential{token: s}, nil
}

// Check reports whether r carries the credential. It compares in constant
// time, so the comparison leaks nothing of the secret through timing.
func (c Credential) Check(r *http.Request) bool {
	switch {
	case c.token != "":
		scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			return false
		}
		return subtle.ConstantTimeCompare([]byte(strings.TrimSpace(tok)), []byte(c.token)) == 1
	case c.user != "":
		user, pass, ok := r.BasicAuth()
		if !ok {
			return false
		}
		u := subtle.ConstantTimeCompare([]byte(user), []byte(c.user))
		p := subtle.ConstantTimeCompare([]byte(pass), []byte(c.pass))
		return u&p == 1
	}
	return false
}

// challenge is the WWW-Authenticate value for a refused request.
func (c Credential) challenge() string {
	if c.user != "" {
		return `Basic realm="dtmfd"`
	}
	return `Bearer realm="dtmfd"`
}

// Options configures the Studio and VAH handlers. Engine, Flow and Auth
// are required.
type Options struct {
	// Engine runs the turns.
	Engine Stepper

	// Flow returns the flow new calls start on; a turn that starts a call
	// answers with its start node without touching the engine.
	Flow func() *ivrspec.Flow

	// Auth is the credential every caller must present.
	Auth Credential

	// StepTimeout bounds one turn. Zero means 10s.
	StepTimeout time.Duration

	// PromptAudio, when set, turns a prompt id into the audioFilePath of
	// a Virtual Agent Hub prompt: every "{prompt}" in it is replaced by
	// the id. Empty sends the id as the prompt's transcript only.
	PromptAudio string

	// Instance identifies this process's sessions in the state handed to
	// the platform. Empty means a random value, which is what a restart
	// should change.
	Instance string

	// Logger receives lifecycle records at Info and per-turn detail at
	// Debug; it never receives a caller's keys.
	Logger *slog.Logger

	// Metrics counts turns by outcome. Nil counts nothing.
	Metrics *metrics.Metrics
}

// core is what both handlers share: options with defaults filled in and
// the turn logic.
type core struct {
	opts Options
	log  *slog.Logger
	kind string // "studio" or "vah", the metrics event type
}

func newCore(opts Options, kind string) (*core, error) {
	if opts.Engine == nil || opts.Flow == nil {
		return nil, fmt.Errorf("new %s handler: Engine and Flow are required", kind)
	}
	if opts.Auth == (Credential{}) {
		return nil, fmt.Errorf("new %s handler: a credential is required", kind)
	}
	if opts.StepTimeout <= 0 {
		opts.StepTimeout = defaultStepTimeout
	}
	if opts.Instance == "" {
		opts.Instance = rand.Text()[:12]
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &core{opts: opts, log: log.With("ingress", kind), kind: kind}, nil
}

// turnKind is what the platform reports for one turn.
type turnKind uint8

const (
	// turnStart asks for the first prompt of a call.
	turnStart turnKind = iota + 1
	// turnKeys carries the keys the platform collected.
	turnKeys
	// turnNoInput reports that the caller pressed nothing.
	turnNoInput
	// turnHangup reports that the caller is gone.
	turnHangup
)

// turn is one request from the platform, whichever endpoint it came in at.
type turn struct {
	contactID string
	kind      turnKind
	keys      string
	// session is the instance named in the state the platform handed
	// back, or "" when it handed none back.
	session string
	// node is the node whose prompt the keys answer, as the platform
	// names it from an earlier reply, or "" when it names none.
	node string
	// requestID identifies a turn the platform may send again; "" when
	// the request carries nothing that does.
	requestID string
}

// The statuses of an outcome, as both endpoints report them.
const (
	statusStarted   = "started"
	statusRestarted = "restarted"
	statusResumed   = "resumed"
	statusCorrected = "corrected"
	statusWaiting   = "waiting"
	statusDecided   = "decided"
	statusHangup    = "hangup"
	statusEnded     = "ended"
)

// outcome is the call's state after a turn.
type outcome struct {
	status string
	// node waits for input; nil once the call ended.
	node     *ivrspec.Node
	prompt   string
	decision *ivrspec.Decision
	noInput  int
	noMatch  int
}

// run carries out one turn. The engine, shared by every replica of a
// cluster, is asked first whatever session the platform names: only a
// call it does not hold starts again, at the node the platform names if
// the flow has it, or else from the top.
func (c *core) run(ctx context.Context, t turn) (outcome, error) {
	if t.kind == turnStart {
		if o := c.start(); o.node != nil {
			return o, nil
		}
		t.kind = turnNoInput
	}

	ctx, cancel := context.WithTimeout(ctx, c.opts.StepTimeout)
	defer cancel()

	step := c.step(t)
	r, err := c.opts.Engine.Step(ctx, step)
	if err != nil {
		if dl, _ := ctx.Deadline(); !time.Now().Before(dl) {
			// The engine's own timeout error does not say so.
			err = fmt.Errorf("%w: %w", errStepTimeout, err)
		}
		return outcome{}, err
	}
	if r.Unknown {
		// The keys answer a prompt of a call no process holds any more,
		// at a node this flow cannot place, so they are applied nowhere.
		c.log.Warn("call unknown to the engine and no node to resume at; starting the flow again",
			"callId", t.contactID)
		o := c.start()
		o.status = statusRestarted
		return o, nil
	}
	return c.outcome(t, step, r), nil
}

// step builds the engine's Step for t. A node the platform names, and
// the current flow waits at, goes along as the Step's At. A turn that
// names a node the flow lacks, or a session of another process, asks for
// an existing call only: the keys answer a prompt dtmfd cannot place, so
// they must not start a call at the top.
func (c *core) step(t turn) *actors.Step {
	s := &actors.Step{CallID: t.contactID, RequestID: t.requestID, Keys: t.keys,
		Hangup: t.kind == turnHangup, Received: time.Now()}
	if s.Hangup {
		return s
	}
	if t.node != "" {
		if n := c.opts.Flow().Nodes[t.node]; n != nil && n.Kind != ivrspec.KindEnd {
			s.At = t.node
			return s
		}
		c.log.Warn("turn names a node the flow does not wait at; not resumed there",
			"callId", t.contactID, "node", t.node)
	}
	s.Existing = t.node != "" || (t.session != "" && t.session != c.opts.Instance)
	return s
}

// start answers a call's first turn from the start node. A flow whose
// start node is an end node has nothing to collect; run then steps it.
func (c *core) start() outcome {
	n := c.opts.Flow().Start
	if n.Kind == ivrspec.KindEnd {
		return outcome{}
	}
	return outcome{status: statusStarted, node: n, prompt: n.Prompt}
}

func (c *core) outcome(t turn, s *actors.Step, r *actors.StepReply) outcome {
	o := outcome{node: r.Node, prompt: r.Prompt, decision: r.Decision,
		noInput: r.NoInput, noMatch: r.NoMatch}
	switch {
	case r.Decision != nil:
		o.status = statusDecided
	case t.kind == turnHangup:
		o.status = statusHangup
	case r.Ended || r.Node == nil:
		o.status, o.node = statusEnded, nil
	case r.Elsewhere:
		o.status = statusCorrected
		c.log.Warn("turn answers another node than the call waits at; not applied",
			"callId", t.contactID, "node", s.At, "callNode", r.Node.ID)
	case r.Resumed:
		o.status = statusResumed
	default:
		o.status = statusWaiting
	}
	if r.Resumed {
		c.log.Info("call unknown to the engine resumed at the node the platform named",
			"callId", t.contactID, "node", s.At)
	}
	c.log.Debug("turn", "callId", t.contactID, "status", o.status, "node", nodeID(o.node),
		"keys", len(t.keys))
	return o
}

func nodeID(n *ivrspec.Node) string {
	if n == nil {
		return ""
	}
	return n.ID
}

// rules are the collect rules of the node a call waits at, in the terms
// both endpoints use.
type rules struct {
	minDigits, maxDigits int
	terminators          string
	strip                bool
	timeout, interDigit  time.Duration
}

// collectRules derives the platform's collect rules from a node: one key
// for a menu, the node's bounds and terminators for a collect node.
func collectRules(n *ivrspec.Node) rules {
	r := rules{minDigits: 1, maxDigits: 1, strip: true, timeout: n.Timeout,
		interDigit: n.InterDigit}
	if c := n.Collect; c != nil {
		r.minDigits, r.maxDigits = c.MinDigits, c.MaxDigits
		r.terminators, r.strip = c.Terminators, !c.KeepTerminator
	}
	return r
}

// variableMap flattens a decision's variables for a JSON reply.
func variableMap(d *ivrspec.Decision) map[string]string {
	m := make(map[string]string, len(d.Variables))
	for _, v := range d.Variables {
		m[v.Name] = v.Value
	}
	return m
}

// checkKeys accepts up to maxTurnKeys DTMF keys.
func checkKeys(keys string) error {
	if len(keys) > maxTurnKeys {
		return fmt.Errorf("%d keys in one turn; at most %d", len(keys), maxTurnKeys)
	}
	for i := range len(keys) {
		if !ivrspec.ValidKey(keys[i]) {
			return fmt.Errorf("key %d is not a DTMF key (0-9, *, #, A-D)", i+1)
		}
	}
	return nil
}

// contactID is a CXone contact id as a request carries it: a JSON number
// or a string, since a script may substitute it either way.
type contactID string

// UnmarshalJSON implements json.Unmarshaler.
func (id *contactID) UnmarshalJSON(b []byte) error {
	var s string
	if len(b) > 0 && b[0] == '"' {
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
	} else {
		var n json.Number
		if err := json.Unmarshal(b, &n); err != nil {
			return errors.New("contact id is neither a number nor a string")
		}
		s = n.String()
	}
	*id = contactID(s)
	return nil
}

// guard answers what every ingress request must pass before its body is
// read: the method and the credential. It reports whether to go on.
func (c *core) guard(w http.ResponseWriter, r *http.Request) bool {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeJSON(w, http.StatusMethodNotAllowed, errorReply{Error: "method not allowed: use POST"})
		return false
	}
	if !c.opts.Auth.Check(r) {
		c.opts.Metrics.Event(c.kind, metrics.OutcomeUnauthorized)
		c.log.Warn("request refused: missing or wrong credential",
			"status", http.StatusUnauthorized, "remoteAddr", r.RemoteAddr)
		w.Header().Set("WWW-Authenticate", c.opts.Auth.challenge())
		writeJSON(w, http.StatusUnauthorized, errorReply{Error: "missing or wrong credential"})
		return false
	}
	return true
}

// readBody reads at most maxBody bytes. A longer body is an error that
// says so.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, int, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return nil, http.StatusRequestEntityTooLarge,
			fmt.Errorf("body larger than %d bytes", maxBody)
	}
	if err != nil {
		return nil, http.StatusBadRequest, fmt.Errorf("read body: %w", err)
	}
	return body, 0, nil
}

// refuse answers a request that cannot be served, counting it. contact
// is the request's contact id, or "" when it has none that is valid. The
// error never holds a caller's keys: parsing reports their positions.
func (c *core) refuse(
	w http.ResponseWriter, r *http.Request, status int, contact string, err error,
) {
	c.opts.Metrics.Event(c.kind, metrics.OutcomeMalformed)
	args := []any{"status", status, "remoteAddr", r.RemoteAddr, "error", err}
	if contact != "" {
		args = append(args, "callId", contact)
	}
	c.log.Warn("request refused", args...)
	writeJSON(w, status, errorReply{Error: err.Error()})
}

// validContact returns id if it is a contact id, else "".
func validContact(id string) string {
	if checkContactID(id) != nil {
		return ""
	}
	return id
}

type errorReply struct {
	Error string `json:"error"`
}

// writeJSON encodes v. An encoding error here means the client went away.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// errStepTimeout reports a turn the engine did not answer in time.
var errStepTimeout = errors.New("turn timed out")

// engineError says why a turn failed, for a reply the script can route on.
func engineError(err error) string {
	switch {
	case errors.Is(err, actors.ErrDraining):
		return "dtmfd is shutting down"
	case errors.Is(err, actors.ErrTooManyCalls):
		return "dtmfd is at its call limit"
	case errors.Is(err, errStepTimeout), errors.Is(err, context.DeadlineExceeded):
		return "dtmfd did not answer in time"
	}
	return "dtmfd could not run the turn"
}
