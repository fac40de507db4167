package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/joho/godotenv"

	"github.com/33god/bloodbank-go/bus"
)

// defaultServiceName names the queue when SERVICE_NAME is set neither in
// the environment nor in .env: "{exchange}.command_processor", the queue
// of the Python command processor. (The library default, "bloodbank", is
// the Python HTTP publisher's.)
const defaultServiceName = "command_processor"

// loadSettings reads the settings as every Bloodbank service does, with this
// binary's default service name.
func loadSettings(environ []string, dotenv string) (bus.Config, error) {
	cfg, err := bus.LoadConfig(environ, dotenv)
	if err != nil {
		return bus.Config{}, err
	}
	set, err := isSet("SERVICE_NAME", environ, dotenv)
	if err != nil {
		return bus.Config{}, err
	}
	if !set {
		cfg.ServiceName = defaultServiceName
	}
	return cfg, nil
}

// isSet reports whether a setting is given in environ or the .env file,
// matching names case-insensitively as bus.LoadConfig does.
func isSet(name string, environ []string, dotenv string) (bool, error) {
	for _, kv := range environ {
		if k, _, ok := strings.Cut(kv, "="); ok && strings.EqualFold(k, name) {
			return true, nil
		}
	}
	if dotenv == "" {
		return false, nil
	}
	vars, err := godotenv.Read(dotenv)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("cannot read %s: %w", dotenv, err)
	}
	for k := range vars {
		if strings.EqualFold(k, name) {
			return true, nil
		}
	}
	return false, nil
}

// defaultCommandTimeout bounds one attempt at a command when
// BB_COMMAND_TIMEOUT is not set.
const defaultCommandTimeout = time.Minute

// options are this binary's own settings, from flags or the environment.
type options struct {
	demo      bool
	echoDelay time.Duration
	// commandTimeout bounds each attempt at a command; 0 means
	// defaultCommandTimeout.
	commandTimeout time.Duration
}

// timeout is the bound of one attempt at a command.
func (o options) timeout() time.Duration {
	if o.commandTimeout > 0 {
		return o.commandTimeout
	}
	return defaultCommandTimeout
}

func parseOptions(args, environ []string, stderr io.Writer) (options, error) {
	var o options
	env := func(name string) string {
		for _, kv := range environ {
			if k, v, ok := strings.Cut(kv, "="); ok && strings.EqualFold(k, name) {
				return v
			}
		}
		return ""
	}
	switch v := env("BB_DEMO"); v {
	case "", "0", "false":
	case "1", "true":
		o.demo = true
	default:
		return o, fmt.Errorf("BB_DEMO: want 1 or 0 (got %q)", v)
	}
	if v := env("BB_ECHO_DELAY"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return o, fmt.Errorf("BB_ECHO_DELAY: want a duration such as 20ms (got %q)", v)
		}
		o.echoDelay = d
	}
	if v := env("BB_COMMAND_TIMEOUT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return o, fmt.Errorf("BB_COMMAND_TIMEOUT: want a positive duration such as 2m (got %q)", v)
		}
		o.commandTimeout = d
	}
	fs := flag.NewFlagSet("command-processor", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.BoolVar(&o.demo, "demo", o.demo, "publish one agent.thread.prompt once consuming and log its response and correlation link (BB_DEMO=1)")
	fs.DurationVar(&o.echoDelay, "echo-delay", o.echoDelay, "simulated model latency of the echo agent (BB_ECHO_DELAY)")
	fs.DurationVar(&o.commandTimeout, "command-timeout", o.commandTimeout, "bound on one attempt at a command; a command still running then is cancelled and retried (BB_COMMAND_TIMEOUT, default 1m)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if o.echoDelay < 0 {
		return o, errors.New("--echo-delay must not be negative")
	}
	if o.commandTimeout < 0 {
		return o, errors.New("--command-timeout must not be negative")
	}
	return o, nil
}
