package console

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/33god/bloodbank-go/bus/envelope"
	"github.com/33god/bloodbank-go/correlation"
)

// lookupConcurrency bounds the store reads of one graph level in flight.
const lookupConcurrency = 16

// Node is one event of a graph. Level is 0 for the event asked for,
// negative for its ancestors, positive for its descendants. EventType,
// SourceApp and Time come from the node's own link; Linked is false when
// none is recorded, and then they are empty.
type Node struct {
	ID        string         `json:"id"`
	Level     int            `json:"level"`
	Linked    bool           `json:"linked"`
	EventType string         `json:"event_type,omitempty"`
	SourceApp string         `json:"source_app,omitempty"`
	Time      string         `json:"time,omitempty"`
	Metadata  map[string]any `json:"metadata,omitempty"`
	// More is set on a node whose further causes or effects were cut off.
	More bool `json:"more,omitempty"`
}

// Edge is a cause→effect link between two nodes of the graph.
type Edge struct {
	Parent string `json:"parent"`
	Child  string `json:"child"`
}

// Graph is what GET /ui/api/graph/{event_id} answers.
type Graph struct {
	EventID   string `json:"event_id"`
	Nodes     []Node `json:"nodes"`
	Edges     []Edge `json:"edges"`
	Truncated bool   `json:"truncated"`
	Limit     int    `json:"limit"`
}

// graph is GET /ui/api/graph/{event_id}.
func (c *Console) graph(w http.ResponseWriter, r *http.Request) {
	raw := r.PathValue("event_id")
	id, err := uuid.Parse(raw)
	if err != nil {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("event id %q is not a UUID: use the event_id of an envelope", raw))
		return
	}
	if c.deps.Graph == nil {
		writeError(w, http.StatusNotImplemented, "correlation tracking is not configured on this service: set REDIS_* and restart it")
		return
	}
	limit := c.cfg.GraphLimit
	if s := r.URL.Query().Get("limit"); s != "" {
		if n, err := strconv.Atoi(s); err == nil && n > 0 && n < limit {
			limit = n
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), c.cfg.Timeout)
	defer cancel()
	g, err := BuildGraph(ctx, c.deps.Graph, id, limit)
	if err != nil {
		c.log.Warn("console: cannot read the graph", "event_id", id.String(), "error", err.Error())
		writeError(w, errorStatus(err), "cannot read the correlation graph: "+err.Error())
		return
	}
	if len(g.Nodes) == 1 && !g.Nodes[0].Linked && len(g.Edges) == 0 {
		writeJSON(w, http.StatusNotFound, map[string]any{"event_id": id.String(),
			"error": "no correlation is recorded for event " + id.String() + ": it caused nothing and has no recorded cause, or its links expired"})
		return
	}
	writeJSON(w, http.StatusOK, g)
}

// BuildGraph walks the store from id, upwards through each node's
// recorded parents and downwards through its children, one level at a
// time, until limit nodes are known; nodes whose neighbours were left out
// are marked More.
func BuildGraph(ctx context.Context, s correlation.Store, id uuid.UUID, limit int) (Graph, error) {
	b := &builder{store: s, nodes: map[uuid.UUID]*Node{}, edges: map[Edge]bool{}, limit: limit}
	b.add(id, 0)
	links, err := b.lookup(ctx, []uuid.UUID{id})
	if err != nil {
		return Graph{}, err
	}
	up, down := []uuid.UUID{id}, []uuid.UUID{id}
	for level := 1; len(up)+len(down) > 0; level++ {
		var nextUp, nextDown []uuid.UUID
		for _, n := range up {
			l, ok := links[n]
			if !ok {
				continue
			}
			for _, p := range l.Parents {
				if b.nodes[p] == nil {
					if !b.add(p, -level) {
						b.nodes[n].More = true
						continue
					}
					nextUp = append(nextUp, p)
				}
				b.edge(p, n)
			}
		}
		children, err := b.children(ctx, down)
		if err != nil {
			return Graph{}, err
		}
		for i, n := range down {
			for _, ch := range children[i] {
				if b.nodes[ch] == nil {
					if !b.add(ch, level) {
						b.nodes[n].More = true
						continue
					}
					nextDown = append(nextDown, ch)
				}
				b.edge(n, ch)
			}
		}
		if links, err = b.lookup(ctx, append(append([]uuid.UUID{}, nextUp...), nextDown...)); err != nil {
			return Graph{}, err
		}
		// A descendant's other parents are edges too, when drawn.
		for _, n := range nextDown {
			for _, p := range links[n].Parents {
				if b.nodes[p] != nil {
					b.edge(p, n)
				}
			}
		}
		up, down = nextUp, nextDown
	}
	g := Graph{EventID: id.String(), Nodes: make([]Node, 0, len(b.order)), Edges: append([]Edge{}, b.edgeOrder...), Truncated: b.truncated, Limit: limit}
	for _, n := range b.order {
		g.Nodes = append(g.Nodes, *b.nodes[n])
	}
	return g, nil
}

