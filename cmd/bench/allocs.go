package main

import (
	"context"
	"runtime"
)

// allocs_per_message: what one consumed message costs the garbage
// collector, in KiB allocated on the heap (runtime.MemStats.TotalAlloc),
// the unit of issue 19 (19.3 KiB against 6.2 on 2026-11-27, publishing and
// consuming together). The verdict is on these bytes; the heap objects per
// message (MemStats.Mallocs) are reported beside them, without a target.
//
// Each side consumes a queue prefilled (before the first reading) with n
// distinct prompts: the raw side with an amqp091 consumer acking each
// delivery; the project with the service of consume_full_stack, deduplication
// on (the -stack flag applies). Each count runs from before the consumer
// starts to after it stopped, every ack sent, so it includes starting and
// stopping the consumer, which n (-messages) makes small per message. The
// connections go straight to the broker: an ack tap would allocate in this
// process too.

// allocCount is one side's allocation per consumed message.
type allocCount struct {
	kib, objects float64
}

// countAllocs runs run and divides the heap allocated meanwhile by n.
func countAllocs(n int, run func() error) (allocCount, error) {
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	err := run()
	runtime.ReadMemStats(&after)
	return allocCount{
		kib:     float64(after.TotalAlloc-before.TotalAlloc) / 1024 / float64(n),
		objects: float64(after.Mallocs-before.Mallocs) / float64(n),
	}, err
}

// allocRound is one round of allocs_per_message: both queues prefilled,
// then each side counted, in the round's order.
func (e *env) allocRound(ctx context.Context, rc *rawConns, st *stack, xr, qr, xb, qb string, projectFirst bool) (raw, proj allocCount, err error) {
	n := e.o.messages
	if err := e.prefill(ctx, rc.pub, xr, qr, n); err != nil {
		return raw, proj, err
	}
	if err := e.prefill(ctx, rc.pub, xb, qb, n); err != nil {
		return raw, proj, err
	}
	countRaw := func() (err error) {
		raw, err = countAllocs(n, func() error {
			_, err := e.rawConsume(ctx, rc.sub, nil, qr, n)
			return err
		})
		return err
	}
	countProj := func() (err error) {
		proj, err = countAllocs(n, func() error {
			_, err := e.projectConsume(ctx, st, n, nil, false)
			return err
		})
		return err
	}
	first, second := countRaw, countProj
	if projectFirst {
		first, second = countProj, countRaw
	}
	if err := first(); err != nil {
		return raw, proj, err
	}
	err = second()
	return raw, proj, err
}
