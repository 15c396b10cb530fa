// Package store keeps the state of dtmfd's calls in Redis, where every
// member of a dtmfd cluster reads and writes it.
package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/dtmfd/dtmfd/actors"
)

// Redis is an actors.Store on a Redis server. Every operation that must
// be atomic is one Lua script, so the store needs no locks of its own.
type Redis struct {
	client *redis.Client
	prefix string
}

// Options configures a Redis store.
type Options struct {
	// URL is redis://[:password@]host:port/db (or rediss:// for TLS).
	URL string
	// Prefix starts every key, so clusters can share a server ("dtmfd").
	Prefix string
}

// Open connects to the server at opts.URL and checks that it answers.
func Open(ctx context.Context, opts Options) (*Redis, error) {
	ro, err := redis.ParseURL(opts.URL)
	if err != nil {
		return nil, errors.New("parse store URL: want redis://host:port/db")
	}
	if opts.Prefix == "" {
		opts.Prefix = "dtmfd"
	}
	r := &Redis{client: redis.NewClient(ro), prefix: opts.Prefix + ":"}
	if err := r.client.Ping(ctx).Err(); err != nil {
		r.client.Close()
		return nil, fmt.Errorf("connect store %s: %w", ro.Addr, err)
	}
	return r, nil
}

// Close closes the connections.
func (r *Redis) Close() error { return r.client.Close() }

func (r *Redis) callKey(id string) string     { return r.prefix + "call:" + id }
func (r *Redis) decisionKey(id string) string { return r.prefix + "decision:" + id }
func (r *Redis) wakeKey() string              { return r.prefix + "wake" }

// Load returns a call's saved state and version.
func (r *Redis) Load(ctx context.Context, callID string) ([]byte, int64, error) {
	vals, err := r.client.HMGet(ctx, r.callKey(callID), "v", "s").Result()
	if err != nil {
		return nil, 0, fmt.Errorf("load call: %w", err)
	}
	if vals[0] == nil || vals[1] == nil {
		return nil, 0, nil
	}
	v, err := strconv.ParseInt(vals[0].(string), 10, 64)
	if err != nil {
		return nil, 0, fmt.Errorf("load call: bad version: %w", err)
	}
	return []byte(vals[1].(string)), v, nil
}

// saveScript sets the state if the stored version is one below the new
// one, and keeps the wake set in step.
var saveScript = redis.NewScript(`
local cur = tonumber(redis.call('HGET', KEYS[1], 'v') or '0')
if cur + 1 ~= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'v', ARGV[1], 's', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
if ARGV[4] == '0' then
  redis.call('ZREM', KEYS[2], ARGV[5])
else
  redis.call('ZADD', KEYS[2], ARGV[4], ARGV[5])
end
return 1
`)

// Save stores a call's state if version follows the stored one.
func (r *Redis) Save(ctx context.Context, callID string, version int64, state []byte,
	wake time.Time, ttl time.Duration) (bool, error) {
	var at int64
	if !wake.IsZero() {
		at = wake.UnixMilli()
	}
	n, err := saveScript.Run(ctx, r.client, []string{r.callKey(callID), r.wakeKey()},
		version, state, ttl.Milliseconds(), at, callID).Int()
	if err != nil {
		return false, fmt.Errorf("save call: %w", err)
	}
	return n == 1, nil
}

// overdueScript lists up to ARGV[2] calls in the wake set due by
// ARGV[1], longest overdue first. A call whose state expired has no timer
// left: it is dropped from the set instead, and the next due call takes
// its place, so expired calls never crowd out live ones. Call keys are
// ARGV[3] followed by the call's id.
var overdueScript = redis.NewScript(`
local limit = tonumber(ARGV[2])
local out = {}
while #out < limit do
  local want = limit - #out
  local ids = redis.call('ZRANGE', KEYS[1], 1, ARGV[1], 'BYSCORE', 'LIMIT', #out, want)
  local gone = 0
  for _, id in ipairs(ids) do
    if redis.call('EXISTS', ARGV[3] .. id) == 1 then
      out[#out + 1] = id
    else
      redis.call('ZREM', KEYS[1], id)
      gone = gone + 1
    end
  end
  if gone == 0 or #ids < want then break end
end
return out
`)

// Overdue returns up to limit calls whose timer was due before t, and
// forgets the timers of calls whose state expired.
func (r *Redis) Overdue(ctx context.Context, t time.Time, limit int) ([]string, error) {
	if limit <= 0 {
		return nil, nil
	}
	ids, err := overdueScript.Run(ctx, r.client, []string{r.wakeKey()},
		t.UnixMilli(), limit, r.callKey("")).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("read overdue calls: %w", err)
	}
	return ids, nil
}

// claimScript gives the claim to its owner: free, already theirs, held
// by another, or delivered.
var claimScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if cur == 'accepted' then return 2 end
if cur and cur ~= ARGV[1] then return 1 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 0
`)

// Claim makes owner the member that delivers a decision.
func (r *Redis) Claim(ctx context.Context, decisionID, owner string, ttl time.Duration) (actors.Claim, error) {
	n, err := claimScript.Run(ctx, r.client, []string{r.decisionKey(decisionID)}, owner, ttl.Milliseconds()).Int()
	if err != nil {
		return actors.ClaimHeld, fmt.Errorf("claim decision: %w", err)
	}
	return actors.Claim(n), nil
}

// Accept records a decision as delivered, and takes its call off the
// timer index: nothing is left for another member to wake it for.
func (r *Redis) Accept(ctx context.Context, callID, decisionID string, ttl time.Duration) error {
	_, err := r.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, r.decisionKey(decisionID), "accepted", ttl)
		p.ZRem(ctx, r.wakeKey(), callID)
		return nil
	})
	if err != nil {
		return fmt.Errorf("accept decision: %w", err)
	}
	return nil
}
