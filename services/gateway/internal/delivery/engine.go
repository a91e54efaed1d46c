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
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
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

// hotFor is how long a queue stays on the fast sweep after a sweep found
// messages that no notification had announced.
const hotFor = time.Minute

// deleteBatch is the most receipts one deleter sends in one call.
const deleteBatch = 512

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

type deletion struct {
	queue string
	r     rsmq.Receipt
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

// Subscription is one subscriber's claim on one queue.
type Subscription struct {
	e      *Engine
	queue  string
	dlq    string
	sink   Sink
	manual bool

	mu       sync.Mutex
	state    pullState
	inflight map[string]*flight
	closed   bool
	starved  bool // a pull found no credit: signal when credit frees
	timer    *time.Timer
	timerAt  int64 // unix ms the timer fires at; 0 when none
}

type pullState uint8

const (
	idle      pullState = iota
	scheduled           // in the ready list
	running             // a worker is pulling
	rerun               // woken while running: pull again
)

type flight struct {
	rc       int64
	deadline time.Time // when the message becomes visible again in Redis
	written  bool
}

// Sink receives a subscription's messages: a websocket connection's outbound
// buffer. Deliver must not block; the engine only delivers what Reserve
// granted.
type Sink interface {
	// Reserve claims up to n slots of the outbound buffer and returns how
	// many it got; when it returns 0 the sink must Signal the subscription
	// once slots free up.
	Reserve(s *Subscription, n int) int
	// Release returns unused slots.
	Release(n int)
	// Deliver queues messages into slots reserved before. It returns false
	// when the sink is closed; the messages are then not written.
	Deliver(s *Subscription, msgs []rsmq.Message) bool
}

// Queue is the subscribed queue's name.
func (s *Subscription) Queue() string { return s.queue }

// Subscribe registers sink as a consumer of queue, creating the queue with
// the engine's default attributes when it does not exist. manual selects ack
// mode: messages stay in flight until Ack; otherwise they are deleted once
// Written. confirmed, when not nil, runs after the queue exists and before
// the first pull can deliver anything.
func (e *Engine) Subscribe(ctx context.Context, sink Sink, queue string, manual bool, confirmed func()) (*Subscription, error) {
	if err := e.ensureQueue(ctx, queue); err != nil {
		return nil, err
	}
	if confirmed != nil {
		confirmed()
	}
	s := &Subscription{
		e: e, queue: queue, dlq: queue + DLQSuffix, sink: sink, manual: manual,
		inflight: make(map[string]*flight),
	}
	e.mu.Lock()
	if e.stopped {
		e.mu.Unlock()
		return nil, ErrClosed
	}
	qs := e.queues[queue]
	first := qs == nil
	if first {
		// A random first check spreads the sweep of queues subscribed
		// together (a reconnect storm) over the interval.
		first := time.Duration(rand.Int64N(int64(e.cfg.SweepInterval))) + e.cfg.SweepInterval/10
		qs = &queueState{subs: make(map[*Subscription]struct{}), nextSweep: time.Now().Add(first)}
		e.queues[queue] = qs
	}
	qs.subs[s] = struct{}{}
	e.mu.Unlock()
	e.m.Subscriptions.Inc()
	if first {
		e.syncRealtime(ctx, queue)
	}
	s.Signal()
	return s, nil
}

func (e *Engine) ensureQueue(ctx context.Context, queue string) error {
	ctx, cancel := context.WithTimeout(ctx, e.cfg.CallTimeout)
	defer cancel()
	err := e.q.CreateQueue(ctx, queue, e.cfg.QueueConfig)
	if err != nil && !errors.Is(err, rsmq.ErrQueueExists) {
		return fmt.Errorf("create queue %s: %w", queue, err)
	}
	return nil
}

// Signal asks for a pull. Cheap and idempotent: at most one pull per
// subscription is queued or running at a time.
func (s *Subscription) Signal() {
	s.mu.Lock()
	switch s.state {
	case idle:
		if s.closed {
			s.mu.Unlock()
			return
		}
		s.state = scheduled
		s.mu.Unlock()
		s.e.enqueue(s)
		return
	case running:
		s.state = rerun
	}
	s.mu.Unlock()
}

func (e *Engine) enqueue(s *Subscription) {
	e.readyMu.Lock()
	e.ready = append(e.ready, s)
	e.readyMu.Unlock()
	select {
	case e.readyCh <- struct{}{}:
	default:
	}
}

// nextBatch takes up to n subscriptions from the ready list.
func (e *Engine) nextBatch(n int) []*Subscription {
	e.readyMu.Lock()
	defer e.readyMu.Unlock()
	if len(e.ready) == 0 {
		return nil
	}
	k := min(n, len(e.ready))
	batch := make([]*Subscription, k)
	copy(batch, e.ready)
	clear(e.ready[:k])
	e.ready = e.ready[k:]
	if len(e.ready) == 0 {
		e.ready = nil // let the backing array go
	} else {
		// More work waits: pass the token on so another worker wakes.
		select {
		case e.readyCh <- struct{}{}:
		default:
		}
	}
	return batch
}

// pullBatch is the most subscriptions one worker serves with one Redis call.
const pullBatch = 64

func (e *Engine) worker() {
	defer e.wg.Done()
	for {
		batch := e.nextBatch(pullBatch)
		if len(batch) == 0 {
			select {
			case <-e.ctx.Done():
				return
			case <-e.readyCh:
				continue
			}
		}
		for _, s := range batch {
			s.mu.Lock()
			s.state = running
			s.mu.Unlock()
		}
		again := e.pull(batch)
		for i, s := range batch {
			s.mu.Lock()
			if (again[i] || s.state == rerun) && !s.closed {
				s.state = scheduled
				s.mu.Unlock()
				e.enqueue(s)
				continue
			}
			s.state = idle
			s.mu.Unlock()
		}
	}
}

func (e *Engine) vt() time.Duration { return time.Duration(e.cfg.VisibilityTimeout) * time.Second }

// credit is how many more messages the subscription may hold in flight.
// Entries whose visibility ran out no longer count: their messages are
// visible again in Redis and may go to anyone.
func (s *Subscription) credit(now time.Time) int {
	n := 0
	for id, f := range s.inflight {
		if now.After(f.deadline) {
			// Kept a while so a late Ack is still accepted (the receipt
			// guard decides whether it deletes anything).
			if f.written && now.After(f.deadline.Add(s.e.vt())) {
				delete(s.inflight, id)
			}
			continue
		}
		n++
	}
	return s.e.cfg.Prefetch - n
}

// pull receives, in one Redis call, what each subscription of batch can
// take, and hands the messages to their sinks. again[i] reports whether
// batch[i] should be pulled again at once.
func (e *Engine) pull(batch []*Subscription) (again []bool) {
	again = make([]bool, len(batch))
	now := time.Now()
	idx := make([]int, 0, len(batch)) // batch index of each request
	reqs := make([]rsmq.QueueRequest, 0, len(batch))
	for i, s := range batch {
		if got := s.reserve(now); got > 0 {
			idx = append(idx, i)
			reqs = append(reqs, rsmq.QueueRequest{Queue: s.queue, Max: got, DeadLetterQueue: s.dlq})
		}
	}
	if len(reqs) == 0 {
		return again
	}
	ctx, cancel := context.WithTimeout(e.ctx, e.cfg.CallTimeout)
	results, errs, err := e.q.ReceiveFromQueues(ctx, e.cfg.VisibilityTimeout, e.cfg.MaxReceiveCount, reqs)
	cancel()
	for k, i := range idx {
		s, granted := batch[i], reqs[k].Max
		switch {
		case err != nil:
			s.failed(err, granted)
		case errs[k] != nil:
			s.failed(errs[k], granted)
		default:
			again[i] = s.deliver(results[k], granted)
		}
	}
	return again
}

// reserve returns how many messages to ask Redis for: the subscription's
// credit, bounded by the slots its sink grants.
func (s *Subscription) reserve(now time.Time) int {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return 0
	}
	want := s.credit(now)
	s.starved = want <= 0
	s.mu.Unlock()
	if want <= 0 {
		s.armExpiry()
		return 0
	}
	return s.sink.Reserve(s, want) // 0: the sink signals when its writer drains
}

