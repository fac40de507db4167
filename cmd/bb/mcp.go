package main

import (
	"context"
	"log/slog"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/spf13/cobra"

	"github.com/33god/bloodbank-go/cmd/internal/mcpserver"
	"github.com/33god/bloodbank-go/correlation"
	"github.com/33god/bloodbank-go/domains/catalog"
	"github.com/33god/bloodbank-go/middleware"
)

func (a *app) mcpCommand() *cobra.Command {
	var admin bool
	cmd := &cobra.Command{
		Use:   "mcp",
		Short: "Serve the bus to an AI agent: an MCP server on stdin and stdout",
		Long: `Serve the Model Context Protocol on stdin and stdout, for an AI agent (Claude
Code, Gemini CLI, Letta...) to use the bus directly. Tools:

  list_event_types     the catalogue, by domain, kind or free text
  describe_event_type  one type's routing key, kind, JSON Schema and example
  publish_event        validated as bb publish validates (BB_STRICT_TYPES too)
  watch_events         wait (bounded) for events; caused_by gets what a publish caused
  trace_event          the correlation graph in Redis
  list_parked, replay_parked
                       a service's poison queue, only with --admin

Each schema is also a resource, bloodbank://schemas/{routing_key}. Events
published through it say source type agent, name the MCP client in
source.app and agent_context, and have their correlation links recorded in
Redis like any other, so bb trace shows them.

Logs go to stderr; stdout carries only the protocol. Needs RABBIT_URL (exit
2 without it) and REDIS_* for trace_event. An agent's configuration:

  {"mcpServers": {"bloodbank": {"command": "bb", "args": ["mcp"],
    "env": {"RABBIT_URL": "amqp://user:password@localhost:5672/"}}}}`,
		Example: `  bb mcp
  bb mcp --admin`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.runMCP(cmd.Context(), admin) },
	}
	cmd.Flags().BoolVar(&admin, "admin", false, "also offer list_parked and replay_parked (poison queues)")
	return cmd
}

func (a *app) runMCP(ctx context.Context, admin bool) error {
	events, err := catalog.New()
	if err != nil {
		return err
	}
	cfg, logger, b, err := a.connect(ctx)
	if err != nil {
		return err
	}
	defer b.Close()
	client, store, err := openStore(cfg, logger, 0)
	if err != nil {
		return err
	}
	defer client.Close()
	// Unbatched: an agent traces right after it publishes, and a link still
	// queued would be missing from its answer.
	rec, err := correlation.NewRecorder(store, correlation.RecorderConfig{Logger: logger})
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), serveShutdownTimeout)
		defer cancel()
		if err := rec.Close(sctx); err != nil {
			logger.Warn("correlation links still queued were not written", slog.String("error", err.Error()))
		}
	}()
	b.DecoratePublisher(func(p message.Publisher) message.Publisher { return middleware.NewRecordingPublisher(p, rec) })

	srv, err := mcpserver.New(mcpserver.Config{Admin: admin, ServiceName: cfg.Bus.ServiceName, StrictTypes: cfg.Bus.StrictTypes,
		Timeout: a.timeout, Logger: logger}, mcpserver.Deps{Bus: b, Events: events, Correlation: store})
	if err != nil {
		return err
	}
	defer srv.Close()
	logger.Info("mcp: serving on stdio", slog.String("exchange", cfg.Bus.ExchangeName), slog.Bool("admin", admin))
	if err := srv.Run(ctx, &mcp.StdioTransport{}); err != nil && ctx.Err() == nil {
		return infraErrorf("mcp: %v", err)
	}
	return nil
}
