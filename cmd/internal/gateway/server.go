package gateway

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// mcpPath is where Deps.MCP is served.
const mcpPath = "/mcp"

// Server is the HTTP gateway: an http.Handler, and helpers that serve it
// with timeouts and shut it down gracefully.
type Server struct {
	cfg      Config
	deps     Deps
	log      *slog.Logger
	metrics  *Metrics
	mux      *http.ServeMux
	routes   map[string]bool // the patterns registered on mux
	patterns []string        // the same, in registration order, for 404 answers
	tokenSum [sha256.Size]byte
	// streams ends the live tails when the server shuts down, since
	// http.Server.Shutdown waits for every request to finish.
	streams     context.Context
	stopStreams context.CancelFunc
}

var _ http.Handler = (*Server)(nil)

// New returns a gateway. It fails when cfg is invalid or a required
// dependency is missing, reporting every problem at once.
func New(cfg Config, deps Deps) (*Server, error) {
	if err := errors.Join(cfg.Validate(), deps.Validate()); err != nil {
		return nil, fmt.Errorf("cannot build the HTTP gateway: %w", err)
	}
	cfg.setDefaults()
	s := &Server{cfg: cfg, deps: deps, log: cfg.Logger, metrics: deps.Metrics, mux: http.NewServeMux(), routes: map[string]bool{}}
	if s.metrics == nil {
		m, err := NewMetrics(MetricsConfig{Events: deps.Events})
		if err != nil {
			return nil, fmt.Errorf("cannot build the HTTP gateway: %w", err)
		}
		s.metrics = m
	}
	if cfg.Token != "" {
		s.tokenSum = sha256.Sum256([]byte(cfg.Token))
	}
	s.handle("GET /healthz", s.healthz)
	s.handle("GET /readyz", s.readyz)
	s.handle("POST /events/custom", s.publishCustom)
	s.handle("POST /events/agent/thread/prompt", s.publishAgentPrompt)
	s.handle("POST /events/{routing_key}", s.publishRoutingKey)
	s.handle("GET /events/{event_id}/correlation", s.correlationDump)
	s.handle("GET /schemas", s.listSchemas)
	s.handle("GET /schemas/{name}", s.showSchema)
	s.handle("GET /asyncapi.json", s.asyncAPI)
	s.mountConsole()
	if deps.MCP != nil {
		// Every method: the transport POSTs messages, GETs its event stream
		// and DELETEs its session.
		s.mux.Handle(mcpPath, deps.MCP)
		s.routes[mcpPath] = true
		s.patterns = append(s.patterns, mcpPath)
	}
	s.mux.Handle("GET /metrics", s.metrics.Handler())
	s.routes["GET /metrics"] = true
	s.patterns = append(s.patterns, "GET /metrics")
	return s, nil
}

func (s *Server) handle(pattern string, fn http.HandlerFunc) {
	s.mux.HandleFunc(pattern, fn)
	s.routes[pattern] = true
	s.patterns = append(s.patterns, pattern)
}

// Handler returns the gateway as an http.Handler (the Server itself), for
// callers that mount it in their own server.
func (s *Server) Handler() http.Handler { return s }

// Metrics returns the metrics the gateway serves on /metrics.
func (s *Server) Metrics() *Metrics { return s.metrics }

// ServeHTTP routes a request. Every answer, including net/http's own 404 and
// 405, is JSON; a POST is authenticated before anything else is looked at.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	sw := &statusWriter{ResponseWriter: w}
	route := "other"
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.log.Error("HTTP handler panicked", slog.String("route", route), slog.String("panic", fmt.Sprint(v)))
			if sw.code == 0 {
				writeError(sw, http.StatusInternalServerError, "internal error: the server logged it; retrying may not help", nil)
			}
		}
		s.metrics.httpRequests.WithLabelValues(route, strconv.Itoa(sw.status())).Inc()
	}()

	h, pattern := s.mux.Handler(r)
	if s.routes[pattern] {
		route = pattern
	}
	if (r.Method == http.MethodPost || route == mcpPath) && s.cfg.Token != "" && !s.authorized(r) {
		sw.Header().Set("WWW-Authenticate", `Bearer realm="bloodbank"`)
		writeError(sw, http.StatusUnauthorized,
			"missing or wrong bearer token: send the header \"Authorization: Bearer <HTTP_TOKEN>\"", nil)
		return
	}
	if route == "other" {
		s.notRouted(sw, r, h)
		return
	}
	s.mux.ServeHTTP(sw, r)
}

