// Package delivery moves messages from RSMQ queues to subscribers with
// at-least-once semantics: it pulls when woken (realtime notification, a
// timer for the next hidden message, or a bounded sweep), never pulls more
// than a subscriber can take, deletes delivered messages with their receipts
// and returns unacknowledged ones to their queue when a subscriber leaves.
//
// Pulling is done by a fixed pool of workers, not a goroutine per
// subscription, so an idle subscription costs a few hundred bytes and no
// Redis traffic beyond its share of the sweep.
package delivery

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wsmq/wsmq/pkg/rsmq"
	"github.com/wsmq/wsmq/services/gateway/internal/metrics"
)

// Config tunes an Engine. Zero values mean the defaults in brackets.
type Config struct {
	VisibilityTimeout int           // seconds a delivered, unacked message stays hidden [30]
	Prefetch          int           // most unacked messages per subscription [64]
	MaxReceiveCount   int           // receives before a message moves to <queue>-dlq [10]
	Workers           int           // concurrent pulls [32]
	SweepInterval     time.Duration // check interval per served queue [5s]
	HotSweepInterval  time.Duration // check interval for queues fed without notifications [1s]
	CallTimeout       time.Duration // deadline of one Redis call [5s]
	QueueConfig       rsmq.QueueConfig
}

func (c *Config) setDefaults() {
	if c.VisibilityTimeout == 0 {
		c.VisibilityTimeout = 30
	}
	if c.Prefetch == 0 {
		c.Prefetch = 64
	}
	if c.MaxReceiveCount == 0 {
		c.MaxReceiveCount = 10
	}
	if c.Workers == 0 {
		c.Workers = 32
	}
	if c.SweepInterval == 0 {
		c.SweepInterval = 5 * time.Second
	}
	if c.HotSweepInterval == 0 {
		c.HotSweepInterval = time.Second
	}
	if c.CallTimeout == 0 {
		c.CallTimeout = 5 * time.Second
	}
	if c.QueueConfig == (rsmq.QueueConfig{}) {
		c.QueueConfig = rsmq.DefaultQueueConfig()
	}
}

// DLQSuffix names a queue's dead-letter queue: <queue> + DLQSuffix.
const DLQSuffix = "-dlq"

// ErrClosed is returned by Subscribe after Stop.
var ErrClosed = errors.New("delivery: engine stopped")

// Engine serves subscriptions from one Redis. Start it once, Stop it once
// after every subscription has been closed.
type Engine struct {
	cfg Config
	rdb redis.UniversalClient
	q   *rsmq.Client
	m   *metrics.Metrics
	log *slog.Logger

	ctx    context.Context // cancelled by Stop: ends workers, sweeper, listener
	cancel context.CancelFunc
	wg     sync.WaitGroup
	delWG  sync.WaitGroup

	mu      sync.Mutex
	queues  map[string]*queueState
	stopped bool
	ps      *redis.PubSub
	psMu    sync.Mutex // orders SUBSCRIBE/UNSUBSCRIBE with the served-queue check

	readyMu sync.Mutex
	ready   []*Subscription
	readyCh chan struct{} // one token per wake-up of an idle worker

	deletes chan deletion
	delStop chan struct{} // closed by Stop: deleters drain and exit
}

type queueState struct {
	subs       map[*Subscription]struct{}
	nextSweep  time.Time
	hotUntil   time.Time
	lastNotify time.Time
}

// New builds an Engine; q must use rdb.
func New(cfg Config, rdb redis.UniversalClient, q *rsmq.Client, m *metrics.Metrics, log *slog.Logger) *Engine {
	cfg.setDefaults()
	return &Engine{
		cfg:     cfg,
		rdb:     rdb,
		q:       q,
		m:       m,
		log:     log,
		queues:  make(map[string]*queueState),
		readyCh: make(chan struct{}, 1),
		deletes: make(chan deletion, 1<<16),
		delStop: make(chan struct{}),
	}
}

// Start launches the workers, the realtime listener, the sweeper and the
// deleters.
func (e *Engine) Start() {
	e.ctx, e.cancel = context.WithCancel(context.Background())
	e.ps = e.rdb.Subscribe(e.ctx)
	for range e.cfg.Workers {
		e.wg.Add(1)
		go e.worker()
	}
	e.wg.Add(2)
	go e.listen()
	go e.sweeper()
	for range 4 {
		e.delWG.Add(1)
		go e.deleter()
	}
}

// Stop ends the engine: background loops stop, pending deletions are sent,
// and Stop returns when every goroutine the engine started has ended. Close
// every subscription first.
func (e *Engine) Stop() {
	e.mu.Lock()
	if e.stopped {
		e.mu.Unlock()
		return
	}
	e.stopped = true
	e.mu.Unlock()
	e.cancel()
	_ = e.ps.Close()
	e.wg.Wait()
	close(e.delStop)
	e.delWG.Wait()
}

func (e *Engine) vt() time.Duration { return time.Duration(e.cfg.VisibilityTimeout) * time.Second }
