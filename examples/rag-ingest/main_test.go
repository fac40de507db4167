package main

import (
	"bytes"
	"context"
	"testing"

	"github.com/33god/bloodbank-go/bus"
	"github.com/33god/bloodbank-go/correlation"
	"github.com/33god/bloodbank-go/examples/internal/extest"
)

// The demo's whole output: every id is deterministic, so it is exact.
const wantOutput = `published fireflies.transcript.ready 4003368e-7019-5300-8371-c2d7a81976bb (transcript tr-standup-0129, 12 sentences)
published fireflies.transcript.ready 812f4154-ac2d-5cc3-99b7-f1b09e076c62 (transcript tr-retro-0130, 5 sentences)
published fireflies.transcript.ready 7bbfd292-a5ba-5609-bdaa-e8219ff3ce5e (transcript tr-silent-0131, 0 sentences)
correlation graph:
  tr-standup-0129 4003368e-7019-5300-8371-c2d7a81976bb → fireflies.transcript.processed 43bbb474-0fea-5c88-b66f-8b0c42d794ad, parents [4003368e-7019-5300-8371-c2d7a81976bb]
  tr-retro-0130 812f4154-ac2d-5cc3-99b7-f1b09e076c62 → fireflies.transcript.processed 0ef66522-7b09-553d-a50f-673ec815088f, parents [812f4154-ac2d-5cc3-99b7-f1b09e076c62]
  tr-silent-0131 7bbfd292-a5ba-5609-bdaa-e8219ff3ce5e → fireflies.transcript.failed 492a4457-385e-53fc-8a1c-4a97bd9365b1, parents [7bbfd292-a5ba-5609-bdaa-e8219ff3ce5e]
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
	// The graph is read from an embedded store on both transports, so that
	// the test never writes to a shared Redis.
	store, err := correlation.NewEmbeddedStore(correlation.RedisConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	ctx, cancel := context.WithTimeout(context.Background(), extest.Timeout)
	defer cancel()
	var out bytes.Buffer
	if err := run(ctx, cfg, store, extest.Logger(t), &out, true); err != nil {
		t.Fatalf("run: %v\noutput so far:\n%s", err, &out)
	}
	if got := out.String(); got != wantOutput {
		t.Errorf("output:\n%s\nwant:\n%s", got, wantOutput)
	}
}
