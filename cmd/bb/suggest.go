package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/33god/bloodbank-go/domains"
)

const listHint = " (see 'bb list-events')"

// unknownTypeMessage says that name is not in the catalogue, with the close
// matches when there are any.
func unknownTypeMessage(reg *domains.Registry, name string) string {
	msg := fmt.Sprintf("unknown event type %q: it is not in the event catalogue", name)
	if close := closeMatches(reg, name); len(close) > 0 {
		return msg + "; did you mean " + strings.Join(close, ", ") + "?"
	}
	return msg + listHint
}

// closeMatches lists the registered names nearest to name, one per event
// type (its best-matching name): those within a small edit distance, or
// that contain name; best first, at most five.
func closeMatches(reg *domains.Registry, name string) []string {
	type candidate struct {
		name string
		dist int
	}
	want := strings.ToLower(name)
	limit := max(2, len(want)/6)
	score := func(c string) (int, bool) {
		lc := strings.ToLower(c)
		if d := editDistance(want, lc); d <= limit {
			return d, true
		}
		if len(want) >= 3 && strings.Contains(lc, want) {
			return limit + 1 + abs(len(lc)-len(want)), true
		}
		return 0, false
	}
	// A lowercase name was meant as a routing key, a capitalised one as a
	// type name: prefer suggestions of the same kind.
	keyLike := strings.ToLower(name) == name
	var found []candidate
	for _, et := range reg.Events(domains.Filter{}) {
		type option struct {
			match, show string
			isKey       bool
		}
		options := []option{{et.RoutingKey(), et.RoutingKey(), true}}
		for _, k := range et.RoutingKeys() {
			options = append(options, option{k, k, true})
		}
		_, typeName, _ := strings.Cut(et.Name(), ".")
		options = append(options, option{et.Name(), et.Name(), false}, option{typeName, et.Name(), false})
		for _, alias := range et.Aliases() {
			options = append(options, option{alias, alias, false})
		}
		best := candidate{dist: -1}
		for _, o := range options {
			d, ok := score(o.match)
			if !ok {
				continue
			}
			if o.isKey != keyLike {
				d += 2
			}
			if best.dist < 0 || d < best.dist {
				best = candidate{o.show, d}
			}
		}
		if best.dist >= 0 {
			found = append(found, best)
		}
	}
	slices.SortStableFunc(found, func(a, b candidate) int {
		if a.dist != b.dist {
			return a.dist - b.dist
		}
		return strings.Compare(a.name, b.name)
	})
	out := make([]string, 0, 5)
	for _, c := range found[:min(5, len(found))] {
		if c.dist > found[0].dist+2 {
			break // far worse than the best: noise
		}
		out = append(out, c.name)
	}
	return out
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}
