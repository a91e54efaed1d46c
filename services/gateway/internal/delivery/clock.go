package delivery

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// redisClock maps Redis TIME onto the engine's clock. Scores, visibility
// deadlines and delays are Redis times; the engine learns the offset from
// every reply that carries Redis TIME (receive, return, sweep) and times
// its timers on its own clock from the mapped values, so a skewed gateway
// clock shifts nothing. The offset is taken at the reply's arrival, so it
// errs by up to one round trip toward mapping Redis times later: a timer
// fires at worst that much late, never before Redis considers it due.
type redisClock struct {
	now    func() time.Time
	offset atomic.Int64 // Redis ms minus local ms
}

// observe records Redis TIME (unix ms) read by a reply that just arrived.
func (c *redisClock) observe(redisMS int64) {
	if redisMS > 0 {
		c.offset.Store(redisMS - c.now().UnixMilli())
	}
}

// local returns the local time at which Redis's clock reads redisMS.
func (c *redisClock) local(redisMS int64) time.Time {
	return time.UnixMilli(redisMS - c.offset.Load())
}

// warnInterval is how often one kind of failure warning is logged at most;
// the ones in between are counted and reported with the next.
const warnInterval = 10 * time.Second

// rateLog logs warnings of one kind ("receive failed") at most once per
// interval, so a Redis that fails every call (full, down) costs one line per
// kind and interval, not one per subscription and second.
type rateLog struct {
	log   *slog.Logger
	every time.Duration

	mu    sync.Mutex
	kinds map[string]*rateKind
}

type rateKind struct {
	last       time.Time
	suppressed int
}

// Warn logs msg with args unless a warning of the same msg was logged
// within the interval; then it only counts it.
func (r *rateLog) Warn(msg string, args ...any) {
	now := time.Now()
	r.mu.Lock()
	if r.kinds == nil {
		r.kinds = make(map[string]*rateKind)
	}
	k := r.kinds[msg]
	if k == nil {
		k = &rateKind{}
		r.kinds[msg] = k
	}
	if !k.last.IsZero() && now.Sub(k.last) < r.every {
		k.suppressed++
		r.mu.Unlock()
		return
	}
	k.last = now
	n := k.suppressed
	k.suppressed = 0
	r.mu.Unlock()
	if n > 0 {
		args = append(args, "suppressed", n)
	}
	r.log.Log(context.Background(), slog.LevelWarn, msg, args...)
}
