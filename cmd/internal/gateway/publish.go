package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/33god/bloodbank-go/bus/envelope"
	"github.com/33god/bloodbank-go/bus/transport"
	"github.com/33god/bloodbank-go/domains"
	"github.com/33god/bloodbank-go/domains/agent/thread"
)

// publishCustom is POST /events/custom: the body is a whole envelope,
// published under its event_type.
func (s *Server) publishCustom(w http.ResponseWriter, r *http.Request) {
	body, ok := s.readJSON(w, r)
	if !ok {
		return
	}
	var probe struct {
		EventType json.RawMessage `json:"event_type"`
	}
	if err := json.Unmarshal(body, &probe); err != nil {
		writeError(w, http.StatusBadRequest, "the body must be a whole envelope, a JSON object: "+describeJSON(err), nil)
		return
	}
	if et := string(probe.EventType); et == "" || et == "null" || et == `""` {
		writeError(w, http.StatusBadRequest,
			`event_type is missing: set it to the routing key to publish under, e.g. "agent.thread.prompt"`,
			map[string]any{"problems": []problem{{Path: "event_type", Message: "required"}}})
		return
	}
	env, err := envelope.DecodeNew(body)
	if err != nil {
		var mal *envelope.MalformedError
		reason := err.Error()
		if errors.As(err, &mal) {
			reason = mal.Reason
		}
		writeError(w, http.StatusBadRequest, "the body is not a valid v1 envelope: "+reason,
			map[string]any{"problems": splitReason(reason)})
		return
	}
	s.publish(w, r, env, true, answerStatus)
}

// publishAgentPrompt is POST /events/agent/thread/prompt, Python's
// shortcut for POST /events/agent.thread.prompt. Like Python's, it answers
// with the envelope it published.
func (s *Server) publishAgentPrompt(w http.ResponseWriter, r *http.Request) {
	s.publishPayload(w, r, thread.RoutingKeyPrompt, answerEnvelope)
}

// publishRoutingKey is POST /events/{routing_key}.
func (s *Server) publishRoutingKey(w http.ResponseWriter, r *http.Request) {
	s.publishPayload(w, r, r.PathValue("routing_key"), answerStatus)
}

// What a successful publish answers: {"status": "published", "event_id"}
// (Python's /events/custom) or the envelope itself (Python's prompt
// endpoint).
const (
	answerStatus = iota
	answerEnvelope
)

// publishPayload validates a payload of the event type under key, wraps it
// as Python's create_http_envelope does, and publishes it.
func (s *Server) publishPayload(w http.ResponseWriter, r *http.Request, key string, answer int) {
	et, err := s.deps.Events.LookupKey(key)
	if err != nil {
		// The template itself ("artifact.{action}") is no concrete key, but
		// names a type whose key the payload fills.
		if t, terr := s.deps.Events.Lookup(key); terr == nil && t.IsTemplate() && t.RoutingKey() == key {
			et, err = t, nil
		}
	}
	if err != nil {
		s.unknownEventType(w, key, err)
		return
	}
	body, ok := s.readJSON(w, r)
	if !ok {
		return
	}
	if et.IsTemplate() && key == et.RoutingKey() {
		// The path names the template ("artifact.{action}"): fill it from
		// the payload, as `bb publish` does.
		if key, err = et.ResolveRoutingKey(body); err != nil {
			s.invalidPayload(w, et.RoutingKey(), err)
			return
		}
	}
	if s.cfg.StrictTypes {
		err = s.deps.Events.Validate(key, body)
	} else {
		body, err = s.deps.Events.Normalize(key, body)
	}
	if err != nil {
		s.invalidPayload(w, key, err)
		return
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, body); err != nil { // cannot fail: Validate checked the syntax
		writeError(w, http.StatusBadRequest, "malformed JSON: "+describeJSON(err), nil)
		return
	}
	env, err := envelope.NewHTTP(key, json.RawMessage(compact.Bytes()), clientHost(r), s.cfg.AppName)
	if err != nil {
		writeError(w, http.StatusBadRequest, "cannot build an envelope for this payload: "+err.Error(), nil)
		return
	}
	s.publish(w, r, env, false, answer)
}

