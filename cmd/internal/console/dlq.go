package console

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/33god/bloodbank-go/bus"
	"github.com/33god/bloodbank-go/bus/envelope"
	"github.com/33god/bloodbank-go/middleware/reliability"
)

// previewBytes is how much of a parked body a page shows.
const previewBytes = 300

// PoisonQueues opens the poison queues of b's services, as `bb dlq` does.
func PoisonQueues(b *bus.Bus) PoisonOpener {
	return func(service string) PoisonAdmin { return reliability.NewPoisonQueue(b, service) }
}

// parked is one message of GET /ui/api/dlq.
type parked struct {
	EventID     string `json:"event_id"`
	RoutingKey  string `json:"routing_key"`
	Reason      string `json:"reason"`
	Kind        string `json:"kind"`
	Handler     string `json:"handler"`
	Attempts    int    `json:"attempts"`
	LastFailure string `json:"last_failure,omitempty"`
	Preview     string `json:"body_preview"`
	Size        int    `json:"body_bytes"`
}

// service reads ?service= (or the body's service), the configured one by
// default, and refuses names that cannot be a queue's.
func (c *Console) service(s string) (string, error) {
	if s == "" {
		return c.cfg.ServiceName, nil
	}
	if strings.ContainsAny(s, " #*/") || len(s) > 200 {
		return "", fmt.Errorf("service %q: want a service name such as command_processor", s)
	}
	return s, nil
}

// listParked is GET /ui/api/dlq?service=S&page=N (N from 1).
func (c *Console) listParked(w http.ResponseWriter, r *http.Request) {
	if c.deps.Poison == nil {
		writeError(w, http.StatusNotImplemented, "this gateway has no access to poison queues")
		return
	}
	service, err := c.service(r.URL.Query().Get("service"))
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	page := 1
	if s := r.URL.Query().Get("page"); s != "" {
		if page, err = strconv.Atoi(s); err != nil || page < 1 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("page %q: want a page number from 1", s))
			return
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), c.cfg.Timeout)
	defer cancel()
	q := c.deps.Poison(service)
	total, err := q.Count(ctx)
	if err != nil {
		c.fail(w, "list", service, err)
		return
	}
	// A queue is read from its head, so page N reads N pages and keeps the last.
	from := (page - 1) * c.cfg.PageSize
	var ms []reliability.ParkedMessage
	if from < total {
		if ms, err = q.List(ctx, reliability.PoisonFilter{Limit: from + c.cfg.PageSize}); err != nil {
			c.fail(w, "list", service, err)
			return
		}
	}
	out := []parked{}
	for i := from; i < len(ms); i++ {
		m := ms[i]
		p := parked{EventID: m.EventID, RoutingKey: m.RoutingKey, Reason: m.Reason, Kind: m.Kind, Handler: m.Handler,
			Attempts: m.Attempts, Preview: preview(m.Body), Size: len(m.Body)}
		if !m.LastFailure.IsZero() {
			p.LastFailure = envelope.FormatTimestamp(m.LastFailure)
		}
		out = append(out, p)
	}
	writeJSON(w, http.StatusOK, map[string]any{"service": service, "queue": q.Name(), "total": total, "page": page,
		"page_size": c.cfg.PageSize, "messages": out, "mutations": c.cfg.Mutations})
}

// preview is the start of a body as text, cut on a rune boundary.
func preview(b []byte) string {
	if len(b) > previewBytes {
		b = b[:previewBytes]
		for len(b) > 0 && !utf8.Valid(b) {
			b = b[:len(b)-1]
		}
		return strings.ToValidUTF8(string(b), "�") + "…"
	}
	return strings.ToValidUTF8(string(b), "�")
}

// mutation is the body of the replay and purge endpoints.
type mutation struct {
	Service  string   `json:"service"`
	EventIDs []string `json:"event_ids"`
	All      bool     `json:"all"`
}

// mutate checks that mutations are allowed and reads the request: the
// filter selects the event ids, or everything with "all".
func (c *Console) mutate(w http.ResponseWriter, r *http.Request) (PoisonAdmin, reliability.PoisonFilter, bool) {
	var f reliability.PoisonFilter
	if !c.cfg.Mutations {
		writeError(w, http.StatusForbidden, "the console is read-only: set HTTP_TOKEN on the service to allow replay and purge, then send it as a bearer token")
		return nil, f, false
	}
	if c.deps.Poison == nil {
		writeError(w, http.StatusNotImplemented, "this gateway has no access to poison queues")
		return nil, f, false
	}
	var m mutation
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&m); err != nil {
		writeError(w, http.StatusBadRequest, "the body must be JSON: {\"service\": S, \"event_ids\": [...]} or {\"service\": S, \"all\": true}")
		return nil, f, false
	}
	service, err := c.service(m.Service)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return nil, f, false
	}
	if len(m.EventIDs) == 0 && !m.All {
		writeError(w, http.StatusBadRequest, "name the messages in \"event_ids\", or send \"all\": true")
		return nil, f, false
	}
	f.EventIDs = m.EventIDs
	return c.deps.Poison(service), f, true
}

// replay is POST /ui/api/dlq/replay.
func (c *Console) replay(w http.ResponseWriter, r *http.Request) {
	q, f, ok := c.mutate(w, r)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), c.cfg.Timeout)
	defer cancel()
	done, err := q.Replay(ctx, f)
	ids := make([]string, len(done))
	for i, m := range done {
		ids[i] = m.EventID
	}
	if err != nil {
		c.log.Warn("console: replay failed", "queue", q.Name(), "replayed", len(done), "error", err.Error())
		writeJSON(w, errorStatus(err), map[string]any{"error": "replay stopped: " + err.Error(), "replayed": ids})
		return
	}
	c.log.Info("console: replayed parked messages", "queue", q.Name(), "replayed", len(done))
	writeJSON(w, http.StatusOK, map[string]any{"replayed": ids})
}

// purge is POST /ui/api/dlq/purge.
func (c *Console) purge(w http.ResponseWriter, r *http.Request) {
	q, f, ok := c.mutate(w, r)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), c.cfg.Timeout)
	defer cancel()
	n, err := q.Purge(ctx, f)
	if err != nil {
		c.log.Warn("console: purge failed", "queue", q.Name(), "purged", n, "error", err.Error())
		writeJSON(w, errorStatus(err), map[string]any{"error": "purge stopped: " + err.Error(), "purged": n})
		return
	}
	c.log.Info("console: purged parked messages", "queue", q.Name(), "purged", n)
	writeJSON(w, http.StatusOK, map[string]any{"purged": n})
}

func (c *Console) fail(w http.ResponseWriter, op, service string, err error) {
	c.log.Warn("console: poison queue "+op+" failed", "service", service, "error", err.Error())
	writeError(w, errorStatus(err), err.Error())
}
