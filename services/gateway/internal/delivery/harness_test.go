package delivery

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wsmq/wsmq/pkg/rsmq"
	"github.com/wsmq/wsmq/pkg/testenv"
	"github.com/wsmq/wsmq/services/gateway/internal/metrics"
)

// waitTimeout bounds every wait for an event in this package's tests.
const waitTimeout = 10 * time.Second

// harness is an Engine on a real redis-server of its own, with an RSMQ
// client that publishes realtime notifications, as the publisher does.
type harness struct {
	t     *testing.T
	redis *testenv.Redis
	rdb   *redis.Client
	q     *rsmq.Client
	e     *Engine
	m     *metrics.Metrics
}

// newHarness starts redis-server and an Engine with cfg; both stop when the
// test ends (the engine first).
func newHarness(t *testing.T, cfg Config) *harness {
	t.Helper()
	return newHarnessWith(t, cfg, nil)
}

// newHarnessWith is newHarness whose engine receives through the client
// recv returns (nil: the harness's own client, without retries, as the
// gateway's main wires it), for tests that put a proxy in front of Redis.
func newHarnessWith(t *testing.T, cfg Config, recv func(redisAddr string) *redis.Client) *harness {
	t.Helper()
	return newHarnessLog(t, cfg, recv, slog.NewTextHandler(io.Discard, nil))
}

// newHarnessLog is newHarnessWith whose engine logs to log.
func newHarnessLog(t *testing.T, cfg Config, recv func(redisAddr string) *redis.Client, log slog.Handler) *harness {
	t.Helper()
	r := testenv.StartRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	var rc *redis.Client
	if recv != nil {
		rc = recv(r.Addr())
	} else {
		rc = redis.NewClient(&redis.Options{Addr: r.Addr(), MaxRetries: -1})
	}
	t.Cleanup(func() { _ = rc.Close() })
	h := &harness{t: t, redis: r, rdb: rdb, q: rsmq.New(rdb, rsmq.Options{Realtime: true}), m: metrics.New()}
	eq := rsmq.New(rdb, rsmq.Options{Realtime: true, ReceiveClient: rc})
	if cfg.Workers == 0 {
		cfg.Workers = 4 // the machine is small; a few workers are enough for every test here
	}
	h.e = New(cfg, rdb, eq, h.m, slog.New(log))
	h.e.Start()
	t.Cleanup(h.e.Stop)
	return h
}

// subscribe subscribes sink to queue and closes the subscription when the
// test ends.
func (h *harness) subscribe(sink *fakeSink, queue string, manual bool) *Subscription {
	h.t.Helper()
	s, err := h.e.Subscribe(context.Background(), sink, queue, manual, nil)
	if err != nil {
		h.t.Fatalf("Subscribe(%s): %v", queue, err)
	}
	h.t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

// send sends body to queue (creating the queue if needed) and returns the id.
func (h *harness) send(queue, body string) string {
	h.t.Helper()
	ctx := context.Background()
	if err := h.q.CreateQueue(ctx, queue, rsmq.DefaultQueueConfig()); err != nil && !isExists(err) {
		h.t.Fatalf("CreateQueue(%s): %v", queue, err)
	}
	id, err := h.q.SendMessage(ctx, queue, body, 0)
	if err != nil {
		h.t.Fatalf("SendMessage(%s): %v", queue, err)
	}
	return id
}

// attrs returns queue's attributes.
func (h *harness) attrs(queue string) *rsmq.QueueAttributes {
	h.t.Helper()
	a, err := h.q.GetQueueAttributes(context.Background(), queue)
	if err != nil {
		h.t.Fatalf("GetQueueAttributes(%s): %v", queue, err)
	}
	return a
}

// visible counts queue's messages visible now (testenv.VisibleNow).
func (h *harness) visible(queue string) int64 {
	h.t.Helper()
	return testenv.VisibleNow(h.t, h.rdb, h.q.Namespace()+":"+queue)
}

// numSub returns how many clients are subscribed to queue's realtime channel.
func (h *harness) numSub(queues ...string) map[string]int64 {
	h.t.Helper()
	chans := make([]string, len(queues))
	for i, q := range queues {
		chans[i] = h.q.RealtimeChannel(q)
	}
	n, err := h.rdb.PubSubNumSub(context.Background(), chans...).Result()
	if err != nil {
		h.t.Fatalf("PUBSUB NUMSUB: %v", err)
	}
	out := make(map[string]int64, len(queues))
	for i, q := range queues {
		out[q] = n[chans[i]]
	}
	return out
}

// waitRealtime waits until each of queues has want realtime subscribers.
func (h *harness) waitRealtime(want int64, queues ...string) {
	h.t.Helper()
	testenv.Eventually(h.t, waitTimeout, "realtime subscribers of the queues", func() bool {
		for _, n := range h.numSub(queues...) {
			if n != want {
				return false
			}
		}
		return true
	})
}

func isExists(err error) bool { return err != nil && errors.Is(err, rsmq.ErrQueueExists) }

// isIdle reports whether no pull of s is scheduled or running.
func isIdle(s *Subscription) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state == idle
}

