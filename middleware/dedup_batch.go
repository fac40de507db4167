package middleware

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// BatchMarker is a DedupStore that marks many keys in one round trip, which
// DedupConfig.MarkInBackground needs. RedisDedupStore is one.
type BatchMarker interface {
	DedupStore
	// MarkMany marks each key as Mark does; on an error some may not be.
	MarkMany(ctx context.Context, keys []string, ttl time.Duration) error
}

var _ BatchMarker = (*RedisDedupStore)(nil)

// MarkMany sends a SET NX per key in one pipeline.
func (s *RedisDedupStore) MarkMany(ctx context.Context, keys []string, ttl time.Duration) error {
	value := time.Now().UTC().Format(time.RFC3339Nano)
	_, err := s.client.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		for _, k := range keys {
			pipe.SetNX(ctx, s.prefix+k, value, ttl)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("cannot mark %d dedup keys: %w", len(keys), err)
	}
	return nil
}

// markBatchMax bounds the keys of one MarkMany.
const markBatchMax = 512

// markWriter writes a Dedup's marks in the background (MarkInBackground),
// so that a delivery's path before its ack keeps one Redis round trip (the
// check) and the marks of the deliveries handled meanwhile share one
// pipeline. Its goroutine runs while marks are queued and ends when none is
// left, so there is nothing to stop; Flush waits for it.
type markWriter struct {
	d     *Dedup
	store BatchMarker

	mu      sync.Mutex
	queue   []string
	pending map[string]int // keys queued or being written, with their count
	idle    chan struct{}  // closed when pending empties
	writing bool
}

func (w *markWriter) add(key string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.pending) == 0 {
		w.idle = make(chan struct{})
	}
	w.queue = append(w.queue, key)
	w.pending[key]++
	if !w.writing {
		w.writing = true
		go w.write()
	}
}

// has reports whether key waits to be written: a copy of a message this
// process just handled is a duplicate that the store does not show yet.
func (w *markWriter) has(key string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.pending[key] > 0
}

func (w *markWriter) write() {
	var batch []string
	for {
		w.mu.Lock()
		if len(w.queue) == 0 {
			w.writing = false
			w.mu.Unlock()
			return
		}
		n := min(len(w.queue), markBatchMax)
		batch = append(batch[:0], w.queue[:n]...)
		w.queue = w.queue[:copy(w.queue, w.queue[n:])]
		w.mu.Unlock()

		w.send(batch)

		w.mu.Lock()
		for _, key := range batch {
			if w.pending[key]--; w.pending[key] == 0 {
				delete(w.pending, key)
			}
		}
		if len(w.pending) == 0 {
			close(w.idle)
		}
		w.mu.Unlock()
	}
}

func (w *markWriter) send(batch []string) {
	d := w.d
	const what = "cannot mark messages processed; a redelivery would run them again"
	defer func() {
		// Not a handler's goroutine: a store that panics must cost this
		// batch's marks, not the process.
		if r := recover(); r != nil {
			d.storeFailed(what, fmt.Errorf("the store panicked: %v", r), slog.Int("marks", len(batch)))
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), d.cfg.Timeout)
	defer cancel()
	if err := w.store.MarkMany(ctx, batch, d.cfg.Window); err != nil {
		d.storeFailed(what, err, slog.Int("marks", len(batch)))
	}
}

// Flush waits until every mark queued before it is written (or failed), or
// ctx ends. Call it after the service stopped, so that the last messages
// handled are remembered.
func (d *Dedup) Flush(ctx context.Context) error {
	w := d.marks
	if w == nil {
		return nil
	}
	w.mu.Lock()
	if len(w.pending) == 0 {
		w.mu.Unlock()
		return nil
	}
	idle := w.idle
	w.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("cannot flush dedup marks: %w", ctx.Err())
	}
}
