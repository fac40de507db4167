package mcpserver_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/33god/bloodbank-go/bus"
	"github.com/33god/bloodbank-go/bus/embedded"
	"github.com/33god/bloodbank-go/bus/envelope"
	"github.com/33god/bloodbank-go/bus/transport"
	"github.com/33god/bloodbank-go/cmd/internal/mcpserver"
	"github.com/33god/bloodbank-go/cmd/internal/mcpserver/mcptest"
	"github.com/33god/bloodbank-go/correlation"
	"github.com/33god/bloodbank-go/cqrs"
	"github.com/33god/bloodbank-go/cqrs/commands"
	"github.com/33god/bloodbank-go/domains/catalog"
	"github.com/33god/bloodbank-go/middleware"
)

// harness is a server on an embedded bus with a command processor that
// answers agent.thread.prompt, and a client connected in memory.
type harness struct {
	broker *embedded.Broker
	bus    *bus.Bus
	cs     *mcp.ClientSession
}

func newHarness(t *testing.T, cfg mcpserver.Config) *harness {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	busCfg, err := bus.LoadConfig([]string{"SERVICE_NAME=command_processor", "BB_DRAIN_TIMEOUT=2s"}, "")
	if err != nil {
		t.Fatal(err)
	}
	broker := embedded.New(nil)
	b := bus.NewEmbeddedBus(busCfg, broker, nil)
	store, err := correlation.NewEmbeddedStore(correlation.RedisConfig{})
	if err != nil {
		t.Fatal(err)
	}
	rec, err := correlation.NewRecorder(store, correlation.RecorderConfig{})
	if err != nil {
		t.Fatal(err)
	}
	b.DecoratePublisher(func(p message.Publisher) message.Publisher { return middleware.NewRecordingPublisher(p, rec) })
	reg, err := catalog.New()
	if err != nil {
		t.Fatal(err)
	}

	svc, err := b.NewService("command_processor")
	if err != nil {
		t.Fatal(err)
	}
	proc, err := cqrs.NewProcessor(b.Publisher(), cqrs.ProcessorConfig{Registry: reg, Source: cqrs.DefaultSource("command_processor")})
	if err != nil {
		t.Fatal(err)
	}
	if err := commands.Register(proc, commands.EchoAgent{}); err != nil {
		t.Fatal(err)
	}
	if err := proc.AddHandlersToService(svc); err != nil {
		t.Fatal(err)
	}
	ran := make(chan struct{})
	go func() { defer close(ran); _ = svc.Run(ctx) }()
	<-svc.Running()

	srv, err := mcpserver.New(cfg, mcpserver.Deps{Bus: b, Events: reg, Correlation: store})
	if err != nil {
		t.Fatal(err)
	}
	ct, st := mcp.NewInMemoryTransports()
	ss, err := srv.MCPServer().Connect(ctx, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	client := mcp.NewClient(&mcp.Implementation{Name: "claude-code", Version: "2.0"}, nil)
	cs, err := client.Connect(ctx, ct, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cs.Close()
		_ = ss.Wait()
		_ = srv.Close()
		cancel()
		<-ran
		_ = b.Close()
		_ = broker.Close()
	})
	return &harness{broker: broker, bus: b, cs: cs}
}

