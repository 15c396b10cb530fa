package actors

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// In a cluster a decision may reach the writers of two members: the
// member that decided, and one that re-activated the call after losing
// track of it. Each writer claims a decision in the store before writing
// it and marks it accepted afterwards, so only one writes it.

var (
	// errClaimHeld is a decision another member is delivering.
	errClaimHeld = errors.New("decision claimed by another member")
	// errDelivered is a decision already accepted; nothing is written.
	errDelivered = errors.New("decision already delivered")
	// errStore is a claim the store did not answer; asked for again.
	errStore = errors.New("store unavailable")
)

const (
	// claimTTL outlives one write attempt; a member that dies holding a
	// claim blocks the decision for this long.
	claimTTL = 30 * time.Second
	// acceptedTTL is how long a delivered decision is remembered.
	acceptedTTL = 24 * time.Hour
	// claimRetry is how often a held claim is asked for again.
	claimRetry = time.Second
)

// write performs an attempt: in a cluster, only once its decisions are
// claimed, and marking them accepted once written. A member that dies
// between the platform's acceptance and the mark leaves the decision to
// be written again by another: at least once, not exactly once, in that
// window, since the platform's write takes no idempotency key.
func (wk *worker) write(a *attempt) error {
	if wk.sh.store == nil || len(a.decisions) == 0 {
		return wk.sink.Write(wk.ctx, a.id, a.vars)
	}
	if err := wk.claim(a.decisions); err != nil {
		if errors.Is(err, errDelivered) {
			wk.sh.log.Debug("decision already delivered by another member; not written again",
				"callId", a.id)
			return nil
		}
		return err
	}

	if err := wk.sink.Write(wk.ctx, a.id, a.vars); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(wk.ctx, storeTimeout)
	defer cancel()
	for _, id := range a.decisions {
		if err := wk.sh.store.Accept(ctx, a.id, id, acceptedTTL); err != nil {
			wk.sh.log.Warn("delivery not recorded; another member may write the decision again",
				"callId", a.id, "decisionId", id, "error", err)
		}
	}
	return nil
}

// claim claims every decision of an attempt. It returns errDelivered when
// all were delivered already, errClaimHeld when another member holds one.
func (wk *worker) claim(ids []string) error {
	ctx, cancel := context.WithTimeout(wk.ctx, storeTimeout)
	defer cancel()

	delivered := 0
	for _, id := range ids {
		c, err := wk.sh.store.Claim(ctx, id, wk.sh.member, claimTTL)
		if err != nil {
			return fmt.Errorf("claim decision: %w: %w", errStore, err)
		}
		switch c {
		case ClaimHeld:
			return errClaimHeld
		case ClaimDelivered:
			delivered++
		}
	}
	if delivered == len(ids) {
		return errDelivered
	}
	return nil
}

// verdict is the sink's verdict on a failed write, except for a claim
// held elsewhere, which is asked for again until the write deadline.
func (w *writer) verdict(err error, attempt int) Verdict {
	switch {
	case errors.Is(err, errClaimHeld):
		return Verdict{Retry: true, After: claimRetry, Reason: "claimed by another member"}
	case errors.Is(err, errStore):
		return Verdict{Retry: true, After: claimRetry, Reason: "store unavailable"}
	}
	return w.sink.Retry(err, attempt)
}