// fakeSink stands in for a websocket connection's outbound buffer (wsconn):
// capacity slots, Reserve/Release/Deliver as the Sink contract says, and a
// write step that does what the connection's writer does after writing
// frames (Written, then Release). With autoWrite, every delivery is written
// at once.
type fakeSink struct {
	capacity  int
	autoWrite bool
	// onReserve, when set, runs after a successful Reserve, outside the
	// sink's lock, on the worker that is pulling: a hook into the middle of
	// a pull.
	onReserve func(s *Subscription)

	mu          sync.Mutex
	reserved    int
	maxReserved int // most slots reserved at once
	maxAsked    int // largest n passed to Reserve: the subscription's credit
	waiting     map[*Subscription]struct{}
	pending     map[*Subscription][]rsmq.Message // delivered, not yet written
	got         []rsmq.Message                   // every delivery, in order
	closed      bool
}

func newSink(capacity int, autoWrite bool) *fakeSink {
	return &fakeSink{
		capacity: capacity, autoWrite: autoWrite,
		waiting: make(map[*Subscription]struct{}),
		pending: make(map[*Subscription][]rsmq.Message),
	}
}

// Reserve implements Sink.
func (f *fakeSink) Reserve(s *Subscription, n int) int {
	f.mu.Lock()
	f.maxAsked = max(f.maxAsked, n)
	if f.closed {
		f.mu.Unlock()
		return 0
	}
	got := min(n, f.capacity-f.reserved)
	if got <= 0 {
		f.waiting[s] = struct{}{}
		f.mu.Unlock()
		return 0
	}
	f.reserved += got
	f.maxReserved = max(f.maxReserved, f.reserved)
	hook := f.onReserve
	f.mu.Unlock()
	if hook != nil {
		hook(s)
	}
	return got
}

// Release implements Sink.
func (f *fakeSink) Release(n int) {
	f.mu.Lock()
	f.reserved -= n
	var wake []*Subscription
	if f.reserved < f.capacity {
		for s := range f.waiting {
			wake = append(wake, s)
			delete(f.waiting, s)
		}
	}
	f.mu.Unlock()
	for _, s := range wake {
		s.Signal()
	}
}

// Deliver implements Sink.
func (f *fakeSink) Deliver(s *Subscription, msgs []rsmq.Message) bool {
	f.mu.Lock()
	if f.closed {
		f.reserved -= len(msgs)
		f.mu.Unlock()
		return false
	}
	f.got = append(f.got, msgs...)
	if !f.autoWrite {
		f.pending[s] = append(f.pending[s], msgs...)
		f.mu.Unlock()
		return true
	}
	f.mu.Unlock()
	writeAndConfirm(s, slices.Clone(msgs))
	f.Release(len(msgs))
	return true
}

// writeAndConfirm does what the connection does for a written batch whose
// confirm ping the client answered: Written, then (auto mode) Confirmed.
func writeAndConfirm(s *Subscription, msgs []rsmq.Message) {
	s.Written(msgs)
	if !s.manual {
		s.Confirmed(slices.Clone(msgs))
	}
}

// write writes every pending message, as the connection's writer does, and
// the client confirms them at once.
func (f *fakeSink) write() {
	for s, msgs := range f.writeOnly() {
		s.Confirmed(msgs)
	}
}

// writeOnly writes every pending message (Written, then Release, as the
// connection's writer does in manual mode) and returns them for a later
// Confirmed; nothing is confirmed yet.
func (f *fakeSink) writeOnly() map[*Subscription][]rsmq.Message {
	f.mu.Lock()
	pending := f.pending
	f.pending = make(map[*Subscription][]rsmq.Message)
	f.mu.Unlock()
	for s, msgs := range pending {
		s.Written(msgs)
		f.Release(len(msgs))
	}
	return pending
}

// delivered returns a copy of every message delivered so far.
func (f *fakeSink) delivered() []rsmq.Message {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.got)
}

// count is how many messages were delivered so far.
func (f *fakeSink) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.got)
}

// slots returns the reserved slots now, the most at once and the largest
// request.
func (f *fakeSink) slots() (reserved, maxReserved, maxAsked int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reserved, f.maxReserved, f.maxAsked
}

// isWaiting reports whether s waits for a slot.
func (f *fakeSink) isWaiting(s *Subscription) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.waiting[s]
	return ok
}
