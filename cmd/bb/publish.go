package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/33god/bloodbank-go/bus/amqp"
	"github.com/33god/bloodbank-go/bus/envelope"
	"github.com/33god/bloodbank-go/bus/transport"
	"github.com/33god/bloodbank-go/domains"
	"github.com/33god/bloodbank-go/domains/catalog"
)

type publishOptions struct {
	mock         bool
	jsonText     string
	payloadFile  string
	envelopeJSON string
	envelopeFile string

	eventID        string
	correlationIDs []string
	sourceType     string
	sourceApp      string
	sourceHost     string

	dryRun         bool
	skipValidation bool
	strict         bool
	permissive     bool
	strictTypes    bool // BB_STRICT_TYPES
}

// Payload-source flags: exactly one must be given.
const (
	flagMock         = "mock"
	flagJSON         = "json"
	flagPayloadFile  = "payload-file"
	flagEnvelopeJSON = "envelope-json"
	flagEnvelopeFile = "envelope-file"
)

var payloadSources = []string{flagMock, flagJSON, flagPayloadFile, flagEnvelopeJSON, flagEnvelopeFile}

// Flags that build the envelope, which an envelope given whole already has.
var envelopeFieldFlags = []string{"event-id", "correlation-id", "source-type", "source-app", "source-host"}

func (a *app) publishCommand() *cobra.Command {
	var o publishOptions
	cmd := &cobra.Command{
		Use:   "publish ROUTING_KEY_OR_NAME (--mock | --json TEXT|@FILE|- | --payload-file PATH | --envelope-json TEXT|@FILE|- | --envelope-file PATH)",
		Short: "Publish one event (or print it with --dry-run)",
		Long: `Publish one event to the exchange under its routing key, and print its event id.

ROUTING_KEY_OR_NAME is a routing key (fireflies.transcript.ready), a Go type
name (fireflies.TranscriptReady), a Python class name (FirefliesTranscriptReadyPayload),
or a template (artifact.{action}) whose {fields} are filled from the payload.

Give exactly one payload source:
  --mock                    the catalogue's example payload for the event type
  --json TEXT|@FILE|-       the payload JSON as text, from a file, or from stdin
  --payload-file PATH       the payload JSON from a file
  --envelope-json TEXT|@FILE|-, --envelope-file PATH
                            a whole v1 envelope, published as is under its
                            event_type (the argument may be left out; if given
                            it must equal event_type)

The payload is validated against the catalogue's JSON Schema; each problem is
printed with its JSON path, and nothing is published. An unknown event type is
an error (--strict-validation, the default) unless --permissive-validation is
given, which publishes it with a warning. --skip-validation skips the payload
check, not the unknown-type policy.

The publish waits for the broker's confirm. If no queue is bound to the
routing key the broker drops the event: bb then warns on stderr that nobody is
listening and still exits 0, because publishing a fact nobody subscribes to
yet is not an error.

--dry-run prints the exact envelope JSON that would be published and connects
to nothing. Publishing needs RABBIT_URL (exit 2 without it).`,
		Example: `  bb publish agent.thread.prompt --mock --dry-run
  bb publish agent.thread.prompt --json '{"provider": "anthropic", "prompt": "Summarise the standup"}'
  bb publish fireflies.TranscriptUpload --payload-file upload.json --correlation-id 0b6f1c9e-3d55-4a57-9c57-2f7d0f0e6a11
  bb publish 'artifact.{action}' --json @artifact.json     # published as artifact.created, .updated...
  cat envelope.json | bb publish --envelope-json -
  bb publish acme.thing.happened --json '{}' --permissive-validation`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.runPublish(cmd, args, o)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&o.mock, flagMock, false, "publish the catalogue's example payload for the event type")
	f.StringVar(&o.jsonText, flagJSON, "", "payload JSON: the text itself, @FILE, or - for stdin")
	f.StringVar(&o.payloadFile, flagPayloadFile, "", "read the payload JSON from `PATH`")
	f.StringVar(&o.envelopeJSON, flagEnvelopeJSON, "", "a whole envelope: the JSON text, @FILE, or - for stdin")
	f.StringVar(&o.envelopeFile, flagEnvelopeFile, "", "read a whole envelope from `PATH`")
	f.StringVar(&o.eventID, "event-id", "", "use this event id (`UUID`, e.g. from 'bb id') instead of a random one")
	f.StringSliceVar(&o.correlationIDs, "correlation-id", nil, "a parent event id (`UUID`); repeat it, or separate with commas, for several")
	f.StringVar(&o.sourceType, "source-type", string(envelope.TriggerManual), "source.type, one of "+joinTriggerTypes())
	f.StringVar(&o.sourceApp, "source-app", "bloodbank-cli", "source.app")
	f.StringVar(&o.sourceHost, "source-host", envelope.Hostname(), "source.host")
	f.BoolVar(&o.dryRun, "dry-run", false, "print the envelope JSON that would be published; publish nothing, connect to nothing")
	f.BoolVar(&o.skipValidation, "skip-validation", false, "do not check the payload against the event type's schema")
	f.BoolVar(&o.strict, "strict-validation", false, "an unknown event type is an error (the default)")
	f.BoolVar(&o.permissive, "permissive-validation", false, "publish an unknown event type unvalidated, with a warning")
	return cmd
}

