package console

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"

	"github.com/33god/bloodbank-go/bus/envelope"
	"github.com/33god/bloodbank-go/bus/topic"
	"github.com/33god/bloodbank-go/bus/transport"
)

// TailQueuePrefix starts the name of each tail's temporary queue.
const TailQueuePrefix = "bb.console.tail."

// keepAlive is how often an idle stream sends a comment, so that proxies
// and the browser keep the connection open.
const keepAlive = 15 * time.Second

// tailEvent is the data of one "message" event of the stream.
type tailEvent struct {
	RoutingKey string          `json:"routing_key"`
	EventID    string          `json:"event_id"`
	EventType  string          `json:"event_type,omitempty"`
	SourceApp  string          `json:"source_app,omitempty"`
	Timestamp  string          `json:"timestamp,omitempty"`
	Body       json.RawMessage `json:"body,omitempty"`
	Text       string          `json:"text,omitempty"` // a body that is not JSON
}

// Stream is GET /events/stream?pattern=P: every delivery whose routing key
// matches P (default "#") as a Server-Sent Event "message", after one
// "ready" event once the queue is bound. The queue is deleted when the
// client goes or the request's context ends. The write deadline of the
// server is lifted for the stream.
func (c *Console) Stream(w http.ResponseWriter, r *http.Request) {
	pattern := r.URL.Query().Get("pattern")
	if pattern == "" {
		pattern = "#"
	}
	if _, err := topic.Compile(pattern); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("bad pattern %q: %v (e.g. 'agent.#' or 'agent.thread.*')", pattern, err))
		return
	}
	if c.deps.Tail == nil {
		writeError(w, http.StatusNotImplemented, "this gateway has no subscriber for a live tail")
		return
	}
	queue := TailQueuePrefix + uuid.NewString()
	sub, err := c.deps.Tail(transport.SubscriberConfig{
		QueueName: func(string) string { return queue },
		Patterns:  []string{pattern},
		Consumers: 1,
		Prefetch:  100,
		// Every delivery is acked on receipt: nothing to drain.
		DrainTimeout: time.Second,
	})
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "cannot subscribe: "+err.Error())
		return
	}
	defer func() { _ = sub.Close() }()
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	type subscription struct {
		msgs <-chan *message.Message
		err  error
	}
	subscribed := make(chan subscription, 1)
	go func() {
		ch, err := sub.Subscribe(ctx, pattern)
		subscribed <- subscription{ch, err}
	}()
	var msgs <-chan *message.Message
	select {
	case s := <-subscribed:
		msgs, err = s.msgs, s.err
	case <-time.After(c.cfg.Timeout):
		err = fmt.Errorf("no answer from the broker within %s", c.cfg.Timeout)
	}
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "cannot bind the tail queue: "+err.Error())
		return
	}

	rc := http.NewResponseController(w)
	// A stream outlives the server's read and write timeouts by design.
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Time{})
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	ready, _ := json.Marshal(map[string]string{"pattern": pattern, "queue": queue})
	if !send(w, rc, "ready", ready) {
		return
	}
	tick := time.NewTicker(keepAlive)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil || rc.Flush() != nil {
				return
			}
		case msg, ok := <-msgs:
			if !ok {
				return
			}
			msg.Ack()
			data, _ := json.Marshal(toTailEvent(msg))
			if !send(w, rc, "message", data) {
				return
			}
		}
	}
}

// send writes one event and flushes it; false once the client is gone.
func send(w http.ResponseWriter, rc *http.ResponseController, event string, data []byte) bool {
	if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, data); err != nil {
		return false
	}
	return rc.Flush() == nil
}

func toTailEvent(msg *message.Message) tailEvent {
	md := msg.Metadata
	ev := tailEvent{RoutingKey: md.Get(envelope.MetaRoutingKey), EventID: msg.UUID, EventType: envelope.EventType(msg),
		SourceApp: md.Get(envelope.MetaSourceApp), Timestamp: md.Get(envelope.MetaTimestamp)}
	if ev.RoutingKey == "" {
		ev.RoutingKey = ev.EventType
	}
	if env, err := envelope.FromMessage(msg); err == nil {
		if b, err := json.Marshal(env); err == nil {
			ev.Body = b
			return ev
		}
	}
	if json.Valid(msg.Payload) {
		ev.Body = json.RawMessage(msg.Payload)
	} else {
		ev.Text = preview(msg.Payload)
	}
	return ev
}
