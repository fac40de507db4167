package mcpserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"reflect"
	"sync"
	"time"

	"github.com/google/jsonschema-go/jsonschema"
	"github.com/google/uuid"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/33god/bloodbank-go/bus"
	"github.com/33god/bloodbank-go/correlation"
	"github.com/33god/bloodbank-go/domains"
)

// Defaults of Config.
const (
	DefaultName           = "bloodbank"
	DefaultServiceName    = "bloodbank"
	DefaultTimeout        = 10 * time.Second
	DefaultWait           = 10 * time.Second
	DefaultMaxWait        = 25 * time.Second
	DefaultMaxEvents      = 100
	DefaultInboxSize      = 1000
	DefaultInboxIdle      = 10 * time.Minute
	DefaultSessionTimeout = 30 * time.Minute
)

// Config configures a Server. The zero value is usable: every field has a
// default.
type Config struct {
	// Name and Version are the server's implementation info, shown to
	// clients. Optional; default "bloodbank" and "dev".
	Name, Version string
	// Admin offers list_parked and replay_parked. Optional; default false.
	// Over HTTP, give it only behind a token: replaying is a write to a
	// service's queue.
	Admin bool
	// ServiceName is the service whose poison queue list_parked and
	// replay_parked use when the call names none (SERVICE_NAME). Optional;
	// default "bloodbank".
	ServiceName string
	// StrictTypes refuses payloads that Python's lax mode would convert
	// (BB_STRICT_TYPES), as `bb publish` does. Optional; default false: they
	// are converted and published in canonical form.
	StrictTypes bool
	// Timeout bounds each call to the broker or Redis, so that a dead server
	// yields a tool error instead of a hang. Optional; default 10 s.
	Timeout time.Duration
	// DefaultWait is how long watch_events waits when the call does not
	// say. Optional; default 10 s.
	DefaultWait time.Duration
	// MaxWait bounds the wait a watch_events call may ask for; a larger one
	// is a tool error. Keep it below the HTTP server's write timeout (the
	// gateway's is 30 s). Optional; default 25 s.
	MaxWait time.Duration
	// MaxEvents bounds max_events of watch_events. Optional; default 100.
	MaxEvents int
	// InboxSize bounds the events a session's inbox keeps; the oldest are
	// dropped. Optional; default 1000.
	InboxSize int
	// InboxIdle deletes a session's inbox after this long without a publish
	// or a watch. Optional; default 10 min.
	InboxIdle time.Duration
	// SessionTimeout closes an HTTP session idle this long (HTTPHandler).
	// Optional; default 30 min.
	SessionTimeout time.Duration
	// Logger receives a line per publish and per failure. Optional; default
	// discards everything.
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if c.Name == "" {
		c.Name = DefaultName
	}
	if c.Version == "" {
		c.Version = "dev"
	}
	if c.ServiceName == "" {
		c.ServiceName = DefaultServiceName
	}
	for _, d := range []struct {
		v   *time.Duration
		def time.Duration
	}{
		{&c.Timeout, DefaultTimeout}, {&c.DefaultWait, DefaultWait}, {&c.MaxWait, DefaultMaxWait},
		{&c.InboxIdle, DefaultInboxIdle}, {&c.SessionTimeout, DefaultSessionTimeout},
	} {
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	if c.MaxEvents == 0 {
		c.MaxEvents = DefaultMaxEvents
	}
	if c.InboxSize == 0 {
		c.InboxSize = DefaultInboxSize
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate reports every problem of the configuration at once. Zero values
// are valid: they stand for the defaults.
func (c Config) Validate() error {
	var errs []error
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"Timeout", c.Timeout}, {"DefaultWait", c.DefaultWait}, {"MaxWait", c.MaxWait},
		{"InboxIdle", c.InboxIdle}, {"SessionTimeout", c.SessionTimeout},
	} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("%s is %s, want >= 0", d.name, d.v))
		}
	}
	if c.MaxWait > 0 && c.DefaultWait > c.MaxWait {
		errs = append(errs, fmt.Errorf("DefaultWait %s is above MaxWait %s", c.DefaultWait, c.MaxWait))
	}
	if c.MaxEvents < 0 {
		errs = append(errs, fmt.Errorf("MaxEvents is %d, want >= 0", c.MaxEvents))
	}
	if c.InboxSize < 0 {
		errs = append(errs, fmt.Errorf("InboxSize is %d, want >= 0", c.InboxSize))
	}
	return errors.Join(errs...)
}

// Tracer reads the correlation graph. correlation.Store (and so
// *correlation.RedisStore and *correlation.EmbeddedStore) is one.
type Tracer interface {
	Debug(ctx context.Context, id uuid.UUID, maxDepth int) (correlation.Dump, error)
}

// Deps are what a Server works with.
type Deps struct {
	// Bus publishes (through its decorated publisher), watches (temporary
	// queues) and reaches the poison queues. Required.
	Bus *bus.Bus
	// Events is the catalogue: listing, schemas and validation. Required;
	// usually catalog.New().
	Events *domains.Registry
	// Correlation answers trace_event. Optional; without it the tool is not
	// offered.
	Correlation Tracer
}

