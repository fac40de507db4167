package asyncapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/go-json-experiment/json/jsontext"
)

// payloadSchemas turns one registered payload schema into component schemas:
// the schema itself under name, and each of its $defs under "name.Def". Its
// references move with them, since inside an AsyncAPI document "#/$defs/X"
// would resolve against the document, where nothing is. $schema goes: the
// component schemas are AsyncAPI schemas, a superset of JSON Schema draft-07,
// and the registry emits nothing draft 2020-12 adds beyond $defs.
func payloadSchemas(name string, schema []byte) (map[string]json.RawMessage, error) {
	rewritten, err := rewriteRefs(schema, name)
	if err != nil {
		return nil, err
	}
	var root map[string]json.RawMessage
	if err := json.Unmarshal(rewritten, &root); err != nil {
		return nil, fmt.Errorf("the schema is not a JSON object: %w", err)
	}
	out := map[string]json.RawMessage{}
	for _, member := range []string{"$defs", "definitions"} {
		var defs map[string]json.RawMessage
		if raw, ok := root[member]; ok {
			if err := json.Unmarshal(raw, &defs); err != nil {
				return nil, fmt.Errorf("the schema's %s is not an object: %w", member, err)
			}
		}
		for def, s := range defs {
			out[defName(name, def)] = s
		}
		delete(root, member)
	}
	delete(root, "$schema")
	delete(root, "$id")
	raw, err := json.Marshal(root)
	if err != nil {
		return nil, err
	}
	out[name] = raw
	return out, nil
}

func defName(schema, def string) string { return schema + "." + sanitize(def) }

// rewriteRefs copies a schema token by token, pointing every local $ref at
// the component schemas; the order of members stays as the registry wrote it.
func rewriteRefs(schema []byte, name string) ([]byte, error) {
	dec := jsontext.NewDecoder(bytes.NewReader(schema))
	var buf bytes.Buffer
	enc := jsontext.NewEncoder(&buf)
	isRef := false
	for {
		tok, err := dec.ReadToken()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("the schema is not JSON: %w", err)
		}
		kind, n := dec.StackIndex(dec.StackDepth())
		isName := kind == jsontext.KindBeginObject && n%2 == 1 && tok.Kind() == '"'
		if isRef && tok.Kind() == '"' {
			tok = jsontext.String(componentRef(tok.String(), name))
		}
		isRef = isName && tok.String() == "$ref"
		if err := enc.WriteToken(tok); err != nil {
			return nil, err
		}
	}
	return buf.Bytes(), nil
}

// componentRef maps a reference inside the schema to the component it
// became; references elsewhere are left alone.
func componentRef(ref, name string) string {
	const components = "#/components/schemas/"
	if ref == "#" {
		return components + name
	}
	for _, prefix := range []string{"#/$defs/", "#/definitions/"} {
		if def, ok := strings.CutPrefix(ref, prefix); ok && !strings.Contains(def, "/") {
			def = strings.NewReplacer("~1", "/", "~0", "~").Replace(def)
			return components + defName(name, def)
		}
	}
	return ref
}
