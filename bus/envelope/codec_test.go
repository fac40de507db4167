package envelope_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	wamqp "github.com/ThreeDotsLabs/watermill-amqp/v2/pkg/amqp"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/33god/bloodbank-go/bus/envelope"
)

var _ wamqp.Marshaler = envelope.Codec{}

var bbtEnvelopeKeys = []string{
	envelope.MetaEventType, envelope.MetaTimestamp, envelope.MetaVersion, envelope.MetaSourceHost, envelope.MetaSourceType,
	envelope.MetaSourceApp, envelope.MetaSourceMeta, envelope.MetaCorrelationIDs, envelope.MetaAgentContext,
}

func bbtNewMessage(t testing.TB, env envelope.Envelope) *message.Message {
	t.Helper()
	msg, err := envelope.NewMessage(env)
	if err != nil {
		t.Fatalf("NewMessage: %v", err)
	}
	return msg
}

func bbtMarshal(t testing.TB, msg *message.Message) amqp091.Publishing {
	t.Helper()
	pub, err := envelope.Codec{}.Marshal(msg)
	if err != nil {
		t.Fatalf("Codec.Marshal: %v", err)
	}
	return pub
}

// bbtUnmarshal calls Codec.Unmarshal, turning a panic or an error into a test
// failure: Unmarshal must never fail.
func bbtUnmarshal(t *testing.T, d amqp091.Delivery) (msg *message.Message) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("Codec.Unmarshal(body %.80q) panicked: %v", d.Body, r)
		}
	}()
	msg, err := envelope.Codec{}.Unmarshal(d)
	if err != nil {
		t.Fatalf("Codec.Unmarshal(body %.80q) error = %v, want nil (Unmarshal never fails)", d.Body, err)
	}
	if msg == nil {
		t.Fatalf("Codec.Unmarshal(body %.80q) = nil message", d.Body)
	}
	return msg
}

func TestCodec_Marshal_properties(t *testing.T) {
	minimal, err := envelope.New("fireflies.transcript.upload", map[string]any{"media_file": "a.mp3"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		env  envelope.Envelope
	}{
		{"every field set", bbtFullEnvelope(t)},
		{"defaults only", minimal},
		{"about 1 KiB", bbtBenchEnvelope(t)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := time.Now()
			pub := bbtMarshal(t, bbtNewMessage(t, tt.env))
			if pub.DeliveryMode != 2 {
				t.Errorf("DeliveryMode = %d, want 2 (persistent)", pub.DeliveryMode)
			}
			if pub.ContentType != "application/json" {
				t.Errorf("ContentType = %q, want application/json", pub.ContentType)
			}
			if pub.ContentEncoding != "utf-8" {
				t.Errorf("ContentEncoding = %q, want utf-8", pub.ContentEncoding)
			}
			if pub.MessageId != tt.env.EventID.String() {
				t.Errorf("MessageId = %q, want the event id %s", pub.MessageId, tt.env.EventID)
			}
			if len(pub.Headers) != 0 {
				t.Errorf("Headers = %v, want none for a message with envelope metadata only", pub.Headers)
			}
			if pub.Timestamp.Before(before.Add(-time.Second)) {
				t.Errorf("Timestamp = %s, want about now", pub.Timestamp)
			}
			got, err := envelope.Decode(pub.Body)
			if err != nil {
				t.Fatalf("Decode(body %s): %v", pub.Body, err)
			}
			bbtCheckEnvelope(t, got, tt.env)
			// The body is exactly the envelope's compact JSON.
			want, err := tt.env.MarshalJSON()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(pub.Body, want) {
				t.Errorf("Body:\n got %s\nwant %s", pub.Body, want)
			}
		})
	}
}

