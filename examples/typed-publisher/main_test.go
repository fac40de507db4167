package main

import (
	"bytes"
	"context"
	"testing"

	"github.com/33god/bloodbank-go/bus"
	"github.com/33god/bloodbank-go/examples/internal/extest"
)

// The demo's whole output. 70117275-3199-5e4c-a175-71646fb33ad7 is the
// wire contract's test vector: Python's id for fireflies.transcript.upload
// with meeting_id=abc123.
const wantOutput = `published fireflies.transcript.upload 70117275-3199-5e4c-a175-71646fb33ad7
published fireflies.transcript.upload 70117275-3199-5e4c-a175-71646fb33ad7
published fireflies.transcript.ready bda5228a-22b6-516e-ac31-d900348d5f33, parent 70117275-3199-5e4c-a175-71646fb33ad7
rejected before publishing: cannot publish fireflies.transcript.failed: payload.failed_stage: expected one of "upload", "transcription", "processing", got "uploading"
received fireflies.transcript.upload 70117275-3199-5e4c-a175-71646fb33ad7 correlation_ids [] source file_watch/recording-watcher
received fireflies.transcript.upload 70117275-3199-5e4c-a175-71646fb33ad7 correlation_ids [] source file_watch/recording-watcher
received fireflies.transcript.ready bda5228a-22b6-516e-ac31-d900348d5f33 correlation_ids [70117275-3199-5e4c-a175-71646fb33ad7] source hook/fireflies-webhook
`

func TestRun_demoOnTheEmbeddedTransport(t *testing.T) {
	testDemo(t, extest.EmbeddedConfig(t))
}

func TestRun_demoOnRabbitMQ(t *testing.T) {
	testDemo(t, extest.RabbitConfig(t))
}

func testDemo(t *testing.T, cfg bus.Config) {
	ctx, cancel := context.WithTimeout(context.Background(), extest.Timeout)
	defer cancel()
	var out bytes.Buffer
	if err := run(ctx, cfg, extest.Logger(t), &out); err != nil {
		t.Fatalf("run: %v\noutput so far:\n%s", err, &out)
	}
	if got := out.String(); got != wantOutput {
		t.Errorf("output:\n%s\nwant:\n%s", got, wantOutput)
	}
}
