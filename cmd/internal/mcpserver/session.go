package mcpserver

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/33god/bloodbank-go/bus"
	"github.com/33god/bloodbank-go/bus/envelope"
	"github.com/33god/bloodbank-go/bus/transport"
)

// QueuePrefix names the temporary queues of this server: "bb.mcp.<uuid>".
// They are exclusive and auto-deleted, so a session leaves nothing behind on
// the broker; the prefix lets an operator recognise them.
const QueuePrefix = "bb.mcp."

// unknownClient names a client that sent no clientInfo.
const unknownClient = "mcp-client"

// session is what the server keeps for one MCP session: who the client is,
// the events it published, and its inbox.
type session struct {
	srv       *Server
	id        string
	client    string
	agentType envelope.AgentType

	mu        sync.Mutex
	published map[uuid.UUID]struct{}
	order     []uuid.UUID // published, oldest first, to forget the oldest
	inbox     *collector
	idle      *time.Timer
	closed    bool
}

// session returns the state of ss, created on first use and dropped when
// the session ends.
func (s *Server) session(ss *mcp.ServerSession) (*session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, toolError("the server is shutting down: reconnect and call again")
	}
	if st := s.sessions[ss]; st != nil {
		return st, nil
	}
	st := &session{srv: s, id: ss.ID(), client: unknownClient, agentType: envelope.AgentCustom, published: map[uuid.UUID]struct{}{}}
	if st.id == "" {
		// stdio has no session id; the instance id still tells two runs apart.
		st.id = uuid.NewString()
	}
	if p := ss.InitializeParams(); p != nil && p.ClientInfo != nil && strings.TrimSpace(p.ClientInfo.Name) != "" {
		st.client = strings.TrimSpace(p.ClientInfo.Name)
		st.agentType = AgentTypeOf(st.client)
	}
	s.sessions[ss] = st
	go func() {
		_ = ss.Wait()
		s.mu.Lock()
		if s.sessions[ss] == st {
			delete(s.sessions, ss)
		}
		s.mu.Unlock()
		st.close()
	}()
	return st, nil
}

// AgentTypeOf maps an MCP client name to the envelope's agent type: a name
// that is, or starts with, one of the AgentType values ("claude-code",
// "gemini-cli-mcp-client") is that type; any other is AgentCustom.
func AgentTypeOf(client string) envelope.AgentType {
	name := strings.ToLower(strings.TrimSpace(client))
	for _, t := range []envelope.AgentType{envelope.AgentClaudeCode, envelope.AgentClaudeChat, envelope.AgentGeminiCLI,
		envelope.AgentGeminiCode, envelope.AgentLetta, envelope.AgentAgno, envelope.AgentSmolagent, envelope.AgentAtomicAgent} {
		if name == string(t) || strings.HasPrefix(name, string(t)+"-") || strings.HasPrefix(name, string(t)+" ") {
			return t
		}
	}
	return envelope.AgentCustom
}

// expect records that the session is about to publish id, opening the
// inbox first if it is not open.
func (st *session) expect(ctx context.Context, id uuid.UUID) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.closed {
		return errors.New("the session ended")
	}
	st.published[id] = struct{}{}
	st.order = append(st.order, id)
	if len(st.order) > st.srv.cfg.InboxSize {
		delete(st.published, st.order[0])
		st.order = st.order[1:]
	}
	st.touch()
	if st.inbox != nil {
		return nil
	}
	c, err := st.srv.openCollector(ctx, []string{"#"}, st.causedByMine)
	if err != nil {
		return err
	}
	st.inbox = c
	st.srv.log.Debug("mcp: inbox opened", slog.String("session", st.id), slog.String("queue", c.queue))
	return nil
}

// causedByMine keeps the events caused by an event the session published.
func (st *session) causedByMine(it item) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	for _, id := range it.env.CorrelationIDs {
		if _, ok := st.published[id]; ok {
			return true
		}
	}
	return false
}

// inboxFor returns the inbox when it holds what id causes, or nil.
func (st *session) inboxFor(id uuid.UUID) *collector {
	st.mu.Lock()
	defer st.mu.Unlock()
	if _, ok := st.published[id]; !ok || st.inbox == nil {
		return nil
	}
	st.touch()
	return st.inbox
}