// failed handles a receive error: a missing queue waits for a publisher to
// recreate it (notifications and the sweep still watch it); anything else
// is retried in a second.
func (s *Subscription) failed(err error, granted int) {
	s.sink.Release(granted)
	e := s.e
	if errors.Is(err, rsmq.ErrQueueNotFound) || e.ctx.Err() != nil {
		return
	}
	e.log.Warn("receive failed; retrying", "queue", s.queue, "err", err)
	s.armTimer(time.Now().Add(time.Second).UnixMilli())
}

// deliver hands received messages to the sink and reports whether the queue
// may hold more right now.
func (s *Subscription) deliver(res *rsmq.ReceiveResult, granted int) bool {
	e := s.e
	if n := len(res.DeadLettered); n > 0 {
		e.m.DeadLettered.Add(float64(n))
		e.log.Info("messages moved to dead-letter queue", "queue", s.queue, "dlq", s.dlq, "count", n)
	}
	msgs := res.Messages
	if len(msgs) < granted {
		s.sink.Release(granted - len(msgs))
	}
	if len(msgs) > 0 {
		deadline := time.Now().Add(e.vt())
		s.mu.Lock()
		closed := s.closed
		if !closed {
			for i := range msgs {
				s.inflight[msgs[i].ID] = &flight{rc: msgs[i].RC, deadline: deadline}
			}
		}
		s.mu.Unlock()
		if closed {
			s.sink.Release(len(msgs)) // Deliver, which would use the slots, is skipped
		}
		if closed || !s.sink.Deliver(s, msgs) {
			s.forget(msgs)
			e.giveBack(s.queue, receipts(msgs))
			return false
		}
	}
	if len(msgs)+len(res.DeadLettered) >= granted {
		return true // the queue may hold more
	}
	if res.NextVisible > 0 {
		s.armTimer(res.NextVisible)
	}
	return false
}

