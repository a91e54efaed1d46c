package delivery

import (
	"context"
	"errors"
	"time"

	"github.com/wsmq/wsmq/pkg/rsmq"
)

// enqueue puts a scheduled subscription on the ready list and wakes a
// worker.
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

// Sizes and timings of the pull workers.
const (
	// pullBatch is the most subscriptions one worker serves with one
	// Redis call.
	pullBatch = 64
	// receiveRetryDelay is how long a subscription waits after a failed
	// receive (other than a missing queue) before it pulls again.
	receiveRetryDelay = time.Second
)

// worker pulls for ready subscriptions until Stop, in batches of up to
// pullBatch per Redis call, and reschedules those that may get more.
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
			if (again[i] || s.state == rerun) && !s.closed && !time.Now().Before(s.retryAfter) {
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

// pull receives, in one Redis call, what each subscription of batch can
// take, and hands the messages to their sinks. again[i] reports whether
// batch[i] should be pulled again at once.
func (e *Engine) pull(batch []*Subscription) (again []bool) {
	again = make([]bool, len(batch))
	now := e.now()
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
	if err == nil && len(results) > 0 {
		for _, r := range results {
			if r != nil {
				e.clock.observe(r.Now) // one TIME for the whole call
				break
			}
		}
	}
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
	s.waitingForCredit = want <= 0
	s.mu.Unlock()
	if want <= 0 {
		s.armExpiry()
		return 0
	}
	return s.sink.Reserve(s, want) // 0: the sink signals when its writer drains
}

// failed handles a receive error: a missing queue waits for a publisher to
// recreate it (notifications and the sweep still watch it); anything else
// is retried after receiveRetryDelay. The receive is never retried at once:
// its first run may have taken messages whose reply was lost, and those
// come back after their visibility timeout.
func (s *Subscription) failed(err error, granted int) {
	s.sink.Release(granted)
	e := s.e
	if errors.Is(err, rsmq.ErrQueueNotFound) || e.ctx.Err() != nil {
		return
	}
	e.warn.Warn("receive failed; retrying", "queue", s.queue, "err", err)
	s.mu.Lock()
	s.retryAfter = time.Now().Add(receiveRetryDelay) // wake-ups meanwhile wait (Signal)
	s.mu.Unlock()
	s.armTimer(e.now().Add(receiveRetryDelay))
}

// deliver hands received messages to the sink and reports whether the queue
// may hold more right now.
func (s *Subscription) deliver(res *rsmq.ReceiveResult, granted int) bool {
	e := s.e
	if n := len(res.DeadLettered); n > 0 {
		e.m.DeadLettered.Add(float64(n))
		e.log.Info("messages moved to dead-letter queue", "queue", s.queue, "dlq", s.dlq, "count", n)
	}
	for _, r := range res.Rejected {
		if r.Moved {
			e.m.DeadLettered.Inc()
			e.log.Warn("malformed message moved to dead-letter queue", "queue", s.queue, "dlq", s.dlq, "id", r.ID, "reason", r.Reason)
		} else {
			e.warn.Warn("malformed message skipped; it stays hidden in its queue", "queue", s.queue, "id", r.ID, "reason", r.Reason)
		}
	}
	for _, x := range res.Expired {
		outcome := "deleted"
		if x.Moved {
			outcome = "dead_lettered"
		}
		e.m.Expired.WithLabelValues(outcome).Inc()
		e.log.Debug("expired message dropped", "queue", s.queue, "id", x.ID, "outcome", outcome)
	}
	msgs := res.Messages
	if len(msgs) < granted {
		s.sink.Release(granted - len(msgs))
	}
	if len(msgs) > 0 {
		deadline := e.clock.local(res.Now + int64(e.cfg.VisibilityTimeout)*1000)
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
	if len(msgs)+len(res.DeadLettered)+len(res.Rejected)+len(res.Expired) >= granted {
		return true // the queue may hold more
	}
	if res.NextVisible > 0 {
		s.armTimer(e.clock.local(res.NextVisible))
	}
	return false
}
