package correlation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// Link records that Child was caused by Parents: one edge set of the graph.
type Link struct {
	// Child is the event that was caused. Required.
	Child uuid.UUID
	// Parents are the events that caused Child, usually its envelope's
	// correlation_ids. Required: at least one, none of them uuid.Nil (the
	// Python publisher records nothing for an event without parents).
	Parents []uuid.UUID
	// Metadata is stored with the link and returned by Metadata and Debug.
	// Optional; it must encode to a JSON object. A nil map is stored as {},
	// as the Python tracker does.
	Metadata map[string]any
	// CreatedAt is when the link was made. Optional: zero means the time of
	// the Record call.
	CreatedAt time.Time
	// Cost is what Child reported spending, added once per child to the
	// totals of its chain's root (see RedisStore.CostKey). Optional; it is
	// not part of the stored link, and Lookup leaves it nil.
	Cost *Cost
}

// Validate reports whether Record would accept the link, so a batching
// caller can refuse a bad link alone. The error wraps ErrInvalidLink.
func (l Link) Validate() error {
	if err := l.checkIDs(); err != nil {
		return err
	}
	if len(l.Metadata) > 0 {
		if _, err := json.Marshal(l.Metadata); err != nil {
			return fmt.Errorf("%w: metadata of child %s is not JSON: %v", ErrInvalidLink, l.Child, err)
		}
	}
	return nil
}

func (l Link) checkIDs() error {
	if l.Child == uuid.Nil {
		return fmt.Errorf("%w: child event id is the nil UUID", ErrInvalidLink)
	}
	if len(l.Parents) == 0 {
		return fmt.Errorf("%w: child %s has no parent event ids", ErrInvalidLink, l.Child)
	}
	for _, p := range l.Parents {
		if p == uuid.Nil {
			return fmt.Errorf("%w: child %s has the nil UUID as a parent", ErrInvalidLink, l.Child)
		}
	}
	return nil
}

// Writer records links: all the middleware needs, so a Store, a Recorder
// or a test fake fits.
type Writer interface {
	// Record stores every link in one round trip. Either all links are
	// valid and written, or the error wraps ErrInvalidLink and nothing is
	// written; a server failure may leave some written (recording again
	// repairs them). Recording a child again replaces its parents and
	// metadata; it stays among its former parents' children until their
	// sets expire, as in Python.
	Record(ctx context.Context, links ...Link) error
}

// Store is the correlation graph, read in the order the package
// documentation gives under "Order of results". An event with nothing
// recorded is not an error: its lists are empty and its metadata is nil.
type Store interface {
	Writer
	// Lookup returns the link recorded for child, or an error wrapping
	// ErrNotFound.
	Lookup(ctx context.Context, child uuid.UUID) (Link, error)
	// Parents returns the direct causes of id.
	Parents(ctx context.Context, id uuid.UUID) ([]uuid.UUID, error)
	// Children returns the events id directly caused.
	Children(ctx context.Context, id uuid.UUID) ([]uuid.UUID, error)
	// Ancestors returns the causes of id up to maxDepth links away
	// (1: the parents; <= 0: the store's default, 100).
	Ancestors(ctx context.Context, id uuid.UUID, maxDepth int) ([]uuid.UUID, error)
	// Descendants returns what id caused, up to maxDepth links away.
	Descendants(ctx context.Context, id uuid.UUID, maxDepth int) ([]uuid.UUID, error)
	// Metadata returns the metadata recorded with id's own link to its
	// parents: nil when no link was recorded, an empty map when the link
	// carried none.
	Metadata(ctx context.Context, id uuid.UUID) (map[string]any, error)
	// Debug returns everything known about id in one value.
	Debug(ctx context.Context, id uuid.UUID, maxDepth int) (Dump, error)
}

// Dump is the debug view of one event, the JSON object the Python tracker's
// debug_dump returns; Metadata is as Store.Metadata returns it.
type Dump struct {
	EventID     uuid.UUID      `json:"event_id"`
	Parents     []uuid.UUID    `json:"parents"`
	Children    []uuid.UUID    `json:"children"`
	Ancestors   []uuid.UUID    `json:"ancestors"`
	Descendants []uuid.UUID    `json:"descendants"`
	Metadata    map[string]any `json:"metadata"`
	// Cost is the totals of the event's root, where the caller added them
	// (RedisStore.EventCost); Debug leaves it nil, and nil is not written,
	// so the JSON stays Python's unless a caller asks for more.
	Cost *CostTotals `json:"cost,omitempty"`
}

// MarshalJSON writes empty lists as [] rather than null, as Python does.
func (d Dump) MarshalJSON() ([]byte, error) {
	type plain Dump
	p := plain(d)
	for _, s := range []*[]uuid.UUID{&p.Parents, &p.Children, &p.Ancestors, &p.Descendants} {
		if *s == nil {
			*s = []uuid.UUID{}
		}
	}
	return json.Marshal(p)
}

// ErrInvalidLink is wrapped by Record and Link.Validate for a link that
// cannot be stored: no child, no parents, or metadata that is not JSON.
var ErrInvalidLink = errors.New("invalid correlation link")

// ErrNotFound is wrapped by Lookup when the event has no link (never
// recorded, or expired).
var ErrNotFound = errors.New("no correlation link recorded")

// MalformedError reports a stored value not in the wire contract's layout
// (section 4), for instance a key written by another program.
type MalformedError struct {
	Key string // the Redis key holding the value
	Err error  // what is wrong with it
}

func (e *MalformedError) Error() string {
	return fmt.Sprintf("malformed correlation data at %s: %v", e.Key, e.Err)
}

// Unwrap returns the cause.
func (e *MalformedError) Unwrap() error { return e.Err }
