// Package throttle holds the gateway's per-key limits. Backoff slows down
// repeated failures: after Free failures in a row for one key (an account
// name, a client address), that key is refused for a back-off that doubles
// with each further failure, up to Max. Other keys are unaffected, and a
// success clears the key. Rate is a token bucket per key (a client
// address).
package throttle

import (
	"sync"
	"time"
)

// Defaults of Config's zero values.
const (
	DefaultFree = 3           // failures in a row before the back-off starts
	DefaultMax  = time.Minute // the longest back-off
)

// Config tunes a Backoff. Zero values mean the defaults in brackets.
type Config struct {
	Free       int           // failures in a row that start the back-off [3]
	Base       time.Duration // the first back-off [1s]
	Max        time.Duration // the longest back-off [1m]
	MaxEntries int           // most keys remembered; beyond, arbitrary idle ones are forgotten [100000]
}

// Backoff remembers recent failures per key. Safe for concurrent use; it
// owns no goroutine (idle keys are swept on use).
type Backoff struct {
	cfg Config
	now func() time.Time

	mu    sync.Mutex
	keys  map[string]*entry
	swept time.Time
}

type entry struct {
	fails int
	until time.Time // refused before this
	last  time.Time // last failure
}

// New returns a Backoff.
func New(cfg Config) *Backoff {
	if cfg.Free <= 0 {
		cfg.Free = DefaultFree
	}
	if cfg.Base <= 0 {
		cfg.Base = time.Second
	}
	if cfg.Max <= 0 {
		cfg.Max = DefaultMax
	}
	if cfg.MaxEntries <= 0 {
		cfg.MaxEntries = 100000
	}
	return &Backoff{cfg: cfg, now: time.Now, keys: make(map[string]*entry)}
}

// Allow reports whether key may try now, and if not, how long until it may.
// A refused attempt does not count as a failure: it cost nothing.
func (b *Backoff) Allow(key string) (ok bool, retryAfter time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	e := b.keys[key]
	if e == nil {
		return true, 0
	}
	if d := e.until.Sub(b.now()); d > 0 {
		return false, d
	}
	return true, 0
}

// Fail records a failed attempt of key.
func (b *Backoff) Fail(key string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	b.sweep(now)
	e := b.keys[key]
	if e == nil {
		if len(b.keys) >= b.cfg.MaxEntries {
			for k := range b.keys { // forget one arbitrary key to stay bounded
				delete(b.keys, k)
				break
			}
		}
		e = &entry{}
		b.keys[key] = e
	}
	e.fails++
	e.last = now
	if over := e.fails - b.cfg.Free + 1; over > 0 {
		d := b.cfg.Max
		if over < 31 {
			d = min(b.cfg.Max, b.cfg.Base<<(over-1))
		}
		e.until = now.Add(d)
	}
}

// Succeed clears key's failures.
func (b *Backoff) Succeed(key string) {
	b.mu.Lock()
	delete(b.keys, key)
	b.mu.Unlock()
}

// Len is how many keys are remembered.
func (b *Backoff) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.keys)
}

// sweep forgets keys whose last failure is older than twice Max: their
// back-off is over and a fresh run of failures starts from zero.
func (b *Backoff) sweep(now time.Time) {
	if now.Sub(b.swept) < b.cfg.Max {
		return
	}
	b.swept = now
	for k, e := range b.keys {
		if now.Sub(e.last) > 2*b.cfg.Max {
			delete(b.keys, k)
		}
	}
}
