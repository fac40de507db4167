package middleware

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
)

// DefaultDescendantsKeyPrefix comes before every key RedisDescendantCounter
// writes: "bloodbank:runaway:descendants:{root event id}".
const DefaultDescendantsKeyPrefix = "bloodbank:runaway:descendants:"

// DefaultDescendantsTTL is how long a root's count lives after its last
// event: a chain quiet for a day starts over.
const DefaultDescendantsTTL = 24 * time.Hour

// RedisDescendantCounter is the DescendantCounter on a go-redis
// UniversalClient: per root an INCRBY and an EXPIRE of one key, all roots of
// a call in one pipeline without a transaction, so it works on Redis
// Cluster. The caller owns the client.
type RedisDescendantCounter struct {
	client redis.UniversalClient
	prefix string
	ttl    time.Duration
}

var _ DescendantCounter = (*RedisDescendantCounter)(nil)

// NewRedisDescendantCounter returns a counter whose keys start with prefix
// (DefaultDescendantsKeyPrefix when empty) and live ttl after their last
// increment (DefaultDescendantsTTL when 0).
func NewRedisDescendantCounter(client redis.UniversalClient, prefix string, ttl time.Duration) *RedisDescendantCounter {
	return &RedisDescendantCounter{client: client, prefix: cmp.Or(prefix, DefaultDescendantsKeyPrefix), ttl: cmp.Or(ttl, DefaultDescendantsTTL)}
}

// Key is the counter key of a root.
func (c *RedisDescendantCounter) Key(root uuid.UUID) string { return c.prefix + root.String() }

// AddDescendants adds each count to its root's key and returns the totals.
func (c *RedisDescendantCounter) AddDescendants(ctx context.Context, add map[uuid.UUID]int64) (map[uuid.UUID]int64, error) {
	cmds := make(map[uuid.UUID]*redis.IntCmd, len(add))
	_, err := c.client.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		for root, n := range add {
			cmds[root] = pipe.IncrBy(ctx, c.Key(root), n)
			pipe.Expire(ctx, c.Key(root), c.ttl)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("cannot count the descendants of %d root(s): %w", len(add), err)
	}
	out := make(map[uuid.UUID]int64, len(cmds))
	for root, cmd := range cmds {
		out[root] = cmd.Val()
	}
	return out, nil
}

// DefaultParkedKeyPrefix comes before the key that notes why the guard
// parked an event: "bloodbank:runaway:parked:{event id}", a string holding
// the reason, kept as long as a root's count. bb trace reads it.
const DefaultParkedKeyPrefix = "bloodbank:runaway:parked:"

// ParkNoter notes that the guard parked an event, so tools that walk the
// graph can mark it. RedisDescendantCounter is one.
type ParkNoter interface {
	NoteParked(ctx context.Context, eventID, reason string) error
}

var _ ParkNoter = (*RedisDescendantCounter)(nil)

// NoteParked is a SET of DefaultParkedKeyPrefix+eventID with the counter's TTL.
func (c *RedisDescendantCounter) NoteParked(ctx context.Context, eventID, reason string) error {
	if err := c.client.Set(ctx, DefaultParkedKeyPrefix+eventID, reason, c.ttl).Err(); err != nil {
		return fmt.Errorf("cannot note that %s was parked: %w", eventID, err)
	}
	return nil
}

// ParkedNotes reads the reasons noted for ids, in one pipeline of
// single-key GETs; ids never parked by a guard are absent.
func ParkedNotes(ctx context.Context, client redis.UniversalClient, ids []uuid.UUID) (map[uuid.UUID]string, error) {
	out := map[uuid.UUID]string{}
	if len(ids) == 0 {
		return out, nil
	}
	cmds := make([]*redis.StringCmd, len(ids))
	pipe := client.Pipeline()
	for i, id := range ids {
		cmds[i] = pipe.Get(ctx, DefaultParkedKeyPrefix+id.String())
	}
	_, _ = pipe.Exec(ctx)
	for i, id := range ids {
		v, err := cmds[i].Result()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("cannot read the parked notes of %d event(s): %w", len(ids), err)
		}
		out[id] = v
	}
	return out, nil
}