func receipts(msgs []rsmq.Message) []rsmq.Receipt {
	rs := make([]rsmq.Receipt, len(msgs))
	for i := range msgs {
		rs[i] = msgs[i].Receipt()
	}
	return rs
}

func (s *Subscription) forget(msgs []rsmq.Message) {
	s.mu.Lock()
	for i := range msgs {
		delete(s.inflight, msgs[i].ID)
	}
	s.mu.Unlock()
}

// armExpiry wakes the subscription when its earliest in-flight message
// times out, which frees credit.
func (s *Subscription) armExpiry() {
	s.mu.Lock()
	var first time.Time
	for _, f := range s.inflight {
		if first.IsZero() || f.deadline.Before(first) {
			first = f.deadline
		}
	}
	s.mu.Unlock()
	if !first.IsZero() {
		s.armTimer(first.Add(time.Millisecond).UnixMilli())
	}
}

// armTimer makes sure the subscription is signalled at unix ms at (or
// earlier).
func (s *Subscription) armTimer(at int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || (s.timer != nil && s.timerAt <= at && s.timerAt > time.Now().UnixMilli()) {
		return
	}
	if s.timer != nil {
		s.timer.Stop()
	}
	s.timerAt = at
	s.timer = time.AfterFunc(time.Until(time.UnixMilli(at)), s.Signal)
}

// Written tells the subscription these messages reached the client. In auto
// mode they are deleted now; in manual mode they wait for Ack.
func (s *Subscription) Written(msgs []rsmq.Message) {
	now := time.Now()
	wake := false
	if !s.manual {
		s.mu.Lock()
		for i := range msgs {
			delete(s.inflight, msgs[i].ID)
		}
		wake, s.starved = s.starved, false
		s.mu.Unlock()
		for i := range msgs {
			s.e.queueDelete(deletion{queue: s.queue, r: msgs[i].Receipt()})
		}
		s.e.m.Acked.Add(float64(len(msgs)))
	} else {
		s.mu.Lock()
		for i := range msgs {
			if f := s.inflight[msgs[i].ID]; f != nil && f.rc == msgs[i].RC {
				f.written = true
			}
		}
		s.mu.Unlock()
	}
	for i := range msgs {
		s.e.m.Delivered.Inc()
		if msgs[i].RC > 1 {
			s.e.m.Redelivered.Inc()
		}
		if msgs[i].Sent > 0 {
			s.e.m.Latency.Observe(float64(now.UnixMilli()-msgs[i].Sent) / 1000)
		}
	}
	if wake {
		s.Signal()
	}
}

// Ack acknowledges message id (manual mode): it is deleted from the queue if
// it is still in the delivery this subscription was given. Ack reports
// whether this subscription holds id.
func (s *Subscription) Ack(id string) bool {
	s.mu.Lock()
	f, ok := s.inflight[id]
	wake := false
	if ok {
		delete(s.inflight, id)
		wake, s.starved = s.starved, false
	}
	s.mu.Unlock()
	if !ok {
		return false
	}
	s.e.queueDelete(deletion{queue: s.queue, r: rsmq.Receipt{ID: id, RC: f.rc}})
	s.e.m.Acked.Inc()
	if wake {
		s.Signal()
	}
	return true
}

