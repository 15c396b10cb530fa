package emulator

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// versionSegment is the API version part of a REST path, such as v30.0.
var versionSegment = regexp.MustCompile(`^v[0-9]{1,3}\.0$`)

// maxSignalParams is how many values the Signal API takes, p1 to p9.
const maxSignalParams = 9

// serveSignal records a Signal API request:
// POST /inContactAPI/services/vNN.0/interactions/{contactId}/signal?p1=..
// under the API endpoint discovery names.
func (c *CXone) serveSignal(w http.ResponseWriter, r *http.Request) {
	id, version := r.PathValue("id"), r.PathValue("version")

	c.mu.Lock()
	c.signalRequests++
	status, header, failed := c.failSignals.take()
	rejected, isRejected := c.rejected[id]
	moved := r.PathValue("region") != c.region
	c.broadcastLocked()
	c.mu.Unlock()

	switch {
	case moved:
		replyError(w, http.StatusNotFound, "not_found")
		return
	case failed:
		c.log.Debug("signal failed by fault", "contactId", id, "status", status)
		replyFault(w, status, header)
		return
	case !c.authorized(r):
		replyUnauthorized(w)
		return
	case !versionSegment.MatchString(version):
		replyError(w, http.StatusNotFound, "unknown_api_version")
		return
	case !isContactID(id):
		replyError(w, http.StatusBadRequest, "invalid_contact_id")
		return
	case isRejected:
		replyError(w, rejected, errorCode(rejected))
		return
	}

	params, err := parseSignalQuery(r.URL.RawQuery)
	if err != nil {
		c.log.Debug("bad signal query", "contactId", id, "err", err)
		replyError(w, http.StatusBadRequest, "invalid_request")
		return
	}
	c.recordSignal(Signal{ContactID: id, Version: version, Params: params,
		RawQuery: r.URL.RawQuery})
	w.WriteHeader(http.StatusAccepted)
}

func (c *CXone) recordSignal(s Signal) {
	c.log.Info("signal accepted", "contactId", s.ContactID, "params", len(s.Params))

	c.mu.Lock()
	defer c.mu.Unlock()

	s.At = c.now().UTC()
	c.signals = append(c.signals, s)
	c.broadcastLocked()
}

func isContactID(id string) bool {
	if id == "" || len(id) > 20 {
		return false
	}
	for i := range len(id) {
		if id[i] < '0' || id[i] > '9' {
			return false
		}
	}
	return true
}

// parseSignalQuery reads p1..p9 from a query string, refusing any other
// parameter and any repeated one, so a client that sends what the Signal
// API would not take hears about it here.
func parseSignalQuery(raw string) ([]string, error) {
	q, err := url.ParseQuery(raw)
	if err != nil {
		return nil, fmt.Errorf("parse query: %w", err)
	}

	var params []string
	for name, vs := range q {
		n, ok := paramIndex(name)
		if !ok {
			return nil, fmt.Errorf("parameter %q is not one of p1 to p9", name)
		}
		if len(vs) > 1 {
			return nil, fmt.Errorf("parameter %s repeated", name)
		}
		if n > len(params) {
			params = append(params, make([]string, n-len(params))...)
		}
		params[n-1] = vs[0]
	}
	if len(params) == 0 {
		return nil, errors.New("no parameters")
	}
	return params, nil
}

// paramIndex returns n for a parameter named pn, 1 <= n <= 9.
func paramIndex(name string) (int, bool) {
	if len(name) != 2 || name[0] != 'p' {
		return 0, false
	}
	n, err := strconv.Atoi(name[1:])
	return n, err == nil && n >= 1 && n <= maxSignalParams
}

// Signals returns a copy of the accepted signals in arrival order.
func (c *CXone) Signals() []Signal {
	c.mu.Lock()
	defer c.mu.Unlock()

	out := make([]Signal, len(c.signals))
	for i, s := range c.signals {
		s.Params = slices.Clone(s.Params)
		out[i] = s
	}
	return out
}

// SignalsFor returns a copy of the accepted signals to one contact.
func (c *CXone) SignalsFor(contactID string) []Signal {
	var out []Signal
	for _, s := range c.Signals() {
		if s.ContactID == contactID {
			out = append(out, s)
		}
	}
	return out
}

// WaitSignals blocks until at least n signals have been accepted, ctx is
// done or the emulator is closed.
func (c *CXone) WaitSignals(ctx context.Context, n int) error {
	err := c.waitFor(ctx, func() bool { return len(c.signals) >= n })
	if err != nil {
		return fmt.Errorf("wait for %d signals: %w", n, err)
	}
	return nil
}

// SignalRequests returns how many requests reached the Signal API,
// failed and refused ones included.
func (c *CXone) SignalRequests() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.signalRequests
}

// FailSignals makes the next n Signal API requests answer status with
// header, such as 429 with Retry-After. They are not recorded.
func (c *CXone) FailSignals(n, status int, header http.Header) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.failSignals = failure{n: n, status: status, header: header.Clone()}
}

// RejectContact makes every signal to contactID answer status, such as
// 404 for a contact that has ended, while other contacts are unaffected.
func (c *CXone) RejectContact(contactID string, status int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rejected[contactID] = status
}

// String describes a signal for test failures: contact and parameters.
func (s Signal) String() string {
	return s.ContactID + "?" + strings.Join(s.Params, "&")
}