func TestCodec_Marshal_bodyOutlivesPooledBuffer(t *testing.T) {
	env := bbtFullEnvelope(t)
	first := bbtMarshal(t, bbtNewMessage(t, env))
	want := bytes.Clone(first.Body)
	for range 50 {
		other, err := envelope.New("x.y", map[string]any{"pad": strings.Repeat("z", 3000)})
		if err != nil {
			t.Fatal(err)
		}
		bbtMarshal(t, bbtNewMessage(t, other))
	}
	if !bytes.Equal(first.Body, want) {
		t.Errorf("an earlier publishing's body changed after later Marshal calls:\n got %.200s\nwant %.200s", first.Body, want)
	}
}

func TestCodec_Marshal_headers(t *testing.T) {
	env := bbtFullEnvelope(t)
	msg := bbtNewMessage(t, env)
	msg.Metadata.Set("trace_id", "t-123")
	msg.Metadata.Set("x-retry", "2")
	msg.Metadata.Set("name_with_unicode", "héllo")
	msg.Metadata.Set(envelope.MetaRoutingKey, "some.other.key")
	pub := bbtMarshal(t, msg)

	want := amqp091.Table{"trace_id": "t-123", "x-retry": "2", "name_with_unicode": "héllo"}
	if !maps.EqualFunc(pub.Headers, want, func(a, b any) bool { return a == b }) {
		t.Errorf("Headers = %v, want %v", pub.Headers, want)
	}
	for _, k := range append(slices.Clone(bbtEnvelopeKeys), envelope.MetaRoutingKey) {
		if _, ok := pub.Headers[k]; ok {
			t.Errorf("Headers has %s; envelope fields travel in the body only", k)
		}
	}
	if err := pub.Headers.Validate(); err != nil {
		t.Errorf("Headers are not a valid AMQP table: %v", err)
	}
	for _, s := range []string{"trace_id", "t-123", "some.other.key"} {
		if bytes.Contains(pub.Body, []byte(s)) {
			t.Errorf("body contains %q; non-envelope metadata must not be written into it: %s", s, pub.Body)
		}
	}
	got, err := envelope.Decode(pub.Body)
	if err != nil {
		t.Fatal(err)
	}
	bbtCheckEnvelope(t, got, env)
}

func TestCodec_Marshal_malformedKeepsBody(t *testing.T) {
	for _, tt := range bbtMalformedCases() {
		t.Run(tt.name, func(t *testing.T) {
			// As the codec produced it on the way in ...
			in := bbtUnmarshal(t, amqp091.Delivery{Body: tt.body, MessageId: "orig-id", RoutingKey: "a.b"})
			// ... and parked or replayed.
			pub, err := envelope.Codec{}.Marshal(in)
			if err != nil {
				t.Fatalf("Marshal of a malformed message: %v", err)
			}
			if !bytes.Equal(pub.Body, tt.body) {
				t.Errorf("Body = %.120q, want the original body %.120q unchanged", pub.Body, tt.body)
			}
			if pub.MessageId != "orig-id" {
				t.Errorf("MessageId = %q, want orig-id", pub.MessageId)
			}
			if _, ok := pub.Headers[envelope.MetaRoutingKey]; ok {
				t.Errorf("Headers has %s", envelope.MetaRoutingKey)
			}
		})
	}
	// A message marked by hand.
	msg := message.NewMessage("m-1", []byte("\x00\xffraw"))
	msg.Metadata.Set(envelope.MetaMalformed, "body is not JSON")
	pub, err := envelope.Codec{}.Marshal(msg)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(pub.Body, []byte("\x00\xffraw")) || pub.MessageId != "m-1" {
		t.Errorf("Marshal = body %q id %q, want the original body and id", pub.Body, pub.MessageId)
	}
}

