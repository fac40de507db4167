package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/33god/bloodbank-go/bus"
	"github.com/33god/bloodbank-go/bus/envelope"
	"github.com/33god/bloodbank-go/examples/internal/extest"
)

// The demo's whole log: one envelope per line, in publish order.
const wantLog = `{"event_id":"0b6f1c9e-3d55-4a57-9c57-2f7d0f0e6a11","event_type":"agent.thread.prompt","timestamp":"2026-01-29T10:00:00.000000Z","version":"1.0.0","source":{"host":"laptop-7","type":"manual","app":"bb","meta":null},"correlation_ids":[],"agent_context":null,"payload":{"provider":"anthropic","model":null,"prompt":"Summarise the standup","project":null,"working_dir":null,"domain":null,"tags":["meetings"]}}
{"event_id":"98b8263c-8676-513e-b4cc-358d007df068","event_type":"github.pr.created","timestamp":"2026-01-29T10:00:01.000000Z","version":"1.0.0","source":{"host":"ci-runner-2","type":"hook","app":"github-webhook","meta":null},"correlation_ids":[],"agent_context":null,"payload":{"cache_key":"bloodbank-go|42","cache_type":"redis"}}
{"event_id":"5c3d2e1f-0a9b-4c8d-8e7f-6a5b4c3d2e1f","event_type":"artifact.created","timestamp":"2026-01-29T10:00:02.000000Z","version":"1.0.0","source":{"host":"laptop-7","type":"agent","app":"summariser","meta":null},"correlation_ids":["0b6f1c9e-3d55-4a57-9c57-2f7d0f0e6a11"],"agent_context":null,"payload":{"action":"created","kind":"summary","uri":"s3://notes/standup-0129.md","title":null,"content":null,"metadata":{}}}
`

func TestRun_demoOnTheEmbeddedTransport(t *testing.T) {
	testDemo(t, extest.EmbeddedConfig(t))
}

func TestRun_demoOnRabbitMQ(t *testing.T) {
	cfg := extest.RabbitConfig(t, demoServiceName)
	testDemo(t, cfg)
	extest.WantNoServiceQueue(t, cfg, demoServiceName)
}

func testDemo(t *testing.T, cfg bus.Config) {
	ctx, cancel := context.WithTimeout(context.Background(), extest.Timeout)
	defer cancel()
	var out bytes.Buffer
	if err := run(ctx, cfg, extest.Logger(t), &out, true); err != nil {
		t.Fatalf("run: %v\nlog so far:\n%s", err, &out)
	}
	if got := out.String(); got != wantLog {
		t.Errorf("log:\n%s\nwant:\n%s", got, wantLog)
	}
}

func TestAuditLine(t *testing.T) {
	tests := []struct {
		name, body, want string
	}{
		{
			name: "a body that is not an envelope is logged with the reason",
			body: "hello\nworld",
			want: `{"malformed":"body is not JSON, want an envelope object","message_id":"m-1","routing_key":"legacy.event","body":"hello\nworld"}`,
		},
		{
			name: "a pretty-printed payload becomes one line",
			body: `{"event_id":"0b6f1c9e-3d55-4a57-9c57-2f7d0f0e6a11","event_type":"legacy.event","timestamp":"2026-01-29T10:00:00Z",` +
				`"source":{"host":"h","type":"manual"},"payload":{` + "\n" + `  "a": [1,` + "\n" + `    2]` + "\n" + `}}`,
			want: `{"event_id":"0b6f1c9e-3d55-4a57-9c57-2f7d0f0e6a11","event_type":"legacy.event","timestamp":"2026-01-29T10:00:00.000000Z","version":"1.0.0",` +
				`"source":{"host":"h","type":"manual","app":null,"meta":null},"correlation_ids":[],"agent_context":null,"payload":{"a":[1,2]}}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg := envelope.DecodeDelivery([]byte(tt.body), "m-1", "legacy.event", nil)
			line, err := auditLine(msg)
			if err != nil {
				t.Fatal(err)
			}
			got := string(line)
			if !strings.HasSuffix(got, "\n") || strings.Count(got, "\n") != 1 {
				t.Errorf("not one line: %q", got)
			}
			if got = strings.TrimSuffix(got, "\n"); got != tt.want {
				t.Errorf("line:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}
