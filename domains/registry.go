package domains

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"

	"github.com/33god/bloodbank-go/bus/envelope"
)

// Kind says whether a payload is a command, which a command processor
// executes, or a fact, which only reports what happened.
type Kind string

const (
	// Fact is a payload that reports something that happened. Python calls
	// these events; `bb list-events --type event` lists them.
	Fact Kind = "fact"
	// Command is a payload that a command processor executes; its Result is
	// the routing key of the event the execution publishes.
	Command Kind = "command"
)

// ParseKind reads a kind as the CLI spells it: "event" or "fact", "command".
func ParseKind(s string) (Kind, error) {
	switch strings.ToLower(s) {
	case "event", "fact":
		return Fact, nil
	case "command":
		return Command, nil
	}
	return "", fmt.Errorf("cannot parse kind %q: want event, fact or command", s)
}

// Spec describes a payload type to Register. T is the Go payload type; it is
// inferred from the Spec literal.
type Spec[T any] struct {
	// RoutingKey is required: an exact key or a template ("artifact.{action}")
	// whose placeholders name required top-level string fields; an Enum
	// field matches only its values.
	RoutingKey string
	// Domain groups events for listing, named as Python names it, with "/"
	// for nesting ("agent/thread"). Optional; default: the domain given to
	// RegisterDomain, else the routing key's first word.
	Domain string
	// Kind is Fact (the default) or Command.
	Kind Kind
	// Result is, for a Command only, the routing key of the event its
	// execution publishes. Optional.
	Result string
	// Aliases are more names Lookup accepts, such as the Python class name
	// ("FirefliesTranscriptReadyPayload"), so `bb show` takes either.
	Aliases []string
	// Description is one line for listings and the schema's description.
	Description string
	// Example is required: a realistic payload that must validate, so schema
	// and example cannot drift apart; `bb show` prints it, `bb publish --mock` sends it.
	Example T
}

// EventType is one registered payload type. It is immutable and safe for
// concurrent use.
type EventType struct {
	pattern     keyPattern
	domain      string
	kind        Kind
	result      string
	name        string
	aliases     []string
	description string
	goType      reflect.Type
	schema      []byte
	example     []byte
	root        *node
	decode      func([]byte) (any, error)
}

// RoutingKey is the key the type is registered under, possibly a template
// such as "artifact.{action}".
func (e *EventType) RoutingKey() string { return e.pattern.raw }

// IsTemplate reports whether RoutingKey has {placeholders}.
func (e *EventType) IsTemplate() bool { return e.pattern.isTemplate() }

// RoutingKeys lists the concrete keys the type travels under: the key, or
// every expansion of a template whose placeholders are all Enums; nil otherwise.
func (e *EventType) RoutingKeys() []string { return e.pattern.expand() }

// Domain is the domain name as Python lists it, e.g. "agent/thread".
func (e *EventType) Domain() string { return e.domain }

// Kind is Fact or Command.
func (e *EventType) Kind() Kind { return e.kind }

// Result is, for a command, the routing key of the event it publishes; "" otherwise.
func (e *EventType) Result() string { return e.result }

// Name is the Go type name qualified by its package name, "fireflies.TranscriptReady".
func (e *EventType) Name() string { return e.name }

// Aliases are the other names the type is known by, e.g. its Python class name.
func (e *EventType) Aliases() []string { return slices.Clone(e.aliases) }

// Description is a one-line summary.
func (e *EventType) Description() string { return e.description }

// Type is the Go payload type.
func (e *EventType) Type() reflect.Type { return e.goType }

// Schema is the payload's JSON Schema (draft 2020-12), indented. It is the
// document Validate enforces.
func (e *EventType) Schema() json.RawMessage { return slices.Clone(e.schema) }

// Example is a valid example payload, as compact JSON.
func (e *EventType) Example() json.RawMessage { return slices.Clone(e.example) }

// Validate checks a payload against the type's schema alone; use
// Registry.Validate to also check it against the routing key it travels under.
func (e *EventType) Validate(payload []byte) error {
	if problems := validate(e.root, payload); problems != nil {
		return &ValidationError{Problems: problems}
	}
	return nil
}