func TestCodec_Marshal_plainMessage(t *testing.T) {
	msg := message.NewMessage(uuid.NewString(), []byte(`{"a":1}`))
	msg.Metadata.Set("trace_id", "t")
	_, err := envelope.Codec{}.Marshal(msg)
	if err == nil {
		t.Fatal("Marshal of a message without envelope metadata: got nil error")
	}
	if !strings.Contains(err.Error(), "envelope.NewMessage") {
		t.Errorf("error = %q, want it to say to build the message with envelope.NewMessage", err)
	}
	if !strings.Contains(err.Error(), msg.UUID) {
		t.Errorf("error = %q, want it to name the message %s", err, msg.UUID)
	}
	var ie *envelope.InvalidError
	if !errors.As(err, &ie) {
		t.Errorf("error = %T, want it to wrap *envelope.InvalidError", err)
	}

	// A message whose UUID is not a UUID cannot be an event id.
	msg = message.NewMessage("not-a-uuid", []byte(`{"a":1}`))
	msg.Metadata.Set(envelope.MetaEventType, "x.y")
	msg.Metadata.Set(envelope.MetaSourceHost, "h")
	msg.Metadata.Set(envelope.MetaSourceType, "manual")
	if _, err := (envelope.Codec{}).Marshal(msg); err == nil || !strings.Contains(err.Error(), "not-a-uuid") {
		t.Errorf("Marshal of a message with UUID not-a-uuid: error = %v, want one naming it", err)
	}
}

// Whatever Marshal accepts, the bus's own readers must accept: a Go writer
// never puts a body on the wire that Decode (or a Python consumer)
// rejects.
func TestCodec_Marshal_neverWritesMalformedBody(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(msg *message.Message)
	}{
		{"payload replaced by an array", func(m *message.Message) { m.Payload = []byte(`[1,2]`) }},
		{"payload replaced by a string", func(m *message.Message) { m.Payload = []byte(`"x"`) }},
		{"payload replaced by null", func(m *message.Message) { m.Payload = []byte(`null`) }},
		{"payload emptied", func(m *message.Message) { m.Payload = nil }},
		{"payload not JSON", func(m *message.Message) { m.Payload = []byte(`{oops`) }},
		{"source host removed", func(m *message.Message) { delete(m.Metadata, envelope.MetaSourceHost) }},
		{"source type removed", func(m *message.Message) { delete(m.Metadata, envelope.MetaSourceType) }},
		{"event type removed", func(m *message.Message) { delete(m.Metadata, envelope.MetaEventType) }},
		{"timestamp not a timestamp", func(m *message.Message) { m.Metadata.Set(envelope.MetaTimestamp, "soon") }},
		{"correlation ids not UUIDs", func(m *message.Message) { m.Metadata.Set(envelope.MetaCorrelationIDs, "a,b") }},
		{"agent context without type", func(m *message.Message) { m.Metadata.Set(envelope.MetaAgentContext, `{"name":"x"}`) }},
		{"agent context not JSON", func(m *message.Message) { m.Metadata.Set(envelope.MetaAgentContext, `{`) }},
		{"source meta not JSON", func(m *message.Message) { m.Metadata.Set(envelope.MetaSourceMeta, `[1]`) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg := bbtNewMessage(t, bbtFullEnvelope(t))
			tt.mutate(msg)
			pub, err := envelope.Codec{}.Marshal(msg)
			if err != nil {
				return // refused: fine
			}
			if _, decErr := envelope.Decode(pub.Body); decErr != nil {
				t.Errorf("BUG codec.go:37 Codec.Marshal: Marshal returned nil error but wrote a body that Decode rejects (%v): %.100s…. "+
					"FromMessage does not validate the rebuilt envelope; Marshal should call env.Validate() and return its error", decErr, pub.Body)
			}
		})
	}
}

