package main

// This file holds what the two reference designs share, written the way a
// user following the tutorial would: a stream reader on coder/websocket,
// the tutorial's IVR engine (one map of sessions behind one mutex, a
// time.AfterFunc timer per call) and its REST client. They exist only to
// be measured against dtmfd; nothing in dtmfd uses them.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// restVariable is one name and value of a write, as the tutorial's
// VariableUpdate.
type restVariable struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// tutorialNode is a node of the tutorial's IVR definition.
type tutorialNode struct {
	allowed  string // the keys accepted here, one byte each
	next     string
	terminal bool
}

// tutorialTree is the tutorial's example tree, which is the contract's.
var tutorialTree = map[string]tutorialNode{
	"main_menu":  {allowed: "123", next: "department"},
	"department": {allowed: "AB", next: "confirm"},
	"confirm":    {allowed: "1", terminal: true},
}

// sessionMap is the tutorial's IVR engine with its data races fixed: every
// read and write of a session happens under the one lock, a timer that
// fires after its session moved on or ended does nothing, and an ended
// session leaves the map (the tutorial's never did). decide runs on the
// goroutine that reached the decision, after the lock is released: the
// stream reader for a completion, the timer's goroutine for a timeout.
// A key after a call's decision starts the call afresh, where dtmfd
// refuses it; the measurements send none.
type sessionMap struct {
	timeout time.Duration
	decide  func(callID string, vars []restVariable)
	keys    func() // counts each key processed

	mu       sync.Mutex
	sessions map[string]*mapSession
	closed   bool
}

type mapSession struct {
	node     string
	history  []string
	timer    *time.Timer
	deadline time.Time
}

func newSessionMap(timeout time.Duration, decide func(string, []restVariable),
	keys func()) *sessionMap {
	return &sessionMap{
		timeout:  timeout,
		decide:   decide,
		keys:     keys,
		sessions: make(map[string]*mapSession),
	}
}

// digit is the tutorial's ProcessDigit.
func (m *sessionMap) digit(callID, digit string) {
	m.mu.Lock()
	s := m.session(callID)
	node := tutorialTree[s.node]
	if len(digit) != 1 || !strings.Contains(node.allowed, digit) {
		m.mu.Unlock()
		m.keys()
		return
	}

	s.history = append(s.history, digit)
	if !node.terminal {
		s.node = node.next
		m.arm(callID, s)
		m.mu.Unlock()
		m.keys()
		return
	}

	s.timer.Stop()
	delete(m.sessions, callID)
	path := s.history
	m.mu.Unlock()
	m.keys()

	sel, _ := json.Marshal(path)
	m.decide(callID, []restVariable{
		{Name: "ivr_selection", Value: string(sel)},
		{Name: "ivr_status", Value: "completed"},
	})
}

// session returns the call's session, starting it on the call's first key.
// The caller holds m.mu.
func (m *sessionMap) session(callID string) *mapSession {
	s := m.sessions[callID]
	if s == nil {
		s = &mapSession{node: "main_menu"}
		m.sessions[callID] = s
		m.arm(callID, s)
	}
	return s
}

// arm starts or resets the session's timer. The caller holds m.mu.
func (m *sessionMap) arm(callID string, s *mapSession) {
	s.deadline = time.Now().Add(m.timeout)
	if s.timer != nil {
		s.timer.Reset(m.timeout)
		return
	}
	s.timer = time.AfterFunc(m.timeout, func() { m.expire(callID, s) })
}

// expire is the tutorial's handleTimeout. A timer reset after it fired
// finds a later deadline and leaves the session alone.
func (m *sessionMap) expire(callID string, s *mapSession) {
	m.mu.Lock()
	if m.closed || m.sessions[callID] != s || time.Now().Before(s.deadline) {
		m.mu.Unlock()
		return
	}
	delete(m.sessions, callID)
	m.mu.Unlock()

	m.decide(callID, []restVariable{{Name: "ivr_status", Value: "timeout_fallback"}})
}

// close stops every timer; sessions still open get no decision.
func (m *sessionMap) close() {
	m.mu.Lock()
	defer m.mu.Unlock()

	m.closed = true
	for _, s := range m.sessions {
		s.timer.Stop()
	}
}

// readStream reads the voice stream until ctx ends or the connection
// fails, decoding each frame and handing dtmf events to onDigit on the
// reading goroutine.
func readStream(ctx context.Context, pf platform, tok string, p *probe,
	onDigit func(callID, digit string)) error {
	conn, _, err := websocket.Dial(ctx, pf.streamURL(), &websocket.DialOptions{
		HTTPHeader: http.Header{"Authorization": {"Bearer " + tok}},
	})
	if err != nil {
		return fmt.Errorf("dial stream: %w", err)
	}
	defer conn.CloseNow()
	p.up()

	for {
		_, data, err := conn.Read(ctx)
		if err != nil {
			return fmt.Errorf("read stream: %w", err)
		}
		p.frame(time.Now())

		var ev struct {
			Type   string `json:"type"`
			Digit  string `json:"digit"`
			CallID string `json:"callId"`
		}
		if err := json.Unmarshal(data, &ev); err != nil || ev.Type != "dtmf" || ev.CallID == "" {
			continue
		}
		onDigit(ev.CallID, ev.Digit)
	}
}

// restClient is the tutorial's interaction client: one POST per write,
// retried on 429.
type restClient struct {
	base  string
	token string
	hc    *http.Client
}

// newRESTClient uses the same HTTP client settings as dtmfd. The
// tutorial's own (the default transport, two idle connections) would make
// design (b)'s 64 writers open a connection for most writes.
func newRESTClient(pf platform, tok string) *restClient {
	return &restClient{base: pf.base, token: tok, hc: platformClient()}
}

// post is the tutorial's UpdateVariables.
func (c *restClient) post(ctx context.Context, callID string, vars []restVariable) error {
	body, err := json.Marshal(vars)
	if err != nil {
		return fmt.Errorf("encode variables: %w", err)
	}
	u := c.base + "/api/v2/interactions/" + url.PathEscape(callID) + "/variables"

	for attempt := 0; ; attempt++ {
		status, err := c.once(ctx, u, body)
		switch {
		case err != nil:
			return err
		case status == http.StatusTooManyRequests && attempt < 2:
			time.Sleep(2 * time.Duration(attempt+1) * time.Second)
			continue
		case status < 200 || status > 299:
			return fmt.Errorf("post variables: status %d", status)
		}
		return nil
	}
}

func (c *restClient) once(ctx context.Context, u string, body []byte) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("post variables: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")

	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, fmt.Errorf("post variables: %w", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}
