package bus

import (
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
)

// deepChain stands in for a service's handler chain: it needs about as
// much stack as the middleware, JSON decoding and a Redis call do.
func deepChain(msg *message.Message) ([]*message.Message, error) {
	var frame [1 << 10]byte
	return recurse(msg, frame[:], 24), nil
}

//go:noinline
func recurse(msg *message.Message, b []byte, n int) []*message.Message {
	var frame [1 << 10]byte
	frame[n] = b[n]
	if n == 0 {
		return nil
	}
	return recurse(msg, frame[:], n-1)
}

// BenchmarkWarmPool runs a deep chain for 64 messages in flight, on a new
// goroutine per message as Watermill's router does (perMessage), and on
// the warm pool.
func BenchmarkWarmPool(b *testing.B) {
	msg := message.NewMessage("1", nil)
	run := func(b *testing.B, call func()) {
		var wg sync.WaitGroup
		sem := make(chan struct{}, 64)
		for range b.N {
			sem <- struct{}{}
			wg.Go(func() {
				call()
				<-sem
			})
		}
		wg.Wait()
	}
	b.Run("perMessage", func(b *testing.B) {
		run(b, func() { _, _ = deepChain(msg) })
	})
	b.Run("warmPool", func(b *testing.B) {
		p := newWarmPool()
		defer p.close()
		h := p.middleware(deepChain)
		run(b, func() { _, _ = h(msg) })
	})
}

func TestWarmPool_panicBecomesTheMessagesError(t *testing.T) {
	p := newWarmPool()
	defer p.close()
	h := p.middleware(func(*message.Message) ([]*message.Message, error) { panic(errors.New("boom")) })
	_, err := h(message.NewMessage("1", nil))
	if err == nil || !strings.Contains(err.Error(), "handler panicked: boom") {
		t.Fatalf("err = %v, want the panic as an error", err)
	}
	// The pool goes on serving.
	out, err := p.middleware(func(m *message.Message) ([]*message.Message, error) { return []*message.Message{m}, nil })(message.NewMessage("2", nil))
	if err != nil || len(out) != 1 || out[0].UUID != "2" {
		t.Fatalf("after a panic: out %v, err %v", out, err)
	}
}