// ResolveRoutingKey fills a template key from a JSON payload; a missing or
// unusable field is a *ValidationError.
func (e *EventType) ResolveRoutingKey(payload []byte) (string, error) {
	return e.pattern.resolve(payload)
}

// Decode decodes a payload into a new value of the Go type (not a pointer),
// applying the type's defaults. It does not validate, but a payload that
// only decodes once converted as Python's lax mode converts it (Normalize)
// is decoded converted.
func (e *EventType) Decode(payload []byte) (any, error) {
	v, err := e.decode(payload)
	if err != nil {
		if canonical, nerr := e.Normalize(payload); nerr == nil {
			return e.decode(canonical)
		}
	}
	return v, err
}

// Registry maps routing keys and names to payload types. Build it with
// NewRegistry; it is safe for concurrent use.
type Registry struct {
	mu        sync.RWMutex
	byKey     map[string]*EventType       // exact routing keys
	templates []*EventType                // template routing keys, in registration order
	byName    map[string]*EventType       // routing keys (exact and template), Go names, aliases
	byType    map[reflect.Type]*EventType // every registered type
}

// NewRegistry returns an empty registry; catalog.New returns one holding the built-in domains.
func NewRegistry() *Registry {
	return &Registry{
		byKey:  map[string]*EventType{},
		byName: map[string]*EventType{},
		byType: map[reflect.Type]*EventType{},
	}
}

// Register adds payload type T under spec.RoutingKey. Registering the same
// type under the same key again is a no-op, so two packages may register a
// domain they share; any other reuse of a routing key, type or name fails
// with ErrAlreadyRegistered, a bad spec with ErrInvalidSpec.
func Register[T any](r *Registry, spec Spec[T]) error {
	t := reflect.TypeFor[T]()
	e := &EventType{
		domain: spec.Domain, kind: spec.Kind, result: spec.Result, name: t.String(),
		aliases: slices.Clone(spec.Aliases), description: spec.Description, goType: t,
		decode: func(payload []byte) (any, error) { return Decode[T](payload) },
	}
	err := fmt.Errorf("%w: Example is required", ErrInvalidSpec)
	if !reflect.ValueOf(&spec.Example).Elem().IsZero() {
		err = e.init(spec.RoutingKey, spec.Example)
	}
	if err != nil {
		return fmt.Errorf("cannot register %s under %q: %w", t, spec.RoutingKey, err)
	}
	return r.add(e)
}

// Registration is a Spec of any payload type, so RegisterDomain takes one list.
type Registration interface {
	register(r *Registry, domain string) error
}

func (s Spec[T]) register(r *Registry, domain string) error {
	if s.Domain == "" {
		s.Domain = domain
	}
	return Register(r, s)
}

// RegisterDomain registers the specs of one domain; a spec that names no
// Domain is in domain. It registers every spec it can and reports all that failed.
func RegisterDomain(r *Registry, domain string, specs ...Registration) error {
	errs := make([]error, len(specs))
	for i, s := range specs {
		errs[i] = s.register(r, domain)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("cannot register domain %s: %w", domain, err)
	}
	return nil
}

