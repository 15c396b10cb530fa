package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// poolWriters is the size of design (b)'s writer pool.
const poolWriters = 64

// poolDesign is reference design (b), the simplest correct hand-written
// service: the same session map, with decisions handed through a channel
// to a pool of writer goroutines, so the reader never waits on the
// platform unless the channel is full.
var poolDesign = design{name: "pool", label: "(b) mutex+pool", start: startPool}

type poolJob struct {
	callID string
	vars   []restVariable
}

func startPool(ctx context.Context, pf platform, p *probe, o designOptions) (func(), error) {
	tok, err := fetchToken(ctx, pf)
	if err != nil {
		return nil, fmt.Errorf("start pool design: %w", err)
	}
	rest := newRESTClient(pf, tok)

	runCtx, cancel := context.WithCancel(ctx)
	jobs := make(chan poolJob, 1024)
	sessions := newSessionMap(o.inputTimeout, func(id string, vars []restVariable) {
		select {
		case jobs <- poolJob{callID: id, vars: vars}:
		case <-runCtx.Done():
		}
	}, p.keys.add)

	var wg sync.WaitGroup
	for range poolWriters {
		wg.Go(func() {
			for {
				select {
				case j := <-jobs:
					if err := rest.post(runCtx, j.callID, j.vars); err != nil {
						p.failed.Add(1)
						continue
					}
					p.writes.add()
				case <-runCtx.Done():
					return
				}
			}
		})
	}
	wg.Go(func() {
		err := readStream(runCtx, pf, tok, p, sessions.digit)
		if err != nil && !errors.Is(err, context.Canceled) && runCtx.Err() == nil {
			p.failed.Add(1)
		}
	})
	return func() {
		cancel()
		wg.Wait()
		sessions.close()
	}, nil
}