func (s *Server) unknownEventType(w http.ResponseWriter, key string, err error) {
	if !errors.Is(err, domains.ErrUnknownEventType) {
		writeError(w, http.StatusInternalServerError, "cannot look the routing key up: "+err.Error(), nil)
		return
	}
	writeError(w, http.StatusNotFound,
		fmt.Sprintf("no event type is registered under routing key %q: GET /schemas lists them; "+
			"to publish an event type this service does not know, POST the whole envelope to /events/custom", key),
		map[string]any{"routing_key": key})
}

// problem is one validation problem in an error answer.
type problem struct {
	Path    string `json:"path"`
	Message string `json:"message"`
}

func (s *Server) invalidPayload(w http.ResponseWriter, key string, err error) {
	var ve *domains.ValidationError
	switch {
	case errors.As(err, &ve):
		ps := make([]problem, len(ve.Problems))
		for i, p := range ve.Problems {
			ps[i] = problem{Path: p.Path, Message: p.Message}
		}
		writeError(w, http.StatusUnprocessableEntity,
			fmt.Sprintf("the payload is not a valid %s payload: fix the fields listed in problems (its schema: GET /schemas/%s)", key, key),
			map[string]any{"routing_key": key, "problems": ps})
	case errors.Is(err, domains.ErrUnknownEventType):
		s.unknownEventType(w, key, err)
	default:
		writeError(w, http.StatusInternalServerError, "cannot validate the payload: "+err.Error(), nil)
	}
}

// publish publishes env and answers as Python does. own says whether the
// event id came from the client, which makes a retry idempotent.
func (s *Server) publish(w http.ResponseWriter, r *http.Request, env envelope.Envelope, own bool, answer int) {
	// The client hanging up must not abandon a publish halfway.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), s.cfg.PublishTimeout)
	defer cancel()
	log := s.log.With(slog.String("event_id", env.EventID.String()), slog.String("event_type", env.EventType),
		slog.String("client", clientHost(r)))
	if err := s.deps.Publisher.Publish(ctx, env); err != nil {
		s.publishFailed(w, env, own, err, log)
		return
	}
	log.Info("event published over HTTP")
	if answer == answerEnvelope {
		if body, err := env.MarshalJSON(); err == nil {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write(body)
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "published", "event_id": env.EventID.String()})
}

func (s *Server) publishFailed(w http.ResponseWriter, env envelope.Envelope, own bool, err error, log *slog.Logger) {
	var invalid *envelope.InvalidError
	if errors.As(err, &invalid) {
		log.Info("envelope refused", slog.String("error", err.Error()))
		writeError(w, http.StatusBadRequest, "the envelope is invalid: "+err.Error(),
			map[string]any{"problems": invalid.Problems})
		return
	}
	log.Warn("publish over HTTP failed", slog.String("error", err.Error()))
	var msg string
	switch {
	case errors.Is(err, transport.ErrUnroutable):
		msg = fmt.Sprintf("the broker accepted the event but no queue is bound to routing key %q, so nobody received it", env.EventType)
	case errors.Is(err, transport.ErrNotConfirmed):
		msg = "the broker did not confirm the event: it may or may not be stored"
	case errors.Is(err, transport.ErrClosed):
		msg = "the publisher is closed: this service is shutting down"
	case errors.Is(err, context.DeadlineExceeded):
		msg = fmt.Sprintf("the broker did not confirm the event within %s", s.cfg.PublishTimeout)
	default:
		msg = "cannot publish the event: the broker is unreachable or refused it"
	}
	secs := s.retryAfterSeconds()
	hint := fmt.Sprintf("retry the same request after %d s; the event_id is yours, so consumers deduplicate a retry", secs)
	if !own {
		hint = fmt.Sprintf("retry after %d s; each request gets a new event_id, so to make retries idempotent "+
			"POST the whole envelope with your own event_id to /events/custom", secs)
	}
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	writeError(w, http.StatusServiceUnavailable, msg, map[string]any{
		"event_id":            env.EventID.String(),
		"event_type":          env.EventType,
		"cause":               err.Error(),
		"retryable":           true,
		"retry_after_seconds": secs,
		"hint":                hint,
	})
}

