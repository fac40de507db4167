package correlation

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/33god/bloodbank-go/bus/envelope"
	"github.com/33god/bloodbank-go/internal/jsonnumber"
)

// DefaultKeyPrefix is the key prefix of the deployed Python tracker. A store
// with another prefix shares no graph with the Python services.
const DefaultKeyPrefix = "bloodbank:correlation:"

// DefaultTTL is how long a link is kept: the Python default
// CORRELATION_TTL_DAYS=30.
const DefaultTTL = 30 * 24 * time.Hour

// DefaultWriteTimeout bounds one Record call, as the Python publisher bounds
// add_correlation: correlation must not hold up a publish.
const DefaultWriteTimeout = time.Second

// DefaultMaxDepth bounds Ancestors, Descendants and Debug when the caller
// passes maxDepth <= 0; it is the Python tracker's max_depth.
const DefaultMaxDepth = 100

// TTLFromDays converts CORRELATION_TTL_DAYS to a TTL.
func TTLFromDays(days int) time.Duration { return time.Duration(days) * 24 * time.Hour }

// RedisConfig configures a RedisStore. The zero value is the Python layout
// with the Python defaults.
type RedisConfig struct {
	// KeyPrefix comes before "forward:{id}" and "reverse:{id}". Optional,
	// default DefaultKeyPrefix. Change it only to isolate tests or tenants.
	KeyPrefix string
	// TTL is set on every key a Record writes, so a reverse set lives as
	// long as its parent keeps getting children. Optional, default
	// DefaultTTL; whole seconds, at least one (Redis EXPIRE counts seconds).
	TTL time.Duration
	// WriteTimeout bounds a Record call, connecting included. Optional,
	// default DefaultWriteTimeout. It holds on a stalled connection only if
	// the client honours context deadlines (ContextTimeoutEnabled, set by
	// NewUniversalClient).
	WriteTimeout time.Duration
	// MaxDepth is used by Ancestors, Descendants and Debug when they get
	// maxDepth <= 0. Optional, default DefaultMaxDepth.
	MaxDepth int
	// Now stamps created_at on links recorded without CreatedAt. Optional,
	// default time.Now; tests set it.
	Now func() time.Time
}

func (c *RedisConfig) setDefaults() {
	c.KeyPrefix = cmp.Or(c.KeyPrefix, DefaultKeyPrefix)
	c.TTL = cmp.Or(c.TTL, DefaultTTL)
	c.WriteTimeout = cmp.Or(c.WriteTimeout, DefaultWriteTimeout)
	c.MaxDepth = cmp.Or(c.MaxDepth, DefaultMaxDepth)
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Validate reports every problem at once; zero values stand for defaults.
func (c RedisConfig) Validate() error {
	var errs []error
	if c.TTL < 0 || (c.TTL > 0 && (c.TTL < time.Second || c.TTL%time.Second != 0)) {
		errs = append(errs, fmt.Errorf("TTL %s must be a whole number of seconds, at least 1s", c.TTL))
	}
	errs = notNegative(errs, "WriteTimeout", c.WriteTimeout)
	errs = notNegative(errs, "MaxDepth", c.MaxDepth)
	return invalidConfig("RedisConfig", errs)
}

// RedisStore is the Store on Redis in the Python tracker's layout (see the
// package documentation), so Go and Python services share one graph.
type RedisStore struct {
	client   redis.UniversalClient
	ap       *redis.AutoPipeliner // nil when the client cannot pipeline
	cfg      RedisConfig
	fwd, rev string // KeyPrefix + "forward:", KeyPrefix + "reverse:"
}

var _ Store = (*RedisStore)(nil)

// NewRedisStore returns a store on client (standalone, Sentinel or
// Cluster). It does not connect, so a service starts while its optional
// Redis is down. The caller keeps ownership of client and closes it.
func NewRedisStore(client redis.UniversalClient, cfg RedisConfig) (*RedisStore, error) {
	if client == nil {
		return nil, errors.New("cannot create correlation store: redis client is nil")
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("cannot create correlation store: %w", err)
	}
	cfg.setDefaults()
	s := &RedisStore{client: client, cfg: cfg, fwd: cfg.KeyPrefix + "forward:", rev: cfg.KeyPrefix + "reverse:"}
	if ap, err := client.AsyncAutoPipeline(); err == nil {
		s.ap = ap
	}
	return s, nil
}

// ForwardKey is the key holding child's link, a JSON string.
func (s *RedisStore) ForwardKey(child uuid.UUID) string { return s.fwd + child.String() }

// ReverseKey is the key of the set of the children of parent.
func (s *RedisStore) ReverseKey(parent uuid.UUID) string { return s.rev + parent.String() }

// Record writes every link in one pipeline, bounded by WriteTimeout: per
// link a SET with the TTL, per distinct parent one SADD and one EXPIRE, and
// per link with a Cost one script on its root's cost hash. A Cost without
// its Root costs a Lookup per link up to the root first (RootOf).
func (s *RedisStore) Record(ctx context.Context, links ...Link) error {
	if len(links) == 0 {
		return nil
	}
	// The Recorder's deadline is sooner already; a timer per call is not free.
	if d, ok := ctx.Deadline(); !ok || time.Until(d) > s.cfg.WriteTimeout {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.cfg.WriteTimeout)
		defer cancel()
	}
	roots, err := s.costRoots(ctx, links)
	if err != nil {
		return fmt.Errorf("cannot record correlation links: %w", err)
	}
	// Nothing is sent before Exec, so an invalid link writes nothing.
	pipe := s.client.Pipeline()
	now := s.cfg.Now()
	var order []uuid.UUID
	members := make(map[uuid.UUID][]any, len(links))
	for _, l := range links {
		v, err := encodeForward(l, now)
		if err != nil {
			return fmt.Errorf("cannot record correlation links: %w", err)
		}
		child := l.Child.String()
		pipe.Set(ctx, s.fwd+child, v, s.cfg.TTL)
		if l.Cost != nil {
			s.queueCost(ctx, pipe, l, cmp.Or(l.Cost.Root, roots[l.Child]))
		}
		for _, p := range l.Parents {
			if _, ok := members[p]; !ok {
				order = append(order, p)
			}
			members[p] = append(members[p], child)
		}
	}
	for _, p := range order {
		key := s.ReverseKey(p)
		pipe.SAdd(ctx, key, members[p]...)
		pipe.Expire(ctx, key, s.cfg.TTL)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("cannot record %d correlation link(s): %w", len(links), err)
	}
	return nil
}

