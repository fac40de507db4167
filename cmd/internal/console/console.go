package console

import (
	"context"
	"embed"
	"errors"
	"io/fs"
	"log/slog"
	"net/http"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/33god/bloodbank-go/bus/transport"
	"github.com/33god/bloodbank-go/cmd/internal/httpjson"
	"github.com/33god/bloodbank-go/correlation"
	"github.com/33god/bloodbank-go/middleware/reliability"
)

// Defaults of Config.
const (
	DefaultGraphLimit = 1000
	DefaultPageSize   = 100
	DefaultTimeout    = 10 * time.Second
)

//go:embed assets
var assets embed.FS

// PoisonAdmin is the poison queue of one service, as
// *reliability.PoisonQueue reads and re-drives it.
type PoisonAdmin interface {
	Name() string
	Count(ctx context.Context) (int, error)
	List(ctx context.Context, f reliability.PoisonFilter) ([]reliability.ParkedMessage, error)
	Replay(ctx context.Context, f reliability.PoisonFilter) ([]reliability.ParkedMessage, error)
	Purge(ctx context.Context, f reliability.PoisonFilter) (int, error)
}

var _ PoisonAdmin = (*reliability.PoisonQueue)(nil)

// PoisonOpener returns the poison queue of a service.
type PoisonOpener func(service string) PoisonAdmin

// TailSubscriber returns a subscriber whose queues go away with it, as
// bus.Bus.TemporarySubscriber does.
type TailSubscriber func(cfg transport.SubscriberConfig) (message.Subscriber, error)

// Config configures the console.
type Config struct {
	// ServiceName is the service whose poison queue /ui/dlq shows without
	// ?service=. Optional; default "bloodbank".
	ServiceName string
	// Mutations allows replay and purge. Optional; default false: they
	// answer 403. Set it only when the gateway requires a token on POSTs.
	Mutations bool
	// GraphLimit bounds the nodes of a graph; beyond it the graph is cut
	// off and marked. Optional; default 1,000.
	GraphLimit int
	// PageSize is how many parked messages a page of /ui/dlq holds.
	// Optional; default 100.
	PageSize int
	// Timeout bounds one graph read, poison-queue operation or tail
	// subscription. Optional; default 10 s.
	Timeout time.Duration
	// Logger receives failures. Optional; default discards them.
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if c.ServiceName == "" {
		c.ServiceName = "bloodbank"
	}
	if c.GraphLimit <= 0 {
		c.GraphLimit = DefaultGraphLimit
	}
	if c.PageSize <= 0 {
		c.PageSize = DefaultPageSize
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Deps are what the console reads. Every field is optional: a page whose
// source is missing says so instead.
type Deps struct {
	// Graph is the correlation store the graph page walks.
	Graph correlation.Store
	// Poison opens a service's poison queue for /ui/dlq; usually
	// PoisonQueues(bus).
	Poison PoisonOpener
	// Tail subscribes the live tail; usually bus.Bus.TemporarySubscriber.
	Tail TailSubscriber
}

// Console serves the pages and their JSON endpoints.
type Console struct {
	cfg  Config
	deps Deps
	log  *slog.Logger
	mux  *http.ServeMux
}

var _ http.Handler = (*Console)(nil)

// New returns a console. Mount it under /ui/ and Stream at
// GET /events/stream.
func New(cfg Config, deps Deps) *Console {
	cfg.setDefaults()
	c := &Console{cfg: cfg, deps: deps, log: cfg.Logger, mux: http.NewServeMux()}
	static, _ := fs.Sub(assets, "assets")
	files := http.FileServerFS(static)
	page := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		http.ServeFileFS(w, r, static, "index.html")
	}
	c.mux.HandleFunc("GET /ui/{$}", page)
	c.mux.HandleFunc("GET /ui/events/{event_id}", page)
	c.mux.HandleFunc("GET /ui/dlq", page)
	c.mux.Handle("GET /ui/assets/", http.StripPrefix("/ui/assets/", files))
	c.mux.HandleFunc("GET /ui/api/info", c.info)
	c.mux.HandleFunc("GET /ui/api/graph/{event_id}", c.graph)
	c.mux.HandleFunc("GET /ui/api/dlq", c.listParked)
	c.mux.HandleFunc("POST /ui/api/dlq/replay", c.replay)
	c.mux.HandleFunc("POST /ui/api/dlq/purge", c.purge)
	c.mux.HandleFunc("/ui/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no console page "+r.URL.Path+": try /ui/, /ui/events/{event_id} or /ui/dlq")
	})
	return c
}

// ServeHTTP serves everything under /ui/.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) { c.mux.ServeHTTP(w, r) }

func (c *Console) info(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"service": c.cfg.ServiceName, "mutations": c.cfg.Mutations,
		"graph": c.deps.Graph != nil, "dlq": c.deps.Poison != nil, "tail": c.deps.Tail != nil,
		"graph_limit": c.cfg.GraphLimit, "page_size": c.cfg.PageSize,
	})
}

var writeJSON = httpjson.Write

// writeError answers {"error": msg}; msg says what the caller can do.
func writeError(w http.ResponseWriter, status int, msg string) { httpjson.Error(w, status, msg, nil) }

// errorStatus maps a store or broker error to a status: a wrong request
// is the caller's, anything else the server's dependencies'.
func errorStatus(err error) int {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout
	case errors.Is(err, reliability.ErrNoPoisonQueue), errors.Is(err, reliability.ErrNotParked):
		return http.StatusNotFound
	case errors.Is(err, reliability.ErrPoisonQueueEmbedded):
		return http.StatusNotImplemented
	default:
		return http.StatusServiceUnavailable
	}
}
