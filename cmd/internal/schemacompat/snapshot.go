package schemacompat

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/33god/bloodbank-go/domains"
)

// ErrInvalidSchema is wrapped by the errors Parse, Check and Compare return
// when a document is not a JSON Schema they can read: not JSON, neither an
// object nor a boolean, or holding a reference that does not resolve within
// the document.
var ErrInvalidSchema = errors.New("invalid JSON Schema")

// Snapshot maps each routing key (or routing-key template) to the JSON
// Schema of its payload.
type Snapshot map[string]json.RawMessage

// Take snapshots every event type registered in reg.
func Take(reg *domains.Registry) Snapshot {
	s := Snapshot{}
	for _, et := range reg.Events(domains.Filter{}) {
		s[et.RoutingKey()] = et.Schema()
	}
	return s
}

// Encode returns the snapshot as indented JSON with its routing keys sorted,
// ending in a newline, so that a snapshot kept in a repository changes only
// where a schema does.
func (s Snapshot) Encode() ([]byte, error) {
	out, err := json.MarshalIndent(map[string]json.RawMessage(s), "", "  ")
	if err != nil {
		return nil, fmt.Errorf("cannot encode the schema snapshot: %w", err)
	}
	return append(out, '\n'), nil
}

// Parse reads a snapshot Encode wrote.
func Parse(data []byte) (Snapshot, error) {
	var s Snapshot
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("%w: a snapshot is a JSON object of schemas keyed by routing key: %v", ErrInvalidSchema, err)
	}
	if s == nil {
		return nil, fmt.Errorf("%w: a snapshot is a JSON object of schemas keyed by routing key, got null", ErrInvalidSchema)
	}
	for _, key := range slices.Sorted(maps.Keys(s)) {
		if _, err := decode(s[key]); err != nil {
			return nil, fmt.Errorf("%s: %w", key, err)
		}
	}
	return s, nil
}

// Check lists the breaking changes from old to new: every routing key of old
// that new lacks, and every change Compare finds in the schemas of the keys
// both hold. Keys only new holds are additions, never breaking.
func Check(old, new Snapshot) ([]Change, error) {
	var changes []Change
	for _, key := range slices.Sorted(maps.Keys(old)) {
		newSchema, ok := new[key]
		if !ok {
			changes = append(changes, Change{RoutingKey: key, Message: "type removed: the routing key is no longer registered"})
			continue
		}
		found, err := Compare(key, old[key], newSchema)
		if err != nil {
			return nil, err
		}
		changes = append(changes, found...)
	}
	return changes, nil
}

func decode(doc []byte) (any, error) {
	var v any
	if err := json.Unmarshal(doc, &v); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidSchema, err)
	}
	switch v.(type) {
	case map[string]any, bool:
		return v, nil
	}
	return nil, fmt.Errorf("%w: a schema is a JSON object or a boolean", ErrInvalidSchema)
}