type builder struct {
	store     correlation.Store
	nodes     map[uuid.UUID]*Node
	order     []uuid.UUID
	edges     map[Edge]bool
	edgeOrder []Edge
	limit     int
	truncated bool
}

// add adds a node unless the limit is reached.
func (b *builder) add(id uuid.UUID, level int) bool {
	if len(b.order) >= b.limit {
		b.truncated = true
		return false
	}
	b.nodes[id] = &Node{ID: id.String(), Level: level}
	b.order = append(b.order, id)
	return true
}

func (b *builder) edge(parent, child uuid.UUID) {
	if b.nodes[parent] == nil || b.nodes[child] == nil {
		return
	}
	e := Edge{Parent: parent.String(), Child: child.String()}
	if !b.edges[e] {
		b.edges[e] = true
		b.edgeOrder = append(b.edgeOrder, e)
	}
}

// lookup reads the links of ids concurrently and fills in their nodes.
func (b *builder) lookup(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]correlation.Link, error) {
	links := make([]correlation.Link, len(ids))
	found := make([]bool, len(ids))
	err := each(ctx, len(ids), func(ctx context.Context, i int) error {
		l, err := b.store.Lookup(ctx, ids[i])
		if errors.Is(err, correlation.ErrNotFound) {
			return nil
		}
		links[i], found[i] = l, err == nil
		return err
	})
	if err != nil {
		return nil, err
	}
	out := make(map[uuid.UUID]correlation.Link, len(ids))
	for i, id := range ids {
		if !found[i] {
			continue
		}
		out[id] = links[i]
		n := b.nodes[id]
		n.Linked = true
		n.Metadata = links[i].Metadata
		n.EventType, _ = links[i].Metadata["event_type"].(string)
		n.SourceApp, _ = links[i].Metadata["source_app"].(string)
		if !links[i].CreatedAt.IsZero() {
			n.Time = envelope.FormatTimestamp(links[i].CreatedAt.UTC().Truncate(time.Millisecond))
		}
	}
	return out, nil
}

// children reads the children of ids concurrently.
func (b *builder) children(ctx context.Context, ids []uuid.UUID) ([][]uuid.UUID, error) {
	out := make([][]uuid.UUID, len(ids))
	err := each(ctx, len(ids), func(ctx context.Context, i int) (err error) {
		out[i], err = b.store.Children(ctx, ids[i])
		return err
	})
	return out, err
}

// each runs fn(0..n-1), lookupConcurrency at a time, and returns the first
// error.
func each(ctx context.Context, n int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	sem := make(chan struct{}, lookupConcurrency)
	var wg sync.WaitGroup
	for i := range n {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return context.Cause(ctx)
		}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := fn(ctx, i); err != nil {
				cancel(err)
			}
		})
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil && ctx.Err() != nil {
		return err
	}
	return nil
}
