// Package delivery moves messages from RSMQ queues to subscribers with
// at-least-once semantics: it pulls when woken (realtime notification, a
// timer for the next hidden message, or a bounded sweep), never pulls more
// than a subscriber can take, deletes delivered messages with their receipts
// and returns unacknowledged ones to their queue when a subscriber leaves.
//
// Pulling is done by a fixed pool of workers, not a goroutine per
// subscription, so an idle subscription costs a few hundred bytes and no
// Redis traffic beyond its share of the sweep.
//
// The package's files follow its concepts: engine.go (configuration and the
// Engine's life), subscription.go (a subscription's state, credit and ack),
// workers.go (the pull workers), wake.go (realtime notifications and the
// sweep), deletes.go (batched deletes).
//
// # Lock order
//
// Engine.psMu is taken before Engine.mu (syncRealtime decides SUBSCRIBE or
// UNSUBSCRIBE from the served-queue map while holding both). Apart from that
// pair, every lock is a leaf: Engine.mu, Engine.readyMu and Subscription.mu
// are never held together, and none of them is held while calling into a
// Sink, because a Sink calls back into Subscription.Signal from inside
// Release. Code that needs two of them takes one, copies what it needs,
// releases it, then takes the other.
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

// Defaults of Config, exported so the gateway's configuration can show
// and use the same values.
const (
	// DefaultVisibilityTimeout is Config.VisibilityTimeout's default, seconds.
	DefaultVisibilityTimeout = 30
	// DefaultPrefetch is Config.Prefetch's default.
	DefaultPrefetch = 64
	// DefaultMaxReceiveCount is Config.MaxReceiveCount's default.
	DefaultMaxReceiveCount = 10
	// DefaultWorkers is Config.Workers's default.
	DefaultWorkers = 32
	// DefaultSweepInterval is Config.SweepInterval's default.
	DefaultSweepInterval = 5 * time.Second
	// DefaultHotSweepInterval is Config.HotSweepInterval's default.
	DefaultHotSweepInterval = time.Second
	// DefaultCallTimeout is Config.CallTimeout's default.
	DefaultCallTimeout = 5 * time.Second
)

// Config tunes an Engine. Zero values mean the defaults in brackets (the
// Default* constants).
type Config struct {
	VisibilityTimeout int           // seconds a delivered, unacked message stays hidden [30]
	Prefetch          int           // most unacked messages per subscription [64]
	MaxReceiveCount   int           // receives before a message moves to <queue>-dlq [10]
	Workers           int           // concurrent pulls [32]
	SweepInterval     time.Duration // check interval per served queue [5s]
	HotSweepInterval  time.Duration // check interval for queues fed without notifications [1s]
	CallTimeout       time.Duration // deadline of one Redis call [5s]
	QueueConfig       rsmq.QueueConfig
	// Wake is what wakes a served queue besides the sweep [WakeRealtime];
	// the keyspace modes push every send, Node rsmq without realtime
	// included. Choose one that rsmq.KeyspaceNotifications reports on.
	// DB is the database the queues are in (the keyspace modes' channels).
	Wake Wake
	DB   int
	// Now is the gateway's clock [time.Now]. The engine times nothing by
	// it alone: every Redis reply carries Redis TIME, and deadlines and
	// timers are Redis times mapped onto this clock, so a gateway clock
	// that is off by seconds neither fires early nor late. Tests skew it.
	Now func() time.Time
}

func (c *Config) setDefaults() {
	if c.VisibilityTimeout == 0 {
		c.VisibilityTimeout = DefaultVisibilityTimeout
	}
	if c.Prefetch == 0 {
		c.Prefetch = DefaultPrefetch
	}
	if c.MaxReceiveCount == 0 {
		c.MaxReceiveCount = DefaultMaxReceiveCount
	}
	if c.Workers == 0 {
		c.Workers = DefaultWorkers
	}
	if c.SweepInterval == 0 {
		c.SweepInterval = DefaultSweepInterval
	}
	if c.HotSweepInterval == 0 {
		c.HotSweepInterval = DefaultHotSweepInterval
	}
	if c.CallTimeout == 0 {
		c.CallTimeout = DefaultCallTimeout
	}
	if c.QueueConfig == (rsmq.QueueConfig{}) {
		c.QueueConfig = rsmq.DefaultQueueConfig()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Wake is how served queues are woken for new messages (besides the sweep).
type Wake int

const (
	// WakeRealtime: the queue's realtime channel, published by senders
	// with realtime on (wsmq's publisher, Node rsmq with realtime).
	WakeRealtime Wake = iota
	// WakeKeyevent: the one channel on which Redis announces every ZADD
	// of the database (notify-keyspace-events E and z). One subscription
	// per gateway; each gateway sees the sends to every queue and ignores
	// those it does not serve.
	WakeKeyevent
	// WakeKeyspace: each served queue's keyspace channel (K and z): a
	// gateway hears only its own queues, but also their receives and
	// deletes, which it ignores.
	WakeKeyspace
)

// String names the mode as the gateway's setting does.
func (w Wake) String() string {
	switch w {
	case WakeKeyevent:
		return "keyevent"
	case WakeKeyspace:
		return "keyspace"
	}
	return "realtime"
}

// Sizes of the engine's fixed resources.
const (
	// deleteQueueLen is the capacity of the channel between subscriptions
	// and the deleters: deep enough that Confirmed and Ack, called from
	// connection goroutines, do not wait for Redis under a burst of acks.
	deleteQueueLen = 1 << 16
	// deleters is how many goroutines send batched deletes; a few, so one
	// slow round trip does not hold back every ack.
	deleters = 4
)

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

	mu      sync.Mutex // guards queues and stopped; after psMu, see the package doc
	queues  map[string]*queueState
	stopped bool
	ps      *redis.PubSub
	psMu    sync.Mutex // orders SUBSCRIBE/UNSUBSCRIBE with the served-queue check; before mu

	readyMu sync.Mutex
	ready   []*Subscription
	readyCh chan struct{} // one token per wake-up of an idle worker

	deletes chan deletion
	delStop chan struct{} // closed by Stop: deleters drain and exit

	clock redisClock
	warn  rateLog // warnings of failing Redis calls, at most one per kind per interval
}

// queueState is one served queue: its local subscriptions and its sweep
// schedule. Guarded by Engine.mu.
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
		clock:   redisClock{now: cfg.Now},
		warn:    rateLog{log: log, every: warnInterval},
		cfg:     cfg,
		rdb:     rdb,
		q:       q,
		m:       m,
		log:     log,
		queues:  make(map[string]*queueState),
		readyCh: make(chan struct{}, 1),
		deletes: make(chan deletion, deleteQueueLen),
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
	for range deleters {
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

// Prefetch is the most unacked messages of one subscription.
func (e *Engine) Prefetch() int { return e.cfg.Prefetch }

// VisibilityTimeout is how long a delivered, unacked message stays hidden.
func (e *Engine) VisibilityTimeout() time.Duration { return e.vt() }

// vt is the visibility timeout as a duration.
func (e *Engine) vt() time.Duration { return time.Duration(e.cfg.VisibilityTimeout) * time.Second }

// now is the engine's clock (Config.Now); compare it only with times from
// clock.local.
func (e *Engine) now() time.Time { return e.cfg.Now() }