func TestCodec_Unmarshal_malformedBodies(t *testing.T) {
	for _, tt := range bbtMalformedCases() {
		t.Run(tt.name, func(t *testing.T) {
			_, decErr := envelope.Decode(tt.body)
			var me *envelope.MalformedError
			if !errors.As(decErr, &me) {
				t.Fatalf("Decode error = %v, want *MalformedError", decErr)
			}
			d := amqp091.Delivery{
				Body: tt.body, MessageId: "python-msg-42", RoutingKey: "agent.thread.prompt",
				ContentType: "application/json", Headers: amqp091.Table{"trace_id": "t-1", "x-count": int32(3)},
			}
			msg := bbtUnmarshal(t, d)
			if got := msg.Metadata.Get(envelope.MetaMalformed); got != me.Reason {
				t.Errorf("Metadata[%s] = %q, want the reason %q", envelope.MetaMalformed, got, me.Reason)
			}
			if reason, ok := envelope.Malformed(msg); !ok || reason != me.Reason {
				t.Errorf("Malformed = %q, %v; want %q, true", reason, ok, me.Reason)
			}
			if !bytes.Equal(msg.Payload, tt.body) {
				t.Errorf("Payload = %.120q, want the original body %.120q", msg.Payload, tt.body)
			}
			if msg.UUID != "python-msg-42" {
				t.Errorf("UUID = %q, want the AMQP message_id python-msg-42", msg.UUID)
			}
			if got := msg.Metadata.Get(envelope.MetaRoutingKey); got != "agent.thread.prompt" {
				t.Errorf("Metadata[%s] = %q, want agent.thread.prompt", envelope.MetaRoutingKey, got)
			}
			if msg.Metadata.Get("trace_id") != "t-1" || msg.Metadata.Get("x-count") != "3" {
				t.Errorf("Metadata = %v, want headers trace_id=t-1 and x-count=3 kept", msg.Metadata)
			}
			for _, k := range bbtEnvelopeKeys {
				if _, ok := msg.Metadata[k]; ok {
					t.Errorf("malformed message has envelope metadata %s = %q", k, msg.Metadata[k])
				}
			}
			_, err := envelope.FromMessage(msg)
			if !errors.As(err, &me) {
				t.Errorf("FromMessage error = %T %v, want *MalformedError", err, err)
			}

			// Without a message_id the message still gets a usable id.
			d.MessageId = ""
			a, b := bbtUnmarshal(t, d), bbtUnmarshal(t, d)
			if _, err := uuid.Parse(a.UUID); err != nil {
				t.Errorf("UUID without a message_id = %q, want a fresh UUID", a.UUID)
			}
			if a.UUID == b.UUID {
				t.Errorf("two deliveries without message_id share UUID %s", a.UUID)
			}
		})
	}
}