func joinTriggerTypes() string {
	names := make([]string, len(envelope.TriggerTypes))
	for i, t := range envelope.TriggerTypes {
		names[i] = string(t)
	}
	return strings.Join(names, ", ")
}

func (a *app) runPublish(cmd *cobra.Command, args []string, o publishOptions) error {
	var given []string
	for _, name := range payloadSources {
		if cmd.Flags().Changed(name) && (name != flagMock || o.mock) {
			given = append(given, "--"+name)
		}
	}
	switch len(given) {
	case 0:
		return usageErrorf("no payload given: pass exactly one of --mock, --json, --payload-file, --envelope-json, --envelope-file (see 'bb publish --help')")
	case 1:
	default:
		return usageErrorf("more than one payload source (%s): pass exactly one", strings.Join(given, ", "))
	}
	if o.strict && o.permissive {
		return usageErrorf("--strict-validation and --permissive-validation contradict each other: pass at most one")
	}
	reg, err := catalog.New()
	if err != nil {
		return fmt.Errorf("cannot load the event catalogue: %w", err)
	}
	cfg, err := a.settings()
	if err != nil {
		return err
	}
	o.strictTypes = cfg.Bus.StrictTypes

	var env envelope.Envelope
	if source := given[0]; source == "--"+flagEnvelopeJSON || source == "--"+flagEnvelopeFile {
		env, err = a.envelopeFromFlags(cmd, args, o, reg, source)
	} else {
		if len(args) == 0 {
			return usageErrorf("missing ROUTING_KEY_OR_NAME: say which event to publish, e.g. 'bb publish agent.thread.prompt --mock' (see 'bb list-events')")
		}
		env, err = a.envelopeFromPayload(cmd, args[0], o, reg)
	}
	if err != nil {
		return err
	}
	body, err := env.MarshalJSON()
	if err != nil {
		return usageErrorf("cannot encode the envelope: %v", err)
	}
	if o.dryRun {
		fmt.Fprintf(a.stdout, "%s\n", body)
		return nil
	}
	return a.publish(cmd.Context(), env)
}

// envelopeFromPayload builds the envelope for a payload given on its own.
func (a *app) envelopeFromPayload(cmd *cobra.Command, arg string, o publishOptions, reg *domains.Registry) (envelope.Envelope, error) {
	opts, err := envelopeOptions(o)
	if err != nil {
		return envelope.Envelope{}, err
	}
	et, lookupErr := reg.Lookup(arg)
	if lookupErr != nil && !errors.Is(lookupErr, domains.ErrUnknownEventType) {
		return envelope.Envelope{}, usageErrorf("cannot look up %q: %v", arg, lookupErr)
	}

	var payload []byte
	var what string
	switch {
	case o.mock:
		if et == nil {
			return envelope.Envelope{}, usageErrorf("--mock needs a registered event type, and %s", unknownTypeMessage(reg, arg))
		}
		what = "the example payload of " + et.RoutingKey()
		payload, err = mockPayload(reg, et, arg)
	case cmd.Flags().Changed(flagJSON):
		what = "--json"
		payload, err = a.readSource("--json", o.jsonText)
	default:
		what = "--payload-file"
		if o.payloadFile == "-" {
			payload, err = a.readSource(what, "-")
		} else {
			payload, err = readFile(what, o.payloadFile)
		}
	}
	if err != nil {
		return envelope.Envelope{}, err
	}
	if err := checkJSONObject("the payload ("+what+")", payload); err != nil {
		return envelope.Envelope{}, err
	}

	key := arg
	if et == nil {
		if strings.ContainsAny(arg, "{}") {
			return envelope.Envelope{}, usageErrorf("cannot fill the template %q: no registered event type has it%s", arg, listHint)
		}
		if err := checkRoutingKey(arg); err != nil {
			return envelope.Envelope{}, err
		}
		if err := a.unknownType(reg, arg, o); err != nil {
			return envelope.Envelope{}, err
		}
	} else if !isConcreteKeyOf(reg, arg, et) {
		key, err = et.ResolveRoutingKey(payload)
		if err != nil {
			return envelope.Envelope{}, validationFailure(fmt.Sprintf("cannot fill the routing key %s from the payload", et.RoutingKey()), err)
		}
	}
	if et != nil && !o.skipValidation {
		if payload, err = checkPayload(reg, key, payload, o.strictTypes); err != nil {
			return envelope.Envelope{}, validationFailure(fmt.Sprintf("the payload of %s fails validation (fix it, or pass --skip-validation to publish it anyway)", key), err)
		}
	}
	env, err := envelope.New(key, json.RawMessage(payload), opts...)
	if err != nil {
		return envelope.Envelope{}, usageErrorf("cannot build the envelope: %v", err)
	}
	return env, nil
}

