package main

import (
	"errors"

	"github.com/dtmfd/dtmfd/actors"
	"github.com/dtmfd/dtmfd/transport/deadletter"
	"github.com/dtmfd/dtmfd/transport/variables"
)

// recordDeadLetter returns the engine's dead-letter hook writing to f.
func recordDeadLetter(f *deadletter.File) func(actors.DeadLetter) error {
	return func(dl actors.DeadLetter) error {
		rec := deadletter.Record{
			InteractionID: dl.InteractionID,
			Variables:     variables.Wire(dl.Variables),
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
