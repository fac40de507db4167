package middleware

import (
	"sync"
	"time"
)

// recentKeys is how many keys handled last an inflight remembers: more than
// a service has in flight (its prefetch), so that a copy whose lookup was
// sent before the first copy's mark still finds the first copy here.
const recentKeys = 1024

// inflight lets one delivery of a key through at a time, and remembers the
// keys handled last. Copies of one event published back to back reach a
// service's consumers together; each would find the key unmarked and run,
// since the first marks it only once handled. A copy that finds its key
// held waits for the holder; one that finds it handled is a duplicate
// whatever the store said. Across replicas the race remains (see Dedup).
type inflight struct {
	mu     sync.Mutex
	held   map[string]chan struct{}
	recent map[string]time.Time // when each was handled
	window time.Duration        // how long a handled key counts (DedupConfig.Window)
	ring   []string             // recent's keys, oldest at next
	next   int
}

// acquire waits until no other delivery holds key, then holds it, unless
// key was handled here lately (recent, and release is nil). release(ok)
// lets the next copy in, remembering key when ok.
func (f *inflight) acquire(key string) (release func(ok bool), recent bool) {
	for {
		f.mu.Lock()
		if at, ok := f.recent[key]; ok && time.Since(at) < f.window {
			f.mu.Unlock()
			return nil, true
		}
		done, busy := f.held[key]
		if !busy {
			if f.held == nil {
				f.held, f.recent = map[string]chan struct{}{}, map[string]time.Time{}
			}
			done = make(chan struct{})
			f.held[key] = done
			f.mu.Unlock()
			return func(ok bool) { f.release(key, done, ok) }, false
		}
		f.mu.Unlock()
		<-done
	}
}

func (f *inflight) release(key string, done chan struct{}, ok bool) {
	f.mu.Lock()
	delete(f.held, key)
	if ok {
		if _, again := f.recent[key]; !again { // else only its time changes
			if len(f.ring) < recentKeys {
				f.ring = append(f.ring, key)
			} else {
				delete(f.recent, f.ring[f.next])
				f.ring[f.next] = key
				f.next = (f.next + 1) % recentKeys
			}
		}
		f.recent[key] = time.Now()
	}
	f.mu.Unlock()
	close(done)
}