// envelopeFromFlags reads a whole envelope, to be published as is.
func (a *app) envelopeFromFlags(cmd *cobra.Command, args []string, o publishOptions, reg *domains.Registry, what string) (envelope.Envelope, error) {
	for _, name := range envelopeFieldFlags {
		if cmd.Flags().Changed(name) {
			return envelope.Envelope{}, usageErrorf("--%s cannot change an envelope given whole (it is published as is): edit the envelope instead", name)
		}
	}
	var raw []byte
	var err error
	switch {
	case what == "--"+flagEnvelopeJSON:
		raw, err = a.readSource(what, o.envelopeJSON)
	case o.envelopeFile == "-":
		raw, err = a.readSource(what, "-")
	default:
		raw, err = readFile(what, o.envelopeFile)
	}
	if err != nil {
		return envelope.Envelope{}, err
	}
	if err := checkJSONObject("the envelope ("+what+")", raw); err != nil {
		return envelope.Envelope{}, err
	}
	env, err := envelope.DecodeNew(raw)
	if err != nil {
		return envelope.Envelope{}, usageErrorf("the envelope (%s) is not a Bloodbank v1 envelope: %v", what, err)
	}
	if len(args) == 1 && args[0] != env.EventType {
		return envelope.Envelope{}, usageErrorf("the argument %q differs from the envelope's event_type %q: leave the argument out, or make them equal", args[0], env.EventType)
	}
	if err := checkRoutingKey(env.EventType); err != nil {
		return envelope.Envelope{}, usageErrorf("the envelope's event_type: %v", err)
	}
	if err := env.Validate(); err != nil {
		return envelope.Envelope{}, usageErrorf("the envelope (%s) cannot be published: %v", what, err)
	}
	if _, err := reg.LookupKey(env.EventType); errors.Is(err, domains.ErrUnknownEventType) {
		if err := a.unknownType(reg, env.EventType, o); err != nil {
			return envelope.Envelope{}, err
		}
	} else if !o.skipValidation {
		if env.Payload, err = checkPayload(reg, env.EventType, env.Payload, o.strictTypes); err != nil {
			return envelope.Envelope{}, validationFailure(fmt.Sprintf("the envelope's payload of %s fails validation (fix it, or pass --skip-validation to publish it anyway)", env.EventType), err)
		}
	}
	return env, nil
}

// envelopeOptions turns the envelope-field flags into options.
func envelopeOptions(o publishOptions) ([]envelope.Option, error) {
	var opts []envelope.Option
	if o.eventID != "" {
		id, err := parseUUID("--event-id", o.eventID)
		if err != nil {
			return nil, err
		}
		opts = append(opts, envelope.WithEventID(id))
	}
	if len(o.correlationIDs) > 0 {
		ids := make([]uuid.UUID, 0, len(o.correlationIDs))
		for _, s := range o.correlationIDs {
			id, err := parseUUID("--correlation-id", s)
			if err != nil {
				return nil, err
			}
			ids = append(ids, id)
		}
		opts = append(opts, envelope.WithCorrelationIDs(ids...))
	}
	if !slices.Contains(envelope.TriggerTypes, envelope.TriggerType(o.sourceType)) {
		return nil, usageErrorf("--source-type %q is not a trigger type: want one of %s", o.sourceType, joinTriggerTypes())
	}
	if strings.TrimSpace(o.sourceHost) == "" {
		return nil, usageErrorf("--source-host is empty: give a host name, or leave the flag out for this machine's (%s)", envelope.Hostname())
	}
	return append(opts, envelope.WithSource(envelope.Source{Host: o.sourceHost, Type: envelope.TriggerType(o.sourceType), App: o.sourceApp})), nil
}

// parseUUID reads a UUID flag or argument, refusing the nil UUID.
func parseUUID(what, s string) (uuid.UUID, error) {
	id, err := uuid.Parse(strings.TrimSpace(s))
	if err != nil {
		return uuid.Nil, usageErrorf("%s %q is not a UUID: want the form 0b6f1c9e-3d55-4a57-9c57-2f7d0f0e6a11", what, s)
	}
	if id == uuid.Nil {
		return uuid.Nil, usageErrorf("%s is the nil UUID, which no event has: give a real event id", what)
	}
	return id, nil
}

