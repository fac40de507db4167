// Package mcptest drives an mcpserver through the SDK's own client, the
// way an agent uses it: the tests of the package and of the binaries that
// serve it (bb mcp on stdio, the gateway's /mcp) share these steps.
package mcptest

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/33god/bloodbank-go/bus/envelope"
	"github.com/33god/bloodbank-go/cmd/internal/mcpserver"
)

// Call calls a tool and decodes its structured content into out (nil to
// skip). It fails the test on a protocol error, not on a tool error.
func Call(t testing.TB, cs *mcp.ClientSession, name string, args map[string]any, out any) *mcp.CallToolResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		t.Fatalf("%s: protocol error: %v", name, err)
	}
	if out != nil && res.StructuredContent != nil {
		b, err := json.Marshal(res.StructuredContent)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s: structured content %s: %v", name, b, err)
		}
	}
	return res
}

// Text joins the text content of a result.
func Text(res *mcp.CallToolResult) string {
	var parts []string
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			parts = append(parts, tc.Text)
		}
	}
	return strings.Join(parts, "\n")
}

// WantToolError fails the test unless res is a tool error whose text
// contains every want.
func WantToolError(t testing.TB, what string, res *mcp.CallToolResult, want ...string) {
	t.Helper()
	if !res.IsError {
		t.Errorf("%s: not a tool error: %s", what, Text(res))
		return
	}
	for _, w := range want {
		if !strings.Contains(Text(res), w) {
			t.Errorf("%s: error %q does not say %q", what, Text(res), w)
		}
	}
}

// Flow is what AgentFlow published, for the caller to check or clean up.
type Flow struct {
	Prompt, Response uuid.UUID
}

// AgentFlow is the proof of issue 20 against a server whose bus has a
// command processor answering agent.thread.prompt: discover the catalogue,
// publish an invalid payload and read its JSON path, publish a prompt,
// receive the response it caused with watch_events, and trace the pair.
func AgentFlow(t *testing.T, cs *mcp.ClientSession) Flow {
	t.Helper()
	var list mcpserver.ListOutput
	if res := Call(t, cs, "list_event_types", map[string]any{"domain": "agent", "query": "prompt"}, &list); res.IsError {
		t.Fatalf("list_event_types: %s", Text(res))
	}
	if !slices.ContainsFunc(list.EventTypes, func(e mcpserver.EventTypeSummary) bool { return e.RoutingKey == "agent.thread.prompt" }) {
		t.Fatalf("list_event_types domain=agent query=prompt = %+v, want agent.thread.prompt", list.EventTypes)
	}
	var desc mcpserver.DescribeOutput
	if res := Call(t, cs, "describe_event_type", map[string]any{"name": "agent.thread.prompt"}, &desc); res.IsError {
		t.Fatalf("describe_event_type: %s", Text(res))
	}
	if desc.Kind != "command" || desc.Result != "agent.thread.response" || len(desc.Schema) == 0 || len(desc.Example) == 0 {
		t.Errorf("describe_event_type agent.thread.prompt = %+v, want a command answered by agent.thread.response, with schema and example", desc)
	}

	var bad mcpserver.PublishOutput
	res := Call(t, cs, "publish_event", map[string]any{"event_type": "agent.thread.prompt", "payload": map[string]any{"provider": "anthropic"}}, &bad)
	WantToolError(t, "publish_event of a payload without prompt", res, "payload.prompt")
	if !slices.ContainsFunc(bad.Problems, func(p mcpserver.Problem) bool { return p.Path == "payload.prompt" }) || bad.EventID != "" {
		t.Errorf("publish_event of an invalid payload = %+v, want the problem at payload.prompt and no event id", bad)
	}

	var pub mcpserver.PublishOutput
	res = Call(t, cs, "publish_event", map[string]any{"event_type": "agent.thread.prompt",
		"payload": map[string]any{"provider": "anthropic", "prompt": "hello over MCP"}}, &pub)
	if res.IsError {
		t.Fatalf("publish_event: %s", Text(res))
	}
	prompt, err := uuid.Parse(pub.EventID)
	if err != nil {
		t.Fatalf("publish_event event_id %q: %v", pub.EventID, err)
	}

	var watch mcpserver.WatchOutput
	res = Call(t, cs, "watch_events", map[string]any{"patterns": []string{"agent.thread.*"}, "caused_by": prompt.String(),
		"max_events": 1, "wait_seconds": 20}, &watch)
	if res.IsError || len(watch.Events) != 1 {
		t.Fatalf("watch_events caused_by the prompt = %s, want its response", Text(res))
	}
	resp, err := envelope.Decode(watch.Events[0])
	if err != nil {
		t.Fatal(err)
	}
	if resp.EventType != "agent.thread.response" || !slices.Contains(resp.CorrelationIDs, prompt) {
		t.Fatalf("watched %s caused by %v, want agent.thread.response caused by %s", resp.EventType, resp.CorrelationIDs, prompt)
	}

	deadline := time.Now().Add(10 * time.Second)
	for {
		var tr mcpserver.TraceOutput
		res = Call(t, cs, "trace_event", map[string]any{"event_id": prompt.String()}, &tr)
		if !res.IsError && slices.Contains(tr.Children, resp.EventID.String()) {
			var back mcpserver.TraceOutput
			Call(t, cs, "trace_event", map[string]any{"event_id": resp.EventID.String()}, &back)
			if !slices.Contains(back.Parents, prompt.String()) {
				t.Errorf("trace_event of the response: parents %v, want the prompt %s", back.Parents, prompt)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("trace_event of the prompt = %s, want the response %s among its children", Text(res), resp.EventID)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return Flow{Prompt: prompt, Response: resp.EventID}
}
