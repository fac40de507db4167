package main

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/33god/bloodbank-go/domains"
	"github.com/33god/bloodbank-go/domains/catalog"
)

func (a *app) listEventsCommand() *cobra.Command {
	var domain, kind string
	cmd := &cobra.Command{
		Use:   "list-events",
		Short: "List the event types of the catalogue, grouped by domain",
		Long: `List every registered event type, grouped by domain: its routing key,
whether it is a command (which a command processor executes) or a fact (which
reports what happened), its Go type name and a one-line description. A
templated routing key such as artifact.{action} is followed by the concrete
keys it expands to.`,
		Example: `  bb list-events
  bb list-events --domain agent
  bb list-events --type command`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			f := domains.Filter{Domain: domain}
			if kind != "" {
				k, err := domains.ParseKind(kind)
				if err != nil {
					return usageErrorf("--type %q: want event or command", kind)
				}
				f.Kind = k
			}
			return a.listEvents(f)
		},
	}
	cmd.Flags().StringVar(&domain, "domain", "", "only this domain and the domains nested in it (e.g. agent, agent/thread)")
	cmd.Flags().StringVar(&kind, "type", "", "only events (facts) or commands: event|command")
	return cmd
}

// listEvents prints the event types f selects, grouped by domain.
func (a *app) listEvents(f domains.Filter) error {
	reg, err := catalog.New()
	if err != nil {
		return fmt.Errorf("cannot load the event catalogue: %w", err)
	}
	if f.Domain != "" && !domainExists(reg, f.Domain) {
		return usageErrorf("unknown domain %q: want one of %s", f.Domain, strings.Join(reg.Domains(), ", "))
	}
	events := reg.Events(f)
	if len(events) == 0 {
		what := "event types"
		if f.Kind == domains.Command {
			what = "commands"
		} else if f.Kind == domains.Fact {
			what = "events"
		}
		fmt.Fprintf(a.stderr, "bb: no %s in domain %s\n", what, f.Domain)
		return nil
	}
	writeEventList(a.stdout, reg.Domains(), events)
	return nil
}

// domainExists reports whether name (or name with "." for "/") is a domain
// or contains one.
func domainExists(reg *domains.Registry, name string) bool {
	name = strings.ReplaceAll(name, ".", "/")
	for _, d := range reg.Domains() {
		if d == name || strings.HasPrefix(d, name+"/") {
			return true
		}
	}
	return false
}

// writeEventList prints one aligned table: a line per domain, then a line
// per event type, then for a template a line per concrete key.
func writeEventList(w io.Writer, domainOrder []string, events []*domains.EventType) {
	byDomain := map[string][]*domains.EventType{}
	for _, et := range events {
		byDomain[et.Domain()] = append(byDomain[et.Domain()], et)
	}
	var buf bytes.Buffer
	tw := tabwriter.NewWriter(&buf, 0, 4, 2, ' ', 0)
	first := true
	for _, d := range domainOrder {
		list := byDomain[d]
		if len(list) == 0 {
			continue
		}
		if !first {
			fmt.Fprint(tw, "\t\t\t\n")
		}
		first = false
		fmt.Fprintf(tw, "%s\t\t\t\n", d)
		for _, et := range list {
			kind := string(et.Kind())
			if et.Kind() == domains.Command && et.Result() != "" {
				kind += " → " + et.Result()
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", et.RoutingKey(), kind, et.Name(), et.Description())
			if !et.IsTemplate() {
				continue
			}
			keys := et.RoutingKeys()
			if len(keys) == 0 {
				fmt.Fprint(tw, "    (any value of its placeholders)\t\t\t\n")
			}
			for _, k := range keys {
				fmt.Fprintf(tw, "    %s\t\t\t\n", k)
			}
		}
	}
	_ = tw.Flush()
	// Empty trailing cells pad lines with spaces; drop them.
	for line := range strings.Lines(buf.String()) {
		fmt.Fprintln(w, strings.TrimRight(line, " \n"))
	}
}