// isConcreteKeyOf reports whether arg is itself a routing key et travels
// under, rather than one of its names or its template.
func isConcreteKeyOf(reg *domains.Registry, arg string, et *domains.EventType) bool {
	if strings.ContainsAny(arg, "{}") {
		return false
	}
	k, err := reg.LookupKey(arg)
	return err == nil && k == et
}

// mockPayload is the example payload of et, with the placeholders of a
// template filled from arg when arg is one of its concrete keys: the example
// of artifact.{action} says "created", and `bb publish artifact.updated
// --mock` must publish a payload that says "updated".
func mockPayload(reg *domains.Registry, et *domains.EventType, arg string) ([]byte, error) {
	payload := []byte(et.Example())
	if !et.IsTemplate() || !isConcreteKeyOf(reg, arg, et) {
		return payload, nil
	}
	tmpl, words := strings.Split(et.RoutingKey(), "."), strings.Split(arg, ".")
	if len(tmpl) != len(words) {
		return payload, nil
	}
	for i, w := range tmpl {
		if len(w) > 2 && w[0] == '{' && w[len(w)-1] == '}' {
			var err error
			if payload, err = setTopLevelString(payload, w[1:len(w)-1], words[i]); err != nil {
				return nil, fmt.Errorf("cannot fill %s into the example of %s: %w", w, et.RoutingKey(), err)
			}
		}
	}
	return payload, nil
}

// checkRoutingKey refuses what cannot be a routing key to publish under.
func checkRoutingKey(key string) error {
	switch {
	case key == "":
		return usageErrorf("the routing key is empty")
	case len(key) > 255:
		return usageErrorf("the routing key is %d bytes long; AMQP allows 255", len(key))
	case strings.ContainsAny(key, "*#"):
		return usageErrorf("%q is a binding pattern (* and # are wildcards), not a routing key to publish under", key)
	case strings.ContainsAny(key, "{}"):
		return usageErrorf("%q is a template: give a concrete routing key", key)
	case strings.ContainsAny(key, " \t\r\n"):
		return usageErrorf("%q contains white space, which no routing key has", key)
	}
	return nil
}

// unknownType applies the unknown-type policy: an error by default, a
// warning with --permissive-validation.
func (a *app) unknownType(reg *domains.Registry, key string, o publishOptions) error {
	if o.permissive {
		a.warnf("%q is not in the event catalogue; publishing it unvalidated (--permissive-validation)", key)
		return nil
	}
	return usageErrorf("%s\nto publish it anyway, pass --permissive-validation", unknownTypeMessage(reg, key))
}

// checkPayload validates payload under key and returns it in canonical
// form, converting what Python's consumers convert in their lax mode
// unless BB_STRICT_TYPES asks for strict types.
func checkPayload(reg *domains.Registry, key string, payload []byte, strict bool) ([]byte, error) {
	if strict {
		return payload, reg.Validate(key, payload)
	}
	return reg.Normalize(key, payload)
}

// validationFailure lists a validation error's problems one per line.
func validationFailure(context string, err error) error {
	if ve, ok := errors.AsType[*domains.ValidationError](err); ok && len(ve.Problems) > 0 {
		lines := make([]string, len(ve.Problems))
		for i, p := range ve.Problems {
			lines[i] = p.String()
		}
		return usageErrorf("%s:\n%s", context, strings.Join(lines, "\n"))
	}
	return usageErrorf("%s: %v", context, err)
}

// publish sends env and waits for the broker's confirm, within --timeout.
func (a *app) publish(ctx context.Context, env envelope.Envelope) error {
	cfg, logger, err := a.setup()
	if err != nil {
		return err
	}
	// The bus reports an unroutable publish as an error instead of logging
	// it, so the one warning below is all the user sees.
	cfg.Bus.UnroutableIsError = true
	b, err := a.openBus(ctx, cfg.Bus, logger)
	if err != nil {
		return err
	}
	defer b.Close()
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	err = b.Publish(ctx, env)
	if errors.Is(err, transport.ErrUnroutable) {
		a.warnf("no queue is bound to routing key %q on exchange %q: the broker confirmed event %s but dropped it, because nobody listens for it yet",
			env.EventType, cfg.Bus.ExchangeName, env.EventID)
		err = nil
	}
	if err != nil {
		return infraErrorf("%v\nthe event may not have been stored: check the broker at %s (its logs, disk and memory alarms), then publish again with --event-id %s so consumers can tell a repeat",
			err, amqp.RedactURL(cfg.Bus.RabbitURL), env.EventID)
	}
	fmt.Fprintln(a.stdout, env.EventID)
	return nil
}
