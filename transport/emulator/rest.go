package emulator

import (
	"bytes"
	"crypto/rand"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// serveToken issues a token for the client credentials grant, with the
// client authenticated in a JSON body, a form body or HTTP Basic.
func (e *Emulator) serveToken(w http.ResponseWriter, r *http.Request) {
	if status, _, failed := e.countTokenRequest(); failed {
		e.log.Debug("token request failed by fault", "status", status)
		replyError(w, status, errorCode(status))
		return
	}

	req, err := readTokenRequest(w, r)
	if err != nil {
		e.log.Debug("bad token request", "err", err)
		replyError(w, http.StatusBadRequest, "invalid_request")
		return
	}
	if !e.validClient(req) {
		if req.basic {
			w.Header().Set("WWW-Authenticate", `Basic realm="emulator"`)
		}
		replyError(w, http.StatusUnauthorized, "invalid_client")
		return
	}
	if req.GrantType != "client_credentials" {
		replyError(w, http.StatusBadRequest, "unsupported_grant_type")
		return
	}

	token := e.issueToken()
	w.Header().Set("Cache-Control", "no-store")
	replyJSON(w, http.StatusOK, tokenReply{
		AccessToken: token,
		TokenType:   "Bearer",
		ExpiresIn:   int64(e.opts.TokenTTL / time.Second),
	})
}

type tokenReply struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int64  `json:"expires_in"`
}

// validClient compares in constant time so the emulator does not model a
// platform that leaks secrets through timing.
func (e *Emulator) validClient(req tokenRequest) bool {
	if e.opts.ClientID == "" && e.opts.ClientSecret == "" {
		return true
	}
	id := subtle.ConstantTimeCompare([]byte(req.ClientID), []byte(e.opts.ClientID))
	secret := subtle.ConstantTimeCompare(
		[]byte(req.ClientSecret), []byte(e.opts.ClientSecret))
	return id&secret == 1
}

// issueToken records a new random token and forgets expired ones.
func (e *Emulator) issueToken() string {
	token := rand.Text()
	now := e.now()

	e.mu.Lock()
	defer e.mu.Unlock()

	for t, exp := range e.tokens {
		if !now.Before(exp) {
			delete(e.tokens, t)
		}
	}
	e.tokens[token] = now.Add(e.opts.TokenTTL)
	e.log.Debug("token issued", "expiresIn", e.opts.TokenTTL)
	return token
}

// authorized reports whether r carries a bearer token the emulator issued
// and that has neither expired nor been revoked by ExpireTokens.
func (e *Emulator) authorized(r *http.Request) bool {
	token, ok := bearer(r.Header.Get("Authorization"))
	if !ok {
		return false
	}

	e.mu.Lock()
	exp, ok := e.tokens[token]
	e.mu.Unlock()
	return ok && e.now().Before(exp)
}

func bearer(header string) (string, bool) {
	scheme, token, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// serveWrite records a write of variables to one interaction, unless a
// fault says otherwise.
func (e *Emulator) serveWrite(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	// Read the body first: only a server reading its request notices a
	// client that gave up, so a delayed write whose client timed out is
	// then not recorded as accepted.
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		replyError(w, http.StatusBadRequest, "invalid_request")
		return
	}
	if !e.delayWrite(r.Context()) {
		replyError(w, http.StatusServiceUnavailable, "service_unavailable")
		return
	}

	if status, header, failed := e.takeWriteFault(); failed {
		e.log.Debug("write failed by fault", "interactionId", id, "status", status)
		replyFault(w, status, header)
		return
	}
	if !e.authorized(r) {
		replyUnauthorized(w)
		return
	}
	if status, rejected := e.rejection(id); rejected {
		e.log.Debug("write rejected", "interactionId", id, "status", status)
		replyError(w, status, errorCode(status))
		return
	}

	vars, err := parseVariables(body)
	if err != nil {
		e.log.Debug("bad write body", "interactionId", id, "err", err)
		replyError(w, http.StatusBadRequest, "invalid_request")
		return
	}

	e.record(id, vars)
	replyJSON(w, http.StatusOK, writeReply{
		Status:        "accepted",
		InteractionID: id,
		Variables:     len(vars),
	})
}

type writeReply struct {
	Status        string `json:"status"`
	InteractionID string `json:"interactionId"`
	Variables     int    `json:"variables"`
}

