package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
)

// defaultTimeout bounds connecting to the broker or Redis and each operation
// on them, so that a command facing a dead server gives up instead of hanging.
const defaultTimeout = 10 * time.Second

// app is what every command shares: where input comes from, where results
// and diagnostics go, the environment settings are read from, and the
// persistent flags.
type app struct {
	stdin   io.Reader
	stdout  io.Writer
	stderr  io.Writer
	environ []string
	dotenv  string

	timeout time.Duration
	secrets []string // values never to print, gathered when settings are read
}

// run executes the command line args and returns the process exit code.
func run(args, environ []string, stdin io.Reader, stdout, stderr io.Writer) int {
	a := &app{stdin: stdin, stdout: stdout, stderr: stderr, environ: environ, dotenv: ".env"}
	root := a.rootCommand()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return exitOK
	}
	msg := a.redact(err.Error())
	fmt.Fprintf(stderr, "bb: %s\n", strings.ReplaceAll(msg, "\n", "\n  "))
	code := exitCode(err)
	if _, classified := errors.AsType[*exitError](err); !classified && cmd != nil {
		// cobra's own errors (unknown command, flag or argument count).
		fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
	}
	return code
}

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "bb",
		Short: "Operate a Bloodbank v1 event bus: publish, tail, trace, re-drive parked messages, serve the HTTP gateway, and browse the event catalogue (also as AsyncAPI)",
		Long: `bb is the operator's command line for Bloodbank, the typed event bus over
RabbitMQ (with Redis as correlation store) shared by the Go and Python services.

Settings are read from the environment and from a .env file in the working
directory, the same variables the services read:
  RABBIT_URL            AMQP URL of the broker (publish and tail need it)
  EXCHANGE_NAME         topic exchange (default bloodbank.events.v1)
  REDIS_HOST, REDIS_PORT, REDIS_DB, REDIS_PASSWORD, REDIS_URL
                        correlation store (trace needs it)
  CORRELATION_TTL_DAYS  TTL of correlation links (default 30)
  SERVICE_NAME          the service bb dlq works on unless --service is given
                        (default bloodbank); what bb serve's /healthz reports
  HTTP_HOST, HTTP_PORT, HTTP_TOKEN
                        where bb serve listens (default 0.0.0.0:8682), and
                        the bearer token every POST needs when set
  BB_TRACING            off (default) or stdout: bb serve writes spans to stdout
  BB_LOG_FORMAT, BB_LOG_LEVEL
                        logs on stderr: auto|text|json, debug|info|warn|error
Results go to stdout; logs, warnings and errors to stderr. Passwords are
never printed.

Exit codes:
  0  success
  1  bad usage or invalid input: unknown flag or command, missing argument,
     bad JSON, a payload that fails validation, a malformed UUID, an unknown
     event type (unless --permissive-validation), an invalid setting,
     a dlq --service with no poison queue or an event id not parked there,
     a purge not confirmed, an HTTP address bb serve cannot bind, a schema
     check that finds breaking changes
  2  infrastructure: the broker or Redis is unreachable within --timeout,
     RABBIT_URL is not set, or the broker did not confirm a publish`,
		Example: `  bb list-events --domain fireflies
  bb show agent.thread.prompt
  bb asyncapi > asyncapi.json
  bb schema check --against domains/catalog/testdata/schemas.snapshot.json
  bb publish agent.thread.prompt --mock --dry-run
  bb tail 'agent.#' --pretty
  bb log --since 1h --pattern 'agent.#'
  bb id fireflies.transcript.upload meeting_id=abc123
  bb trace 0b6f1c9e-3d55-4a57-9c57-2f7d0f0e6a11
  bb dlq list --service command_processor
  bb serve
  bb mcp`,
		SilenceErrors: true,
		SilenceUsage:  true,
		Args:          cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cmd.SetOut(a.stderr)
			_ = cmd.Help()
			return usageErrorf("missing command: pick one of the commands above")
		},
		PersistentPreRunE: func(*cobra.Command, []string) error {
			if a.timeout <= 0 {
				return usageErrorf("--timeout must be positive, got %s (e.g. --timeout 10s)", a.timeout)
			}
			return nil
		},
	}
	root.CompletionOptions.DisableDefaultCmd = true
	root.PersistentFlags().DurationVar(&a.timeout, "timeout", defaultTimeout,
		"give up connecting to the broker or Redis, and each operation on them, after this long")
	root.AddCommand(
		a.publishCommand(),
		a.tailCommand(),
		a.logCommand(),
		a.replayCommand(),
		a.idCommand(),
		a.traceCommand(),
		a.listEventsCommand(),
		a.listCommandsCommand(),
		a.showCommand(),
		a.asyncAPICommand(),
		a.schemaCommand(),
		a.dlqCommand(),
		a.serveCommand(),
		a.mcpCommand(),
	)
	return root
}

// redact removes every known secret from a message, in case a library
// quoted one. Errors built here use amqp.RedactURL already; this is the
// second line of defence. Secrets shorter than 4 characters are left: they
// would garble every message they occur in by chance.
func (a *app) redact(msg string) string {
	for _, s := range a.secrets {
		if len(s) >= 4 {
			msg = strings.ReplaceAll(msg, s, "xxxxx")
		}
	}
	return msg
}

// warnf writes a warning line to stderr.
func (a *app) warnf(format string, args ...any) {
	fmt.Fprintf(a.stderr, "bb: warning: "+format+"\n", args...)
}