// touch restarts the idle timer. The caller holds st.mu.
func (st *session) touch() {
	if st.idle != nil {
		st.idle.Stop()
	}
	st.idle = time.AfterFunc(st.srv.cfg.InboxIdle, st.closeInbox)
}

func (st *session) closeInbox() {
	st.mu.Lock()
	c := st.inbox
	st.inbox = nil
	st.mu.Unlock()
	if c != nil {
		c.close()
	}
}

func (st *session) close() {
	st.mu.Lock()
	st.closed = true
	if st.idle != nil {
		st.idle.Stop()
	}
	st.mu.Unlock()
	st.closeInbox()
}

// item is one event a collector received.
type item struct {
	key string // the routing key it travelled under
	env envelope.Envelope
}

// collector consumes a temporary queue and keeps the events keep accepts,
// at most Config.InboxSize, for wait to take.
type collector struct {
	queue  string
	sub    message.Subscriber
	cancel context.CancelFunc
	keep   func(item) bool
	max    int

	mu      sync.Mutex
	items   []item
	seen    map[uuid.UUID]struct{} // drops the copy a second matching pattern delivers
	changed chan struct{}          // closed and replaced when an item is added
}

// openCollector binds a new temporary queue to patterns, within
// Config.Timeout.
func (s *Server) openCollector(ctx context.Context, patterns []string, keep func(item) bool) (*collector, error) {
	queue := QueuePrefix + uuid.NewString()
	sub, err := s.deps.Bus.TemporarySubscriber(transport.SubscriberConfig{
		QueueName: func(string) string { return queue },
		Patterns:  patterns,
		Consumers: 1,
		Prefetch:  100,
		// Every delivery is acked on receipt, so there is nothing to drain.
		DrainTimeout: time.Second,
		Logger:       s.log,
	})
	if err != nil {
		return nil, err
	}
	subCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	c := &collector{queue: queue, sub: sub, cancel: cancel, keep: keep, max: s.cfg.InboxSize,
		seen: map[uuid.UUID]struct{}{}, changed: make(chan struct{})}
	chans, err := bus.SubscribeAll(subCtx, sub, patterns, s.cfg.Timeout)
	if err != nil {
		c.close()
		return nil, err
	}
	for _, ch := range chans {
		go c.consume(ch)
	}
	return c, nil
}

func (c *collector) consume(ch <-chan *message.Message) {
	for msg := range ch {
		msg.Ack()
		env, err := envelope.FromMessage(msg)
		if err != nil {
			continue // not an envelope: nothing an agent could act on
		}
		key := msg.Metadata.Get(envelope.MetaRoutingKey)
		if key == "" {
			key = env.EventType
		}
		it := item{key: key, env: env}
		if c.keep != nil && !c.keep(it) {
			continue
		}
		c.add(it)
	}
}

func (c *collector) add(it item) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, dup := c.seen[it.env.EventID]; dup {
		return
	}
	if len(c.seen) >= 4*c.max {
		c.seen = map[uuid.UUID]struct{}{}
	}
	c.seen[it.env.EventID] = struct{}{}
	c.items = append(c.items, it)
	if len(c.items) > c.max {
		c.items = c.items[len(c.items)-c.max:]
	}
	close(c.changed)
	c.changed = make(chan struct{})
}

// take removes and returns up to n items that match, oldest first, and the
// channel closed when the next item arrives.
func (c *collector) take(match func(item) bool, n int) ([]item, <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var got []item
	kept := c.items[:0]
	for _, it := range c.items {
		if len(got) < n && match(it) {
			got = append(got, it)
		} else {
			kept = append(kept, it)
		}
	}
	clear(c.items[len(kept):])
	c.items = kept
	return got, c.changed
}

// wait takes matching items until it has n, d has passed or ctx is done.
func (c *collector) wait(ctx context.Context, match func(item) bool, n int, d time.Duration) (got []item, timedOut bool) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		more, changed := c.take(match, n-len(got))
		got = append(got, more...)
		if len(got) >= n {
			return got, false
		}
		select {
		case <-changed:
		case <-timer.C:
			return got, true
		case <-ctx.Done():
			return got, true
		}
	}
}

// close unbinds and deletes the queue.
func (c *collector) close() {
	c.cancel()
	_ = c.sub.Close()
}
