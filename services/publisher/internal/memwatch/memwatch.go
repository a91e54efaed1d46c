// Package memwatch keeps the publisher from filling Redis: it samples
// used_memory/maxmemory at an interval and, above a high-water mark, makes
// sends fail fast with ErrHighWater before Redis itself refuses writes, so
// the memory left is kept for the scripts that drain queues.
package memwatch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"
)

// ErrHighWater is returned by Check while Redis is above the mark.
var ErrHighWater = errors.New("redis memory above the publisher's high-water mark")

// DefaultInterval is Watch.Interval's default.
const DefaultInterval = 500 * time.Millisecond

// Watch samples Redis memory. HighWater is the mark as a fraction of
// maxmemory; 0 or 1 (or more) disables the watch, and so does a Redis
// without maxmemory.
type Watch struct {
	HighWater float64
	Interval  time.Duration
	// Usage reads used and max memory (redisconn.MemoryUsage).
	Usage func(ctx context.Context) (used, max int64, err error)
	Log   *slog.Logger

	above atomic.Bool
	used  atomic.Int64 // permille of maxmemory at the last sample
}

// Enabled reports whether the watch refuses anything at all.
func (w *Watch) Enabled() bool { return w.HighWater > 0 && w.HighWater < 1 }

// Below reports whether the last sample was below the mark (always true
// when disabled): the readiness entry "redis_memory".
func (w *Watch) Below() bool { return !w.above.Load() }

// Check returns nil, or ErrHighWater with the last sample, without any
// Redis call: it is read on every send.
func (w *Watch) Check() error {
	if !w.above.Load() {
		return nil
	}
	return fmt.Errorf("%w: Redis uses %.1f%% of maxmemory, the mark is %.0f%%; send refused until consumers drain queues",
		ErrHighWater, float64(w.used.Load())/10, w.HighWater*100)
}

// Run samples until ctx ends. A failed sample keeps the last state (when
// Redis is unreachable, sends fail on their own).
func (w *Watch) Run(ctx context.Context) {
	if !w.Enabled() {
		return
	}
	interval := w.Interval
	if interval <= 0 {
		interval = DefaultInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	failing := false
	for {
		cctx, cancel := context.WithTimeout(ctx, max(interval, time.Second))
		used, limit, err := w.Usage(cctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		switch {
		case err != nil:
			if !failing {
				w.Log.Warn("redis memory sample failed; keeping the last state", "err", err)
			}
			failing = true
		default:
			failing = false
			w.observe(used, limit)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (w *Watch) observe(used, limit int64) {
	above := false
	if limit > 0 {
		ratio := float64(used) / float64(limit)
		w.used.Store(int64(ratio * 1000))
		above = ratio >= w.HighWater
	}
	if w.above.Swap(above) == above {
		return
	}
	if above {
		w.Log.Warn("redis memory above high water: refusing sends with RESOURCE_EXHAUSTED",
			"used_bytes", used, "maxmemory_bytes", limit, "high_water", w.HighWater)
	} else {
		w.Log.Info("redis memory below high water: accepting sends",
			"used_bytes", used, "maxmemory_bytes", limit, "high_water", w.HighWater)
	}
}
