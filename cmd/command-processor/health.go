package main

import (
	"context"
	"encoding/json"
	"net/http"
	"sync/atomic"
	"time"
)

// health serves the probes. /healthz says the process is alive; /readyz
// says it is consuming and can reach the broker and Redis, so that an
// orchestrator routes no traffic to it (and a deploy waits for it) until
// then, and stops as soon as a shutdown begins.
type health struct {
	service   string
	transport string
	broker    func() error
	redis     func(context.Context) error
	running   <-chan struct{}
	stopping  atomic.Bool
}

// readyTimeout bounds the Redis ping of one /readyz.
const readyTimeout = time.Second

func (h *health) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"ok": true, "service": h.service})
	})
	mux.HandleFunc("GET /readyz", h.ready)
	return mux
}

func (h *health) ready(w http.ResponseWriter, r *http.Request) {
	checks := map[string]string{}
	ok := true
	fail := func(name, reason string) { checks[name] = reason; ok = false }

	select {
	case <-h.running:
		checks["consuming"] = "ok"
	default:
		fail("consuming", "not consuming yet")
	}
	if h.stopping.Load() {
		fail("consuming", "shutting down")
	}
	if err := h.broker(); err != nil {
		fail("broker", err.Error())
	} else {
		checks["broker"] = "ok"
	}
	ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
	defer cancel()
	if err := h.redis(ctx); err != nil {
		fail("redis", err.Error())
	} else {
		checks["redis"] = "ok"
	}
	status := http.StatusOK
	if !ok {
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, map[string]any{"ok": ok, "service": h.service, "transport": h.transport, "checks": checks})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
