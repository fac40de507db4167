package main

import (
	"github.com/spf13/cobra"

	"github.com/33god/bloodbank-go/domains"
)

func (a *app) listCommandsCommand() *cobra.Command {
	var domain string
	cmd := &cobra.Command{
		Use:   "list-commands",
		Short: "List the command types of the catalogue (list-events --type command)",
		Long: `List the registered commands, grouped by domain: payloads that a command
processor executes, each with the routing key of the event its execution
publishes.`,
		Example: `  bb list-commands
  bb list-commands --domain agent`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			return a.listEvents(domains.Filter{Domain: domain, Kind: domains.Command})
		},
	}
	cmd.Flags().StringVar(&domain, "domain", "", "only this domain and the domains nested in it")
	return cmd
}