func TestCodec_Unmarshal_headerTypes(t *testing.T) {
	deathTime := time.Date(2026, 1, 29, 10, 0, 0, 0, time.UTC)
	headers := amqp091.Table{
		"x-death": []any{amqp091.Table{
			"count": int64(1), "reason": "rejected", "queue": "q", "time": deathTime,
			"exchange": "e", "routing-keys": []any{"a.b"},
		}},
		"x-first-death-reason": "rejected",
		"x-string":             "s",
		"x-int8":               int8(-8),
		"x-uint8":              uint8(200),
		"x-int16":              int16(-300),
		"x-uint16":             uint16(60000),
		"x-int32":              int32(-7),
		"x-uint32":             uint32(4000000000),
		"x-int64":              int64(1 << 40),
		"x-bool":               true,
		"x-float32":            float32(0.25),
		"x-float64":            1.5,
		"x-decimal":            amqp091.Decimal{Scale: 2, Value: 12345},
		"x-bytes":              []byte("raw bytes"),
		"x-nil":                nil,
		"x-time":               deathTime,
		"x-table":              amqp091.Table{"k": "v", "n": int32(2)},
		"x-array":              []any{int32(1), "two", nil, []byte("b")},
		"x-nan-in-table":       amqp091.Table{"f": math.NaN()},
		"x-inf":                math.Inf(1),
	}
	wantExact := map[string]string{
		"x-first-death-reason": "rejected",
		"x-string":             "s",
		"x-int8":               "-8",
		"x-uint8":              "200",
		"x-int16":              "-300",
		"x-uint16":             "60000",
		"x-int32":              "-7",
		"x-uint32":             "4000000000",
		"x-int64":              "1099511627776",
		"x-bool":               "true",
		"x-float32":            "0.25",
		"x-float64":            "1.5",
		"x-bytes":              "raw bytes",
		"x-time":               "2026-01-29T10:00:00.000000Z",
	}
	env := bbtFullEnvelope(t)
	body, err := env.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	for _, bodyCase := range []struct {
		name string
		body []byte
	}{{"valid body", body}, {"malformed body", []byte("not an envelope")}} {
		t.Run(bodyCase.name, func(t *testing.T) {
			msg := bbtUnmarshal(t, amqp091.Delivery{Body: bodyCase.body, MessageId: env.EventID.String(), RoutingKey: env.EventType, Headers: headers})
			for k, want := range wantExact {
				if got, ok := msg.Metadata[k]; !ok || got != want {
					t.Errorf("Metadata[%s] = %q (present %v), want %q", k, got, ok, want)
				}
			}
			if got, err := strconv.ParseFloat(msg.Metadata.Get("x-decimal"), 64); err != nil || math.Abs(got-123.45) > 1e-9 {
				t.Errorf("Metadata[x-decimal] = %q, want a number equal to 123.45 (Decimal{Scale:2, Value:12345})", msg.Metadata.Get("x-decimal"))
			}
			if got, ok := msg.Metadata["x-nil"]; ok && got != "" {
				t.Errorf("Metadata[x-nil] = %q, want absent or empty", got)
			}
			// x-death is kept as JSON a person or a tool can read.
			var death []map[string]any
			if err := json.Unmarshal([]byte(msg.Metadata.Get("x-death")), &death); err != nil || len(death) != 1 {
				t.Fatalf("Metadata[x-death] = %q, want a JSON array of one table (%v)", msg.Metadata.Get("x-death"), err)
			}
			d := death[0]
			if d["count"] != float64(1) || d["reason"] != "rejected" || d["queue"] != "q" || d["exchange"] != "e" {
				t.Errorf("x-death[0] = %v, want count 1, reason rejected, queue q, exchange e", d)
			}
			if rk, _ := d["routing-keys"].([]any); len(rk) != 1 || rk[0] != "a.b" {
				t.Errorf("x-death[0].routing-keys = %v, want [a.b]", d["routing-keys"])
			}
			if ts, _ := d["time"].(string); ts == "" {
				t.Errorf("x-death[0].time = %v, want a timestamp string", d["time"])
			} else if got, err := envelope.ParseTimestamp(ts); err != nil || !got.Equal(deathTime) {
				t.Errorf("x-death[0].time = %q, want %s (%v)", ts, deathTime, err)
			}
			var table map[string]any
			if err := json.Unmarshal([]byte(msg.Metadata.Get("x-table")), &table); err != nil || table["k"] != "v" || table["n"] != float64(2) {
				t.Errorf("Metadata[x-table] = %q, want JSON {k: v, n: 2} (%v)", msg.Metadata.Get("x-table"), err)
			}
			var arr []any
			if err := json.Unmarshal([]byte(msg.Metadata.Get("x-array")), &arr); err != nil || len(arr) != 4 || arr[1] != "two" || arr[3] != "b" {
				t.Errorf("Metadata[x-array] = %q, want JSON [1,\"two\",null,\"b\"] (%v)", msg.Metadata.Get("x-array"), err)
			}
			if got := msg.Metadata.Get(envelope.MetaRoutingKey); got != env.EventType {
				t.Errorf("Metadata[%s] = %q, want %q", envelope.MetaRoutingKey, got, env.EventType)
			}
			if bodyCase.name == "valid body" {
				if reason, bad := envelope.Malformed(msg); bad {
					t.Fatalf("message marked malformed: %s", reason)
				}
				got, err := envelope.FromMessage(msg)
				if err != nil {
					t.Fatalf("FromMessage: %v", err)
				}
				bbtCheckEnvelope(t, got, env)
				// And it can be published again.
				if _, err := (envelope.Codec{}).Marshal(msg); err != nil {
					t.Errorf("Marshal after Unmarshal with broker headers: %v", err)
				}
			}
		})
	}
}