// Close ends the subscription: no more pulls, and every message it holds
// unacked is made visible again at once (visibility 0) so another consumer
// gets it without waiting for the timeout.
func (s *Subscription) Close(ctx context.Context) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	if s.timer != nil {
		s.timer.Stop()
	}
	var back []rsmq.Receipt
	now := time.Now()
	for id, f := range s.inflight {
		if now.Before(f.deadline) {
			back = append(back, rsmq.Receipt{ID: id, RC: f.rc})
		}
	}
	s.inflight = nil
	s.mu.Unlock()

	e := s.e
	e.mu.Lock()
	qs := e.queues[s.queue]
	last := false
	if qs != nil {
		delete(qs.subs, s)
		if len(qs.subs) == 0 {
			delete(e.queues, s.queue)
			last = true
		}
	}
	stopped := e.stopped
	e.mu.Unlock()
	e.m.Subscriptions.Dec()
	if last && !stopped {
		e.syncRealtime(ctx, s.queue)
	}
	if len(back) > 0 {
		e.returnNow(ctx, s.queue, back)
	}
}

// syncRealtime subscribes to queue's realtime channel when the queue is
// served and unsubscribes when it is not, deciding under psMu so a last
// unsubscribe racing a new first subscribe cannot leave a served queue
// without notifications. A failed SUBSCRIBE is remembered by go-redis and
// replayed on reconnect; the sweep covers the gap.
func (e *Engine) syncRealtime(ctx context.Context, queue string) {
	e.psMu.Lock()
	defer e.psMu.Unlock()
	e.mu.Lock()
	served := e.queues[queue] != nil
	e.mu.Unlock()
	ch := e.q.RealtimeChannel(queue)
	if served {
		if err := e.ps.Subscribe(ctx, ch); err != nil {
			e.log.Warn("realtime subscribe failed; sweep covers the queue", "queue", queue, "err", err)
		}
		return
	}
	if err := e.ps.Unsubscribe(ctx, ch); err != nil {
		e.log.Debug("realtime unsubscribe failed", "queue", queue, "err", err)
	}
}

// returnNow makes messages visible again, guarded by their receipts.
func (e *Engine) returnNow(ctx context.Context, queue string, rs []rsmq.Receipt) {
	ctx, cancel := context.WithTimeout(ctx, e.cfg.CallTimeout)
	defer cancel()
	n, err := e.q.ChangeVisibilityByReceipts(ctx, queue, rs, 0)
	if err != nil {
		e.log.Warn("could not return in-flight messages; they reappear after the visibility timeout",
			"queue", queue, "count", len(rs), "err", err)
		return
	}
	e.m.Returned.Add(float64(n))
}

func (e *Engine) giveBack(queue string, rs []rsmq.Receipt) {
	e.returnNow(context.Background(), queue, rs)
}

// queueDelete hands a deletion to the deleters. After Stop (a connection
// outliving the shutdown deadline) it is dropped: the message reappears
// after its visibility timeout, so nothing is lost, at worst redelivered.
func (e *Engine) queueDelete(d deletion) {
	select {
	case e.deletes <- d:
	case <-e.delStop:
	}
}

// deleter batches deletions: whatever is waiting, across queues, goes to
// Redis in one call. On Stop it sends what is queued, then exits.
func (e *Engine) deleter() {
	defer e.delWG.Done()
	byQueue := make(map[string][]rsmq.Receipt)
	var batches []rsmq.QueueReceipts
	for {
		var d deletion
		select {
		case d = <-e.deletes:
		case <-e.delStop:
			select {
			case d = <-e.deletes:
			default:
				return
			}
		}
		byQueue[d.queue] = append(byQueue[d.queue], d.r)
		n := 1
	drain:
		for n < deleteBatch {
			select {
			case d := <-e.deletes:
				byQueue[d.queue] = append(byQueue[d.queue], d.r)
				n++
			default:
				break drain
			}
		}
		batches = batches[:0]
		for q, rs := range byQueue {
			batches = append(batches, rsmq.QueueReceipts{Queue: q, Receipts: rs})
			delete(byQueue, q)
		}
		e.deleteReceipts(batches, n)
	}
}

