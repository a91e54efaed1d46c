package delivery

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/wsmq/wsmq/pkg/rsmq"
)

// Subscription is one subscriber's claim on one queue.
type Subscription struct {
	e      *Engine
	queue  string
	dlq    string
	sink   Sink
	manual bool

	mu               sync.Mutex
	state            pullState
	inflight         map[string]*flight
	closed           bool
	waitingForCredit bool // a pull found Prefetch messages in flight: Confirmed or Ack signals when one frees
	timer            *time.Timer
	timerAt          time.Time // when the timer fires (engine clock); zero when none
	// retryAfter (monotonic clock) ends the back-off after a failed
	// receive: until then wake-ups leave the pull to the retry timer.
	retryAfter time.Time
}

// Timings of a subscription's own timers.
const (
	// firstSweepMinDivisor: a newly served queue is first swept after a
	// random delay of at least SweepInterval/firstSweepMinDivisor, which
	// spreads the sweeps of queues subscribed together (a reconnect storm).
	firstSweepMinDivisor = 10
	// expiryMargin puts the credit timer just past the earliest in-flight
	// deadline, so credit (which tests now.After(deadline)) already counts
	// that message as expired when the timer fires.
	expiryMargin = time.Millisecond
)

// pullState is where a subscription is in the pull cycle; see Signal and
// Engine.worker.
type pullState uint8

const (
	idle      pullState = iota
	scheduled           // in the ready list
	running             // a worker is pulling
	rerun               // woken while running: pull again
)

// flight is one delivered, unacknowledged message of a subscription.
type flight struct {
	rc       int64
	deadline time.Time // when the message becomes visible again in Redis (engine clock, from Redis time)
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
// mode: messages stay in flight until Ack; otherwise until Confirmed, when
// they are deleted. confirmed, when not nil, runs after the queue exists and before
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
		first := time.Duration(rand.Int64N(int64(e.cfg.SweepInterval))) + e.cfg.SweepInterval/firstSweepMinDivisor
		qs = &queueState{subs: make(map[*Subscription]struct{}), nextSweep: e.now().Add(first)}
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

// ensureQueue creates queue with the configured attributes unless it
// exists (rsmq.EnsureQueue, as the publisher and the demo sender do).
func (e *Engine) ensureQueue(ctx context.Context, queue string) error {
	ctx, cancel := context.WithTimeout(ctx, e.cfg.CallTimeout)
	defer cancel()
	if _, err := e.q.EnsureQueue(ctx, queue, e.cfg.QueueConfig); err != nil {
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
		if wait := time.Until(s.retryAfter); wait > 0 {
			// Backing off after a failed receive: the retry timer pulls.
			// Re-armed here, as an earlier timer (this Signal) may have
			// taken its place.
			s.mu.Unlock()
			s.armTimer(s.e.now().Add(wait))
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

// receipts returns the receipts of msgs' deliveries.
func receipts(msgs []rsmq.Message) []rsmq.Receipt {
	rs := make([]rsmq.Receipt, len(msgs))
	for i := range msgs {
		rs[i] = msgs[i].Receipt()
	}
	return rs
}

// forget drops msgs from the in-flight set.
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
		s.armTimer(first.Add(expiryMargin))
	}
}

// armTimer makes sure the subscription is signalled at at (engine clock,
// see Engine.now) or earlier.
func (s *Subscription) armTimer(at time.Time) {
	now := s.e.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || (s.timer != nil && !s.timerAt.After(at) && s.timerAt.After(now)) {
		return
	}
	if s.timer != nil {
		s.timer.Stop()
	}
	s.timerAt = at
	s.timer = time.AfterFunc(at.Sub(now), s.Signal)
}

// Written tells the subscription these messages' frames were written to
// the socket. Written is not received: in both modes they stay in flight
// (and count against Prefetch) until Confirmed (auto mode) or Ack (manual
// mode), or go back to the queue when the subscription closes.
func (s *Subscription) Written(msgs []rsmq.Message) {
	// Sent is Redis time (from the id): compare on Redis's clock.
	redisNow := s.e.now().UnixMilli() + s.e.clock.offset.Load()
	s.mu.Lock()
	for i := range msgs {
		if f := s.inflight[msgs[i].ID]; f != nil && f.rc == msgs[i].RC {
			f.written = true
		}
	}
	s.mu.Unlock()
	for i := range msgs {
		s.e.m.Delivered.Inc()
		if msgs[i].RC > 1 {
			s.e.m.Redelivered.Inc()
		}
		if msgs[i].Sent > 0 {
			s.e.m.Latency.Observe(float64(redisNow-msgs[i].Sent) / 1000)
		}
	}
}

// Confirmed tells the subscription (auto mode) that the client's websocket
// stack has received these messages: the connection got the pong to a ping
// it wrote after their frames. Those still in this subscription's delivery
// are deleted, guarded by their receipts; the others (the subscription was
// closed and returned them, or their visibility ran out) are left alone.
// Confirmed reuses msgs' backing array.
func (s *Subscription) Confirmed(msgs []rsmq.Message) {
	if s.manual {
		return
	}
	s.mu.Lock()
	n := 0
	for i := range msgs {
		if f := s.inflight[msgs[i].ID]; f != nil && f.rc == msgs[i].RC {
			delete(s.inflight, msgs[i].ID)
			msgs[n] = msgs[i]
			n++
		}
	}
	wake := false
	if n > 0 {
		wake, s.waitingForCredit = s.waitingForCredit, false
	}
	s.mu.Unlock()
	for i := range msgs[:n] {
		s.e.queueDelete(deletion{queue: s.queue, r: msgs[i].Receipt()})
	}
	s.e.m.Acked.Add(float64(n))
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
		wake, s.waitingForCredit = s.waitingForCredit, false
	}
	s.mu.Unlock()
	if !ok {
		return false
	}
	s.e.queueDelete(deletion{queue: s.queue, r: rsmq.Receipt{ID: id, RC: f.rc}, acked: true})
	s.e.m.Acked.Inc()
	if wake {
		s.Signal()
	}
	return true
}

// Close ends the subscription: no more pulls, and every message it holds
// unacked (manual mode) or unconfirmed (auto mode: not yet written, or
// written without the client's pong) is made visible again at once (visibility 0) so another consumer
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
	now := s.e.now()
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

// returnNow makes messages visible again, guarded by their receipts, and
// undoes their receive (rsmq.ReturnByReceipts): a message handed back
// unprocessed, because its subscriber left, does not move toward the
// dead-letter queue. The receipts are spent: their holder must have
// forgotten them (the next receive issues the same rc again).
//
// This also holds in manual mode for a message the client had but did not
// ack before it went away: only deliveries that run out their visibility
// timeout count toward MaxReceiveCount. A message that makes every client
// that gets it disconnect therefore never dead-letters; it stays one
// message, redelivered.
func (e *Engine) returnNow(ctx context.Context, queue string, rs []rsmq.Receipt) {
	ctx, cancel := context.WithTimeout(ctx, e.cfg.CallTimeout)
	defer cancel()
	n, now, err := e.q.ReturnByReceipts(ctx, queue, rs)
	if err != nil {
		e.warn.Warn("could not return in-flight messages; they reappear after the visibility timeout",
			"queue", queue, "count", len(rs), "err", err)
		return
	}
	e.clock.observe(now)
	e.m.Returned.Add(float64(n))
}

// giveBack returns messages a closed sink could not take.
func (e *Engine) giveBack(queue string, rs []rsmq.Receipt) {
	e.returnNow(context.Background(), queue, rs)
}
