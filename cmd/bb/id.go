package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/33god/bloodbank-go/bus/envelope"
	"github.com/33god/bloodbank-go/domains"
	"github.com/33god/bloodbank-go/domains/catalog"
)

func (a *app) idCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "id EVENT_TYPE [NAME=VALUE...]",
		Short: "Print the deterministic event id of an event type and its identifying fields",
		Long: `Print the deterministic event id the Python services compute with
generate_event_id(event_type, **fields): uuid5(NAMESPACE_OID,
"bloodbank:" + event_type + ":" + the fields sorted by name as name=value,
joined by "|").

Values are taken as strings. That gives the id of Python str() values:
an integer field 42 is written 42, a boolean True, an absent value None.
Publish with the id (bb publish --event-id) to make a repeat of the same fact
recognisable to consumers.`,
		Example: `  bb id fireflies.transcript.upload meeting_id=abc123
  bb id github.pr.created repo_owner=33god repo_name=bloodbank pr_number=42`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			eventType := args[0]
			fields := make(map[string]any, len(args)-1)
			for _, arg := range args[1:] {
				name, value, ok := strings.Cut(arg, "=")
				switch {
				case !ok:
					return usageErrorf("field %q has no '=': write each field as name=value, e.g. meeting_id=abc123", arg)
				case name == "":
					return usageErrorf("field %q has no name before '=': write it as name=value", arg)
				}
				if _, dup := fields[name]; dup {
					return usageErrorf("field %q is given twice: give each field once", name)
				}
				fields[name] = value
			}
			if reg, err := catalog.New(); err == nil {
				if _, err := reg.LookupKey(eventType); errors.Is(err, domains.ErrUnknownEventType) {
					a.warnf("%s; the id is computed anyway, but a misspelt type gives a different id", unknownTypeMessage(reg, eventType))
				}
			}
			id, err := envelope.DeterministicID(eventType, fields)
			if err != nil {
				return usageErrorf("cannot compute the id: %v", err)
			}
			fmt.Fprintln(a.stdout, id)
			return nil
		},
	}
}
