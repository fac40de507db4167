package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/33god/bloodbank-go/bus/amqp"
	"github.com/33god/bloodbank-go/cmd/internal/binsettings"
	"github.com/33god/bloodbank-go/internal/settings"
)

// config is every setting of the command processor, read once from the
// environment and .env: those of the packages it runs, and its own.
type config struct {
	binsettings.Common
	Own own
}

// own are the settings only the command processor has. Flags override
// them.
type own struct {
	// Demo publishes one agent.thread.prompt once consuming.
	Demo bool `env:"BB_DEMO" envDefault:"false"`
	// EchoDelay is the echo agent's simulated model latency.
	EchoDelay time.Duration `env:"BB_ECHO_DELAY" envDefault:"0s"`
	// CommandTimeout bounds one attempt at a command.
	CommandTimeout time.Duration `env:"BB_COMMAND_TIMEOUT" envDefault:"1m"`
	// EventLog is BB_EVENT_LOG: "on" declares the stream
	// "{EXCHANGE_NAME}.log" that keeps every event (see
	// amqp.DeclareEventLog); "off" (the default) leaves it alone.
	EventLog string `env:"BB_EVENT_LOG" envDefault:"off"`
	// EventLogMaxAge is the log's retention by age, in x-max-age syntax.
	EventLogMaxAge string `env:"BB_EVENT_LOG_MAX_AGE" envDefault:"7D"`
	// EventLogMaxBytes is the log's retention by size, in bytes.
	EventLogMaxBytes int64 `env:"BB_EVENT_LOG_MAX_BYTES" envDefault:"1000000000"`
	// MaxRootTokens parks the commands of a chain whose root has been
	// charged this many tokens; 0 installs no guard.
	MaxRootTokens int64 `env:"BB_MAX_ROOT_TOKENS" envDefault:"0"`
}

// eventLog is the retention the log is declared with, when it is on.
func (o own) eventLog() (amqp.EventLogConfig, bool) {
	return amqp.EventLogConfig{MaxAge: o.EventLogMaxAge, MaxBytes: o.EventLogMaxBytes}, o.EventLog == "on"
}

func (o own) Validate() error {
	var p []error
	if o.EchoDelay < 0 {
		p = append(p, fmt.Errorf("BB_ECHO_DELAY: want 0 or a positive duration, got %s", o.EchoDelay))
	}
	if o.CommandTimeout <= 0 {
		p = append(p, fmt.Errorf("BB_COMMAND_TIMEOUT: want a positive duration, got %s", o.CommandTimeout))
	}
	if o.MaxRootTokens < 0 {
		p = append(p, fmt.Errorf("BB_MAX_ROOT_TOKENS: want 0 (off) or a positive number of tokens, got %d", o.MaxRootTokens))
	}
	if o.EventLog != "on" && o.EventLog != "off" {
		p = append(p, fmt.Errorf("BB_EVENT_LOG: want on or off, got %q", o.EventLog))
	}
	if !validMaxAge(o.EventLogMaxAge) {
		p = append(p, fmt.Errorf("BB_EVENT_LOG_MAX_AGE: want a number and a unit, Y, M, D, h, m or s (e.g. 7D), got %q", o.EventLogMaxAge))
	}
	if o.EventLogMaxBytes <= 0 {
		p = append(p, fmt.Errorf("BB_EVENT_LOG_MAX_BYTES: want a positive number of bytes, got %d", o.EventLogMaxBytes))
	}
	return settings.Join(p...)
}

func validMaxAge(s string) bool {
	return s != "" && amqp.EventLogConfig{MaxAge: s}.Validate() == nil
}

// defaultServiceName names the queue when SERVICE_NAME is set neither in
// the environment nor in .env: "{exchange}.command_processor", the queue
// of the Python command processor. (The library default, "bloodbank", is
// the Python HTTP publisher's.)
const defaultServiceName = "command_processor"

// loadSettings reads the settings from environ and the .env file at dotenv,
// as every Bloodbank service does, with this binary's default service name.
func loadSettings(environ []string, dotenv string) (config, error) {
	var c config
	if err := c.Load(environ, dotenv, settings.Vars{"SERVICE_NAME": defaultServiceName}, &c.Own); err != nil {
		return config{}, err
	}
	return c, nil
}

// LogValue logs the settings without their secrets.
func (c config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Any("bus", c.Bus), slog.Any("redis", c.Redis), slog.Any("http", c.HTTP),
		slog.String("environment", c.Telemetry.Environment), slog.String("tracing", c.Telemetry.Tracing),
		slog.Bool("demo", c.Own.Demo), slog.Duration("echo_delay", c.Own.EchoDelay),
		slog.Duration("command_timeout", c.Own.CommandTimeout),
		slog.String("event_log", c.Own.EventLog), slog.String("event_log_max_age", c.Own.EventLogMaxAge),
		slog.Int64("event_log_max_bytes", c.Own.EventLogMaxBytes), slog.Int64("max_root_tokens", c.Own.MaxRootTokens),
	)
}

// flags are the command line: each flag given overrides its setting.
type flags struct {
	set            *flag.FlagSet
	demo           bool
	echoDelay      time.Duration
	commandTimeout time.Duration
}

// parseFlags reads the command line. It runs before the settings are read,
// so that --help works whatever the environment holds.
func parseFlags(args []string, stderr io.Writer) (*flags, error) {
	f := &flags{set: flag.NewFlagSet("command-processor", flag.ContinueOnError)}
	f.set.SetOutput(stderr)
	f.set.BoolVar(&f.demo, "demo", false, "publish one agent.thread.prompt once consuming and log its response and correlation link (BB_DEMO=1)")
	f.set.DurationVar(&f.echoDelay, "echo-delay", 0, "simulated model latency of the echo agent (BB_ECHO_DELAY)")
	f.set.DurationVar(&f.commandTimeout, "command-timeout", 0, "bound on one attempt at a command; a command still running then is cancelled and retried (BB_COMMAND_TIMEOUT, default 1m)")
	if err := f.set.Parse(args); err != nil {
		return nil, err
	}
	if f.set.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %v", f.set.Args())
	}
	if f.echoDelay < 0 {
		return nil, errors.New("--echo-delay must not be negative")
	}
	if f.commandTimeout < 0 {
		return nil, errors.New("--command-timeout must not be negative")
	}
	return f, nil
}

// apply overrides the settings with the flags given.
func (f *flags) apply(o *own) {
	f.set.Visit(func(fl *flag.Flag) {
		switch fl.Name {
		case "demo":
			o.Demo = f.demo
		case "echo-delay":
			o.EchoDelay = f.echoDelay
		case "command-timeout":
			if f.commandTimeout > 0 {
				o.CommandTimeout = f.commandTimeout
			}
		}
	})
}
