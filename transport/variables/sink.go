package variables

import (
	"context"
	"errors"

	"github.com/dtmfd/dtmfd/actors"
	"github.com/dtmfd/dtmfd/ivrspec"
)

// Sink delivers the engine's decisions through a Client: it is the
// engine's actors.Sink for the interaction variables endpoint.
type Sink struct {
	Client *Client
	// Invalidate drops a token the platform refused with 401, so the next
	// attempt fetches a new one. Nil does nothing.
	Invalidate func(token string)
	Policy     Policy
}

// Write implements actors.Sink.
func (s *Sink) Write(ctx context.Context, id string, vars []ivrspec.Variable) error {
	return s.Client.Write(ctx, id, Wire(vars))
}

// Retry implements actors.Sink with Decide, dropping a refused token first.
func (s *Sink) Retry(err error, attempt int) actors.Verdict {
	v := Decide(err, attempt, s.Policy, nil)
	var e *Error
	if v.RefreshToken && errors.As(err, &e) && s.Invalidate != nil {
		s.Invalidate(e.Token)
	}
	return actors.Verdict{Retry: v.Retry, After: v.After, Reason: v.Reason}
}

// Wire converts a decision's variables to the request's form.
func Wire(vars []ivrspec.Variable) []Variable {
	out := make([]Variable, len(vars))
	for i, v := range vars {
		out[i] = Variable{Name: v.Name, Value: v.Value}
	}
	return out
}