// forwardJSON is the forward value, its keys in the Python tracker's order
// so values from both languages compare byte for byte. CreatedAt is any:
// other writers may store something other than a string.
type forwardJSON struct {
	ParentEventIDs []string       `json:"parent_event_ids"`
	CreatedAt      any            `json:"created_at"`
	Metadata       map[string]any `json:"metadata"`
}

var (
	// forwardEncoding writes as orjson does (<, > and & as they are),
	// with metadata keys sorted, and json.Number as the number it spells.
	forwardEncoding = json.JoinOptions(
		json.Deterministic(true),
		jsontext.AllowInvalidUTF8(true),
		jsonnumber.Write,
	)
	// forwardDecoding reads numbers in metadata as json.Number, so that
	// integers written by Python survive exactly, and lets a repeated key's
	// last value win, as Python's json.loads does.
	forwardDecoding = json.JoinOptions(
		jsontext.AllowDuplicateNames(true),
		jsonnumber.Read,
	)
)

// encodeForward writes the forward value as the Python tracker does;
// Python readers only json-decode it.
func encodeForward(l Link, now time.Time) ([]byte, error) {
	if err := l.checkIDs(); err != nil {
		return nil, err
	}
	f := forwardJSON{ParentEventIDs: make([]string, len(l.Parents)), CreatedAt: envelope.FormatTimestamp(l.CreatedAt), Metadata: l.Metadata}
	for i, p := range l.Parents {
		f.ParentEventIDs[i] = p.String()
	}
	if l.CreatedAt.IsZero() {
		f.CreatedAt = envelope.FormatTimestamp(now)
	}
	if f.Metadata == nil {
		f.Metadata = map[string]any{} // Python: metadata or {}
	}
	b, err := json.Marshal(f, forwardEncoding)
	if err != nil {
		return nil, fmt.Errorf("%w: metadata of child %s is not JSON: %v", ErrInvalidLink, l.Child, err)
	}
	return b, nil
}

