// Command bb is the Bloodbank operator's command line: it lists and shows the
// event catalogue, publishes events (or prints them with --dry-run), tails
// the bus, computes deterministic event ids, traces an event through the
// correlation graph in Redis, lists, shows, replays and purges what a
// service parked in its poison queue (dlq), and serves the HTTP gateway
// alone (serve), and prints the catalogue as an AsyncAPI 3.0 document
// (asyncapi). It speaks the v1 wire contract, so what it publishes is
// what the Python services publish.
//
// Settings come from the environment and a .env file in the working
// directory (RABBIT_URL, EXCHANGE_NAME, REDIS_*, CORRELATION_TTL_DAYS,
// SERVICE_NAME, HTTP_*, BB_TRACING, BB_LOG_*), the same variables the
// services read. Results go to stdout,
// logs and errors to stderr.
//
// Exit codes: 0 success; 1 bad usage or invalid input; 2 infrastructure
// (broker or Redis unreachable, publish not confirmed).
//
// Layout: main.go only calls run; root.go builds the command tree and maps
// errors to exit codes (errors.go); each command lives in its own file
// (publish.go, tail.go, id.go, trace.go, list_events.go, list_commands.go,
// show.go, asyncapi.go, dlq.go, serve.go); what several commands share is in settings.go
// (settings, logger, bus), input.go (reading and checking JSON), suggest.go
// (close matches for a misspelt event type) and tracing.go (BB_TRACING).
//
// The tests build the binary once and run it as a user does; those that
// need RabbitMQ or Redis use internal/testenv, each on its own exchange or
// its own random event ids.
package main
