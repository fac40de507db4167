package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/33god/bloodbank-go/cmd/internal/asyncapi"
	"github.com/33god/bloodbank-go/domains/catalog"
)

func (a *app) asyncAPICommand() *cobra.Command {
	return &cobra.Command{
		Use:   "asyncapi",
		Short: "Print the event catalogue as an AsyncAPI 3.0 document (JSON)",
		Long: `Print the event catalogue as an AsyncAPI 3.0.0 document, indented JSON on
stdout: the AMQP server (the host of RABBIT_URL, without its credentials;
localhost when unset), one channel per routing key bound to the topic exchange
EXCHANGE_NAME, each message as the v1 envelope around the type's JSON Schema
with an example, and an operation per channel that tells commands
(x-bloodbank-kind: command, with their result) from facts. It needs no broker.
A running gateway serves the same document, with its own service's domains, at
GET /asyncapi.json.`,
		Example: `  bb asyncapi > asyncapi.json
  RABBIT_URL=amqp://guest:guest@rabbit:5672/ bb asyncapi | jq '.channels | keys'`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			cfg, err := a.settings()
			if err != nil {
				return err
			}
			reg, err := catalog.New()
			if err != nil {
				return fmt.Errorf("cannot load the event catalogue: %w", err)
			}
			doc, err := asyncapi.Generate(reg, asyncapi.Options{ExchangeName: cfg.Bus.ExchangeName, BrokerURL: cfg.Bus.RabbitURL})
			if err != nil {
				return usageErrorf("%v (fix RABBIT_URL)", err)
			}
			_, err = a.stdout.Write(doc)
			return err
		},
	}
}
