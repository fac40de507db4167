package schemacompat

import (
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// rootPath names the payload itself in a Change's Path, as the validator's
// problems do.
const rootPath = "payload"

// maxDepth bounds the walk where references alone would not: a schema that
// nests without end through anyOf and inline copies is malformed.
const maxDepth = 128

// Change is one breaking change: a message valid under the old schema that
// a consumer of the new one rejects.
type Change struct {
	// RoutingKey is the event type's routing key (or template).
	RoutingKey string
	// Path is where in the payload the change is ("payload.sentences[].speaker_id"),
	// or empty when it concerns the whole type.
	Path string
	// Message says what changed, in words meant for the author of the change.
	Message string
}

func (c Change) String() string {
	if c.Path == "" {
		return c.RoutingKey + ": " + c.Message
	}
	return c.RoutingKey + ": " + c.Path + ": " + c.Message
}

// Compare lists the breaking changes from the old to the new JSON Schema of
// one routing key, by the rules of the package doc.
func Compare(routingKey string, old, new []byte) ([]Change, error) {
	oldRoot, err := decode(old)
	if err != nil {
		return nil, fmt.Errorf("%s: old schema: %w", routingKey, err)
	}
	newRoot, err := decode(new)
	if err != nil {
		return nil, fmt.Errorf("%s: new schema: %w", routingKey, err)
	}
	w := &walker{key: routingKey, oldRoot: oldRoot, newRoot: newRoot, active: map[[2]string]bool{}}
	w.compare(rootPath, oldRoot, newRoot, 0)
	if w.err != nil {
		return nil, fmt.Errorf("%s: %w", routingKey, w.err)
	}
	return w.changes, nil
}

// walker compares two documents side by side. It keeps the first error and
// stops reporting after it.
type walker struct {
	key              string
	oldRoot, newRoot any
	active           map[[2]string]bool // reference pairs being compared, to cut cycles
	changes          []Change
	err              error
}

func (w *walker) report(path, format string, args ...any) {
	w.changes = append(w.changes, Change{RoutingKey: w.key, Path: path, Message: fmt.Sprintf(format, args...)})
}

// compare reports what of old the new schema no longer accepts at path.
func (w *walker) compare(path string, old, new any, depth int) {
	if w.err != nil {
		return
	}
	if depth > maxDepth {
		w.err = fmt.Errorf("%w: %s nests deeper than %d levels", ErrInvalidSchema, path, maxDepth)
		return
	}
	old, oldRef, err := resolve(w.oldRoot, old)
	if err != nil {
		w.err = fmt.Errorf("old schema at %s: %w", path, err)
		return
	}
	new, newRef, err := resolve(w.newRoot, new)
	if err != nil {
		w.err = fmt.Errorf("new schema at %s: %w", path, err)
		return
	}
	if oldRef != "" && newRef != "" {
		pair := [2]string{oldRef, newRef}
		if w.active[pair] {
			return // a recursive type: this pair is being compared further up
		}
		w.active[pair] = true
		defer delete(w.active, pair)
	}

	newBranches, err := branches(w.newRoot, new)
	if err != nil {
		w.err = fmt.Errorf("new schema at %s: %w", path, err)
		return
	}
	oldBranches, err := branches(w.oldRoot, old)
	if err != nil {
		w.err = fmt.Errorf("old schema at %s: %w", path, err)
		return
	}
	if len(newBranches) == 0 {
		if len(oldBranches) > 0 {
			w.report(path, "no value is accepted any more (schema false)")
		}
		return
	}
	var missing []string
	for _, ob := range oldBranches {
		var candidates []branch
		for _, nb := range newBranches {
			if accepts(nb.typ, ob.typ) {
				candidates = append(candidates, nb)
			}
		}
		if len(candidates) == 0 {
			missing = appendNew(missing, ob.typ)
			continue
		}
		w.compareBranch(path, ob, candidates, depth)
	}
	if len(missing) > 0 {
		w.reportTypes(path, typesOf(oldBranches), typesOf(newBranches), missing)
	}
}

// compareBranch compares one old branch with the new branches that accept
// its type. It is compatible when one of them takes all the branch's values;
// otherwise it reports what the first one rejects.
func (w *walker) compareBranch(path string, ob branch, candidates []branch, depth int) {
	var first []Change
	for i, nb := range candidates {
		sub := &walker{key: w.key, oldRoot: w.oldRoot, newRoot: w.newRoot, active: w.active}
		sub.constraints(path, ob, nb, depth)
		if sub.err != nil {
			w.err = sub.err
			return
		}
		if len(sub.changes) == 0 {
			return
		}
		if i == 0 {
			first = sub.changes
		}
	}
	w.changes = append(w.changes, first...)
}

func (w *walker) reportTypes(path string, oldTypes, newTypes, missing []string) {
	if slices.Contains(missing, "null") {
		w.report(path, "made non-nullable: null is no longer accepted")
		missing = slices.DeleteFunc(missing, func(t string) bool { return t == "null" })
	}
	if len(missing) == 0 {
		return
	}
	oldTypes = slices.DeleteFunc(oldTypes, func(t string) bool { return t == "null" })
	newTypes = slices.DeleteFunc(newTypes, func(t string) bool { return t == "null" })
	switch {
	case slices.Contains(missing, ""):
		w.report(path, "type constrained from any to %s", typeList(newTypes))
	case len(oldTypes) == 1 && len(newTypes) == 1:
		w.report(path, "type changed from %s to %s", oldTypes[0], newTypes[0])
	default:
		w.report(path, "type %s no longer accepted (was %s, now %s)", typeList(missing), typeList(oldTypes), typeList(newTypes))
	}
}

// constraints compares the keywords that restrict values of one type.
func (w *walker) constraints(path string, ob, nb branch, depth int) {
	if ob.ref != "" && nb.ref != "" {
		pair := [2]string{ob.ref, nb.ref}
		if w.active[pair] {
			return // a recursive type reached through anyOf
		}
		w.active[pair] = true
		defer delete(w.active, pair)
	}
	o, n := ob.schema, nb.schema
	w.compareEnum(path, o, n)
	for _, k := range []string{"format", "pattern"} {
		nv, ok := n[k]
		if !ok || jsonEqual(o[k], nv) {
			continue
		}
		if ov, had := o[k]; had {
			w.report(path, "%s changed from %s to %s", k, jsonText(ov), jsonText(nv))
		} else {
			w.report(path, "%s %s added", k, jsonText(nv))
		}
	}
	w.compareBounds(path, o, n)
	if ob.typ == "object" || ob.typ == "" {
		w.compareObject(path, o, n, depth)
	}
	if ob.typ == "array" || ob.typ == "" {
		if ni, ok := n["items"]; ok {
			oi, had := o["items"]
			if !had {
				oi = true
			}
			w.compare(path+"[]", oi, ni, depth+1)
		}
	}
}

func (w *walker) compareEnum(path string, o, n map[string]any) {
	newValues, ok := enumValues(n)
	if !ok {
		return
	}
	oldValues, had := enumValues(o)
	if !had {
		w.report(path, "values restricted to %s", jsonText(newValues))
		return
	}
	var removed []string
	for _, v := range oldValues {
		if !slices.ContainsFunc(newValues, func(nv any) bool { return jsonEqual(v, nv) }) {
			removed = append(removed, jsonText(v))
		}
	}
	if len(removed) > 0 {
		w.report(path, "enum narrowed: %s removed", strings.Join(removed, ", "))
	}
}

// Bounds: a lower bound breaks when it appears or rises, an upper one when
// it appears or falls.
var (
	lowerBounds = []string{"minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties"}
	upperBounds = []string{"maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties"}
)

func (w *walker) compareBounds(path string, o, n map[string]any) {
	check := func(k string, stricter func(old, new float64) bool) {
		nv, ok := n[k].(float64)
		if !ok {
			return
		}
		ov, had := o[k].(float64)
		switch {
		case !had:
			w.report(path, "%s %v added", k, nv)
		case stricter(ov, nv):
			w.report(path, "%s tightened from %v to %v", k, ov, nv)
		}
	}
	for _, k := range lowerBounds {
		check(k, func(old, new float64) bool { return new > old })
	}
	for _, k := range upperBounds {
		check(k, func(old, new float64) bool { return new < old })
	}
	if n["uniqueItems"] == true && o["uniqueItems"] != true {
		w.report(path, "uniqueItems added")
	}
	if nv, ok := n["multipleOf"].(float64); ok {
		ov, had := o["multipleOf"].(float64)
		if q := ov / nv; !had || q != float64(int64(q)) {
			w.report(path, "multipleOf %v added", nv)
		}
	}
}

func (w *walker) compareObject(path string, o, n map[string]any, depth int) {
	oldProps, _ := o["properties"].(map[string]any)
	newProps, _ := n["properties"].(map[string]any)
	oldRequired, newRequired := stringSet(o["required"]), stringSet(n["required"])
	oldExtra, hasOldExtra := o["additionalProperties"]
	newExtra, hasNewExtra := n["additionalProperties"]
	oldClosed, newClosed := oldExtra == false, newExtra == false

	names := slices.Collect(maps.Keys(oldProps))
	names = append(names, slices.Collect(maps.Keys(newProps))...)
	names = append(names, slices.Collect(maps.Keys(newRequired))...)
	slices.Sort(names)
	for _, name := range slices.Compact(names) {
		p := path + "." + name
		op, inOld := oldProps[name]
		np, inNew := newProps[name]
		switch {
		case inOld && inNew:
			w.compare(p, op, np, depth+1)
		case inOld && newClosed:
			w.report(p, "field removed from an object that allows no additional properties")
		case inOld && isSchema(newExtra):
			w.compare(p, op, newExtra, depth+1)
		case inNew && isSchema(oldExtra):
			// Old messages carried this name as an additional property.
			w.compare(p, oldExtra, np, depth+1)
		}
		if newRequired[name] && !oldRequired[name] {
			switch {
			case inOld:
				w.report(p, "made required (was optional)")
			case !w.hasDefault(np):
				w.report(p, "new required field without a default")
			}
		}
	}
	switch {
	case newClosed && !oldClosed:
		w.report(path, "additionalProperties changed from %s to false", jsonText(orTrue(oldExtra, hasOldExtra)))
	case hasNewExtra && !newClosed && !oldClosed:
		w.compare(path+".*", orTrue(oldExtra, hasOldExtra), newExtra, depth+1)
	}
}

func (w *walker) hasDefault(prop any) bool {
	if m, ok := prop.(map[string]any); ok {
		if _, ok := m["default"]; ok {
			return true
		}
	}
	resolved, _, err := resolve(w.newRoot, prop)
	if m, ok := resolved.(map[string]any); ok && err == nil {
		_, ok := m["default"]
		return ok
	}
	return false
}

// branch is one way a value can be valid: a JSON type ("" for any) and the
// schema that constrains values of that type.
type branch struct {
	typ    string
	schema map[string]any
	ref    string // the reference the branch was reached through, if any
}

// branches splits a resolved schema into one branch per JSON type it
// accepts; anyOf and oneOf contribute their branches' branches. false has
// none.
func branches(root, s any) ([]branch, error) {
	switch s := s.(type) {
	case bool:
		if s {
			return []branch{{schema: map[string]any{}}}, nil
		}
		return nil, nil
	case map[string]any:
		var union []any
		for _, k := range []string{"anyOf", "oneOf"} {
			if list, ok := s[k].([]any); ok {
				union = append(union, list...)
			}
		}
		if union != nil {
			var out []branch
			for _, sub := range union {
				resolved, ref, err := resolve(root, sub)
				if err != nil {
					return nil, err
				}
				b, err := branches(root, resolved)
				if err != nil {
					return nil, err
				}
				for i := range b {
					b[i].ref = cmp.Or(b[i].ref, ref)
				}
				out = append(out, b...)
			}
			return out, nil
		}
		switch t := s["type"].(type) {
		case string:
			return []branch{{typ: t, schema: s}}, nil
		case []any:
			var out []branch
			for _, v := range t {
				if name, ok := v.(string); ok {
					out = append(out, branch{typ: name, schema: s})
				}
			}
			return out, nil
		}
		return []branch{{schema: s}}, nil
	}
	return nil, fmt.Errorf("%w: a schema is a JSON object or a boolean, got %s", ErrInvalidSchema, jsonText(s))
}

// accepts reports whether a branch of type newType takes every value of
// oldType: the same type, any type, or a number where an integer was.
func accepts(newType, oldType string) bool {
	return newType == "" || newType == oldType || (newType == "number" && oldType == "integer")
}

// resolve follows $ref until a schema without one, and returns it with the
// last reference followed. Keywords beside a $ref are kept where the target
// lacks them, so a description or default next to a reference survives.
func resolve(root, s any) (any, string, error) {
	var ref string
	for range maxDepth {
		m, ok := s.(map[string]any)
		if !ok {
			return s, ref, nil
		}
		r, ok := m["$ref"].(string)
		if !ok {
			return s, ref, nil
		}
		target, err := pointer(root, r)
		if err != nil {
			return nil, "", err
		}
		ref = r
		if t, ok := target.(map[string]any); ok && len(m) > 1 {
			merged := maps.Clone(t)
			for k, v := range m {
				if _, taken := merged[k]; !taken && k != "$ref" {
					merged[k] = v
				}
			}
			target = merged
		}
		s = target
	}
	return nil, "", fmt.Errorf("%w: references nest deeper than %d levels at %q", ErrInvalidSchema, maxDepth, ref)
}

// pointer resolves a local reference: "#" or a JSON Pointer after it.
func pointer(root any, ref string) (any, error) {
	rest, ok := strings.CutPrefix(ref, "#")
	if !ok {
		return nil, fmt.Errorf("%w: reference %q is not local (only #/… references are supported)", ErrInvalidSchema, ref)
	}
	cur := root
	if rest == "" {
		return cur, nil
	}
	if !strings.HasPrefix(rest, "/") {
		return nil, fmt.Errorf("%w: reference %q is not a JSON Pointer", ErrInvalidSchema, ref)
	}
	for _, token := range strings.Split(rest[1:], "/") {
		token = strings.ReplaceAll(strings.ReplaceAll(token, "~1", "/"), "~0", "~")
		switch c := cur.(type) {
		case map[string]any:
			next, ok := c[token]
			if !ok {
				return nil, fmt.Errorf("%w: reference %q does not resolve", ErrInvalidSchema, ref)
			}
			cur = next
		case []any:
			i, err := strconv.Atoi(token)
			if err != nil || i < 0 || i >= len(c) {
				return nil, fmt.Errorf("%w: reference %q does not resolve", ErrInvalidSchema, ref)
			}
			cur = c[i]
		default:
			return nil, fmt.Errorf("%w: reference %q does not resolve", ErrInvalidSchema, ref)
		}
	}
	return cur, nil
}

func enumValues(s map[string]any) ([]any, bool) {
	if v, ok := s["const"]; ok {
		return []any{v}, true
	}
	values, ok := s["enum"].([]any)
	return values, ok
}

func stringSet(v any) map[string]bool {
	list, _ := v.([]any)
	set := make(map[string]bool, len(list))
	for _, item := range list {
		if s, ok := item.(string); ok {
			set[s] = true
		}
	}
	return set
}

func typesOf(bs []branch) []string {
	var out []string
	for _, b := range bs {
		out = appendNew(out, b.typ)
	}
	return out
}

func typeList(types []string) string {
	named := make([]string, len(types))
	for i, t := range types {
		named[i] = cmp.Or(t, "any")
	}
	return strings.Join(named, "|")
}

func appendNew(list []string, s string) []string {
	if slices.Contains(list, s) {
		return list
	}
	return append(list, s)
}

// isSchema reports whether additionalProperties holds a schema rather than
// true, false or nothing.
func isSchema(v any) bool {
	_, ok := v.(map[string]any)
	return ok
}

func orTrue(v any, present bool) any {
	if !present {
		return true
	}
	return v
}

func jsonText(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// jsonEqual compares decoded JSON values by their encoding: encoding/json
// sorts object keys, so equal values encode alike.
func jsonEqual(a, b any) bool { return jsonText(a) == jsonText(b) }