// decodeForward reads a forward value. A missing or unreadable created_at
// leaves CreatedAt zero: nothing depends on it, so it must not hide the parents.
func decodeForward(key string, child uuid.UUID, raw string) (Link, error) {
	b := []byte(raw)
	if t := bytes.TrimLeft(b, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return Link{}, &MalformedError{Key: key, Err: errors.New("value is not a JSON object")}
	}
	var f forwardJSON
	if err := json.Unmarshal(b, &f, forwardDecoding); err != nil {
		return Link{}, &MalformedError{Key: key, Err: err}
	}
	if f.ParentEventIDs == nil {
		return Link{}, &MalformedError{Key: key, Err: errors.New(`"parent_event_ids" is missing or null`)}
	}
	l := Link{Child: child, Parents: make([]uuid.UUID, len(f.ParentEventIDs)), Metadata: f.Metadata}
	for i, s := range f.ParentEventIDs {
		id, err := uuid.Parse(s)
		if err != nil {
			return Link{}, &MalformedError{Key: key, Err: fmt.Errorf("parent_event_ids[%d] %q is not a UUID", i, s)}
		}
		l.Parents[i] = id
	}
	if s, ok := f.CreatedAt.(string); ok {
		if t, err := envelope.ParseTimestamp(s); err == nil {
			l.CreatedAt = t
		}
	}
	return l, nil
}

// Lookup returns the link recorded for child.
func (s *RedisStore) Lookup(ctx context.Context, child uuid.UUID) (Link, error) {
	key := s.ForwardKey(child)
	raw, err := s.client.Get(ctx, key).Result()
	if errors.Is(err, redis.Nil) {
		return Link{}, fmt.Errorf("cannot look up %s: %w", child, ErrNotFound)
	}
	if err != nil {
		return Link{}, fmt.Errorf("cannot look up correlation of %s: %w", child, err)
	}
	return decodeForward(key, child, raw)
}

// Parents returns the parents of id in recorded order.
func (s *RedisStore) Parents(ctx context.Context, id uuid.UUID) ([]uuid.UUID, error) {
	l, err := s.recorded(ctx, id)
	return l.Parents, err
}

// Metadata returns the metadata of id's link; one stored as null reads as
// nil, as Python's .get("metadata") gives None.
func (s *RedisStore) Metadata(ctx context.Context, id uuid.UUID) (map[string]any, error) {
	l, err := s.recorded(ctx, id)
	return l.Metadata, err
}

// recorded is Lookup with a missing link read as an empty one.
func (s *RedisStore) recorded(ctx context.Context, id uuid.UUID) (Link, error) {
	l, err := s.Lookup(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return Link{Parents: []uuid.UUID{}}, nil
	}
	return l, err
}

// Children returns the children of id sorted by id.
func (s *RedisStore) Children(ctx context.Context, id uuid.UUID) ([]uuid.UUID, error) {
	w, err := s.walk(ctx, "children", id, 1, false, true)
	return w.children, err
}

// Ancestors returns the ancestors of id, nearest first.
func (s *RedisStore) Ancestors(ctx context.Context, id uuid.UUID, maxDepth int) ([]uuid.UUID, error) {
	w, err := s.walk(ctx, "ancestors", id, maxDepth, true, false)
	return w.ancestors, err
}

// Descendants returns the descendants of id, nearest first.
func (s *RedisStore) Descendants(ctx context.Context, id uuid.UUID, maxDepth int) ([]uuid.UUID, error) {
	w, err := s.walk(ctx, "descendants", id, maxDepth, false, true)
	return w.descendants, err
}

// Debug walks both directions in the same round trips; the first also
// gives the parents, children and metadata.
func (s *RedisStore) Debug(ctx context.Context, id uuid.UUID, maxDepth int) (Dump, error) {
	w, err := s.walk(ctx, "correlation dump", id, maxDepth, true, true)
	if err != nil {
		return Dump{}, err
	}
	d := Dump{EventID: id, Parents: []uuid.UUID{}, Children: w.children, Ancestors: w.ancestors, Descendants: w.descendants}
	if w.self != nil {
		d.Parents = w.self.Parents
		d.Metadata = w.self.Metadata
	}
	return d, nil
}

type walkResult struct {
	self                             *Link // the link of the start, if recorded
	children, ancestors, descendants []uuid.UUID
}