// readJSON reads a POST body: JSON media type (or none, as FastAPI
// accepts), at most MaxBodyBytes, syntactically valid JSON. It answers the
// error itself and returns false when the body is unusable.
func (s *Server) readJSON(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, params, err := mime.ParseMediaType(ct)
		if err != nil || !isJSONMediaType(mt) {
			writeError(w, http.StatusUnsupportedMediaType,
				fmt.Sprintf("Content-Type %q is not JSON: send a JSON body with Content-Type: application/json", ct), nil)
			return nil, false
		}
		if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") && !strings.EqualFold(cs, "utf8") {
			writeError(w, http.StatusUnsupportedMediaType,
				fmt.Sprintf("charset %q is not supported: send UTF-8 JSON with Content-Type: application/json", cs), nil)
			return nil, false
		}
	}
	limit := s.cfg.MaxBodyBytes
	if r.ContentLength > limit {
		s.tooLarge(w, r, r.Body, limit)
		return nil, false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			s.tooLarge(w, r, r.Body, limit)
			return nil, false
		}
		writeError(w, http.StatusBadRequest, "cannot read the request body: "+err.Error(), nil)
		return nil, false
	}
	if len(bytes.TrimSpace(body)) == 0 {
		writeError(w, http.StatusBadRequest, "the body is empty: send a JSON object", nil)
		return nil, false
	}
	var raw json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		writeError(w, http.StatusBadRequest, "malformed JSON: "+describeJSON(err), nil)
		return nil, false
	}
	return body, true
}

// drainLimit bounds how much of an oversized body tooLarge reads.
const drainLimit = 64 << 20

// tooLarge answers 413. A client that writes its whole body before it reads
// the answer, as Python's urllib does, gets a broken pipe instead of the
// 413 when the server closes the connection while the body is still coming:
// so the rest of the body is read and thrown away first, up to drainLimit
// (not for a client that asked to wait, with Expect: 100-continue, before
// sending it), and the connection is closed after the answer.
func (s *Server) tooLarge(w http.ResponseWriter, r *http.Request, body io.Reader, limit int64) {
	if !strings.EqualFold(r.Header.Get("Expect"), "100-continue") {
		_, _ = io.Copy(io.Discard, io.LimitReader(body, drainLimit))
	}
	w.Header().Set("Connection", "close")
	writeError(w, http.StatusRequestEntityTooLarge,
		fmt.Sprintf("the body is larger than %d bytes, the limit of this gateway: send a smaller one", limit),
		map[string]any{"limit_bytes": limit})
}

func isJSONMediaType(mt string) bool {
	typ, sub, _ := strings.Cut(mt, "/")
	return typ == "application" && (sub == "json" || strings.HasSuffix(sub, "+json"))
}

// describeJSON turns a decoding error into a sentence naming the position.
func describeJSON(err error) string {
	if se, ok := errors.AsType[*json.SyntaxError](err); ok {
		return fmt.Sprintf("%s (at byte %d)", se.Error(), se.Offset)
	}
	if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
		return fmt.Sprintf("got a JSON %s, want an object", te.Value)
	}
	return err.Error()
}

// splitReason turns the "path: message; path: message" reason of a
// envelope.MalformedError into problems, like those of a 422.
func splitReason(reason string) []problem {
	var ps []problem
	for part := range strings.SplitSeq(reason, "; ") {
		path, msg, ok := strings.Cut(part, ": ")
		if !ok || strings.ContainsAny(path, " ") {
			path, msg = "", part
		}
		ps = append(ps, problem{Path: path, Message: msg})
	}
	return ps
}

// clientHost is the host part of the TCP peer's address, the
// request.client.host of the Python endpoint.
func clientHost(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if host == "" {
		return "unknown"
	}
	return host
}
