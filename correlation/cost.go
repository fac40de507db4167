package correlation

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
)

// Cost is what one event reported spending (the tokens_used and
// duration_ms of agent.thread.response and llm.response), to be added to the
// totals of the root of its chain when its link is recorded.
type Cost struct {
	// Root is the root event of the chain the cost is charged to. Optional:
	// uuid.Nil makes Record find it with RootOf from the link's parents.
	Root uuid.UUID
	// Agent is the event's source.app; totals are also kept per agent.
	// Optional: "" is an agent of its own, shown as unnamed.
	Agent string
	// TokensUsed and DurationMS are the numbers the event reported;
	// negative ones count as 0.
	TokensUsed, DurationMS int64
}

// CostTotals are the costs rolled up on one root.
type CostTotals struct {
	// Root is the root event the totals belong to.
	Root uuid.UUID `json:"root"`
	// TokensUsed, DurationMS and Events add up every event charged to the
	// root; Events counts the events that reported a cost.
	TokensUsed int64 `json:"tokens_used"`
	DurationMS int64 `json:"duration_ms"`
	Events     int64 `json:"events"`
	// ByAgent splits them by source.app. Never nil.
	ByAgent map[string]AgentCost `json:"by_agent"`
}

// AgentCost is the share of one agent (source.app) in a root's totals.
type AgentCost struct {
	TokensUsed int64 `json:"tokens_used"`
	DurationMS int64 `json:"duration_ms"`
	Events     int64 `json:"events"`
}

// LinkReader reads one link, as Store.Lookup does; RootOf needs no more.
type LinkReader interface {
	Lookup(ctx context.Context, child uuid.UUID) (Link, error)
}

// MetaRoot is the link metadata key holding the root of the link's child,
// where the writer knew it; RootOf stops its walk at a link that has it.
const MetaRoot = "root"

// RootOf returns the root event of the chain of event id, whose parents
// (its correlation_ids) are parents. hint is the root the event carries in
// its x-bb-root header, if any: a UUID there is the answer and nothing is
// read. An event without parents is its own root. Otherwise RootOf walks up
// from the first parent, one Lookup per link, and answers the first event
// that has no link (the Python tracker records none for a root) or whose
// link names its root under MetaRoot. A cycle or a chain deeper than
// DefaultMaxDepth ends the walk at the last event reached.
func RootOf(ctx context.Context, r LinkReader, id uuid.UUID, parents []uuid.UUID, hint string) (uuid.UUID, error) {
	if root, err := uuid.Parse(hint); err == nil && root != uuid.Nil {
		return root, nil
	}
	if len(parents) == 0 {
		return id, nil
	}
	cur := parents[0]
	seen := map[uuid.UUID]bool{id: true}
	for range DefaultMaxDepth {
		seen[cur] = true
		l, err := r.Lookup(ctx, cur)
		if errors.Is(err, ErrNotFound) {
			return cur, nil
		}
		if err != nil {
			return uuid.Nil, fmt.Errorf("cannot find the root of %s: %w", id, err)
		}
		if s, ok := l.Metadata[MetaRoot].(string); ok {
			if root, err := uuid.Parse(s); err == nil && root != uuid.Nil {
				return root, nil
			}
		}
		if len(l.Parents) == 0 || seen[l.Parents[0]] {
			return cur, nil
		}
		cur = l.Parents[0]
	}
	return cur, nil
}

// CostKey is the hash holding the cost totals of root, beside the links
// under the same prefix. One key per root keeps every write and read a
// single-key command, so it works on Redis Cluster.
func (s *RedisStore) CostKey(root uuid.UUID) string { return s.cfg.KeyPrefix + "cost:" + root.String() }

// Fields of a cost hash: the totals under the measure names, an agent's
// share under "{measure}:{agent}", and a "seen:{event id}" marker per event
// counted, so recording a link again does not count its cost twice.
const (
	fieldTokens   = "tokens_used"
	fieldDuration = "duration_ms"
	fieldEvents   = "events"
	fieldSeen     = "seen"
)

// addCost counts an event's cost once per event id, however often its link
// is recorded, and keeps the hash as long as the links. One key, so Cluster
// runs it on the node of the key. ARGV: event id, agent, tokens, duration
// in ms, TTL in seconds.
const addCost = `
if redis.call('HSETNX', KEYS[1], 'seen:' .. ARGV[1], 1) == 1 then
  redis.call('HINCRBY', KEYS[1], 'tokens_used', ARGV[3])
  redis.call('HINCRBY', KEYS[1], 'duration_ms', ARGV[4])
  redis.call('HINCRBY', KEYS[1], 'events', 1)
  redis.call('HINCRBY', KEYS[1], 'tokens_used:' .. ARGV[2], ARGV[3])
  redis.call('HINCRBY', KEYS[1], 'duration_ms:' .. ARGV[2], ARGV[4])
  redis.call('HINCRBY', KEYS[1], 'events:' .. ARGV[2], 1)
end
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 0`