// walk is a breadth-first search from id, upwards (forward keys), downwards
// (reverse sets) or both, fetching each level's frontiers in one pipeline.
func (s *RedisStore) walk(ctx context.Context, what string, id uuid.UUID, maxDepth int, up, down bool) (res walkResult, err error) {
	defer func() {
		if err != nil {
			res, err = walkResult{}, fmt.Errorf("cannot read %s of %s: %w", what, id, err)
		}
	}()
	if maxDepth <= 0 {
		maxDepth = s.cfg.MaxDepth
	}
	res = walkResult{children: []uuid.UUID{}, ancestors: []uuid.UUID{}, descendants: []uuid.UUID{}}
	var upFront, downFront []uuid.UUID
	seenUp, seenDown := map[uuid.UUID]bool{id: true}, map[uuid.UUID]bool{id: true}
	if up {
		upFront = []uuid.UUID{id}
	}
	if down {
		downFront = []uuid.UUID{id}
	}
	for depth := 0; depth < maxDepth && len(upFront)+len(downFront) > 0; depth++ {
		pipe := s.client.Pipeline()
		gets := make([]*redis.StringCmd, len(upFront))
		for i, n := range upFront {
			gets[i] = pipe.Get(ctx, s.ForwardKey(n))
		}
		sets := make([]*redis.StringSliceCmd, len(downFront))
		for i, n := range downFront {
			sets[i] = pipe.SMembers(ctx, s.ReverseKey(n))
		}
		// Exec's error is the first failed command's; a missing forward key
		// fails its GET with redis.Nil, so judge each command below.
		_, _ = pipe.Exec(ctx)

		var nextUp, nextDown []uuid.UUID
		for i, n := range upFront {
			raw, err := gets[i].Result()
			if errors.Is(err, redis.Nil) {
				continue
			}
			if err != nil {
				return res, err
			}
			l, err := decodeForward(s.ForwardKey(n), n, raw)
			if err != nil {
				return res, err
			}
			if depth == 0 {
				res.self = &l
			}
			nextUp = unseen(seenUp, nextUp, l.Parents)
		}
		for i, n := range downFront {
			members, err := sets[i].Result()
			if err != nil {
				return res, err
			}
			ids, err := parseMembers(s.ReverseKey(n), members)
			if err != nil {
				return res, err
			}
			if depth == 0 {
				res.children = slices.Clone(ids)
				sortIDs(res.children)
			}
			nextDown = unseen(seenDown, nextDown, ids)
		}
		sortIDs(nextUp)
		sortIDs(nextDown)
		res.ancestors = append(res.ancestors, nextUp...)
		res.descendants = append(res.descendants, nextDown...)
		upFront, downFront = nextUp, nextDown
	}
	return res, nil
}

// unseen appends to next the ids not yet in seen, and marks them seen.
func unseen(seen map[uuid.UUID]bool, next, ids []uuid.UUID) []uuid.UUID {
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			next = append(next, id)
		}
	}
	return next
}

func parseMembers(key string, members []string) ([]uuid.UUID, error) {
	ids := make([]uuid.UUID, len(members))
	for i, m := range members {
		id, err := uuid.Parse(m)
		if err != nil {
			return nil, &MalformedError{Key: key, Err: fmt.Errorf("member %q is not a UUID", m)}
		}
		ids[i] = id
	}
	return ids, nil
}

// sortIDs orders ids as their canonical strings sort: comparing the 16
// bytes gives the same order without formatting them.
func sortIDs(ids []uuid.UUID) {
	slices.SortFunc(ids, func(a, b uuid.UUID) int { return bytes.Compare(a[:], b[:]) })
}

// LookupMany returns the links recorded for ids, fetched in one pipeline of
// single-key GETs (so it works on Redis Cluster too). An id with no link is
// absent from the map; a malformed value fails the call.
func (s *RedisStore) LookupMany(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]Link, error) {
	out := make(map[uuid.UUID]Link, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	gets := make([]*redis.StringCmd, len(ids))
	if s.ap != nil {
		// The runaway guard looks up the parents of every header-less
		// delivery: through the auto-pipeliner, the lookups of concurrent
		// deliveries share round trips.
		waits := make([]redis.AutoFuture, len(ids))
		for i, id := range ids {
			gets[i] = redis.NewStringCmd(ctx, "get", s.ForwardKey(id))
			waits[i] = s.ap.Submit(ctx, gets[i])
		}
		for _, w := range waits {
			if err := w.WaitContext(ctx); err != nil && !errors.Is(err, redis.Nil) {
				return nil, fmt.Errorf("cannot look up correlation of %d event(s): %w", len(ids), err)
			}
		}
	} else {
		pipe := s.client.Pipeline()
		for i, id := range ids {
			gets[i] = pipe.Get(ctx, s.ForwardKey(id))
		}
		// A missing key fails its GET with redis.Nil: judge each command.
		_, _ = pipe.Exec(ctx)
	}
	for i, id := range ids {
		raw, err := gets[i].Result()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("cannot look up correlation of %d event(s): %w", len(ids), err)
		}
		l, err := decodeForward(s.ForwardKey(id), id, raw)
		if err != nil {
			return nil, err
		}
		out[id] = l
	}
	return out, nil
}
