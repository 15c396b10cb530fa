package main

import (
	"context"
	"errors"

	"github.com/dtmfd/dtmfd/actors"
	"github.com/dtmfd/dtmfd/ivrspec"
	"github.com/dtmfd/dtmfd/transport/deadletter"
	"github.com/dtmfd/dtmfd/transport/variables"
)

// variablesSink delivers decisions through the tutorial's interaction
// variables endpoint.
type variablesSink struct {
	client     *variables.Client
	invalidate func(token string)
	policy     variables.Policy
}

// Write implements actors.Sink.
func (s *variablesSink) Write(ctx context.Context, id string, vars []ivrspec.Variable) error {
	return s.client.Write(ctx, id, toWire(vars))
}

// Retry implements actors.Sink. A 401 drops the token it was refused with
// before the next attempt fetches a new one.
func (s *variablesSink) Retry(err error, attempt int) actors.Verdict {
	v := variables.Decide(err, attempt, s.policy, nil)
	var e *variables.Error
	if v.RefreshToken && errors.As(err, &e) && s.invalidate != nil {
		s.invalidate(e.Token)
	}
	return actors.Verdict{Retry: v.Retry, After: v.After, Reason: v.Reason}
}

func toWire(vars []ivrspec.Variable) []variables.Variable {
	out := make([]variables.Variable, len(vars))
	for i, v := range vars {
		out[i] = variables.Variable{Name: v.Name, Value: v.Value}
	}
	return out
}

// recordDeadLetter returns the engine's dead-letter hook writing to f.
func recordDeadLetter(f *deadletter.File) func(actors.DeadLetter) error {
	return func(dl actors.DeadLetter) error {
		rec := deadletter.Record{
			InteractionID: dl.InteractionID,
			Variables:     toWire(dl.Variables),
			DecidedAt:     dl.DecidedAt,
			FailedAt:      dl.FailedAt,
			Attempts:      dl.Attempts,
		}
		if dl.Err != nil {
			rec.Error = dl.Err.Error()
		}
		var e *variables.Error
		if errors.As(dl.Err, &e) {
			rec.Status = e.Status
		}
		return f.Append(rec)
	}
}
