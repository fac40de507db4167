package amqp

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
)

// fakeBroker keeps a channel's outstanding deliveries as RabbitMQ does and
// records every way the acker could break the protocol: an ack for a tag
// that is not outstanding (RabbitMQ closes the channel: PRECONDITION_FAILED
// unknown delivery tag) and an ack covering a delivery the application has
// not settled (a message lost if the process then dies).
type fakeBroker struct {
	mu          sync.Mutex
	outstanding map[uint64]bool // tag -> settled by the application
	frames      int
	errs        []string
}

func newFakeBroker(n int) *fakeBroker {
	b := &fakeBroker{outstanding: map[uint64]bool{}}
	for t := 1; t <= n; t++ {
		b.outstanding[uint64(t)] = false
	}
	return b
}

// settled is called by the test just before it hands a tag to the acker.
func (b *fakeBroker) settled(tag uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.outstanding[tag]; ok {
		b.outstanding[tag] = true
	}
}

func (b *fakeBroker) Ack(tag uint64, multiple bool) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.frames++
	if !multiple {
		settled, ok := b.outstanding[tag]
		switch {
		case !ok:
			b.errs = append(b.errs, fmt.Sprintf("ack of unknown delivery tag %d", tag))
		case !settled:
			b.errs = append(b.errs, fmt.Sprintf("ack of unsettled tag %d", tag))
		}
		delete(b.outstanding, tag)
		return nil
	}
	if _, ok := b.outstanding[tag]; !ok {
		// RabbitMQ 3.10 walks its unacked queue for the exact tag.
		b.errs = append(b.errs, fmt.Sprintf("multiple ack names tag %d, which is not outstanding", tag))
	}
	for t, settled := range b.outstanding {
		if t <= tag {
			if !settled {
				b.errs = append(b.errs, fmt.Sprintf("multiple ack %d covers unsettled tag %d", tag, t))
			}
			delete(b.outstanding, t)
		}
	}
	return nil
}

func (b *fakeBroker) Nack(tag uint64, multiple, requeue bool) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.frames++
	if _, ok := b.outstanding[tag]; !ok || multiple || !requeue {
		b.errs = append(b.errs, fmt.Sprintf("bad nack of tag %d (multiple %v, requeue %v)", tag, multiple, requeue))
	}
	delete(b.outstanding, tag)
	return nil
}

func (b *fakeBroker) check(t *testing.T, wantOutstanding int) {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, e := range b.errs {
		t.Error(e)
	}
	if len(b.outstanding) != wantOutstanding {
		t.Errorf("%d deliveries still outstanding at the broker, want %d", len(b.outstanding), wantOutstanding)
	}
}

func TestAcker_inOrderAcksInBulk(t *testing.T) {
	b := newFakeBroker(100)
	a := &acker{ch: b, above: map[uint64]bool{}, hold: 8}
	// A flush in progress (another worker's) is when acks pile up.
	a.mu.Lock()
	a.flushing = true
	a.mu.Unlock()
	for tag := uint64(1); tag <= 100; tag++ {
		b.settled(tag)
		a.ack(tag)
	}
	a.mu.Lock()
	a.flushing = false
	a.flush()
	b.check(t, 0)
	if b.frames != 1 {
		t.Errorf("%d frames for 100 in-order acks settled during a flush, want 1 multiple ack", b.frames)
	}
}

func TestAcker_slowDeliveryDoesNotHoldBackTheOthers(t *testing.T) {
	b := newFakeBroker(50)
	a := &acker{ch: b, above: map[uint64]bool{}, hold: 8}
	for tag := uint64(2); tag <= 50; tag++ {
		b.settled(tag)
		a.ack(tag)
		// Tag 1 is still being handled: at most hold others may wait for
		// it, or the prefetch window fills up behind it.
		b.mu.Lock()
		waiting := 0
		for _, settled := range b.outstanding {
			if settled {
				waiting++
			}
		}
		b.mu.Unlock()
		if waiting > a.hold {
			t.Fatalf("after settling tag %d, %d settled tags still unacked behind tag 1, want at most %d", tag, waiting, a.hold)
		}
	}
	b.settled(1)
	a.ack(1)
	b.check(t, 0)
}

// Tags settled out of order wait for the gap below them, so that one
// multiple ack covers them together.
func TestAcker_outOfOrderWaitsForTheGap(t *testing.T) {
	b := newFakeBroker(8)
	a := &acker{ch: b, above: map[uint64]bool{}, hold: 8}
	for _, tag := range []uint64{2, 4, 3, 6, 5, 8, 7, 1} {
		b.settled(tag)
		a.ack(tag)
	}
	b.check(t, 0)
	if b.frames != 1 {
		t.Errorf("%d frames for 8 tags settled out of order within the hold, want 1 multiple ack", b.frames)
	}
}

func TestAcker_nackIsSentAtOnceAndNeverAcked(t *testing.T) {
	b := newFakeBroker(5)
	a := &acker{ch: b, above: map[uint64]bool{}, hold: 8}
	for _, step := range []struct {
		tag  uint64
		nack bool
	}{{3, true}, {1, false}, {2, true}, {5, false}, {4, false}} {
		b.settled(step.tag)
		if step.nack {
			a.nack(step.tag)
		} else {
			a.ack(step.tag)
		}
	}
	b.check(t, 0)
}

// TestAcker_concurrentRandomOrder settles thousands of tags from many
// goroutines in random order, some nacked, as the workers do: every tag
// reaches the broker exactly once, none before it is settled, and fewer
// frames than deliveries go out.
func TestAcker_concurrentRandomOrder(t *testing.T) {
	const n, workers = 20000, 64
	b := newFakeBroker(n)
	a := &acker{ch: b, above: map[uint64]bool{}, hold: 8}
	tags := make(chan uint64, 256)
	go func() {
		// Deliveries arrive in order; a window of 256 is in flight.
		for tag := uint64(1); tag <= n; tag++ {
			tags <- tag
		}
		close(tags)
	}()
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for tag := range tags {
				for range rand.IntN(50) {
					_ = rand.Int() // handlers take different times
				}
				b.settled(tag)
				if rand.IntN(100) == 0 {
					a.nack(tag)
				} else {
					a.ack(tag)
				}
			}
		})
	}
	wg.Wait()
	b.check(t, 0)
	t.Logf("%d frames for %d deliveries", b.frames, n)
	if b.frames >= n {
		t.Errorf("%d frames for %d deliveries: nothing was acked in bulk", b.frames, n)
	}
}

// BenchmarkAcker settles 20,000 deliveries from 64 workers in random
// order, with 256 in flight, as a consuming service does, and reports the
// ack frames the broker receives per delivery: 1 without the acker.
func BenchmarkAcker(b *testing.B) {
	const n = 20000
	frames := 0
	for range b.N {
		broker := newFakeBroker(n)
		a := &acker{ch: broker, above: map[uint64]bool{}, hold: ackHold(256)}
		tags := make(chan uint64, 256)
		go func() {
			for tag := uint64(1); tag <= n; tag++ {
				tags <- tag
			}
			close(tags)
		}()
		var wg sync.WaitGroup
		for range 64 {
			wg.Go(func() {
				for tag := range tags {
					for range rand.IntN(50) {
						_ = rand.Int()
					}
					broker.settled(tag)
					a.ack(tag)
				}
			})
		}
		wg.Wait()
		frames += broker.frames
	}
	b.ReportMetric(float64(frames)/float64(n*b.N), "frames/delivery")
}
