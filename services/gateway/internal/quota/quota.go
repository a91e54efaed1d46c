// Package quota bounds what clients can make the gateway store: it admits
// the creation of a user's secondary queues within a per-user cap, and it
// keeps the queues this gateway serves marked as served in the registry
// (pkg/userqueue), so `wsmqctl queues prune` leaves them alone.
package quota

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/wsmq/wsmq/pkg/userqueue"
)

// Defaults of Config.
const (
	// DefaultMaxQueuesPerUser is Config.MaxQueuesPerUser's default.
	DefaultMaxQueuesPerUser = 64
	// DefaultMarkInterval is Config.MarkInterval's default.
	DefaultMarkInterval = time.Minute
	// DefaultCallTimeout is Config.CallTimeout's default.
	DefaultCallTimeout = 5 * time.Second
)

// Config tunes a Quota; zero values mean the defaults in brackets.
type Config struct {
	MaxQueuesPerUser int           // secondary queues a user's subscriptions may create [64]
	MarkInterval     time.Duration // how often served queues are marked [1m]
	CallTimeout      time.Duration // deadline of one marking round [5s]
}

// Quota admits queue creation and marks served queues. Safe for concurrent
// use; Run owns its one goroutine's work.
type Quota struct {
	cfg Config
	reg *userqueue.Registry
	log *slog.Logger

	mu     sync.Mutex
	served map[string]int // secondary queue -> local subscriptions
}

// New returns a Quota on reg.
func New(cfg Config, reg *userqueue.Registry, log *slog.Logger) *Quota {
	if cfg.MaxQueuesPerUser == 0 {
		cfg.MaxQueuesPerUser = DefaultMaxQueuesPerUser
	}
	if cfg.MarkInterval == 0 {
		cfg.MarkInterval = DefaultMarkInterval
	}
	if cfg.CallTimeout == 0 {
		cfg.CallTimeout = DefaultCallTimeout
	}
	return &Quota{cfg: cfg, reg: reg, log: log, served: make(map[string]int)}
}

// Limit is the per-user cap of secondary queues.
func (q *Quota) Limit() int { return q.cfg.MaxQueuesPerUser }

// Admit lets user subscribe to queue (which MayUse allowed): always for the
// user's own queue, which costs no Redis call; for a secondary queue when it
// exists or the user is under the cap. A refusal wraps userqueue.ErrLimit.
func (q *Quota) Admit(ctx context.Context, user, queue string) error {
	if _, ok := userqueue.Owner(queue); !ok {
		return nil
	}
	if err := q.reg.Admit(ctx, queue, q.cfg.MaxQueuesPerUser); err != nil {
		return fmt.Errorf("quota: user %s: %w", user, err)
	}
	return nil
}

// Serve records a local subscription of queue; Unserve ends one.
func (q *Quota) Serve(queue string) {
	if _, ok := userqueue.Owner(queue); !ok {
		return
	}
	q.mu.Lock()
	q.served[queue]++
	q.mu.Unlock()
}

// Unserve ends a local subscription recorded by Serve.
func (q *Quota) Unserve(queue string) {
	q.mu.Lock()
	if n := q.served[queue]; n > 1 {
		q.served[queue] = n - 1
	} else {
		delete(q.served, queue)
	}
	q.mu.Unlock()
}

// Run marks the served queues every MarkInterval until ctx ends. A failed
// round is logged once until a round succeeds again.
func (q *Quota) Run(ctx context.Context) {
	t := time.NewTicker(q.cfg.MarkInterval)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := q.mark(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil && !failing:
			q.log.Warn("marking served queues failed; will retry", "err", err)
		case err == nil && failing:
			q.log.Info("marking served queues works again")
		}
		failing = err != nil
	}
}

func (q *Quota) mark(ctx context.Context) error {
	q.mu.Lock()
	queues := make([]string, 0, len(q.served))
	for name := range q.served {
		queues = append(queues, name)
	}
	q.mu.Unlock()
	if len(queues) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, q.cfg.CallTimeout)
	defer cancel()
	return q.reg.MarkServed(ctx, queues)
}
