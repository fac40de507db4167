package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"

	"github.com/google/uuid"

	"github.com/33god/bloodbank-go/cmd/internal/asyncapi"
	"github.com/33god/bloodbank-go/correlation"
	"github.com/33god/bloodbank-go/domains"
)

// healthz answers exactly what the Python endpoint answers.
func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"ok": true, "service": s.cfg.ServiceName})
}

// readyz runs every check concurrently, bounded by ReadyTimeout.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.ReadyTimeout)
	defer cancel()
	errs := make([]error, len(s.deps.Checks))
	var wg sync.WaitGroup
	for i, c := range s.deps.Checks {
		wg.Go(func() { errs[i] = c.Func(ctx) })
	}
	wg.Wait()
	checks := make(map[string]string, len(errs))
	var failing []string
	for i, c := range s.deps.Checks {
		if errs[i] == nil {
			checks[c.Name] = "ok"
			continue
		}
		checks[c.Name] = errs[i].Error()
		failing = append(failing, c.Name)
	}
	if failing != nil {
		s.log.Warn("not ready", slog.Any("failing", failing))
		writeError(w, http.StatusServiceUnavailable,
			"not ready: "+strings.Join(failing, " and ")+" unreachable; see checks for why",
			map[string]any{"ok": false, "service": s.cfg.ServiceName, "checks": checks, "failing": failing})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"ok": true, "service": s.cfg.ServiceName, "checks": checks})
}

// schemaSummary is one entry of GET /schemas.
type schemaSummary struct {
	RoutingKey  string   `json:"routing_key"`
	Domain      string   `json:"domain"`
	Kind        string   `json:"kind"`
	Name        string   `json:"name"`
	Description string   `json:"description"`
	Result      string   `json:"result,omitempty"`
	RoutingKeys []string `json:"routing_keys,omitempty"`
}

func summarize(e *domains.EventType) schemaSummary {
	out := schemaSummary{
		RoutingKey: e.RoutingKey(), Domain: e.Domain(), Kind: string(e.Kind()), Name: e.Name(),
		Description: e.Description(), Result: e.Result(),
	}
	if e.IsTemplate() {
		out.RoutingKeys = e.RoutingKeys()
	}
	return out
}

// listSchemas is GET /schemas[?domain=D][&kind=command|event|fact].
func (s *Server) listSchemas(w http.ResponseWriter, r *http.Request) {
	f := domains.Filter{Domain: r.URL.Query().Get("domain")}
	if k := r.URL.Query().Get("kind"); k != "" {
		kind, err := domains.ParseKind(k)
		if err != nil {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("kind %q is unknown: use command, event or fact", k), nil)
			return
		}
		f.Kind = kind
	}
	events := s.deps.Events.Events(f)
	out := make([]schemaSummary, len(events))
	for i, e := range events {
		out[i] = summarize(e)
	}
	writeJSON(w, http.StatusOK, map[string]any{"events": out})
}

// showSchema is GET /schemas/{name}: a routing key, a template or a type
// name, as `bb show` takes.
func (s *Server) showSchema(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	e, err := s.deps.Events.Lookup(name)
	if err != nil {
		writeError(w, http.StatusNotFound,
			fmt.Sprintf("no event type is registered as %q: GET /schemas lists the routing keys", name),
			map[string]any{"name": name})
		return
	}
	writeJSON(w, http.StatusOK, struct {
		schemaSummary
		Aliases []string        `json:"aliases,omitempty"`
		Schema  json.RawMessage `json:"schema"`
		Example json.RawMessage `json:"example"`
	}{summarize(e), e.Aliases(), e.Schema(), e.Example()})
}

// asyncAPI is GET /asyncapi.json: the catalogue as an AsyncAPI 3.0
// document. It is generated on every request, so a domain registered after
// New appears too; the catalogue is small and the endpoint is not hot.
func (s *Server) asyncAPI(w http.ResponseWriter, _ *http.Request) {
	doc, err := asyncapi.Generate(s.deps.Events, asyncapi.Options{ExchangeName: s.cfg.ExchangeName, BrokerURL: s.cfg.BrokerURL})
	if err != nil {
		s.log.Error("cannot generate the AsyncAPI document", slog.String("error", err.Error()))
		writeError(w, http.StatusInternalServerError, "cannot generate the AsyncAPI document: the server logged why; check RABBIT_URL", nil)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(doc)
}

// correlationDump is GET /events/{event_id}/correlation.
func (s *Server) correlationDump(w http.ResponseWriter, r *http.Request) {
	raw := r.PathValue("event_id")
	id, err := uuid.Parse(raw)
	if err != nil {
		writeError(w, http.StatusBadRequest,
			fmt.Sprintf("event id %q is not a UUID: use the event_id of an envelope, e.g. 0b6f1c9e-3d55-4a57-9c57-2f7d0f0e6a11", truncate(raw, 64)), nil)
		return
	}
	if s.deps.Correlation == nil {
		writeError(w, http.StatusNotImplemented, "correlation tracking is not configured on this service: set REDIS_* and restart it", nil)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.CorrelationTimeout)
	defer cancel()
	dump, err := s.deps.Correlation.Debug(ctx, id, s.cfg.CorrelationMaxDepth)
	if err != nil {
		if mal, ok := errors.AsType[*correlation.MalformedError](err); ok {
			s.log.Warn("correlation data malformed", slog.String("event_id", id.String()), slog.String("key", mal.Key), slog.String("error", err.Error()))
			writeError(w, http.StatusInternalServerError,
				fmt.Sprintf("the correlation data at Redis key %s is not in the Bloodbank layout: delete or fix that key", mal.Key),
				map[string]any{"event_id": id.String(), "cause": err.Error()})
			return
		}
		s.log.Warn("correlation read failed", slog.String("event_id", id.String()), slog.String("error", err.Error()))
		w.Header().Set("Retry-After", fmt.Sprint(s.retryAfterSeconds()))
		writeError(w, http.StatusServiceUnavailable, "cannot read the correlation graph: Redis is unreachable or too slow; retry later",
			map[string]any{"event_id": id.String(), "cause": err.Error(), "retry_after_seconds": s.retryAfterSeconds()})
		return
	}
	if ct, ok := s.deps.Correlation.(CostTracer); ok {
		// The trace is still worth answering without its totals.
		if totals, err := ct.EventCost(ctx, id); err == nil {
			dump.Cost = &totals
		} else {
			s.log.Warn("correlation cost read failed", slog.String("event_id", id.String()), slog.String("error", err.Error()))
		}
	}
	writeJSON(w, http.StatusOK, dump)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