// Validate reports every missing dependency at once.
func (d Deps) Validate() error {
	var errs []error
	if d.Bus == nil {
		errs = append(errs, errors.New("Deps.Bus is required"))
	}
	if d.Events == nil {
		errs = append(errs, errors.New("Deps.Events is required"))
	}
	return errors.Join(errs...)
}

// Server is the MCP server over one bus. One Server serves any number of
// sessions, on stdio (Run) or over HTTP (HTTPHandler).
type Server struct {
	cfg  Config
	deps Deps
	log  *slog.Logger
	mcp  *mcp.Server

	httpOnce sync.Once
	http     *mcp.StreamableHTTPHandler

	mu       sync.Mutex
	sessions map[*mcp.ServerSession]*session
	closed   bool
}

// New returns a server with its tools and resources registered. It fails
// when cfg is invalid or a required dependency is missing, reporting every
// problem at once.
func New(cfg Config, deps Deps) (*Server, error) {
	if err := errors.Join(cfg.Validate(), deps.Validate()); err != nil {
		return nil, fmt.Errorf("cannot build the MCP server: %w", err)
	}
	cfg.setDefaults()
	s := &Server{cfg: cfg, deps: deps, log: cfg.Logger, sessions: map[*mcp.ServerSession]*session{}}
	s.mcp = mcp.NewServer(&mcp.Implementation{Name: cfg.Name, Title: "Bloodbank event bus", Version: cfg.Version}, &mcp.ServerOptions{
		Instructions: instructions,
		Logger:       cfg.Logger,
		// Tools and resources never change while the server runs.
		Capabilities: &mcp.ServerCapabilities{Tools: &mcp.ToolCapabilities{}, Resources: &mcp.ResourceCapabilities{}},
	})
	if err := s.addTools(); err != nil {
		return nil, fmt.Errorf("cannot build the MCP server: %w", err)
	}
	s.addResources()
	return s, nil
}

// instructions tell a client's model how the tools fit together.
const instructions = `Bloodbank is a typed event bus. Discover event types with list_event_types and
describe_event_type (JSON Schema and example), publish one with publish_event, then
call watch_events with caused_by set to the returned event_id to receive what it
caused (for a command, its result event). trace_event shows an event's causes and effects.`

// MCPServer is the SDK server, for callers that connect their own transport.
func (s *Server) MCPServer() *mcp.Server { return s.mcp }

// Run serves one session on t (usually &mcp.StdioTransport{}) until the
// client disconnects or ctx is done.
func (s *Server) Run(ctx context.Context, t mcp.Transport) error {
	return s.mcp.Run(ctx, t)
}

// HTTPHandler serves the streamable HTTP transport. It authenticates
// nothing: mount it behind the caller's authentication.
func (s *Server) HTTPHandler() http.Handler {
	s.httpOnce.Do(func() {
		s.http = mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s.mcp },
			&mcp.StreamableHTTPOptions{Logger: s.log, SessionTimeout: s.cfg.SessionTimeout})
	})
	return s.http
}

// Close deletes every session's inbox. Sessions still connected keep
// working, but open no new inbox.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	sessions := s.sessions
	s.sessions = map[*mcp.ServerSession]*session{}
	s.mu.Unlock()
	for _, ss := range sessions {
		ss.close()
	}
	return nil
}

// schemaFor infers the JSON Schema of T. JSON values carried as they are
// (payloads, schemas, envelopes) are json.RawMessage in Go, which the
// inference would take for a byte string; they are JSON objects.
func schemaFor[T any]() (*jsonschema.Schema, error) {
	return jsonschema.For[T](&jsonschema.ForOptions{TypeSchemas: map[reflect.Type]*jsonschema.Schema{
		reflect.TypeFor[json.RawMessage](): {Type: "object"},
	}})
}

// addTool registers a typed tool with the schemas schemaFor infers;
// adjust (optional) completes the input schema with what depends on the
// configuration, such as a limit.
func addTool[In, Out any](s *Server, name, description string, h mcp.ToolHandlerFor[In, Out], adjust ...func(in *jsonschema.Schema)) error {
	in, err := schemaFor[In]()
	if err != nil {
		return fmt.Errorf("%s input schema: %w", name, err)
	}
	for _, a := range adjust {
		a(in)
	}
	out, err := schemaFor[Out]()
	if err != nil {
		return fmt.Errorf("%s output schema: %w", name, err)
	}
	mcp.AddTool(s.mcp, &mcp.Tool{Name: name, Description: description, InputSchema: in, OutputSchema: out}, h)
	return nil
}

func (s *Server) addTools() error {
	errs := []error{
		addTool(s, "list_event_types", listDescription, s.listEventTypes),
		addTool(s, "describe_event_type", describeDescription, s.describeEventType),
		addTool(s, "publish_event", publishDescription, s.publishEvent),
		addTool(s, "watch_events", watchDescription, s.watchEvents, s.watchLimits),
	}
	if s.deps.Correlation != nil {
		errs = append(errs, addTool(s, "trace_event", traceDescription, s.traceEvent))
	}
	if s.cfg.Admin {
		errs = append(errs,
			addTool(s, "list_parked", listParkedDescription, s.listParked),
			addTool(s, "replay_parked", replayParkedDescription, s.replayParked))
	}
	return errors.Join(errs...)
}

// toolError is a tool error result: the text says what went wrong and what
// to do, for the model to act on.
func toolError(format string, args ...any) error {
	return fmt.Errorf(format, args...)
}
