package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/dtmfd/dtmfd/transport/emulator"
)

// platform is where a design finds the platform: the API base and the
// client credentials the token endpoint accepts.
type platform struct {
	base         string
	clientID     string
	clientSecret string
}

// streamURL is the voice stream's URL, derived from the API base as dtmfd
// derives it.
func (pf platform) streamURL() string {
	return "ws://" + strings.TrimPrefix(pf.base, "http://") + "/api/v2/voice/websocket"
}

// rig is one emulator on loopback with fresh credentials: the platform
// side of one measurement. Every measurement gets its own, so no queued
// frame, write record or idle connection carries over to the next.
type rig struct {
	platform
	emu *emulator.Emulator
}

func newRig() (*rig, error) {
	pf := platform{clientID: "bench-" + rand.Text(), clientSecret: rand.Text()}
	emu := emulator.New(emulator.Options{ClientID: pf.clientID, ClientSecret: pf.clientSecret})
	if err := emu.Start(); err != nil {
		return nil, fmt.Errorf("start emulator: %w", err)
	}
	pf.base = emu.URL()
	return &rig{platform: pf, emu: emu}, nil
}

// Close stops the emulator and drops its connections.
func (r *rig) Close() {
	r.emu.Close()
}

// queue puts events in the emulator's outbox, in order. Frames queued
// before a client connects wait for it, so a scenario can queue its whole
// load first and keep the queueing out of what it times.
func (r *rig) queue(events iter.Seq[emulator.Event]) int {
	n := 0
	for ev := range events {
		r.emu.Send(ev)
		n++
	}
	return n
}

// callID names call i. The number is the call's index into per-call
// slots, which callIndex recovers.
func callID(i int) string {
	return fmt.Sprintf("call-%07d", i)
}

func callIndex(id string) int {
	n, err := strconv.Atoi(strings.TrimPrefix(id, "call-"))
	if err != nil {
		return -1
	}
	return n
}

// keysFor is call i's full path through the example flow: 1, 2 or 3 at
// the main menu, A or B at the department menu, 1 to confirm. The paths
// vary so that a write sent to the wrong call shows.
func keysFor(i int) string {
	return string([]byte{"123"[i%3], "AB"[i%2], '1'})
}

// selectionFor is the ivr_selection value a completed path writes: the
// keys as a JSON array of strings.
func selectionFor(keys string) string {
	path := make([]string, len(keys))
	for i := range keys {
		path[i] = keys[i : i+1]
	}
	b, _ := json.Marshal(path)
	return string(b)
}

// events yields the keys at positions [from, to) of calls [first, last),
// the way many callers press them at once: calls go in windows of window
// calls; within a window every call presses its next key before any
// presses the one after.
func events(first, last, window, from, to int) iter.Seq[emulator.Event] {
	window = max(1, window)
	ts := time.Now().UnixMilli()
	return func(yield func(emulator.Event) bool) {
		for lo := first; lo < last; lo += window {
			hi := min(lo+window, last)
			for pos := from; pos < to; pos++ {
				for i := lo; i < hi; i++ {
					ev := emulator.Event{
						Type:      "dtmf",
						Digit:     keysFor(i)[pos : pos+1],
						CallID:    callID(i),
						Timestamp: ts + int64(pos),
					}
					if !yield(ev) {
						return
					}
				}
			}
		}
	}
}

// fetchToken gets an access token from the emulator with the client
// credentials grant, as a hand-written client would.
func fetchToken(ctx context.Context, pf platform) (string, error) {
	body, _ := json.Marshal(map[string]string{
		"grant_type":    "client_credentials",
		"client_id":     pf.clientID,
		"client_secret": pf.clientSecret,
	})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, pf.base+"/oauth/token",
		bytes.NewReader(body))
	if err != nil {
		return "", fmt.Errorf("fetch token: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")

	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("fetch token: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, resp.Body)
		return "", fmt.Errorf("fetch token: status %d", resp.StatusCode)
	}

	var reply struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&reply); err != nil {
		return "", fmt.Errorf("fetch token: %w", err)
	}
	if reply.AccessToken == "" {
		return "", errors.New("fetch token: empty token")
	}
	return reply.AccessToken, nil
}

// probe is what a scenario watches of a design: when the first frame
// arrived, how many keys and writes it has processed, and when each count
// reached its target.
type probe struct {
	epoch     time.Time
	first     atomic.Int64 // nanoseconds after epoch, plus one; 0 until a frame arrives
	keys      *counter
	writes    *counter
	failed    atomic.Int64 // writes given up on
	connected chan struct{}
	once      atomic.Bool
}

func newProbe(keys, writes int) *probe {
	return &probe{
		epoch:     time.Now(),
		keys:      newCounter(keys),
		writes:    newCounter(writes),
		connected: make(chan struct{}),
	}
}

// frame notes a frame received at t.
func (p *probe) frame(t time.Time) {
	if p.first.Load() == 0 {
		p.first.CompareAndSwap(0, int64(t.Sub(p.epoch))+1)
	}
}

// firstFrame is when the first frame arrived, or the zero time.
func (p *probe) firstFrame() time.Time {
	n := p.first.Load()
	if n == 0 {
		return time.Time{}
	}
	return p.epoch.Add(time.Duration(n - 1))
}

func (p *probe) up() {
	if p.once.CompareAndSwap(false, true) {
		close(p.connected)
	}
}

// counter counts up and closes done, noting the time, when it reaches its
// target.
type counter struct {
	n      atomic.Int64
	target int64
	done   chan struct{}
	at     atomic.Pointer[time.Time]
}

func newCounter(target int) *counter {
	return &counter{target: int64(target), done: make(chan struct{})}
}

func (c *counter) add() {
	if c.n.Add(1) == c.target {
		now := time.Now()
		c.at.Store(&now)
		close(c.done)
	}
}

// raise sets the count to n, for a count kept elsewhere and read from
// time to time, noting when it reaches the target. n never falls.
func (c *counter) raise(n int64) {
	if old := c.n.Swap(n); old < c.target && n >= c.target {
		now := time.Now()
		c.at.Store(&now)
		close(c.done)
	}
}

// reachedAt is when the target was reached, or the zero time.
func (c *counter) reachedAt() time.Time {
	if t := c.at.Load(); t != nil {
		return *t
	}
	return time.Time{}
}

// atLeast blocks until c has counted n or ctx ends. It polls, for counts
// whose target is only known later.
func (c *counter) atLeast(ctx context.Context, n int) error {
	t := time.NewTicker(2 * time.Millisecond)
	defer t.Stop()
	for c.n.Load() < int64(n) {
		select {
		case <-t.C:
		case <-ctx.Done():
			return fmt.Errorf("wait for %d (at %d): %w", n, c.n.Load(), ctx.Err())
		}
	}
	return nil
}

// wait blocks until c reaches its target or ctx ends.
func (c *counter) wait(ctx context.Context) error {
	select {
	case <-c.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("wait for %d (at %d): %w", c.target, c.n.Load(), ctx.Err())
	}
}

// waitUp blocks until the design's stream is connected.
func (p *probe) waitUp(ctx context.Context) error {
	select {
	case <-p.connected:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("wait for stream: %w", ctx.Err())
	}
}
