package throttle

import (
	"strconv"
	"testing"
	"time"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time      { return c.t }
func (c *clock) add(d time.Duration) { c.t = c.t.Add(d) }
func newAt(cfg Config) (*Backoff, *clock) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	b := New(cfg)
	b.now = c.now
	return b, c
}

func TestBackoffDoublesAfterTheFreeFailuresAndIsCapped(t *testing.T) {
	b, c := newAt(Config{Free: 2, Base: time.Second, Max: 8 * time.Second})
	for i := range 2 { // the second failure starts the back-off
		if ok, _ := b.Allow("alice"); !ok {
			t.Fatalf("refused after %d failures, before the second", i)
		}
		b.Fail("alice")
	}
	for _, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 8 * time.Second} {
		ok, d := b.Allow("alice")
		if ok || d != want {
			t.Fatalf("Allow = %v, %s; want refused for %s", ok, d, want)
		}
		c.add(want)
		if ok, _ := b.Allow("alice"); !ok {
			t.Fatalf("still refused after the %s back-off", want)
		}
		b.Fail("alice")
	}
}

func TestBackoffOfOneKeyLeavesOthersAlone(t *testing.T) {
	b, _ := newAt(Config{Free: 2})
	for range 20 {
		b.Fail("alice")
	}
	if ok, _ := b.Allow("alice"); ok {
		t.Fatal("alice not backed off")
	}
	if ok, _ := b.Allow("bob"); !ok {
		t.Fatal("bob refused because of alice's failures")
	}
}

func TestSuccessClearsTheKey(t *testing.T) {
	b, c := newAt(Config{Free: 2, Base: time.Second})
	b.Fail("alice")
	b.Fail("alice")
	c.add(time.Second)
	b.Succeed("alice")
	b.Fail("alice") // a fresh run: free again
	if ok, _ := b.Allow("alice"); !ok {
		t.Fatal("failures before the success still count")
	}
}

func TestBackoffForgetsIdleKeysAndStaysBounded(t *testing.T) {
	b, c := newAt(Config{Max: time.Second, MaxEntries: 10})
	for i := range 100 {
		b.Fail("k" + strconv.Itoa(i))
	}
	if n := b.Len(); n > 10 {
		t.Fatalf("%d keys remembered, want at most 10", n)
	}
	c.add(3 * time.Second)
	b.Fail("fresh")
	if n := b.Len(); n != 1 {
		t.Fatalf("%d keys after the idle ones expired, want 1", n)
	}
}