func TestCodec_Unmarshal_routingKey(t *testing.T) {
	tests := []struct {
		name, routingKey string
		want             string
		wantSet          bool
	}{
		{"same as event type", "agent.thread.prompt", "agent.thread.prompt", true},
		{"other key (e.g. dead-letter routing)", "dlq.agent.thread.prompt", "dlq.agent.thread.prompt", true},
		{"empty", "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg := bbtUnmarshal(t, amqp091.Delivery{Body: []byte(bbtPythonBody), RoutingKey: tt.routingKey})
			got, ok := msg.Metadata[envelope.MetaRoutingKey]
			if got != tt.want || ok != tt.wantSet {
				t.Errorf("Metadata[%s] = %q (present %v), want %q (present %v)", envelope.MetaRoutingKey, got, ok, tt.want, tt.wantSet)
			}
			if envelope.EventType(msg) != "agent.thread.prompt" {
				t.Errorf("EventType = %q, want the body's agent.thread.prompt", envelope.EventType(msg))
			}
		})
	}
}

func TestCodec_Unmarshal_pythonBody(t *testing.T) {
	msg := bbtUnmarshal(t, amqp091.Delivery{
		Body: []byte(bbtPythonBody), MessageId: bbtEventID.String(), RoutingKey: "agent.thread.prompt",
		ContentType: "application/json", ContentEncoding: "utf-8", DeliveryMode: 2,
	})
	if reason, bad := envelope.Malformed(msg); bad {
		t.Fatalf("Python body marked malformed: %s", reason)
	}
	if msg.UUID != bbtEventID.String() {
		t.Errorf("UUID = %q, want %s", msg.UUID, bbtEventID)
	}
	if string(msg.Payload) != bbtPythonPayload {
		t.Errorf("Payload = %s, want %s", msg.Payload, bbtPythonPayload)
	}
	want := map[string]string{
		envelope.MetaEventType:  "agent.thread.prompt",
		envelope.MetaTimestamp:  "2026-01-29T10:00:00.123456Z",
		envelope.MetaVersion:    "1.0.0",
		envelope.MetaSourceHost: "127.0.0.1",
		envelope.MetaSourceType: "manual",
		envelope.MetaSourceApp:  "http-client",
		envelope.MetaRoutingKey: "agent.thread.prompt",
	}
	if !maps.Equal(map[string]string(msg.Metadata), want) {
		t.Errorf("Metadata = %v, want %v", msg.Metadata, want)
	}

	// Published again by Go, the body is the same JSON value.
	pub := bbtMarshal(t, msg)
	var got, orig any
	if err := json.Unmarshal(pub.Body, &got); err != nil {
		t.Fatal(err)
	}
	_ = json.Unmarshal([]byte(bbtPythonBody), &orig)
	gotJSON, _ := json.Marshal(got)
	origJSON, _ := json.Marshal(orig)
	if !bytes.Equal(gotJSON, origJSON) {
		t.Errorf("re-published body is a different JSON value:\n got %s\nwant %s", pub.Body, bbtPythonBody)
	}
	if string(pub.Body) != bbtPythonBody {
		t.Errorf("re-published body differs byte for byte:\n got %s\nwant %s", pub.Body, bbtPythonBody)
	}
}

// A header that has the name of an envelope field does not override the body.
func TestCodec_Unmarshal_envelopeHeadersIgnored(t *testing.T) {
	headers := amqp091.Table{}
	for _, k := range bbtEnvelopeKeys {
		headers[k] = "evil"
	}
	msg := bbtUnmarshal(t, amqp091.Delivery{Body: []byte(bbtPythonBody), Headers: headers})
	env, err := envelope.FromMessage(msg)
	if err != nil {
		t.Fatalf("FromMessage: %v", err)
	}
	want, _ := envelope.Decode([]byte(bbtPythonBody))
	bbtCheckEnvelope(t, env, want)
}

