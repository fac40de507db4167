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
	freed  sync.Cond // a held key was released; L is &mu once held is made
	held   map[string]struct{}
	recent map[string]time.Time // when each was handled
	window time.Duration        // how long a handled key counts (DedupConfig.Window)
	ring   []string             // recent's keys, oldest at next
	next   int
}

// acquire waits until no other delivery holds key, then holds it, unless
// key was handled here lately (recent, and release is nil). release(ok)
// lets the next copy in, remembering key when ok.
func (f *inflight) acquire(key string) (release func(ok bool), recent bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.held == nil {
		f.held, f.recent = map[string]struct{}{}, map[string]time.Time{}
		f.freed.L = &f.mu
	}
	for {
		if at, ok := f.recent[key]; ok && time.Since(at) < f.window {
			return nil, true
		}
		if _, busy := f.held[key]; !busy {
			break
		}
		// One condition for every key rather than a channel per key, which
		// each message would allocate: copies held up are rare, and a
		// release wakes them all to look again.
		f.freed.Wait()
	}
	f.held[key] = struct{}{}
	return func(ok bool) { f.release(key, ok) }, false
}

func (f *inflight) release(key string, ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
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
	f.freed.Broadcast()
}