func (e *Engine) deleteReceipts(batches []rsmq.QueueReceipts, n int) {
	var err error
	for attempt := range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), e.cfg.CallTimeout)
		_, err = e.q.DeleteByReceiptsMulti(ctx, batches)
		cancel()
		if err == nil {
			return
		}
		time.Sleep(time.Duration(attempt+1) * 100 * time.Millisecond) // back off before retrying Redis
	}
	e.log.Warn("delete failed; the messages will be delivered again after the visibility timeout",
		"queues", len(batches), "count", n, "err", err)
}

// wakeQueue signals every local subscription of queue.
func (e *Engine) wakeQueue(queue string, notified bool) {
	e.mu.Lock()
	qs := e.queues[queue]
	if qs == nil {
		e.mu.Unlock()
		return
	}
	if notified {
		qs.lastNotify = time.Now()
	}
	subs := make([]*Subscription, 0, len(qs.subs))
	for s := range qs.subs {
		subs = append(subs, s)
	}
	e.mu.Unlock()
	for _, s := range subs {
		s.Signal()
	}
}

// listen turns realtime notifications into pulls. go-redis reconnects the
// pub/sub connection and re-subscribes by itself; each re-subscription
// arrives as a subscribe confirmation, which also triggers a pull because
// notifications may have been missed while disconnected.
func (e *Engine) listen() {
	defer e.wg.Done()
	prefix := e.q.RealtimeChannel("")
	ch := e.ps.ChannelWithSubscriptions(
		redis.WithChannelSize(4096),
		redis.WithChannelHealthCheckInterval(5*time.Second),
	)
	for {
		select {
		case <-e.ctx.Done():
			return
		case msg, ok := <-ch:
			if !ok {
				return
			}
			switch m := msg.(type) {
			case *redis.Message:
				e.wakeQueue(strings.TrimPrefix(m.Channel, prefix), true)
			case *redis.Subscription:
				if m.Kind == "subscribe" {
					e.wakeQueue(strings.TrimPrefix(m.Channel, prefix), true)
				}
			}
		}
	}
}

// sweeper checks served queues for visible messages that no notification
// announced (publishers without realtime, like plain Node rsmq). Each queue
// is checked once per SweepInterval (HotSweepInterval while it recently had
// unannounced messages), all due queues in one pipelined round trip.
func (e *Engine) sweeper() {
	defer e.wg.Done()
	tick := min(e.cfg.HotSweepInterval, e.cfg.SweepInterval) / 2
	t := time.NewTicker(max(tick, 5*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-e.ctx.Done():
			return
		case <-t.C:
		}
		e.sweep(time.Now())
	}
}

func (e *Engine) sweep(now time.Time) {
	var due []string
	e.mu.Lock()
	for q, qs := range e.queues {
		if now.Before(qs.nextSweep) {
			continue
		}
		due = append(due, q)
		if now.Before(qs.hotUntil) {
			qs.nextSweep = now.Add(e.cfg.HotSweepInterval)
		} else {
			qs.nextSweep = now.Add(e.cfg.SweepInterval)
		}
	}
	e.mu.Unlock()
	if len(due) == 0 {
		return
	}
	// Chunks keep each pipeline short, so deliveries never wait behind a
	// long sweep in Redis.
	for len(due) > 0 {
		n := min(len(due), sweepChunk)
		if !e.sweepQueues(now, due[:n]) {
			return
		}
		due = due[n:]
	}
}

// sweepChunk is the most queues checked in one pipeline.
const sweepChunk = 256

// sweepQueues checks queues and wakes those with visible messages; false
// when Redis failed.
func (e *Engine) sweepQueues(now time.Time, due []string) bool {
	ctx, cancel := context.WithTimeout(e.ctx, e.cfg.CallTimeout)
	defer cancel()
	scores, err := e.q.NextVisible(ctx, due)
	if err != nil {
		if e.ctx.Err() == nil {
			e.log.Warn("sweep failed", "queues", len(due), "err", err)
		}
		return false
	}
	nowMs := now.UnixMilli()
	for i, q := range due {
		if scores[i] == 0 || scores[i] > nowMs {
			continue
		}
		e.mu.Lock()
		if qs := e.queues[q]; qs != nil && now.Sub(qs.lastNotify) > e.cfg.HotSweepInterval {
			if !now.Before(qs.hotUntil) {
				e.log.Debug("queue gets messages without realtime notifications; sweeping it fast", "queue", q)
			}
			qs.hotUntil = now.Add(hotFor)
			qs.nextSweep = now.Add(e.cfg.HotSweepInterval)
		}
		e.mu.Unlock()
		e.wakeQueue(q, false)
	}
	return true
}
