package middleware

import (
	"strconv"
	"sync"
	"testing"
	"time"
)

func TestInflight_oneHolderAtATimeThenRecent(t *testing.T) {
	f := inflight{window: time.Minute}
	release, recent := f.acquire("k")
	if recent || release == nil {
		t.Fatal("a new key must be acquired")
	}
	var wg sync.WaitGroup
	got := make(chan bool, 1)
	wg.Go(func() {
		r, recent := f.acquire("k") // waits for the holder
		if r != nil {
			r(false)
		}
		got <- recent
	})
	select {
	case <-got:
		t.Fatal("a second copy got in while the first held the key")
	case <-time.After(20 * time.Millisecond):
	}
	release(true)
	wg.Wait()
	if !<-got {
		t.Error("the copy that waited for a handled key must find it recent")
	}
}

func TestInflight_failedHolderLetsTheNextCopyRun(t *testing.T) {
	f := inflight{window: time.Minute}
	release, _ := f.acquire("k")
	release(false)
	if r, recent := f.acquire("k"); recent || r == nil {
		t.Error("a key whose handling failed must run again")
	}
}

func TestInflight_recentIsBoundedInCountAndTime(t *testing.T) {
	f := inflight{window: time.Minute}
	for i := range recentKeys + 1 {
		r, _ := f.acquire(strconv.Itoa(i))
		r(true)
	}
	if len(f.recent) != recentKeys || len(f.ring) != recentKeys {
		t.Fatalf("remembers %d keys (ring %d), want %d", len(f.recent), len(f.ring), recentKeys)
	}
	if _, recent := f.acquire("0"); recent {
		t.Error("the oldest key must have been forgotten")
	}
	if _, recent := f.acquire(strconv.Itoa(recentKeys)); !recent {
		t.Error("the newest key must be remembered")
	}

	short := inflight{window: time.Millisecond}
	r, _ := short.acquire("k")
	r(true)
	time.Sleep(5 * time.Millisecond)
	if _, recent := short.acquire("k"); recent {
		t.Error("a key handled longer ago than the window must run again")
	}
}
