package stream

import (
	"context"
	"time"
)

// healthy reports whether a session counts as a success that resets the
// backoff: it connected and either delivered a frame or stayed up for
// MaxBackoff. A server that accepts and drops at once, or a handshake that
// keeps failing, is retried with growing delays; a stream that worked and
// then dropped is dialled again within MinBackoff.
func (c *Client) healthy(s session) bool {
	return s.connected && (s.frames > 0 || s.lasted >= c.opts.MaxBackoff)
}

// backoff returns the delay after the given number of failures in a row:
// MinBackoff doubled for each failure after the first, capped at
// MaxBackoff, with equal jitter. Half the delay is fixed, so even the
// first retry waits at least MinBackoff/2; the other half is random, so
// many clients cut off together do not return together.
func (c *Client) backoff(failures int) time.Duration {
	d := c.opts.MinBackoff
	for i := 1; i < failures && d < c.opts.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, c.opts.MaxBackoff)

	half := d / 2
	return half + time.Duration(c.jitter(int64(d-half)+1))
}

// sleep waits d and reports true, or reports false as soon as ctx ends.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()

	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