// queueCost adds to pipe the command charging l's cost to root.
func (s *RedisStore) queueCost(ctx context.Context, pipe redis.Pipeliner, l Link, root uuid.UUID) {
	c := l.Cost
	pipe.Eval(ctx, addCost, []string{s.CostKey(root)},
		l.Child.String(), c.Agent, max(c.TokensUsed, 0), max(c.DurationMS, 0), int64(s.cfg.TTL.Seconds()))
}

// costRoots finds the root of each link with a Cost whose Root is unset.
// A parent recorded in the same batch counts as recorded, and siblings
// (responses to one prompt) share one walk.
func (s *RedisStore) costRoots(ctx context.Context, links []Link) (map[uuid.UUID]uuid.UUID, error) {
	var batch batchReader
	roots := map[uuid.UUID]uuid.UUID{}
	byParent := map[uuid.UUID]uuid.UUID{}
	for _, l := range links {
		if l.Cost == nil || l.Cost.Root != uuid.Nil {
			continue
		}
		if len(l.Parents) > 0 {
			if root, ok := byParent[l.Parents[0]]; ok {
				roots[l.Child] = root
				continue
			}
		}
		if batch.links == nil {
			batch = batchReader{store: s, links: make(map[uuid.UUID]Link, len(links))}
			for _, b := range links {
				batch.links[b.Child] = b
			}
		}
		root, err := RootOf(ctx, batch, l.Child, l.Parents, "")
		if err != nil {
			return nil, err
		}
		roots[l.Child] = root
		if len(l.Parents) > 0 {
			byParent[l.Parents[0]] = root
		}
	}
	return roots, nil
}

type batchReader struct {
	store *RedisStore
	links map[uuid.UUID]Link
}

func (b batchReader) Lookup(ctx context.Context, child uuid.UUID) (Link, error) {
	if l, ok := b.links[child]; ok {
		return l, nil
	}
	return b.store.Lookup(ctx, child)
}

// RootTokens returns the tokens charged to root so far: one HGET, for a
// budget checked on every message.
func (s *RedisStore) RootTokens(ctx context.Context, root uuid.UUID) (int64, error) {
	n, err := s.client.HGet(ctx, s.CostKey(root), fieldTokens).Int64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("cannot read the tokens spent under root %s: %w", root, err)
	}
	return n, nil
}

// Cost returns the totals charged to root, zero when nothing was: one
// HGETALL.
func (s *RedisStore) Cost(ctx context.Context, root uuid.UUID) (CostTotals, error) {
	key := s.CostKey(root)
	fields, err := s.client.HGetAll(ctx, key).Result()
	if err != nil {
		return CostTotals{}, fmt.Errorf("cannot read the cost of root %s: %w", root, err)
	}
	t := CostTotals{Root: root, ByAgent: map[string]AgentCost{}}
	for f, v := range fields {
		measure, agent, perAgent := strings.Cut(f, ":")
		if measure == fieldSeen {
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return CostTotals{}, &MalformedError{Key: key, Err: fmt.Errorf("field %q holds %q, not an integer", f, v)}
		}
		var total *int64
		a := t.ByAgent[agent]
		switch {
		case measure == fieldTokens && perAgent:
			total = &a.TokensUsed
		case measure == fieldDuration && perAgent:
			total = &a.DurationMS
		case measure == fieldEvents && perAgent:
			total = &a.Events
		case measure == fieldTokens:
			total = &t.TokensUsed
		case measure == fieldDuration:
			total = &t.DurationMS
		case measure == fieldEvents:
			total = &t.Events
		default:
			continue // a field a newer writer added
		}
		*total = n
		if perAgent {
			t.ByAgent[agent] = a
		}
	}
	return t, nil
}

// EventCost returns the totals of the root of id's chain: the root found by
// RootOf from id's recorded link (id itself when it has none), then Cost.
func (s *RedisStore) EventCost(ctx context.Context, id uuid.UUID) (CostTotals, error) {
	l, err := s.Lookup(ctx, id)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return CostTotals{}, err
	}
	hint, _ := l.Metadata[MetaRoot].(string)
	root, err := RootOf(ctx, s, id, l.Parents, hint)
	if err != nil {
		return CostTotals{}, err
	}
	return s.Cost(ctx, root)
}