// record lists an accepted write and tells Options.OnWrite. The log
// names the variables but never holds a value: the emulator cannot tell
// which values are secret, such as a PIN the caller keyed.
func (e *Emulator) record(id string, vars []Variable) {
	names := make([]string, len(vars))
	for i, v := range vars {
		names[i] = v.Name
	}
	e.log.Info("write accepted", "interactionId", id, "variables", names)

	w := Write{InteractionID: id, Variables: vars, At: e.now().UTC()}
	e.mu.Lock()
	e.writes = append(e.writes, w)
	e.broadcastLocked()
	e.mu.Unlock()

	if e.opts.OnWrite != nil {
		w.Variables = append([]Variable(nil), vars...)
		e.opts.OnWrite(w)
	}
}

func (e *Emulator) serveWrites(w http.ResponseWriter, r *http.Request) {
	replyJSON(w, http.StatusOK, e.Writes())
}

func replyJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	// An error here means the client went away; it has no one to go to.
	_ = json.NewEncoder(w).Encode(v)
}

type errorReply struct {
	Error string `json:"error"`
}

func replyError(w http.ResponseWriter, status int, code string) {
	replyJSON(w, status, errorReply{Error: code})
}

func replyUnauthorized(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
	replyError(w, http.StatusUnauthorized, "invalid_token")
}

// errorCode turns a status into an OAuth-style error code, such as
// too_many_requests for 429.
func errorCode(status int) string {
	text := http.StatusText(status)
	if text == "" {
		return "error"
	}
	return strings.ToLower(strings.ReplaceAll(text, " ", "_"))
}

// tokenRequest is the part of a token request the emulator checks.
type tokenRequest struct {
	GrantType    string `json:"grant_type"`
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`

	basic bool // the client authenticated with HTTP Basic
}

// readTokenRequest reads the body and folds in HTTP Basic credentials,
// which RFC 6749 section 2.3.1 form-encodes before base64.
func readTokenRequest(w http.ResponseWriter, r *http.Request) (tokenRequest, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		return tokenRequest{}, fmt.Errorf("read token request: %w", err)
	}
	req, err := parseTokenRequest(r.Header.Get("Content-Type"), body)
	if err != nil {
		return tokenRequest{}, err
	}

	id, secret, ok := r.BasicAuth()
	if !ok {
		return req, nil
	}
	if req.ClientSecret != "" {
		return tokenRequest{}, errors.New("read token request: client authenticated twice")
	}
	req.ClientID = formUnescape(id)
	req.ClientSecret = formUnescape(secret)
	req.basic = true
	return req, nil
}

func formUnescape(s string) string {
	u, err := url.QueryUnescape(s)
	if err != nil {
		return s
	}
	return u
}

// parseTokenRequest decodes a token request body, JSON or form-encoded
// as its content type says. A missing grant_type is an error; an unknown
// one is left for the caller to refuse with unsupported_grant_type.
func parseTokenRequest(contentType string, body []byte) (tokenRequest, error) {
	media, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return tokenRequest{}, fmt.Errorf("parse content type: %w", err)
	}

	var req tokenRequest
	switch media {
	case "application/json":
		err = json.Unmarshal(body, &req)
	case "application/x-www-form-urlencoded":
		req, err = parseTokenForm(string(body))
	default:
		err = fmt.Errorf("unsupported content type %q", media)
	}
	if err != nil {
		return tokenRequest{}, fmt.Errorf("parse token request: %w", err)
	}
	if req.GrantType == "" {
		return tokenRequest{}, errors.New("parse token request: no grant_type")
	}
	return req, nil
}

// parseTokenForm refuses repeated parameters, as RFC 6749 section 3.2
// requires.
func parseTokenForm(body string) (tokenRequest, error) {
	form, err := url.ParseQuery(body)
	if err != nil {
		return tokenRequest{}, err
	}
	for _, k := range []string{"grant_type", "client_id", "client_secret"} {
		if len(form[k]) > 1 {
			return tokenRequest{}, fmt.Errorf("parameter %s repeated", k)
		}
	}
	return tokenRequest{
		GrantType:    form.Get("grant_type"),
		ClientID:     form.Get("client_id"),
		ClientSecret: form.Get("client_secret"),
	}, nil
}

// parseVariables decodes a write body strictly, so a client that sends a
// field or shape the contract lacks hears about it here rather than on the
// platform.
func parseVariables(body []byte) ([]Variable, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()

	var vars []Variable
	if err := dec.Decode(&vars); err != nil {
		return nil, fmt.Errorf("decode variables: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("decode variables: data after the array")
	}
	if len(vars) == 0 {
		return nil, errors.New("decode variables: want a non-empty array")
	}
	for i, v := range vars {
		if v.Name == "" {
			return nil, fmt.Errorf("decode variables: variable %d has no name", i)
		}
	}
	return vars, nil
}
