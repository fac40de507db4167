package envelope_test

import (
	"bytes"
	"maps"
	"strings"
	"testing"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/33god/bloodbank-go/bus/envelope"
)

// bbtUnknownBody is bbtPythonBody as a newer writer might send it: members
// this package does not know at the top level, in source, in agent_context
// and in its code_state, each after the known ones, so that it is also the
// form MarshalJSON writes.
const bbtUnknownBody = `{"event_id":"0b6f1c9e-3d55-4a57-9c57-2f7d0f0e6a11","event_type":"agent.thread.prompt",` +
	`"timestamp":"2026-01-29T10:00:00.123456Z","version":"1.0.0",` +
	`"source":{"host":"127.0.0.1","type":"manual","app":"http-client","meta":null,"pid":4242,"labels":["x","<y> & z"]},` +
	`"correlation_ids":[],` +
	`"agent_context":{"type":"custom","name":null,"system_prompt":null,"instance_id":null,"mcp_servers":null,` +
	`"file_references":null,"url_references":null,` +
	`"code_state":{"repo_url":null,"branch":"main","working_diff":null,"branch_diff":null,"last_commit_hash":null,"dirty":true,"stash":{"n":2}},` +
	`"checkpoint_id":null,"meta":null,"model_version":"v9","extra":{"a":1,"b":[null,1.50,"\u00e9"]}},` +
	`"payload":{"provider":"anthropic","model":"claude-sonnet-4","prompt":"Analyze this codebase",` +
	`"project":"bloodbank","working_dir":null,"domain":null,"tags":["analysis"]},` +
	`"trace":{"span":"s1","list":[1,null,true]},"schema_url":null,"priority":3,"zeta":"line` + "\u2028" + `sep"}`

func TestEnvelope_unknownMembersSurviveARelay(t *testing.T) {
	env, err := envelope.Decode([]byte(bbtUnknownBody))
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	// Typed readers see the typed values only.
	if env.AgentContext == nil || env.AgentContext.Type != envelope.AgentCustom || env.AgentContext.CodeState == nil ||
		env.AgentContext.CodeState.Branch != "main" || env.Source.Host != "127.0.0.1" {
		t.Fatalf("Decode = %+v, want the example's typed fields", env)
	}
	p, err := envelope.DecodePayload[bbtPrompt](env)
	if err != nil || p.Prompt != "Analyze this codebase" {
		t.Fatalf("DecodePayload = %+v, %v", p, err)
	}

	direct, err := env.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	if string(direct) != bbtUnknownBody {
		t.Errorf("MarshalJSON of the decoded envelope:\n got %s\nwant %s", direct, bbtUnknownBody)
	}

	// Through Watermill, as a relay service passes it on: the codec reads
	// the delivery into a message, a handler may hand the message on, the
	// codec writes it again.
	in := bbtUnmarshal(t, amqp091.Delivery{Body: []byte(bbtUnknownBody), MessageId: bbtEventID.String(), RoutingKey: "agent.thread.prompt"})
	if reason, bad := envelope.Malformed(in); bad {
		t.Fatalf("marked malformed: %s", reason)
	}
	out := bbtMarshal(t, in)
	if string(out.Body) != bbtUnknownBody {
		t.Errorf("Codec body after Unmarshal:\n got %s\nwant %s", out.Body, bbtUnknownBody)
	}
	// Rebuilt from the metadata, and turned into a message again.
	fromMsg, err := envelope.FromMessage(in)
	if err != nil {
		t.Fatalf("FromMessage: %v", err)
	}
	again := bbtMarshal(t, bbtNewMessage(t, fromMsg))
	if string(again.Body) != bbtUnknownBody {
		t.Errorf("Codec body after FromMessage and NewMessage:\n got %s\nwant %s", again.Body, bbtUnknownBody)
	}
	// The unknown members travel in the body, never as headers.
	for k := range out.Headers {
		if envelope.IsBodyKey(k) {
			t.Errorf("header %s is an envelope key", k)
		}
	}
}

