package bus

import (
	"fmt"
	"runtime/debug"
	"sync"

	"github.com/ThreeDotsLabs/watermill/message"
)

// warmPool runs a service's handler chains on goroutines that outlive a
// message, as grpc-go's server workers do for streams. Watermill's router
// starts a goroutine per message, whose stack starts small and is grown by
// copying, several times, as the chain goes deep (middleware, JSON, a Redis
// round trip); a goroutine that handles message after message grows its
// stack once. The cost is one hand-off each way. BenchmarkWarmPool shows the
// difference on a chain as deep as a service's; docs/performance.md what it
// is worth to a consuming service.
type warmPool struct {
	tasks chan *warmTask
	stop  chan struct{}
	once  sync.Once
}

type warmTask struct {
	h    message.HandlerFunc
	msg  *message.Message
	out  []*message.Message
	err  error
	done chan struct{}
}

var warmTasks = sync.Pool{New: func() any { return &warmTask{done: make(chan struct{}, 1)} }}

func newWarmPool() *warmPool {
	return &warmPool{tasks: make(chan *warmTask), stop: make(chan struct{})}
}

// middleware runs the rest of the chain on a pooled goroutine: an idle one
// if there is one, a new one that joins the pool otherwise. The pool is as
// large as the most messages in flight at once, which prefetch bounds.
func (p *warmPool) middleware(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		t := warmTasks.Get().(*warmTask)
		t.h, t.msg = h, msg
		select {
		case p.tasks <- t:
		default:
			go p.loop(t)
		}
		<-t.done
		out, err := t.out, t.err
		*t = warmTask{done: t.done}
		warmTasks.Put(t)
		return out, err
	}
}

// loop serves tasks, starting with t, until the pool stops. It keeps a
// 16 KiB frame at the bottom of the goroutine's stack, cleared once: the
// garbage collector halves the stack of a goroutine that uses less than a
// quarter of it, and an idle pooled goroutine uses almost none, so without
// the frame every collection would undo the growth the pool is for.
func (p *warmPool) loop(t *warmTask) {
	var pad [16 << 10]byte
	keep(&pad)
	p.serve(t)
}

func (p *warmPool) serve(t *warmTask) {
	for {
		t.run()
		select {
		case t = <-p.tasks:
		case <-p.stop:
			return
		}
	}
}

// keep makes the pad a real frame: the compiler drops a local nobody uses.
//
//go:noinline
func keep(*[16 << 10]byte) {}

// run calls the chain. A panic becomes the message's error, as Watermill
// turns a panic in its own goroutine into a nack, rather than ending the
// process from a goroutine Watermill does not watch.
func (t *warmTask) run() {
	defer func() {
		if r := recover(); r != nil {
			t.out, t.err = nil, fmt.Errorf("handler panicked: %v\n%s", r, debug.Stack())
		}
		t.done <- struct{}{}
	}()
	t.out, t.err = t.h(t.msg)
}

// close lets the pooled goroutines end; messages still in flight finish
// first, and any that arrive later run on a goroutine of their own.
func (p *warmPool) close() { p.once.Do(func() { close(p.stop) }) }