// MetaMalformed and MetaRoutingKey belong to the codec. A parked message
// carries a bb_malformed header (Marshal writes it); if an operator repairs
// the body and re-publishes it with its headers, or any producer sends such a
// header, a valid body must not be marked malformed.
func TestCodec_Unmarshal_validBodyIgnoresMalformedHeader(t *testing.T) {
	msg := bbtUnmarshal(t, amqp091.Delivery{
		Body: []byte(bbtPythonBody), RoutingKey: "agent.thread.prompt",
		Headers: amqp091.Table{envelope.MetaMalformed: "body is not JSON", envelope.MetaRoutingKey: "stale.key"},
	})
	if reason, bad := envelope.Malformed(msg); bad {
		t.Errorf("BUG codec.go:100 DecodeDelivery: a valid body with a %s header (%q) is marked malformed, so validation "+
			"middleware parks a valid event (e.g. one repaired and re-published from the poison queue with its headers). "+
			"The header loop skips only envelope keys; it should also skip the codec-owned keys %s and %s",
			envelope.MetaMalformed, reason, envelope.MetaMalformed, envelope.MetaRoutingKey)
	}
	if got := msg.Metadata.Get(envelope.MetaRoutingKey); got != "agent.thread.prompt" {
		t.Errorf("Metadata[%s] = %q, want the delivery's routing key", envelope.MetaRoutingKey, got)
	}
	if _, err := envelope.FromMessage(msg); err != nil {
		t.Errorf("FromMessage of a valid body: %v", err)
	}
}

func TestCodec_roundTrip(t *testing.T) {
	minimal, err := envelope.New("fireflies.transcript.upload", map[string]any{"media_file": "a.mp3"})
	if err != nil {
		t.Fatal(err)
	}
	agent, err := envelope.NewAgent("agent.thread.response", map[string]any{"provider": "p", "response": "<ok> & done"},
		envelope.AgentGeminiCLI, "gem", envelope.WithCorrelationIDs(bbtParent2))
	if err != nil {
		t.Fatal(err)
	}
	deterministic, err := envelope.New("fireflies.transcript.upload", map[string]any{"meeting_id": "abc123"},
		envelope.WithEventID(uuid.MustParse("70117275-3199-5e4c-a175-71646fb33ad7")))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		env      envelope.Envelope
		metadata map[string]string
	}{
		{"every field set", bbtFullEnvelope(t), map[string]string{"trace_id": "t-1", "x-retry-count": "2"}},
		{"defaults only", minimal, nil},
		{"agent envelope", agent, map[string]string{"handler": "responder"}},
		{"deterministic v5 id", deterministic, nil},
		{"about 1 KiB", bbtBenchEnvelope(t), map[string]string{"a": "1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg := bbtNewMessage(t, tt.env)
			for k, v := range tt.metadata {
				msg.Metadata.Set(k, v)
			}
			sent := maps.Clone(msg.Metadata)
			pub := bbtMarshal(t, msg)
			got := bbtUnmarshal(t, amqp091.Delivery{
				Body: pub.Body, MessageId: pub.MessageId, Headers: pub.Headers, RoutingKey: tt.env.EventType,
				ContentType: pub.ContentType, ContentEncoding: pub.ContentEncoding, DeliveryMode: pub.DeliveryMode,
			})
			if reason, bad := envelope.Malformed(got); bad {
				t.Fatalf("round-tripped message marked malformed: %s", reason)
			}
			if got.UUID != msg.UUID {
				t.Errorf("UUID = %q, want %q", got.UUID, msg.UUID)
			}
			if !bytes.Equal(got.Payload, msg.Payload) {
				t.Errorf("Payload = %s, want %s", got.Payload, msg.Payload)
			}
			wantMD := maps.Clone(sent)
			wantMD[envelope.MetaRoutingKey] = tt.env.EventType
			if !maps.Equal(map[string]string(got.Metadata), map[string]string(wantMD)) {
				t.Errorf("Metadata:\n got %v\nwant %v", got.Metadata, wantMD)
			}
			env, err := envelope.FromMessage(got)
			if err != nil {
				t.Fatalf("FromMessage: %v", err)
			}
			bbtCheckEnvelope(t, env, tt.env)
			if ids := envelope.CorrelationIDs(got); !slices.Equal(ids, tt.env.CorrelationIDs) {
				t.Errorf("CorrelationIDs = %v, want %v", ids, tt.env.CorrelationIDs)
			}

			// A second trip gives the same body.
			again := bbtMarshal(t, got)
			if !bytes.Equal(again.Body, pub.Body) {
				t.Errorf("second Marshal body differs:\n got %s\nwant %s", again.Body, pub.Body)
			}
		})
	}
}

