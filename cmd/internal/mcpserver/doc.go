// Package mcpserver lets AI agents use the Bloodbank directly: it is a Model
// Context Protocol server, built on the official Go SDK
// (github.com/modelcontextprotocol/go-sdk), over the event catalogue,
// validated publishing, watching the bus, the correlation graph and, for
// administrators, the poison queues. `bb mcp` serves it on stdio; the HTTP
// gateway serves it (streamable HTTP) at /mcp.
//
// # Tools
//
//	list_event_types     the catalogue; optional domain, kind and free-text query
//	describe_event_type  one type: routing key, kind, JSON Schema, example
//	publish_event        validate a payload as `bb publish` does, then publish it
//	watch_events         wait (bounded) for events matching patterns, at most N
//	trace_event          parents, children, ancestors and descendants (needs Deps.Correlation)
//	list_parked          the poison queue of a service (Config.Admin only)
//	replay_parked        send parked messages back to their service (Config.Admin only)
//
// Every input and output has a JSON Schema, inferred from the Go structs of
// this package. Each event type's schema is also a resource, at
// bloodbank://schemas/{routing_key} (SchemaURI).
//
// # Who published it
//
// An event published through MCP is a first-class event: its source says
// type "agent" and names the MCP client (its clientInfo.name), and its
// agent_context carries that name, the agent type when the name is one of
// the envelope's AgentType values (claude-code, gemini-cli, letta…; custom
// otherwise) and, as instance_id, the MCP session id. It travels through the
// bus's decorated publisher, so the caller's correlation recording and
// tracing apply, and `bb trace` shows it.
//
// # Waiting for what a publish caused
//
// An agent publishes a command and wants its answer; the command processor
// answers within milliseconds, long before the agent calls watch_events. So
// the first publish_event of a session opens the session's inbox: an
// exclusive, auto-deleted queue bound to '#', declared before the publish
// leaves, that keeps (at most Config.InboxSize, oldest dropped) the events
// whose correlation_ids name an event the session published. watch_events
// with caused_by set to such an event reads the inbox, so no answer is lost
// to the race. Any other watch binds its own temporary queue for the length
// of the call and sees only what arrives after it started. The inbox is
// deleted when the session ends or after Config.InboxIdle without a publish
// or a watch.
//
// # Errors
//
// A bad input never ends the session: an unknown event type, a payload that
// fails its schema (with each problem's JSON path), a wait above
// Config.MaxWait, a broker or Redis that does not answer within
// Config.Timeout — each is a tool result with isError set and a text saying
// what to fix. Protocol errors are left to the SDK.
//
// # Wiring
//
//	srv, _ := mcpserver.New(mcpserver.Config{ServiceName: "bloodbank", StrictTypes: cfg.StrictTypes},
//		mcpserver.Deps{Bus: b, Events: reg, Correlation: store})
//	defer srv.Close()
//	err := srv.Run(ctx, &mcp.StdioTransport{}) // bb mcp
//	// or: mux.Handle("/mcp", srv.HTTPHandler()) // the gateway
package mcpserver
