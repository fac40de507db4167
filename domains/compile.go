package domains

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
)

type typeSet uint8

const (
	tNull typeSet = 1 << iota
	tBoolean
	tObject
	tArray
	tNumber
	tInteger
	tString
)

type typeName struct {
	t    typeSet
	name string
}

var typeNames = []typeName{
	{tObject, "object"}, {tArray, "array"}, {tString, "string"}, {tInteger, "integer"},
	{tNumber, "number"}, {tBoolean, "boolean"}, {tNull, "null"},
}

func (s typeSet) accepts(got typeSet) bool {
	if s == 0 || s&got != 0 {
		return true
	}
	return got == tInteger && s&tNumber != 0 // every integer is a number
}

func (s typeSet) String() string {
	var names []string
	for _, tn := range typeNames {
		if s&tn.t != 0 {
			names = append(names, tn.name)
		}
	}
	return strings.Join(names, " or ")
}

type format uint8

const (
	formatNone format = iota
	formatUUID
	formatDateTime
)

// node is one compiled schema. Nodes of $defs are shared; whether null is
// allowed belongs to the place that refers to a node (ref), not to the node.
type node struct {
	types    typeSet // 0: any JSON value
	format   format
	enum     []string
	props    map[string]*prop // by name; prop.index numbers them from 0
	required []*prop          // in schema order, for stable problem lists
	items    *ref
	values   *ref // additionalProperties given as a schema
	closed   bool // additionalProperties: false
}

// free reports whether n accepts any JSON value, whose syntax alone is checked.
func (n *node) free() bool {
	return n.types == 0 && n.format == formatNone && n.enum == nil && n.props == nil &&
		n.items == nil && n.values == nil && !n.closed
}

type ref struct {
	node     *node
	nullable bool
}

type prop struct {
	name  string
	index int
	ref   ref
}

// rawSchema is the part of a schema document the validator reads.
type rawSchema struct {
	Ref                  string                `json:"$ref"`
	Defs                 map[string]*rawSchema `json:"$defs"`
	Type                 json.RawMessage       `json:"type"`
	AnyOf                []*rawSchema          `json:"anyOf"`
	Properties           map[string]*rawSchema `json:"properties"`
	Required             []string              `json:"required"`
	Items                *rawSchema            `json:"items"`
	AdditionalProperties json.RawMessage       `json:"additionalProperties"`
	Enum                 []any                 `json:"enum"`
	Format               string                `json:"format"`

	unsupported []string
}

// knownKeywords: rawSchema's, plus annotations, which carry no constraint.
var knownKeywords = map[string]bool{
	"$schema": true, "$id": true, "$ref": true, "$defs": true, "$comment": true, "$anchor": true,
	"title": true, "description": true, "default": true, "examples": true, "deprecated": true,
	"readOnly": true, "writeOnly": true, "contentEncoding": true, "contentMediaType": true,
	"type": true, "anyOf": true, "properties": true, "required": true, "items": true,
	"additionalProperties": true, "enum": true, "format": true,
}

func (s *rawSchema) UnmarshalJSON(b []byte) error {
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(b, &keys); err != nil {
		return err
	}
	for k := range keys {
		if !knownKeywords[k] {
			s.unsupported = append(s.unsupported, k)
		}
	}
	type plain rawSchema
	return json.Unmarshal(b, (*plain)(s))
}

type compiler struct {
	defs  map[string]*rawSchema
	nodes map[string]*node
}

func compileSchema(doc []byte) (*node, error) {
	var root rawSchema
	if err := json.Unmarshal(doc, &root); err != nil {
		return nil, fmt.Errorf("cannot read the schema: %w", err)
	}
	c := compiler{defs: root.Defs, nodes: map[string]*node{}}
	r, err := c.compile(&root, rootPath)
	if err != nil {
		return nil, err
	}
	if r.node.types != tObject || r.nullable {
		return nil, fmt.Errorf("%w: a payload schema must be a non-null object", ErrInvalidSpec)
	}
	return r.node, nil
}

