package delivery

import (
	"context"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wsmq/wsmq/pkg/rsmq"
)

// Timings and sizes of the wake-up paths.
const (
	// hotFor is how long a queue stays on the fast sweep after a sweep
	// found messages that no notification had announced.
	hotFor = time.Minute
	// sweepChunk is the most queues checked in one pipeline.
	sweepChunk = 256
	// sweepTicksPerInterval is how many sweeper ticks fall in the shorter
	// sweep interval: a queue is checked at most one tick after it is due.
	sweepTicksPerInterval = 2
	// minSweepTick bounds the sweeper's tick from below, so a tiny
	// configured interval cannot spin it.
	minSweepTick = 5 * time.Millisecond
	// realtimeBuffer is how many notifications go-redis buffers for the
	// listener; a notification only wakes a queue, so a burst needs no more.
	realtimeBuffer = 4096
	// realtimeHealthCheck is how often go-redis pings an idle pub/sub
	// connection, so a dead one is noticed and re-subscribed.
	realtimeHealthCheck = 5 * time.Second
)

// syncRealtime subscribes to queue's wake channel when the queue is served
// and unsubscribes when it is not, deciding under psMu so a last
// unsubscribe racing a new first subscribe cannot leave a served queue
// without notifications. A failed SUBSCRIBE is remembered by go-redis and
// replayed on reconnect; the sweep covers the gap. With WakeKeyevent there
// is one channel for all queues, subscribed at Start.
func (e *Engine) syncRealtime(ctx context.Context, queue string) {
	if e.cfg.Wake == WakeKeyevent {
		return
	}
	e.psMu.Lock()
	defer e.psMu.Unlock()
	e.mu.Lock()
	served := e.queues[queue] != nil
	e.mu.Unlock()
	ch := e.wakeChannel(queue)
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

// wakeChannel is the channel whose messages wake queue in the per-queue
// modes: its keyspace channel with WakeKeyspace, else its realtime channel.
func (e *Engine) wakeChannel(queue string) string {
	if e.cfg.Wake == WakeKeyspace {
		return e.q.KeyspaceChannel(e.cfg.DB, queue)
	}
	return e.q.RealtimeChannel(queue)
}

// woken returns the queue a wake channel's message announces messages in,
// or false. A realtime message always does; a keyevent message names the
// sorted set a ZADD went to. Of the keyspace events only "zadd" does:
// sends, returns and visibility changes; a receive's "zincr" (see rsmq's
// receive script) and a delete's "zrem" do not, so the gateway's own work
// does not wake it again.
func (e *Engine) woken(m *redis.Message, prefix string) (string, bool) {
	switch e.cfg.Wake {
	case WakeKeyevent:
		return e.q.QueueOfKey(m.Payload)
	case WakeKeyspace:
		if m.Payload != "zadd" {
			return "", false
		}
	}
	return strings.TrimPrefix(m.Channel, prefix), true
}

// wakeAll signals every served queue: after the keyevent channel was
// (re)subscribed, as ZADDs may have gone unheard.
func (e *Engine) wakeAll() {
	e.mu.Lock()
	queues := make([]string, 0, len(e.queues))
	for q := range e.queues {
		queues = append(queues, q)
	}
	e.mu.Unlock()
	for _, q := range queues {
		e.wakeQueue(q, true)
	}
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
		qs.lastNotify = e.now()
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

// listen turns realtime (or keyspace) notifications into pulls. go-redis reconnects the
// pub/sub connection and re-subscribes by itself; each re-subscription
// arrives as a subscribe confirmation, which also triggers a pull because
// notifications may have been missed while disconnected.
func (e *Engine) listen() {
	defer e.wg.Done()
	prefix := e.wakeChannel("")
	if e.cfg.Wake == WakeKeyevent {
		if err := e.ps.Subscribe(e.ctx, rsmq.KeyeventChannel(e.cfg.DB)); err != nil {
			// go-redis replays it on reconnect; the sweep covers the gap.
			e.log.Warn("keyevent subscribe failed; sweep covers the queues", "err", err)
		}
	}
	ch := e.ps.ChannelWithSubscriptions(
		redis.WithChannelSize(realtimeBuffer),
		redis.WithChannelHealthCheckInterval(realtimeHealthCheck),
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
				if q, ok := e.woken(m, prefix); ok {
					e.wakeQueue(q, true)
				}
			case *redis.Subscription:
				switch {
				case m.Kind != "subscribe":
				case e.cfg.Wake == WakeKeyevent:
					e.wakeAll()
				default:
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
	tick := min(e.cfg.HotSweepInterval, e.cfg.SweepInterval) / sweepTicksPerInterval
	t := time.NewTicker(max(tick, minSweepTick))
	defer t.Stop()
	for {
		select {
		case <-e.ctx.Done():
			return
		case <-t.C:
		}
		e.sweep(e.now())
	}
}

// sweep checks the queues due at now.
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

// sweepQueues checks queues and wakes those with visible messages; false
// when Redis failed.
func (e *Engine) sweepQueues(now time.Time, due []string) bool {
	ctx, cancel := context.WithTimeout(e.ctx, e.cfg.CallTimeout)
	defer cancel()
	scores, redisNow, err := e.q.NextVisibleNow(ctx, due)
	if err != nil {
		if e.ctx.Err() == nil {
			e.warn.Warn("sweep failed", "queues", len(due), "err", err)
		}
		return false
	}
	e.clock.observe(redisNow)
	for i, q := range due {
		// Visible by Redis's clock, which set the scores; not by ours.
		if scores[i] == 0 || scores[i] > redisNow {
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