// authorized compares the bearer token in constant time. Hashing both sides
// first makes the comparison independent of the lengths too.
func (s *Server) authorized(r *http.Request) bool {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(token)))
	return subtle.ConstantTimeCompare(sum[:], s.tokenSum[:]) == 1
}

// notRouted answers in JSON what the mux would have answered: 404, 405 with
// its Allow header, or a redirect to the cleaned path.
func (s *Server) notRouted(w http.ResponseWriter, r *http.Request, h http.Handler) {
	c := &captureWriter{header: http.Header{}}
	h.ServeHTTP(c, r)
	switch {
	case c.code == http.StatusMethodNotAllowed:
		allow := c.header.Get("Allow")
		w.Header().Set("Allow", allow)
		writeError(w, c.code, fmt.Sprintf("%s is not allowed on %s; use %s", r.Method, r.URL.Path, allow),
			map[string]any{"allow": strings.Split(allow, ", ")})
	case c.code >= 300 && c.code < 400:
		loc := c.header.Get("Location")
		w.Header().Set("Location", loc)
		writeError(w, c.code, "this endpoint is at "+loc, map[string]any{"location": loc})
	default:
		writeError(w, http.StatusNotFound, fmt.Sprintf("no endpoint %s %s", r.Method, r.URL.Path),
			map[string]any{"endpoints": s.patterns})
	}
}

// HTTPServer returns an http.Server serving the gateway on addr with the
// configured timeouts, for callers that run it themselves.
func (s *Server) HTTPServer(addr string) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           s,
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		ReadTimeout:       s.cfg.ReadTimeout,
		WriteTimeout:      s.cfg.WriteTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
}

// ListenAndServe serves the gateway on addr (host:port) until ctx is done,
// then shuts down gracefully: it stops accepting connections and waits for
// in-flight requests, at most Config.ShutdownTimeout. It returns nil after a
// shutdown, or the error that stopped it (address in use…).
func (s *Server) ListenAndServe(ctx context.Context, addr string) error {
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("cannot listen on %s: %w", addr, err)
	}
	return s.Serve(ctx, l)
}

// Serve is ListenAndServe on a listener the caller opened; it closes l.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	srv := s.HTTPServer(l.Addr().String())
	srv.RegisterOnShutdown(s.stopStreams)
	if s.cfg.Token == "" && !loopback(l.Addr()) {
		s.log.Warn("the gateway listens beyond loopback without HTTP_TOKEN: anyone who reaches it may publish; the console is read-only",
			slog.String("addr", l.Addr().String()))
	}
	srv.BaseContext = func(net.Listener) context.Context { return context.WithoutCancel(ctx) }
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	s.log.Info("http listening", slog.String("addr", l.Addr().String()))
	select {
	case err := <-errc:
		return fmt.Errorf("http server on %s: %w", l.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	err := srv.Shutdown(sctx)
	if errors.Is(err, context.DeadlineExceeded) {
		err = fmt.Errorf("requests still running after %s were cut: %w", s.cfg.ShutdownTimeout, errors.Join(err, srv.Close()))
	}
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	if err != nil {
		return fmt.Errorf("http server on %s: shutdown: %w", l.Addr(), err)
	}
	s.log.Info("http stopped", slog.String("addr", l.Addr().String()))
	return nil
}

// retryAfterSeconds is Config.RetryAfter in whole seconds, at least one.
func (s *Server) retryAfterSeconds() int {
	n := int((s.cfg.RetryAfter + time.Second - 1) / time.Second)
	return max(n, 1)
}
