package variables

import (
	"fmt"
	"io"
	"net/url"
	"time"
)

// Error describes one failed write attempt in the terms Decide needs: the
// status, or 0 when no reply came, and what the platform said about when
// to come back.
//
// Token is kept so that a caller seeing a 401 can invalidate exactly the
// token that was refused and not one refreshed meanwhile. No method of
// Error prints it, whatever the fmt verb, and it is left out of JSON.
type Error struct {
	// Status is the HTTP status of the reply, or 0 when there was none.
	Status int

	// Token is the bearer token the attempt used, or "" if it never got
	// one.
	Token string `json:"-"`

	// RetryAfter is the wait the reply's Retry-After header asked for, or
	// 0 when the header was absent, malformed or already past.
	RetryAfter time.Duration

	// Err is the cause when there was no reply: a network error, a
	// context error or a token source failure.
	Err error

	// Body is the start of the reply body, at most 256 bytes, for logs.
	Body string

	op      string // the step that failed when there was no reply
	invalid bool   // the request could not be built; retrying cannot help
}

// Error returns a one-line description without the token.
func (e *Error) Error() string {
	switch {
	case e.Status != 0:
		return fmt.Sprintf("write variables: status %d", e.Status)
	case e.Err == nil:
		return "write variables: failed"
	case e.op == "":
		return "write variables: " + causeText(e.Err)
	}
	return "write variables: " + e.op + ": " + causeText(e.Err)
}

// Unwrap returns Err, so errors.Is finds context.DeadlineExceeded and the
// like through an *Error.
func (e *Error) Unwrap() error { return e.Err }

// Format writes Error() for every verb, quoted for %q, and a Go-syntax
// form with the token masked for %#v. Without it, %#v or a numeric verb
// would print the struct and the token in it.
func (e *Error) Format(f fmt.State, verb rune) {
	switch {
	case verb == 'v' && f.Flag('#'):
		token := ""
		if e.Token != "" {
			token = "[token]"
		}
		fmt.Fprintf(f, "&variables.Error{Status:%d, Token:%q, RetryAfter:%d, Err:%v, Body:%q}",
			e.Status, token, e.RetryAfter, e.Err, e.Body)
	case verb == 'q':
		fmt.Fprintf(f, "%q", e.Error())
	default:
		io.WriteString(f, e.Error())
	}
}

// causeText drops the method and URL that net/http puts in front of a
// transport error: the caller logs the interaction already. Only an
// outermost *url.Error is unwrapped, so a wrapped cause keeps its context.
func causeText(err error) string {
	if ue, ok := err.(*url.Error); ok && ue.Err != nil {
		return ue.Err.Error()
	}
	return err.Error()
}
