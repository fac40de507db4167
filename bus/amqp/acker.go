package amqp

import (
	"sync"

	amqp091 "github.com/rabbitmq/amqp091-go"
)

// acker settles the deliveries of one channel, acking many with one frame
// where it can. Each ack is a frame the broker must process and, in
// amqp091, a write system call; with hundreds of deliveries in flight, one
// frame per delivery is a large share of what consuming costs on both
// sides (docs/performance.md has the measurements; BenchmarkAcker reports
// frames per delivery).
//
// An ack with multiple=true acks every delivery up to its tag, so it may
// only cover tags that are all settled: floor is the highest tag up to
// which every tag is. Nobody waits on a timer: whoever settles a tag while
// no flush runs does the flushing, for everything settled meanwhile. With
// many handlers running, most finish out of order: a tag settled above the
// floor waits for the gap below it to close, so that one multiple ack
// covers it with the others. At most hold tags wait so (half the prefetch
// window); beyond that they are acked one by one, because the broker counts
// a waiting tag against the prefetch window, and a window filled behind one
// slow handler would stop the queue. A waiting tag is never lost: the
// slowest handler below it settles, or the channel closes and the broker
// redelivers.
//
// A tag must never be acked twice (the broker closes the channel on an
// unknown tag): frames go out from the one flusher, a multiple ack names a
// tag that has had no frame yet, and a tag acked alone or nacked is only
// ever covered again by a multiple ack naming a later one, which the broker
// allows.
type acker struct {
	ch interface {
		Ack(tag uint64, multiple bool) error
		Nack(tag uint64, multiple, requeue bool) error
	}

	mu       sync.Mutex
	floor    uint64          // every tag <= floor is settled
	ackable  uint64          // the highest tag <= floor settled without a frame of its own
	sent     uint64          // the highest multiple ack sent
	above    map[uint64]bool // settled tags above the floor: true once on the wire
	pending  []uint64        // settled above the floor, not on the wire (some may be below it by now)
	held     int             // how many of pending are above the floor
	hold     int             // how many may wait for the floor
	flushing bool
}

// newAcker returns the acker of a channel whose consumer has the prefetch
// given: half the window may wait for the floor, the other half keeps the
// queue flowing past a slow delivery.
func newAcker(ch *amqp091.Channel, prefetch int) *acker {
	return &acker{ch: ch, above: map[uint64]bool{}, hold: ackHold(prefetch)}
}

func ackHold(prefetch int) int {
	if prefetch <= 0 {
		return 128 // no window to fill
	}
	return prefetch / 2
}

// ack settles tag; the frame that acks it may be sent by another caller.
func (a *acker) ack(tag uint64) {
	a.mu.Lock()
	a.settle(tag, false)
	a.flush()
}

// nack requeues tag at once: a nack carries a decision, not a receipt, and
// is rare. It is sent before the tag counts as settled, so a multiple ack
// can only cover it after it reached the broker.
func (a *acker) nack(tag uint64) {
	_ = a.ch.Nack(tag, false, true)
	a.mu.Lock()
	a.settle(tag, true)
	a.flush()
}

// settle records tag; a.mu is held.
func (a *acker) settle(tag uint64, onWire bool) {
	if tag <= a.floor {
		return // settled twice: the first one counts
	}
	if tag != a.floor+1 {
		a.above[tag] = onWire
		if !onWire {
			a.pending = append(a.pending, tag)
			a.held++
		}
		return
	}
	a.floor = tag
	if !onWire {
		a.ackable = tag
	}
	for {
		onWire, ok := a.above[a.floor+1]
		if !ok {
			break
		}
		delete(a.above, a.floor+1)
		a.floor++
		if !onWire {
			a.ackable = a.floor
			a.held--
		}
	}
}

// flush sends what is settled and not yet on the wire, unless another
// caller is flushing (it will see this caller's tag); a.mu is held, and is
// released.
func (a *acker) flush() {
	if a.flushing {
		a.mu.Unlock()
		return
	}
	a.flushing = true
	var alone []uint64
	for {
		if upto := a.ackable; upto > a.sent {
			a.sent = upto
			a.mu.Unlock()
			// An error means the channel is gone: the broker requeues what
			// it did not get an ack for, and the next channel starts new tags.
			_ = a.ch.Ack(upto, true)
			a.mu.Lock()
			continue
		}
		if a.held <= a.hold {
			if len(a.pending) > 2*a.hold+16 {
				// Most have been covered by the floor since: drop those.
				kept := a.pending[:0]
				for _, t := range a.pending {
					if t > a.floor {
						kept = append(kept, t)
					}
				}
				a.pending = kept
			}
			break
		}
		alone = alone[:0]
		for _, t := range a.pending {
			if t > a.floor && !a.above[t] {
				a.above[t] = true
				alone = append(alone, t)
			}
		}
		a.pending = a.pending[:0]
		a.held = 0
		a.mu.Unlock()
		for _, t := range alone {
			_ = a.ch.Ack(t, false)
		}
		a.mu.Lock()
	}
	a.flushing = false
	a.mu.Unlock()
}