func TestEnvelope_unknownMembersWrittenAfterTheKnownOnes(t *testing.T) {
	body := `{"zz":1,"event_id":"0b6f1c9e-3d55-4a57-9c57-2f7d0f0e6a11","aa":{"k" : [1, 2]},` +
		`"event_type":"x.y","timestamp":"2026-01-29T10:00:00.123456Z",` +
		`"source":{"extra":"first","host":"h","type":"manual"},"payload":{"a":1},"zz":2}`
	want := `{"event_id":"0b6f1c9e-3d55-4a57-9c57-2f7d0f0e6a11","event_type":"x.y","timestamp":"2026-01-29T10:00:00.123456Z",` +
		`"version":"1.0.0","source":{"host":"h","type":"manual","app":null,"meta":null,"extra":"first"},` +
		`"correlation_ids":[],"agent_context":null,"payload":{"a":1},"zz":1,"aa":{"k":[1,2]},"zz":2}`
	env, err := envelope.Decode([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	got, err := env.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Errorf("MarshalJSON:\n got %s\nwant %s", got, want)
	}
	msg := bbtNewMessage(t, env)
	if got := msg.Metadata.Get(envelope.MetaUnknown); got != `{"source":{"extra":"first"},"zz":1,"aa":{"k":[1,2]},"zz":2}` {
		t.Errorf("Metadata[%s] = %s", envelope.MetaUnknown, got)
	}
}

func TestEnvelope_noUnknownMembersNoMetadata(t *testing.T) {
	msg := bbtNewMessage(t, bbtFullEnvelope(t))
	if _, ok := msg.Metadata[envelope.MetaUnknown]; ok {
		t.Errorf("Metadata has %s for an envelope built in Go", envelope.MetaUnknown)
	}
}

// Metadata is writable by any middleware: a member of MetaUnknown that has
// the name of a known field must not make the body name it twice.
func TestFromMessage_unknownMembersCannotShadowKnownFields(t *testing.T) {
	msg := bbtNewMessage(t, bbtFullEnvelope(t))
	msg.Metadata.Set(envelope.MetaUnknown, `{"event_id":"x","payload":{},"source":{"host":"evil","note":1},"extra":true}`)
	pub := bbtMarshal(t, msg)
	for _, name := range []string{`"event_id"`, `"payload"`, `"host"`} {
		if n := bytes.Count(pub.Body, []byte(name)); n != 1 {
			t.Errorf("body names %s %d times: %s", name, n, pub.Body)
		}
	}
	if !bytes.Contains(pub.Body, []byte(`"note":1}`)) || !bytes.HasSuffix(pub.Body, []byte(`,"extra":true}`)) {
		t.Errorf("body lost the unknown members: %s", pub.Body)
	}
	got, err := envelope.Decode(pub.Body)
	if err != nil {
		t.Fatal(err)
	}
	bbtCheckEnvelope(t, got, bbtFullEnvelope(t))

	msg.Metadata.Set(envelope.MetaUnknown, `[1]`)
	if _, err := envelope.FromMessage(msg); err == nil || !strings.Contains(err.Error(), envelope.MetaUnknown) {
		t.Errorf("FromMessage with %s = [1]: error %v, want one naming the key", envelope.MetaUnknown, err)
	}
}

// A header of that name is not an unknown member: only the body is.
func TestCodec_Unmarshal_unknownHeaderIgnored(t *testing.T) {
	msg := bbtUnmarshal(t, amqp091.Delivery{Body: []byte(bbtPythonBody), Headers: amqp091.Table{envelope.MetaUnknown: `{"x":1}`}})
	want := map[string]string(bbtUnmarshal(t, amqp091.Delivery{Body: []byte(bbtPythonBody)}).Metadata)
	if !maps.Equal(map[string]string(msg.Metadata), want) {
		t.Errorf("Metadata = %v, want %v", msg.Metadata, want)
	}
	if pub := bbtMarshal(t, msg); string(pub.Body) != bbtPythonBody {
		t.Errorf("body = %s, want %s", pub.Body, bbtPythonBody)
	}
}
