package correlation

import (
	"context"
	"fmt"

	"github.com/google/uuid"
)

// Direction says which way CorrelationChain walks the graph.
type Direction string

// The two directions, spelled as the Python tracker's direction argument.
const (
	TowardAncestors   Direction = "ancestors"
	TowardDescendants Direction = "descendants"
)

// ParseDirection reads a direction as `bb trace --chain` takes it.
func ParseDirection(s string) (Direction, error) {
	switch d := Direction(s); d {
	case TowardAncestors, TowardDescendants:
		return d, nil
	}
	return "", fmt.Errorf("invalid direction %q: want %s or %s", s, TowardAncestors, TowardDescendants)
}

// CorrelationChain returns what the Python tracker's get_correlation_chain
// returns: the events related to id in direction, depth first in
// post-order, id itself last, so ancestors read in causal order. Parents
// are walked in recorded order, children sorted; each event appears once,
// and the walk stops maxDepth links from id (<= 0: DefaultMaxDepth). It
// costs one round trip per event: prefer Store.Ancestors or Descendants
// unless the Python order matters.
func CorrelationChain(ctx context.Context, s Store, id uuid.UUID, dir Direction, maxDepth int) ([]uuid.UUID, error) {
	if _, err := ParseDirection(string(dir)); err != nil {
		return nil, err
	}
	next := s.Parents
	if dir == TowardDescendants {
		next = s.Children
	}
	if maxDepth <= 0 {
		maxDepth = DefaultMaxDepth
	}
	var chain []uuid.UUID
	visited := map[uuid.UUID]bool{}
	var walk func(id uuid.UUID, depth int) error
	walk = func(id uuid.UUID, depth int) error {
		visited[id] = true
		if depth < maxDepth {
			related, err := next(ctx, id)
			if err != nil {
				return err
			}
			for _, r := range related {
				if visited[r] {
					continue
				}
				if err := walk(r, depth+1); err != nil {
					return err
				}
			}
		}
		chain = append(chain, id)
		return nil
	}
	if err := walk(id, 0); err != nil {
		return nil, fmt.Errorf("cannot walk the %s of %s: %w", dir, id, err)
	}
	return chain, nil
}