// init checks the spec copied into e and derives the pattern, schema and
// validator. It is not generic, so it is not instantiated per payload type.
func (e *EventType) init(key string, example any) error {
	t := e.goType
	if t.Kind() != reflect.Struct || t.Name() == "" {
		return fmt.Errorf("%w: a payload type must be a named struct, not %s", ErrInvalidSpec, t)
	}
	var err error
	if e.example, err = envelope.MarshalPayload(example); err != nil {
		return fmt.Errorf("%w: cannot encode its example: %w", ErrInvalidSpec, err)
	}
	if e.pattern, err = parseRoutingKey(key); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidSpec, err)
	}
	if e.domain == "" {
		e.domain, _, _ = strings.Cut(key, ".")
	}
	if slices.ContainsFunc(strings.Split(e.domain, "/"), func(w string) bool { return w == "" || !isKeyWord(w) }) {
		return fmt.Errorf("%w: domain %q: want words separated by '/', e.g. \"agent/thread\"", ErrInvalidSpec, e.domain)
	}
	switch e.kind {
	case "":
		e.kind = Fact
	case Fact, Command:
	default:
		return fmt.Errorf("%w: kind %q: want %q or %q", ErrInvalidSpec, e.kind, Fact, Command)
	}
	if e.result != "" {
		if e.kind != Command {
			return fmt.Errorf("%w: only a command has a result", ErrInvalidSpec)
		}
		if _, err := parseRoutingKey(e.result); err != nil {
			return fmt.Errorf("%w: result: %v", ErrInvalidSpec, err)
		}
	}
	for _, a := range e.aliases {
		if a == "" || strings.ContainsAny(a, " \t\r\n") {
			return fmt.Errorf("%w: alias %q is empty or has spaces", ErrInvalidSpec, a)
		}
	}
	if e.schema, err = generateSchema(t, e.name, e.description); err != nil {
		return err
	}
	if e.root, err = compileSchema(e.schema); err != nil {
		return err
	}
	for i, w := range e.pattern.words {
		if w.field == "" {
			continue
		}
		p := e.root.props[w.field]
		if p == nil || p.ref.nullable || p.ref.node.types != tString || !slices.Contains(e.root.required, p) {
			return fmt.Errorf("%w: routing key %q: placeholder {%s} must name a required string field", ErrInvalidSpec, key, w.field)
		}
		e.pattern.words[i].enum = p.ref.node.enum
	}
	if err := e.Validate(e.example); err != nil {
		return fmt.Errorf("%w: its example does not validate: %w", ErrInvalidSpec, err)
	}
	if _, err := e.ResolveRoutingKey(e.example); err != nil {
		return fmt.Errorf("%w: its example does not fill the routing key: %w", ErrInvalidSpec, err)
	}
	if _, err := e.Decode(e.example); err != nil {
		return fmt.Errorf("%w: its example does not decode: %w", ErrInvalidSpec, err)
	}
	return nil
}

func (r *Registry) add(e *EventType) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if old := r.byName[e.pattern.raw]; old != nil && old.goType == e.goType && old.pattern.raw == e.pattern.raw {
		return nil
	}
	taken := func(what string, by *EventType) error {
		return fmt.Errorf("cannot register %s under %q: %w: %s is taken by %s (%s)", e.name, e.pattern.raw, ErrAlreadyRegistered, what, by.name, by.pattern.raw)
	}
	if old := r.byType[e.goType]; old != nil {
		return taken("the Go type", old)
	}
	names := append([]string{e.pattern.raw, e.name}, e.aliases...)
	for _, name := range names {
		if old := r.byName[name]; old != nil {
			return taken(fmt.Sprintf("name %q", name), old)
		}
	}
	for _, old := range r.byType {
		if old.pattern.overlaps(e.pattern) {
			return taken("a routing key matching the same keys", old)
		}
	}
	if e.IsTemplate() {
		r.templates = append(r.templates, e)
	} else {
		r.byKey[e.pattern.raw] = e
	}
	for _, name := range names {
		r.byName[name] = e
	}
	r.byType[e.goType] = e
	return nil
}