func toolNames(t *testing.T, cs *mcp.ClientSession) []string {
	t.Helper()
	res, err := cs.ListTools(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tool := range res.Tools {
		names = append(names, tool.Name)
		if tool.InputSchema == nil || tool.OutputSchema == nil {
			t.Errorf("tool %s lacks an input or output schema", tool.Name)
		}
	}
	slices.Sort(names)
	return names
}

func TestServer_toolsAndAdminTools(t *testing.T) {
	plain := toolNames(t, newHarness(t, mcpserver.Config{}).cs)
	want := []string{"describe_event_type", "list_event_types", "publish_event", "trace_event", "watch_events"}
	if !slices.Equal(plain, want) {
		t.Errorf("tools = %v, want %v", plain, want)
	}
	h := newHarness(t, mcpserver.Config{Admin: true})
	admin := toolNames(t, h.cs)
	if !slices.Contains(admin, "list_parked") || !slices.Contains(admin, "replay_parked") {
		t.Errorf("tools with Admin = %v, want list_parked and replay_parked too", admin)
	}
	// The embedded transport keeps poison queues in its process: a tool
	// error that says so, not a crash.
	mcptest.WantToolError(t, "list_parked on the embedded bus", mcptest.Call(t, h.cs, "list_parked", nil, nil), "RabbitMQ")
	mcptest.WantToolError(t, "replay_parked without a selection", mcptest.Call(t, h.cs, "replay_parked", nil, nil), "event_ids")
}

func TestServer_agentFlow(t *testing.T) {
	h := newHarness(t, mcpserver.Config{})
	// A watcher of our own, bound before the publish, sees the prompt as
	// it travelled.
	sub, err := h.bus.TemporarySubscriber(transport.SubscriberConfig{QueueName: func(string) string { return "test.prompts" }})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	prompts, err := sub.Subscribe(context.Background(), "agent.thread.prompt")
	if err != nil {
		t.Fatal(err)
	}
	flow := mcptest.AgentFlow(t, h.cs)
	select {
	case msg := <-prompts:
		msg.Ack()
		env, err := envelope.FromMessage(msg)
		if err != nil {
			t.Fatal(err)
		}
		if env.EventID != flow.Prompt || env.Source.Type != envelope.TriggerAgent || env.Source.App != "claude-code" {
			t.Errorf("prompt %s source %+v, want %s from agent claude-code", env.EventID, env.Source, flow.Prompt)
		}
		ac := env.AgentContext
		if ac == nil || ac.Type != envelope.AgentClaudeCode || ac.Name != "claude-code" || ac.InstanceID == "" {
			t.Errorf("agent_context = %+v, want claude-code with the session as instance id", ac)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the prompt never reached the bus")
	}
}

func TestServer_catalogue(t *testing.T) {
	h := newHarness(t, mcpserver.Config{})
	var list mcpserver.ListOutput
	mcptest.Call(t, h.cs, "list_event_types", map[string]any{"kind": "command"}, &list)
	for _, e := range list.EventTypes {
		if e.Kind != "command" {
			t.Errorf("kind=command listed %s of kind %s", e.RoutingKey, e.Kind)
		}
	}
	if len(list.EventTypes) == 0 || len(list.Domains) == 0 {
		t.Fatalf("list_event_types kind=command = %+v, want commands and domains", list)
	}
	mcptest.WantToolError(t, "unknown domain", mcptest.Call(t, h.cs, "list_event_types", map[string]any{"domain": "nosuch"}, nil), "no domain")
	mcptest.WantToolError(t, "bad kind", mcptest.Call(t, h.cs, "list_event_types", map[string]any{"kind": "thing"}, nil), "command, fact or event")
	mcptest.WantToolError(t, "unknown type", mcptest.Call(t, h.cs, "describe_event_type", map[string]any{"name": "agent.thread.promt"}, nil),
		"unknown event type", "agent.thread.prompt")

	res, err := h.cs.ReadResource(context.Background(), &mcp.ReadResourceParams{URI: mcpserver.SchemaURI("agent.thread.prompt")})
	if err != nil || len(res.Contents) != 1 || !json.Valid([]byte(res.Contents[0].Text)) {
		t.Fatalf("read %s = %+v, %v, want the JSON Schema", mcpserver.SchemaURI("agent.thread.prompt"), res, err)
	}
	resources, err := h.cs.ListResources(context.Background(), nil)
	if err != nil || len(resources.Resources) < len(list.EventTypes) {
		t.Errorf("resources = %v, %v, want one per event type", resources, err)
	}
}

func TestServer_badInputsAreToolErrors(t *testing.T) {
	h := newHarness(t, mcpserver.Config{MaxWait: 5 * time.Second})
	cases := []struct {
		name string
		tool string
		args map[string]any
		want []string
	}{
		{"unknown type", "publish_event", map[string]any{"event_type": "nosuch.thing", "payload": map[string]any{}}, []string{"unknown event type", "list_event_types"}},
		{"no payload", "publish_event", map[string]any{"event_type": "agent.thread.prompt"}, []string{"payload"}},
		{"wrong type", "publish_event", map[string]any{"event_type": "agent.thread.prompt", "payload": map[string]any{"provider": "anthropic", "prompt": "x", "tags": "a"}}, []string{"payload.tags"}},
		{"bad correlation id", "publish_event", map[string]any{"event_type": "agent.thread.prompt", "payload": map[string]any{"provider": "anthropic", "prompt": "x"}, "correlation_ids": []string{"x"}}, []string{"correlation_ids[0]", "not a UUID"}},
		{"wait above the limit", "watch_events", map[string]any{"wait_seconds": 60}, []string{"above the limit of 5", "call watch_events again"}},
		{"empty pattern", "watch_events", map[string]any{"patterns": []string{" "}}, []string{"pattern is empty"}},
		{"long pattern", "watch_events", map[string]any{"patterns": []string{strings.Repeat("a", 300)}}, []string{"longer than 255"}},
		{"bad caused_by", "watch_events", map[string]any{"caused_by": "nope", "wait_seconds": 0.1}, []string{"caused_by", "not a UUID"}},
		{"too many events", "watch_events", map[string]any{"max_events": 1000}, []string{"max_events 1000"}},
		{"bad trace id", "trace_event", map[string]any{"event_id": "x"}, []string{"event_id", "not a UUID"}},
		{"deep trace", "trace_event", map[string]any{"event_id": "0b6f1c9e-3d55-4a57-9c57-2f7d0f0e6a11", "depth": 1000}, []string{"depth 1000"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			mcptest.WantToolError(t, c.tool, mcptest.Call(t, h.cs, c.tool, c.args, nil), c.want...)
		})
	}
	// A watch that times out is a result, not an error.
	var out mcpserver.WatchOutput
	res := mcptest.Call(t, h.cs, "watch_events", map[string]any{"patterns": []string{"nobody.publishes.this"}, "wait_seconds": 0.2}, &out)
	if res.IsError || !out.TimedOut || len(out.Events) != 0 {
		t.Errorf("an empty watch = %s, want timed_out and no events", mcptest.Text(res))
	}
}

func TestServer_brokerGoneIsAToolError(t *testing.T) {
	h := newHarness(t, mcpserver.Config{Timeout: 2 * time.Second})
	_ = h.broker.Close()
	start := time.Now()
	res := mcptest.Call(t, h.cs, "publish_event", map[string]any{"event_type": "agent.thread.prompt",
		"payload": map[string]any{"provider": "anthropic", "prompt": "x"}}, nil)
	mcptest.WantToolError(t, "publish with the broker closed", res, "broker")
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("the failed publish took %s", d)
	}
	// The session survives it.
	mcptest.Call(t, h.cs, "list_event_types", nil, nil)
}

func TestAgentTypeOf(t *testing.T) {
	for _, c := range []struct {
		client string
		want   envelope.AgentType
	}{
		{"claude-code", envelope.AgentClaudeCode},
		{"Claude-Code", envelope.AgentClaudeCode},
		{"gemini-cli-mcp-client", envelope.AgentGeminiCLI},
		{"letta", envelope.AgentLetta},
		{"lettuce", envelope.AgentCustom},
		{"cursor", envelope.AgentCustom},
		{"", envelope.AgentCustom},
	} {
		if got := mcpserver.AgentTypeOf(c.client); got != c.want {
			t.Errorf("AgentTypeOf(%q) = %q, want %q", c.client, got, c.want)
		}
	}
}
