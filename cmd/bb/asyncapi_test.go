package main_test

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestAsyncAPI_printsTheDocumentWithoutABroker(t *testing.T) {
	// A closed port: bb asyncapi must not try to connect.
	res := mustSucceed(t, run{env: []string{"RABBIT_URL=amqp://bb:s3cret@127.0.0.1:1/", "EXCHANGE_NAME=test.asyncapi"}}, "asyncapi")
	if strings.Contains(res.stdout, "s3cret") {
		t.Error("the document holds the password of RABBIT_URL")
	}
	var doc struct {
		AsyncAPI string                     `json:"asyncapi"`
		Servers  map[string]json.RawMessage `json:"servers"`
		Channels map[string]struct {
			Address  string `json:"address"`
			Bindings struct {
				AMQP struct {
					Exchange struct {
						Name string `json:"name"`
					} `json:"exchange"`
				} `json:"amqp"`
			} `json:"bindings"`
		} `json:"channels"`
	}
	if err := json.Unmarshal([]byte(res.stdout), &doc); err != nil {
		t.Fatalf("stdout is not JSON: %v\n%s", err, res)
	}
	if doc.AsyncAPI != "3.0.0" {
		t.Errorf("asyncapi = %q, want 3.0.0", doc.AsyncAPI)
	}
	if _, ok := doc.Servers["127.0.0.1"]; !ok || len(doc.Servers) != 1 {
		t.Errorf("servers = %v, want 127.0.0.1 alone", doc.Servers)
	}
	ch, ok := doc.Channels["agent.thread.prompt"]
	if !ok || ch.Address != "agent.thread.prompt" || ch.Bindings.AMQP.Exchange.Name != "test.asyncapi" {
		t.Errorf("agent.thread.prompt channel = %+v, want its address and the exchange of EXCHANGE_NAME", ch)
	}
	if !strings.HasPrefix(res.stdout, "{\n  \"asyncapi\"") {
		t.Errorf("stdout is not indented JSON: %.40q", res.stdout)
	}
}
