package domains

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// keyPattern is a parsed routing key whose words are literals or "{field}"
// placeholders filled from the payload, as in Python's "artifact.{action}".
type keyPattern struct {
	raw   string
	words []keyWord
}

type keyWord struct {
	literal string
	field   string   // set for a placeholder
	enum    []string // the field's allowed values, when the schema restricts them
}

func parseRoutingKey(s string) (keyPattern, error) {
	if s == "" {
		return keyPattern{}, fmt.Errorf("routing key is empty")
	}
	p := keyPattern{raw: s}
	for w := range strings.SplitSeq(s, ".") {
		switch {
		case w == "":
			return keyPattern{}, fmt.Errorf("routing key %q has an empty word", s)
		case strings.HasPrefix(w, "{") && strings.HasSuffix(w, "}"):
			field := w[1 : len(w)-1]
			if !isIdentifier(field) {
				return keyPattern{}, fmt.Errorf("routing key %q: placeholder %q is not a field name", s, w)
			}
			p.words = append(p.words, keyWord{field: field})
		case !isKeyWord(w):
			return keyPattern{}, fmt.Errorf("routing key %q: word %q may not contain '*', '#', '{', '}' or spaces", s, w)
		default:
			p.words = append(p.words, keyWord{literal: w})
		}
	}
	return p, nil
}

func (p keyPattern) isTemplate() bool {
	return slices.ContainsFunc(p.words, func(w keyWord) bool { return w.field != "" })
}

// matches reports whether a concrete routing key fits the template; an
// enumerated field only accepts its values, so "artifact.moved" is unknown.
func (p keyPattern) matches(key string) bool {
	rest := key
	for i, w := range p.words {
		word, after, found := strings.Cut(rest, ".")
		if found == (i == len(p.words)-1) {
			return false // too few or too many words
		}
		rest = after
		if !w.accepts(word) {
			return false
		}
	}
	return true
}

func (w keyWord) accepts(word string) bool {
	switch {
	case w.field == "":
		return w.literal == word
	case w.enum != nil:
		return slices.Contains(w.enum, word)
	default:
		return word != "" && isKeyWord(word)
	}
}

// overlaps reports whether some concrete key matches both patterns.
func (p keyPattern) overlaps(q keyPattern) bool {
	if len(p.words) != len(q.words) {
		return false
	}
	for i, a := range p.words {
		b := q.words[i]
		switch {
		case a.field == "" && !b.accepts(a.literal), b.field == "" && !a.accepts(b.literal):
			return false
		case a.enum != nil && b.enum != nil && !slices.ContainsFunc(a.enum, b.accepts):
			return false
		}
	}
	return true
}

// expand lists every concrete key of the pattern, the key itself when it is
// exact, and nil when some placeholder is free.
func (p keyPattern) expand() []string {
	keys := []string{""}
	for _, w := range p.words {
		values := []string{w.literal}
		if w.field != "" {
			if w.enum == nil {
				return nil
			}
			values = w.enum
		}
		var next []string
		for _, k := range keys {
			for _, v := range values {
				next = append(next, k+"."+v)
			}
		}
		keys = next
	}
	for i, k := range keys {
		keys[i] = k[1:]
	}
	return keys
}

// fieldValues reads the placeholder fields from a JSON payload, with a
// problem for each one that cannot fill its word.
func (p keyPattern) fieldValues(payload []byte) (map[string]string, []Problem) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(payload, &obj); err != nil || obj == nil {
		return nil, []Problem{{Path: rootPath, Message: "expected a JSON object to fill routing key " + p.raw}}
	}
	values := make(map[string]string)
	var problems []Problem
	for _, w := range p.words {
		if w.field == "" {
			continue
		}
		path := rootPath + "." + w.field
		raw, ok := obj[w.field]
		if !ok || string(raw) == "null" {
			problems = append(problems, Problem{path, "required to fill routing key " + p.raw})
			continue
		}
		var v string
		if err := json.Unmarshal(raw, &v); err != nil {
			problems = append(problems, Problem{path, "expected string to fill routing key " + p.raw})
			continue
		}
		switch {
		case w.enum != nil && !slices.Contains(w.enum, v):
			problems = append(problems, Problem{path, fmt.Sprintf("expected one of %s, got %s", quoteAll(w.enum), quoteValue(v))})
		case v == "" || !isKeyWord(v):
			problems = append(problems, Problem{path, fmt.Sprintf("%s cannot be a routing-key word (empty, or contains '.', '*', '#' or spaces)", quoteValue(v))})
		default:
			values[w.field] = v
		}
	}
	return values, problems
}

// resolve fills the template from a JSON payload.
func (p keyPattern) resolve(payload []byte) (string, error) {
	if !p.isTemplate() {
		return p.raw, nil
	}
	values, problems := p.fieldValues(payload)
	if problems != nil {
		return "", fmt.Errorf("cannot resolve routing key %q: %w", p.raw, &ValidationError{Problems: problems})
	}
	words := make([]string, len(p.words))
	for i, w := range p.words {
		words[i] = w.literal
		if w.field != "" {
			words[i] = values[w.field]
		}
	}
	return strings.Join(words, "."), nil
}

// mismatches reports the placeholder fields that disagree with key, as an
// "artifact.created" message whose action is "deleted".
func (p keyPattern) mismatches(key string, payload []byte) []Problem {
	values, problems := p.fieldValues(payload)
	if problems != nil {
		return problems
	}
	words := strings.Split(key, ".")
	for i, w := range p.words {
		if w.field != "" && i < len(words) && values[w.field] != words[i] {
			problems = append(problems, Problem{
				Path:    rootPath + "." + w.field,
				Message: fmt.Sprintf("%s does not match routing key %q", quoteValue(values[w.field]), key),
			})
		}
	}
	return problems
}

func isKeyWord(w string) bool {
	return !strings.ContainsAny(w, ".*#{} \t\r\n")
}

func isIdentifier(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		letter := c == '_' || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z')
		if !letter && (i == 0 || c < '0' || c > '9') {
			return false
		}
	}
	return true
}
