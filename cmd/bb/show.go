package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/33god/bloodbank-go/domains"
	"github.com/33god/bloodbank-go/domains/catalog"
)

func (a *app) showCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "show NAME",
		Short: "Show one event type: domain, routing key, kind, JSON Schema and an example",
		Long: `Show one registered event type. NAME is a routing key
(agent.thread.prompt, or a concrete key of a template such as artifact.created),
a template (artifact.{action}), a Go type name (thread.Prompt) or a Python
class name (AgentThreadPrompt).

Prints its domain, routing key(s), whether it is a command or a fact (and for
a command the event its execution publishes), its JSON Schema, which is exactly
what bb publish and the services validate against, and an example payload,
which is what bb publish --mock sends.`,
		Example: `  bb show agent.thread.prompt
  bb show FirefliesTranscriptReadyPayload
  bb show 'artifact.{action}'`,
		Args: cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			reg, err := catalog.New()
			if err != nil {
				return fmt.Errorf("cannot load the event catalogue: %w", err)
			}
			et, err := reg.Lookup(args[0])
			if errors.Is(err, domains.ErrUnknownEventType) {
				return usageErrorf("%s", unknownTypeMessage(reg, args[0]))
			} else if err != nil {
				return usageErrorf("cannot look up %q: %v", args[0], err)
			}
			return a.show(et)
		},
	}
}

func (a *app) show(et *domains.EventType) error {
	w := a.stdout
	field := func(label, value string) { fmt.Fprintf(w, "%-15s%s\n", label+":", value) }
	field("routing key", et.RoutingKey())
	if et.IsTemplate() {
		field("expands to", strings.Join(et.RoutingKeys(), ", "))
	}
	field("domain", et.Domain())
	switch et.Kind() {
	case domains.Command:
		field("kind", "command (a command processor executes it)")
		if et.Result() != "" {
			field("result event", et.Result())
		}
	default:
		field("kind", "fact (an event: it reports what happened)")
	}
	field("go type", et.Name())
	if aliases := et.Aliases(); len(aliases) > 0 {
		field("aliases", strings.Join(aliases, ", "))
	}
	if et.Description() != "" {
		field("description", et.Description())
	}
	var schema bytes.Buffer
	if err := json.Indent(&schema, et.Schema(), "", "  "); err != nil {
		return fmt.Errorf("cannot print the schema of %s: %w", et.RoutingKey(), err)
	}
	fmt.Fprintf(a.stdout, "\nJSON Schema:\n%s\n", schema.Bytes())
	var example bytes.Buffer
	if err := json.Indent(&example, et.Example(), "", "  "); err != nil {
		return fmt.Errorf("cannot print the example of %s: %w", et.RoutingKey(), err)
	}
	fmt.Fprintf(a.stdout, "\nExample payload (bb publish %s --mock):\n%s\n", et.RoutingKey(), example.Bytes())
	return nil
}
