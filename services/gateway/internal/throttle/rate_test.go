package throttle

import (
	"testing"
	"time"
)

func TestRateAllowsBurstsOfTwicePerKeyRefillsAndForgetsIdleKeys(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	l := NewRate(5) // burst 10
	l.now = func() time.Time { return now }
	allowed := func(key string, n int) int {
		ok := 0
		for range n {
			if l.Allow(key) {
				ok++
			}
		}
		return ok
	}
	if got := allowed("a", 25); got != 10 {
		t.Fatalf("a burst of 25 at 5/s: %d allowed, want the burst of 10", got)
	}
	if got := allowed("b", 3); got != 3 {
		t.Fatalf("another key: %d of 3 allowed, want all (keys are independent)", got)
	}
	now = now.Add(time.Second)
	if got := allowed("a", 10); got != 5 {
		t.Fatalf("a second later: %d allowed, want the 5 refilled", got)
	}
	// Past the sweep interval both buckets are full again: forgotten.
	now = now.Add(2 * rateSweepEvery)
	if !l.Allow("c") || l.keys() != 1 {
		t.Fatalf("after the sweep %d keys remembered, want only c", l.keys())
	}
	if l := NewRate(0.1); !l.Allow("x") || l.Allow("x") {
		t.Fatal("below 1/s the burst is 1")
	}
}
