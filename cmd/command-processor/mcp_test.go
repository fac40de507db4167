package main_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/33god/bloodbank-go/cmd/internal/mcpserver/mcptest"
)

// bearer adds the token to every request of the MCP client.
type bearer struct{ token string }

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return http.DefaultTransport.RoundTrip(r)
}

// An agent with only the gateway's /mcp configured discovers the catalogue,
// publishes a prompt, receives the response the processor published, and
// traces the pair, over streamable HTTP behind HTTP_TOKEN.
func TestCommandProcessor_mcpOverHTTP(t *testing.T) {
	e := newRabbitEnv(t)
	e.serviceQueues("command_processor")
	p := start(t, e.env("HTTP_TOKEN=s3cret")...)
	p.waitReady(15 * time.Second)
	endpoint := "http://" + p.addr + "/mcp"

	resp, err := http.Post(endpoint, "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("POST /mcp without the token = %d, want 401", resp.StatusCode)
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	client := mcp.NewClient(&mcp.Implementation{Name: "gemini-cli", Version: "1"}, nil)
	cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: endpoint,
		HTTPClient: &http.Client{Transport: bearer{"s3cret"}}, DisableStandaloneSSE: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	tools, err := cs.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	admin := false
	for _, tool := range tools.Tools {
		admin = admin || tool.Name == "list_parked"
	}
	if !admin {
		t.Errorf("over HTTP with a token, list_parked is not offered")
	}
	flow := mcptest.AgentFlow(t, cs)
	e.forget(flow.Prompt, flow.Response)

	var parked map[string]any
	res := mcptest.Call(t, cs, "list_parked", map[string]any{"service": "command_processor"}, &parked)
	if res.IsError {
		t.Errorf("list_parked: %s", mcptest.Text(res))
	}
}
