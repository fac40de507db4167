package topic

import (
	"fmt"
	"strings"
)

// Pattern is a compiled binding pattern (see the package doc). As in
// RabbitMQ, empty words are words ("a..b" has three), and the empty routing
// key has no words (only "" and "#" match it).
type Pattern struct {
	raw      string
	words    []string
	wildcard bool
}

// Compile checks and compiles a binding pattern. A pattern is at most
// 255 bytes, the AMQP limit for a routing key.
func Compile(p string) (Pattern, error) {
	if len(p) > 255 {
		return Pattern{}, fmt.Errorf("invalid pattern %.40q…: longer than 255 bytes", p)
	}
	return compile(p), nil
}

func compile(p string) Pattern {
	c := Pattern{raw: p, wildcard: strings.ContainsAny(p, "*#")}
	if c.wildcard {
		c.words = strings.Split(p, ".")
	}
	return c
}

// Must is Compile for patterns known at compile time.
func Must(p string) Pattern {
	c, err := Compile(p)
	if err != nil {
		panic(err)
	}
	return c
}

// String returns the pattern as written.
func (p Pattern) String() string { return p.raw }

// Match reports whether a routing key matches the pattern.
func (p Pattern) Match(key string) bool {
	if !p.wildcard {
		return p.raw == key
	}
	return matchWords(p.words, key)
}

// Match reports whether routing key matches the binding pattern.
func Match(pattern, key string) bool { return compile(pattern).Match(key) }

// matchWords is glob matching over words, with "#" as the star: the greedy
// algorithm with one backtrack point is linear in practice and never
// exponential, however many "#" a pattern has. Key words are walked in place
// so matching does not allocate.
func matchWords(pattern []string, key string) bool {
	nWords := 0 // the empty key has no words
	if key != "" {
		nWords = strings.Count(key, ".") + 1
	}
	pi, ki := 0, 0 // next pattern word, next key word
	kOff := 0      // byte offset of key word ki
	starP, starK, starOff := -1, 0, 0
	for ki < nWords {
		word, next := keyWord(key, kOff)
		if pi < len(pattern) {
			switch pattern[pi] {
			case "#":
				starP, starK, starOff = pi, ki, kOff
				pi++
				continue
			case "*":
				pi, ki, kOff = pi+1, ki+1, next
				continue
			default:
				if pattern[pi] == word {
					pi, ki, kOff = pi+1, ki+1, next
					continue
				}
			}
		}
		if starP < 0 {
			return false
		}
		// Let the last "#" swallow one more key word and retry from there.
		_, starOff = keyWord(key, starOff)
		starK++
		pi, ki, kOff = starP+1, starK, starOff
	}
	for pi < len(pattern) && pattern[pi] == "#" {
		pi++
	}
	return pi == len(pattern)
}

// keyWord returns the word of key starting at off and the offset of the next.
func keyWord(key string, off int) (word string, next int) {
	if i := strings.IndexByte(key[off:], '.'); i >= 0 {
		return key[off : off+i], off + i + 1
	}
	return key[off:], len(key)
}
