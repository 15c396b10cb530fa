package token

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
)

const (
	// defaultLifetime is assumed when a reply has no positive expires_in.
	// RFC 6749 leaves the field optional; a minute keeps a token the
	// server never meant to last from being used for long.
	defaultLifetime = 60 * time.Second

	// maxLifetime caps expires_in, so a wrong or hostile reply cannot keep
	// a token cached for days.
	maxLifetime = 24 * time.Hour

	// maxReplySize bounds how much of a reply is read.
	maxReplySize = 64 << 10

	// maxExcerpt bounds how much of an error reply an error carries.
	maxExcerpt = 200
)

// errNoAccessToken reports a 200 reply without a token in it.
var errNoAccessToken = errors.New("token reply has no access_token")

// StatusError is returned when the token endpoint answers with a status
// other than 200, so callers can tell rejected credentials (400, 401) from
// an endpoint that is down or overloaded (429, 5xx).
type StatusError struct {
	// Code is the HTTP status code.
	Code int

	// Body is the start of the reply, cleaned of the client secret and of
	// control characters, for the log.
	Body string
}

// Error reports the status and the excerpt of the reply.
func (e *StatusError) Error() string {
	if e.Body == "" {
		return "token endpoint answered " + strconv.Itoa(e.Code)
	}
	return "token endpoint answered " + strconv.Itoa(e.Code) + ": " + e.Body
}

// fetch sends one token request and returns the token and its lifetime.
// No error it returns contains the client secret or a token.
func (s *Source) fetch(ctx context.Context) (string, time.Duration, error) {
	req, err := s.newRequest(ctx)
	if err != nil {
		return "", 0, err
	}

	resp, err := s.opts.HTTPClient.Do(req)
	if err != nil {
		return "", 0, fmt.Errorf("request token: %w", err)
	}
	defer resp.Body.Close()

	body, err := io.ReadAll(io.LimitReader(resp.Body, maxReplySize))
	if err != nil {
		return "", 0, fmt.Errorf("read token reply: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", 0, &StatusError{
			Code: resp.StatusCode,
			Body: excerpt(body, s.opts.ClientSecret),
		}
	}
	return parseReply(body)
}

// newRequest builds the client credentials request, form-encoded or JSON.
// Both encodings go through a real encoder, so any byte in the secret
// arrives intact.
func (s *Source) newRequest(ctx context.Context) (*http.Request, error) {
	var (
		body        []byte
		contentType string
	)
	if s.opts.Form {
		body = []byte(url.Values{
			"grant_type":    {"client_credentials"},
			"client_id":     {s.opts.ClientID},
			"client_secret": {s.opts.ClientSecret},
		}.Encode())
		contentType = "application/x-www-form-urlencoded"
	} else {
		body, _ = json.Marshal(jsonRequest{
			GrantType:    "client_credentials",
			ClientID:     s.opts.ClientID,
			ClientSecret: s.opts.ClientSecret,
		})
		contentType = "application/json"
	}

	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.opts.URL,
		bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("build token request: %w", err)
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Accept", "application/json")
	return req, nil
}

// jsonRequest is the JSON form of the client credentials request.
type jsonRequest struct {
	GrantType    string `json:"grant_type"`
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`
}

// jsonReply holds the fields of a token reply that dtmfd uses. expires_in
// is a json.Number so that the quoted numbers some servers send decode too.
type jsonReply struct {
	AccessToken string      `json:"access_token"`
	ExpiresIn   json.Number `json:"expires_in"`
}

// parseReply decodes a 200 reply into the token and its lifetime. A missing,
// zero or negative expires_in means defaultLifetime; one beyond maxLifetime
// is capped.
func parseReply(body []byte) (string, time.Duration, error) {
	var r jsonReply
	if err := json.Unmarshal(body, &r); err != nil {
		return "", 0, fmt.Errorf("decode token reply: %w", err)
	}
	if r.AccessToken == "" {
		return "", 0, errNoAccessToken
	}
	return r.AccessToken, lifetime(r.ExpiresIn), nil
}

// lifetime turns expires_in, in seconds, into a duration within
// (0, maxLifetime].
func lifetime(n json.Number) time.Duration {
	secs, err := n.Float64()
	if err != nil || math.IsNaN(secs) || secs <= 0 {
		return defaultLifetime
	}
	if secs >= maxLifetime.Seconds() {
		return maxLifetime
	}

	d := time.Duration(secs * float64(time.Second))
	if d <= 0 {
		return defaultLifetime
	}
	return d
}

// jsonString returns s as it appears inside a JSON string, with or without
// the HTML escaping of encoding/json.
func jsonString(s string, escapeHTML bool) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(escapeHTML)
	_ = enc.Encode(s)

	quoted := bytes.TrimSpace(b.Bytes())
	return string(quoted[1 : len(quoted)-1])
}

// excerpt returns the start of an error reply for an error message: the
// secret, raw or in either request encoding, is replaced, control
// characters become spaces, and the result is cut to maxExcerpt bytes.
func excerpt(body []byte, secret string) string {
	s := string(body)
	if secret != "" {
		for _, form := range []string{
			secret,
			url.QueryEscape(secret),
			jsonString(secret, true),
			jsonString(secret, false),
		} {
			s = strings.ReplaceAll(s, form, "[redacted]")
		}
	}

	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	s = strings.TrimSpace(s)
	if len(s) > maxExcerpt {
		s = strings.ToValidUTF8(s[:maxExcerpt], "") + "..."
	}
	return s
}
