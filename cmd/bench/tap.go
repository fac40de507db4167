package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"sync"
	"time"
)

// ackTap is a TCP relay between one side of a consuming metric and the
// broker. It reads the AMQP frames the client sends (the broker's frames
// pass through untouched) and notes when the first basic.consume went out
// and how many deliveries basic.ack settled, and when. Every consuming
// metric times both of its sides through a tap of its own, so that both
// rates run from the consumer's start to its last ack as the broker
// receives them, whatever the client does in between (a bulk ack sent
// after the handler returned counts when it is sent), and so that a child
// process is timed the same way as this process.
type ackTap struct {
	ln     net.Listener
	broker string // host:port

	mu        sync.Mutex
	consumeAt time.Time // the first basic.consume since reset
	acked     int64
	lastAck   time.Time
	changed   chan struct{} // closed and replaced on every ack
}

func newAckTap(rabbitURL string) (*ackTap, error) {
	u, err := url.Parse(rabbitURL)
	if err != nil {
		return nil, errors.New("cannot parse RABBIT_URL")
	}
	if u.Scheme != "amqp" {
		return nil, fmt.Errorf("the consume metrics relay AMQP frames to read the acks: they need an amqp:// URL, not %s://", u.Scheme)
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "5672")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	t := &ackTap{ln: ln, broker: host, changed: make(chan struct{})}
	go t.serve()
	return t, nil
}

// url is rabbitURL with the tap in the broker's place.
func (t *ackTap) url(rabbitURL string) string {
	u, _ := url.Parse(rabbitURL)
	u.Host = t.ln.Addr().String()
	return u.String()
}

func (t *ackTap) close() { _ = t.ln.Close() }

// reset forgets what the tap saw, before a run.
func (t *ackTap) reset() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.consumeAt, t.acked, t.lastAck = time.Time{}, 0, time.Time{}
}

// rate waits until n deliveries were acked since reset (at most timeout)
// and returns them per second from the first basic.consume to the n-th
// ack.
func (t *ackTap) rate(ctx context.Context, n int, timeout time.Duration) (float64, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		t.mu.Lock()
		acked, start, last, changed := t.acked, t.consumeAt, t.lastAck, t.changed
		t.mu.Unlock()
		if acked >= int64(n) {
			return consumeRate(n, start, last)
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-deadline.C:
			return 0, fmt.Errorf("%d of %d messages acked within %s", acked, n, timeout)
		}
	}
}

// consumeRate is n messages over the time from start to end; a run without
// a start, or without time, is an error rather than a rate of 0 or +Inf.
func consumeRate(n int, start, end time.Time) (float64, error) {
	if n <= 0 || start.IsZero() || !end.After(start) {
		return 0, fmt.Errorf("no rate: %d messages between %v and %v", n, start, end)
	}
	return float64(n) / end.Sub(start).Seconds(), nil
}

func (t *ackTap) serve() {
	for {
		c, err := t.ln.Accept()
		if err != nil {
			return
		}
		go t.relay(c)
	}
}

func (t *ackTap) relay(client net.Conn) {
	defer client.Close()
	server, err := net.Dial("tcp", t.broker)
	if err != nil {
		return
	}
	defer server.Close()
	go func() {
		// The broker's frames, deliveries included, are copied by the
		// kernel (splice) without passing through this process.
		_, _ = io.Copy(client, server)
		_ = client.Close()
	}()
	_ = t.readClient(client, server)
	_ = server.Close()
}

// readClient forwards what the client sends, frame by frame, and notes the
// frames of interest.
func (t *ackTap) readClient(client io.Reader, server io.Writer) error {
	br := bufio.NewReaderSize(client, 64<<10)
	bw := bufio.NewWriterSize(server, 64<<10)
	header := make([]byte, 8) // "AMQP" 0 0 9 1
	if _, err := io.ReadFull(br, header); err != nil {
		return err
	}
	if _, err := bw.Write(header); err != nil {
		return err
	}
	var frame []byte
	chans := map[uint16]*channelAcks{}
	for {
		if br.Buffered() == 0 {
			if err := bw.Flush(); err != nil {
				return err
			}
		}
		head, err := br.Peek(7)
		if err != nil {
			return err
		}
		size := int(binary.BigEndian.Uint32(head[3:7]))
		total := 7 + size + 1
		if cap(frame) < total {
			frame = make([]byte, total)
		}
		frame = frame[:total]
		if _, err := io.ReadFull(br, frame); err != nil {
			return err
		}
		if _, err := bw.Write(frame); err != nil {
			return err
		}
		if frame[0] == 1 { // a method frame
			t.method(chans, binary.BigEndian.Uint16(frame[1:3]), frame[7:7+size])
		}
	}
}

// The AMQP 0-9-1 methods the tap reads: (class << 16) | method.
const (
	methodChannelOpen  = 20<<16 | 10
	methodChannelClose = 20<<16 | 40
	methodChannelOK    = 20<<16 | 41
	methodConsume      = 60<<16 | 20
	methodAck          = 60<<16 | 80
)

func (t *ackTap) method(chans map[uint16]*channelAcks, ch uint16, p []byte) {
	if len(p) < 4 {
		return
	}
	switch uint32(binary.BigEndian.Uint16(p[0:2]))<<16 | uint32(binary.BigEndian.Uint16(p[2:4])) {
	case methodChannelOpen, methodChannelClose, methodChannelOK:
		delete(chans, ch) // delivery tags start again on a new channel
	case methodConsume:
		t.mu.Lock()
		if t.consumeAt.IsZero() {
			t.consumeAt = time.Now()
		}
		t.mu.Unlock()
	case methodAck:
		if len(p) < 13 {
			return
		}
		a := chans[ch]
		if a == nil {
			a = &channelAcks{}
			chans[ch] = a
		}
		if n := a.ack(binary.BigEndian.Uint64(p[4:12]), p[12]&1 == 1); n > 0 {
			now := time.Now()
			t.mu.Lock()
			t.acked += int64(n)
			t.lastAck = now
			close(t.changed)
			t.changed = make(chan struct{})
			t.mu.Unlock()
		}
	}
}

// channelAcks counts the deliveries of one channel that acks settled: a
// multiple ack settles every tag up to its own that no ack settled
// before; a single one settles its tag.
type channelAcks struct {
	upTo  uint64              // every tag up to this one is settled
	above map[uint64]struct{} // tags above upTo settled one by one
}

func (a *channelAcks) ack(tag uint64, multiple bool) int {
	if tag <= a.upTo {
		return 0
	}
	if !multiple {
		if _, ok := a.above[tag]; ok {
			return 0
		}
		if a.above == nil {
			a.above = map[uint64]struct{}{}
		}
		a.above[tag] = struct{}{}
		return 1
	}
	n := 0
	for x := a.upTo + 1; x <= tag; x++ {
		if _, ok := a.above[x]; ok {
			delete(a.above, x)
		} else {
			n++
		}
	}
	a.upTo = tag
	return n
}
