package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"

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
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "routing key:\t%s\n", et.RoutingKey())
	if et.IsTemplate() {
		fmt.Fprintf(tw, "expands to:\t%s\n", strings.Join(et.RoutingKeys(), ", "))
	}
	fmt.Fprintf(tw, "domain:\t%s\n", et.Domain())
	switch et.Kind() {
	case domains.Command:
		fmt.Fprintf(tw, "kind:\tcommand (a command processor executes it)\n")
		if et.Result() != "" {
			fmt.Fprintf(tw, "result event:\t%s\n", et.Result())
		}
	default:
		fmt.Fprintf(tw, "kind:\tfact (an event: it reports what happened)\n")
	}
	fmt.Fprintf(tw, "go type:\t%s\n", et.Name())
	if aliases := et.Aliases(); len(aliases) > 0 {
		fmt.Fprintf(tw, "aliases:\t%s\n", strings.Join(aliases, ", "))
	}
	if et.Description() != "" {
		fmt.Fprintf(tw, "description:\t%s\n", et.Description())
	}
	if err := tw.Flush(); err != nil {
		return err
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