func BenchmarkCodec_Marshal(b *testing.B) {
	msg := bbtNewMessage(b, bbtBenchEnvelope(b))
	msg.Metadata.Set("trace_id", "t-1")
	codec := envelope.Codec{}
	pub := bbtMarshal(b, msg)
	b.SetBytes(int64(len(pub.Body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := codec.Marshal(msg); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCodec_Unmarshal(b *testing.B) {
	msg := bbtNewMessage(b, bbtBenchEnvelope(b))
	msg.Metadata.Set("trace_id", "t-1")
	pub := bbtMarshal(b, msg)
	d := amqp091.Delivery{Body: pub.Body, MessageId: pub.MessageId, Headers: pub.Headers, RoutingKey: "agent.thread.prompt"}
	codec := envelope.Codec{}
	b.SetBytes(int64(len(pub.Body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := codec.Unmarshal(d); err != nil {
			b.Fatal(err)
		}
	}
}

// A consumer holds the body anyway (for parking), so the payload is read as
// a slice of it rather than copied; an append to the payload must still
// leave the body alone, and Decode, whose caller may reuse its buffer, must
// copy.
func TestDecodeDelivery_payloadIsSliceOfBody(t *testing.T) {
	body := []byte(bbtPythonBody)
	msg := envelope.DecodeDelivery(body, "", "agent.thread.prompt", nil)
	if reason, bad := envelope.Malformed(msg); bad {
		t.Fatalf("malformed: %s", reason)
	}
	start := bytes.Index(body, []byte(bbtPythonPayload))
	if start < 0 || len(msg.Payload) == 0 || &msg.Payload[0] != &body[start] {
		t.Fatalf("payload %q is not the body's own bytes", msg.Payload)
	}
	before := string(body)
	_ = append(msg.Payload, "garbage"...)
	if string(body) != before {
		t.Fatalf("appending to the payload changed the body:\n%s", body)
	}

	env, err := envelope.Decode(body)
	if err != nil {
		t.Fatal(err)
	}
	if &env.Payload[0] == &body[start] {
		t.Fatal("Decode's payload shares the caller's buffer")
	}
}

// Metadata written from a decoded body is the canonical text whether or
// not the body's ids and timestamp were in canonical form.
func TestDecodeDelivery_canonicalMetadata(t *testing.T) {
	id, parent := uuid.New(), uuid.New()
	body := fmt.Sprintf(`{"event_id":%q,"event_type":"t.x","timestamp":"2026-01-29T10:00:00.5+00:00","version":"1.0.0",`+
		`"source":{"host":"h","type":"manual","app":null,"meta":null},"correlation_ids":[%q,%q],"agent_context":null,"payload":{}}`,
		strings.ToUpper(id.String()), parent.String(), "{"+strings.ToUpper(parent.String())+"}")
	msg := envelope.DecodeDelivery([]byte(body), "", "", nil)
	if reason, bad := envelope.Malformed(msg); bad {
		t.Fatalf("malformed: %s", reason)
	}
	if msg.UUID != id.String() {
		t.Errorf("UUID = %q, want %s", msg.UUID, id)
	}
	if got, want := msg.Metadata.Get(envelope.MetaTimestamp), "2026-01-29T10:00:00.500000Z"; got != want {
		t.Errorf("timestamp = %q, want %q", got, want)
	}
	if got, want := msg.Metadata.Get(envelope.MetaCorrelationIDs), parent.String()+","+parent.String(); got != want {
		t.Errorf("correlation ids = %q, want %q", got, want)
	}
}
