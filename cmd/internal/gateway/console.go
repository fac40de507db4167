package gateway

import (
	"context"
	"net"
	"net/http"

	"github.com/33god/bloodbank-go/cmd/internal/console"
	"github.com/33god/bloodbank-go/correlation"
)

// consolePath is where the web console is mounted.
const consolePath = "/ui/"

// mountConsole serves the web console under /ui/ and its live tail at
// GET /events/stream. Replay and purge are POSTs, so the token check of
// ServeHTTP covers them; without a token the console refuses them itself.
func (s *Server) mountConsole() {
	s.streams, s.stopStreams = context.WithCancel(context.Background())
	// The graph walks the store link by link; a Tracer that is only a
	// dump leaves the graph page saying it is not configured.
	graph, _ := s.deps.Correlation.(correlation.Store)
	c := console.New(console.Config{
		ServiceName: s.cfg.ServiceName,
		Mutations:   s.cfg.Token != "",
		Timeout:     s.cfg.CorrelationTimeout,
		Logger:      s.log,
	}, console.Deps{Graph: graph, Poison: s.deps.PoisonQueues, Tail: s.deps.Tail})
	s.mux.Handle(consolePath, c)
	s.routes[consolePath] = true
	s.patterns = append(s.patterns, consolePath)
	s.handle("GET /events/stream", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithCancel(r.Context())
		defer cancel()
		stop := context.AfterFunc(s.streams, cancel)
		defer stop()
		c.Stream(w, r.WithContext(ctx))
	})
}

// loopback reports whether addr is a loopback address, which only this
// host can reach.
func loopback(addr net.Addr) bool {
	tcp, ok := addr.(*net.TCPAddr)
	return ok && tcp.IP.IsLoopback()
}
