package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// tutorialDesign is reference design (a), the tutorial's architecture:
// the session map, and every write made inline by whichever goroutine
// decided. A completion's POST runs on the stream reader, so the reader
// reads nothing more until the platform answers.
var tutorialDesign = design{name: "tutorial", label: "(a) tutorial", start: startTutorial}

func startTutorial(ctx context.Context, pf platform, p *probe, o designOptions) (func(), error) {
	tok, err := fetchToken(ctx, pf)
	if err != nil {
		return nil, fmt.Errorf("start tutorial design: %w", err)
	}
	rest := newRESTClient(pf, tok)

	runCtx, cancel := context.WithCancel(ctx)
	sessions := newSessionMap(o.inputTimeout, func(id string, vars []restVariable) {
		if err := rest.post(runCtx, id, vars); err != nil {
			p.failed.Add(1)
			return
		}
		p.writes.add()
	}, p.keys.add)

	var wg sync.WaitGroup
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
