package throttle

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// rateSweepEvery is how often a Rate forgets keys whose bucket is full
// again (a full bucket is the same as none).
const rateSweepEvery = time.Minute

// Rate is a token bucket per key: perSecond tokens a second, bursts of
// twice that (at least 1). Safe for concurrent use; it owns no goroutine
// (idle keys are swept on use).
type Rate struct {
	limit rate.Limit
	burst int
	now   func() time.Time

	mu      sync.Mutex
	buckets map[string]*rate.Limiter
	swept   time.Time
}

// NewRate returns a Rate of perSecond per key.
func NewRate(perSecond float64) *Rate {
	return &Rate{limit: rate.Limit(perSecond), burst: max(1, int(2*perSecond)), now: time.Now,
		buckets: make(map[string]*rate.Limiter)}
}

// Allow takes a token from key's bucket and reports whether there was one.
func (l *Rate) Allow(key string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if now.Sub(l.swept) > rateSweepEvery {
		for k, b := range l.buckets {
			if b.TokensAt(now) >= float64(l.burst) {
				delete(l.buckets, k)
			}
		}
		l.swept = now
	}
	b := l.buckets[key]
	if b == nil {
		b = rate.NewLimiter(l.limit, l.burst)
		l.buckets[key] = b
	}
	return b.AllowN(now, 1)
}

// keys is how many keys the Rate remembers (tests).
func (l *Rate) keys() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}
