package gateway_test

import (
	"context"
	"fmt"
	"io"
	"net/http/httptest"
	"strings"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/33god/bloodbank-go/bus"
	"github.com/33god/bloodbank-go/bus/embedded"
	"github.com/33god/bloodbank-go/bus/envelope"
	"github.com/33god/bloodbank-go/cmd/internal/gateway"
	"github.com/33god/bloodbank-go/domains/catalog"
)

// A gateway on the embedded bus, with a service whose handler the metrics
// middleware observes: what command-processor and `bb serve` wire.
func Example() {
	cfg, _ := bus.LoadConfig(nil, "")
	b := bus.NewEmbeddedBus(cfg, embedded.New(nil), nil)
	defer b.Close()
	events, _ := catalog.New()

	m, _ := gateway.NewMetrics(gateway.MetricsConfig{Events: events, PublisherStats: b.PublisherStats, OmitRuntime: true})
	b.DecoratePublisher(m.DecoratePublisher)
	svc, _ := b.NewService("example")
	m.AddRouterMetrics(svc.Router())
	handled := make(chan string, 1)
	_ = svc.HandleMessage("print_prompt", "agent.thread.prompt", func(msg *message.Message) error {
		handled <- msg.Metadata.Get(envelope.MetaSourceHost) + " " + string(msg.Payload)
		return nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- svc.Run(ctx) }()
	defer func() { cancel(); <-done }()
	<-svc.Running()

	gw, err := gateway.New(gateway.Config{ServiceName: "example"},
		gateway.Deps{Publisher: b, Events: events, Checks: []gateway.Check{gateway.BrokerCheck(b)}, Metrics: m})
	if err != nil {
		fmt.Println(err)
		return
	}
	srv := httptest.NewServer(gw)
	defer srv.Close()

	resp, _ := srv.Client().Get(srv.URL + "/healthz")
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Print(string(body))

	resp, _ = srv.Client().Post(srv.URL+"/events/agent/thread/prompt", "application/json",
		strings.NewReader(`{"provider": "anthropic", "prompt": "hello"}`))
	resp.Body.Close()
	fmt.Println(resp.StatusCode)
	fmt.Println(<-handled)
	// Output:
	// {"ok":true,"service":"example"}
	// 200
	// 127.0.0.1 {"provider":"anthropic","prompt":"hello"}
}