// ExecuteAsCommand records the fact registered under routingKey as a
// command answered by result, for a service that executes what Python
// treats as a fact (llm.prompt: see cqrs/commands.LLMPrompt). EventTypes
// looked up before the call keep the fact.
func (r *Registry) ExecuteAsCommand(routingKey, result string) error {
	if _, err := parseRoutingKey(result); err != nil {
		return fmt.Errorf("cannot execute %q as a command: result: %w", routingKey, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.byKey[routingKey]
	if old == nil {
		return fmt.Errorf("cannot execute %q as a command: %w", routingKey, ErrUnknownEventType)
	}
	cmd := *old
	cmd.kind, cmd.result = Command, result
	r.byKey[routingKey], r.byType[cmd.goType] = &cmd, &cmd
	for name, e := range r.byName {
		if e == old {
			r.byName[name] = &cmd
		}
	}
	return nil
}

// Lookup finds a type by a routing key, a key that fills a template, the
// template, the Go name or an alias; the error wraps ErrUnknownEventType.
func (r *Registry) Lookup(name string) (*EventType, error) { return r.find(r.byName, name) }

// LookupKey finds the type a message with this concrete routing key carries;
// unlike Lookup it accepts no type names.
func (r *Registry) LookupKey(routingKey string) (*EventType, error) {
	return r.find(r.byKey, routingKey)
}

func (r *Registry) find(exact map[string]*EventType, key string) (*EventType, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if e := exact[key]; e != nil {
		return e, nil
	}
	for _, e := range r.templates {
		if e.pattern.matches(key) {
			return e, nil
		}
	}
	return nil, fmt.Errorf("%w %q", ErrUnknownEventType, key)
}

// Validate checks a payload that travels under routingKey against its
// type's schema and, for a template, that the placeholder fields agree with
// the key. It returns nil, a *ValidationError, or an error wrapping
// ErrUnknownEventType (see the package doc for the policy).
func (r *Registry) Validate(routingKey string, payload []byte) error {
	e, err := r.LookupKey(routingKey)
	if err != nil {
		return err
	}
	problems := validate(e.root, payload)
	if problems == nil && e.IsTemplate() {
		problems = e.pattern.mismatches(routingKey, payload)
	}
	if problems != nil {
		return &ValidationError{Problems: problems}
	}
	return nil
}

// ValidateValue encodes a Go payload and validates it under routingKey, so
// a producer catches a missing required field before publishing.
func (r *Registry) ValidateValue(routingKey string, v any) error {
	payload, err := envelope.MarshalPayload(v)
	if err != nil {
		return fmt.Errorf("cannot encode %T: %w", v, err)
	}
	return r.Validate(routingKey, payload)
}

// RoutingKeyFor returns the routing key a Go payload travels under, filling
// a template from the value's fields (artifact.Changed{Action: "created"} →
// "artifact.created"). v may be a value or a pointer to one.
func (r *Registry) RoutingKeyFor(v any) (string, error) {
	t := reflect.TypeOf(v)
	if t == nil {
		return "", fmt.Errorf("%w: nil payload", ErrUnknownEventType)
	}
	r.mu.RLock()
	e := r.byType[deref(t)]
	r.mu.RUnlock()
	if e == nil {
		return "", fmt.Errorf("%w: no routing key for Go type %s", ErrUnknownEventType, t)
	}
	if !e.IsTemplate() {
		return e.pattern.raw, nil
	}
	payload, err := envelope.MarshalPayload(v)
	if err != nil {
		return "", fmt.Errorf("cannot encode %T: %w", v, err)
	}
	return e.ResolveRoutingKey(payload)
}

// Filter selects event types in Registry.Events. The zero Filter selects all.
type Filter struct {
	// Domain selects a domain and those nested in it ("agent" selects
	// "agent/thread", also spelt "agent.thread"). Optional.
	Domain string
	// Kind selects Fact or Command. Optional.
	Kind Kind
}

func (f Filter) match(e *EventType) bool {
	d := strings.ReplaceAll(f.Domain, ".", "/")
	return (f.Kind == "" || e.kind == f.Kind) && (d == "" || e.domain == d || strings.HasPrefix(e.domain, d+"/"))
}

// Events lists the registered types that f selects, sorted by routing key.
func (r *Registry) Events(f Filter) []*EventType {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var out []*EventType
	for _, e := range r.byType {
		if f.match(e) {
			out = append(out, e)
		}
	}
	slices.SortFunc(out, func(a, b *EventType) int { return cmp.Compare(a.pattern.raw, b.pattern.raw) })
	return out
}

// Domains lists the domain names, sorted, as Python's list_domains does.
func (r *Registry) Domains() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var out []string
	for _, e := range r.byType {
		out = append(out, e.domain)
	}
	slices.Sort(out)
	return slices.Compact(out)
}