func (c *compiler) compile(s *rawSchema, at string) (ref, error) {
	if len(s.unsupported) > 0 {
		slices.Sort(s.unsupported)
		return ref{}, fmt.Errorf("%w: at %s: schema keywords %s are not supported by the validator", ErrInvalidSpec, at, strings.Join(s.unsupported, ", "))
	}
	if s.Ref != "" {
		n, err := c.def(s.Ref, at)
		return ref{node: n}, err
	}
	if s.AnyOf != nil {
		// Only the optional-field shape anyOf [X, {"type": "null"}] is generated.
		i := slices.IndexFunc(s.AnyOf, func(a *rawSchema) bool { return string(a.Type) == `"null"` })
		if len(s.AnyOf) != 2 || i < 0 {
			return ref{}, fmt.Errorf("%w: at %s: only anyOf [schema, {\"type\": \"null\"}] is supported", ErrInvalidSpec, at)
		}
		r, err := c.compile(s.AnyOf[1-i], at)
		r.nullable = true
		return r, err
	}
	n := &node{}
	return ref{node: n}, c.fill(n, s, at)
}

func (c *compiler) def(ref, at string) (*node, error) {
	name, ok := strings.CutPrefix(ref, "#/$defs/")
	if !ok || c.defs[name] == nil {
		return nil, fmt.Errorf("%w: at %s: cannot resolve $ref %q", ErrInvalidSpec, at, ref)
	}
	if n, ok := c.nodes[name]; ok {
		return n, nil // compiled, or being compiled by a recursive type
	}
	n := &node{}
	c.nodes[name] = n
	return n, c.fill(n, c.defs[name], at)
}

func (c *compiler) fill(n *node, s *rawSchema, at string) error {
	types, err := parseTypes(s.Type)
	if err != nil {
		return fmt.Errorf("%w: at %s: %v", ErrInvalidSpec, at, err)
	}
	n.types = types
	switch s.Format {
	case "uuid":
		n.format = formatUUID
	case "date-time":
		n.format = formatDateTime
	}
	for _, v := range s.Enum {
		str, ok := v.(string)
		if !ok {
			return fmt.Errorf("%w: at %s: only string enums are supported", ErrInvalidSpec, at)
		}
		n.enum = append(n.enum, str)
	}
	if s.Items != nil {
		r, err := c.compile(s.Items, at+"[]")
		if err != nil {
			return err
		}
		n.items = &r
	}
	add := func(name string, r ref) *prop {
		if n.props == nil {
			n.props = map[string]*prop{}
		}
		p := &prop{name: name, index: len(n.props), ref: r}
		n.props[name] = p
		return p
	}
	for _, name := range slices.Sorted(maps.Keys(s.Properties)) {
		r, err := c.compile(s.Properties[name], at+"."+name)
		if err != nil {
			return err
		}
		add(name, r)
	}
	for _, name := range s.Required {
		p := n.props[name]
		if p == nil {
			p = add(name, anyValue) // required but undescribed: any value will do, absence will not
		}
		n.required = append(n.required, p)
	}
	switch ap := strings.TrimSpace(string(s.AdditionalProperties)); ap {
	case "", "true":
	case "false":
		n.closed = true
	default:
		var sub rawSchema
		if err := json.Unmarshal(s.AdditionalProperties, &sub); err != nil {
			return fmt.Errorf("%w: at %s: additionalProperties: %v", ErrInvalidSpec, at, err)
		}
		r, err := c.compile(&sub, at+"[*]")
		if err != nil {
			return err
		}
		n.values = &r
	}
	return nil
}

func parseTypes(raw json.RawMessage) (typeSet, error) {
	if len(raw) > 0 && raw[0] == '"' {
		raw = slices.Concat([]byte("["), raw, []byte("]"))
	}
	var names []string
	if len(raw) > 0 && json.Unmarshal(raw, &names) != nil {
		return 0, errors.New("type must be a string or an array of strings")
	}
	var set typeSet
	for _, name := range names {
		i := slices.IndexFunc(typeNames, func(tn typeName) bool { return tn.name == name })
		if i < 0 {
			return 0, fmt.Errorf("unknown type %q", name)
		}
		set |= typeNames[i].t
	}
	return set, nil
}
