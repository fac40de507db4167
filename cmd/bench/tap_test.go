package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"testing"
	"time"

	"github.com/google/uuid"
	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/33god/bloodbank-go/internal/testenv"
)

func TestChannelAcks_countsEachDeliveryOnce(t *testing.T) {
	var a channelAcks
	steps := []struct {
		tag      uint64
		multiple bool
		want     int
	}{
		{1, false, 1}, // 1
		{3, false, 1}, // 3 alone, above the line
		{3, false, 0}, // never twice
		{4, true, 2},  // 2 and 4; 3 was settled
		{2, false, 0}, // below the line
		{4, true, 0},
		{10, true, 6}, // 5-10
	}
	total := 0
	for i, s := range steps {
		if got := a.ack(s.tag, s.multiple); got != s.want {
			t.Errorf("step %d: ack(%d, %v) settled %d, want %d", i, s.tag, s.multiple, got, s.want)
		}
		total += s.want
	}
	if total != 10 || len(a.above) != 0 {
		t.Errorf("settled %d of 10, %d left above the line", total, len(a.above))
	}
}

// frame is one AMQP frame: type, channel, payload, frame-end.
func frame(typ byte, ch uint16, payload []byte) []byte {
	b := []byte{typ, 0, 0, 0, 0, 0, 0}
	binary.BigEndian.PutUint16(b[1:3], ch)
	binary.BigEndian.PutUint32(b[3:7], uint32(len(payload)))
	return append(append(b, payload...), 0xCE)
}

func method(class, id uint16, args ...byte) []byte {
	b := make([]byte, 4, 4+len(args))
	binary.BigEndian.PutUint16(b[0:2], class)
	binary.BigEndian.PutUint16(b[2:4], id)
	return append(b, args...)
}

func ack(tag uint64, multiple bool) []byte {
	args := make([]byte, 9)
	binary.BigEndian.PutUint64(args[:8], tag)
	if multiple {
		args[8] = 1
	}
	return method(60, 80, args...)
}

// oneByte hands the relay one byte per Read, as a slow network might.
type oneByte struct{ r io.Reader }

func (o oneByte) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	return o.r.Read(p[:1])
}

func TestAckTap_readClientForwardsEverythingAndCountsAcks(t *testing.T) {
	var in bytes.Buffer
	in.WriteString("AMQP\x00\x00\x09\x01")
	in.Write(frame(1, 1, method(20, 10)))               // channel.open
	in.Write(frame(1, 1, method(60, 20, 0, 0, 1, 'q'))) // basic.consume
	in.Write(frame(2, 1, make([]byte, 14)))             // a content header, not read
	in.Write(frame(1, 1, ack(2, true)))
	in.Write(frame(8, 0, nil)) // heartbeat
	in.Write(frame(1, 2, ack(1, false)))
	in.Write(frame(1, 1, method(20, 40))) // channel.close: tags start again
	in.Write(frame(1, 1, method(20, 10)))
	in.Write(frame(1, 1, ack(2, true)))
	sent := bytes.Clone(in.Bytes())

	tap := &ackTap{changed: make(chan struct{})}
	var out bytes.Buffer
	if err := tap.readClient(oneByte{&in}, &out); err != io.EOF {
		t.Fatalf("readClient: %v, want io.EOF at the end", err)
	}
	if !bytes.Equal(out.Bytes(), sent) {
		t.Errorf("forwarded %d bytes, not the %d sent", out.Len(), len(sent))
	}
	if tap.acked != 5 || tap.consumeAt.IsZero() || tap.lastAck.Before(tap.consumeAt) {
		t.Errorf("acked %d (want 5), consume at %v, last ack at %v", tap.acked, tap.consumeAt, tap.lastAck)
	}
}

func TestConsumeRate_refusesARunWithoutTime(t *testing.T) {
	now := time.Now()
	if _, err := consumeRate(100, time.Time{}, now); err == nil {
		t.Error("a run without a start has no rate")
	}
	if _, err := consumeRate(100, now, now); err == nil {
		t.Error("a run without time has no rate")
	}
	if _, err := consumeRate(0, now, now.Add(time.Second)); err == nil {
		t.Error("a run without messages has no rate")
	}
	if r, err := consumeRate(100, now, now.Add(time.Second)); err != nil || r != 100 {
		t.Errorf("consumeRate = %v, %v; want 100", r, err)
	}
}

// Through a real broker: a consumer on the tap's URL, acking in bulk, is
// counted to its last ack.
func TestAckTap_countsTheAcksOfARealConsumer(t *testing.T) {
	url := testenv.RabbitURL(t)
	tap, err := newAckTap(url)
	if err != nil {
		t.Fatal(err)
	}
	defer tap.close()
	conn, err := amqp091.Dial(tap.url(url))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	q := "bbtest.tap." + uuid.NewString()[:8]
	if _, err := ch.QueueDeclare(q, false, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	defer func() { _, _ = ch.QueueDelete(q, false, false, false) }()
	const n = 50
	for i := range n {
		if err := ch.PublishWithContext(context.Background(), "", q, false, false, amqp091.Publishing{Body: []byte{byte(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	tap.reset()
	dels, err := ch.Consume(q, "", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= n; i++ {
		d := <-dels
		if i%10 == 0 { // every tenth acks the nine before it too
			if err := d.Ack(true); err != nil {
				t.Fatal(err)
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if r, err := tap.rate(ctx, n, 10*time.Second); err != nil || r <= 0 {
		t.Fatalf("rate = %v, %v", r, err)
	}
	tap.mu.Lock()
	acked := tap.acked
	tap.mu.Unlock()
	if acked != n {
		t.Errorf("the tap counted %d acks, want %d", acked, n)
	}
}
