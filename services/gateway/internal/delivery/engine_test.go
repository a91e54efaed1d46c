package delivery

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wsmq/wsmq/pkg/rsmq"
	"github.com/wsmq/wsmq/pkg/testenv"
)

// ids returns the message ids of msgs, sorted.
func ids(msgs []rsmq.Message) []string {
	out := make([]string, len(msgs))
	for i := range msgs {
		out[i] = msgs[i].ID
	}
	slices.Sort(out)
	return out
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func TestAutoModeDeliversQueuedAndNotifiedMessagesAndDeletesThemOnceConfirmed(t *testing.T) {
	// Sweeps far apart: a message sent after subscribing can only arrive
	// through its realtime notification.
	h := newHarness(t, Config{SweepInterval: time.Hour, HotSweepInterval: time.Hour})
	sink := newSink(100, false)
	queued := []string{h.send("q", "a"), h.send("q", "b"), h.send("q", "c")}
	h.subscribe(sink, "q", false)
	testenv.Eventually(t, waitTimeout, "the queued messages", func() bool { return sink.count() == 3 })
	if got := ids(sink.delivered()); !slices.Equal(got, sorted(queued)) {
		t.Fatalf("delivered %v, want %v", got, sorted(queued))
	}
	if a := h.attrs("q"); a.Msgs != 3 {
		t.Fatalf("before the write the queue holds %d messages, want 3 (deleted only once confirmed)", a.Msgs)
	}
	sink.write()
	testenv.Eventually(t, waitTimeout, "deletes of the confirmed messages", func() bool { return h.attrs("q").Msgs == 0 })

	h.waitRealtime(1, "q")
	pushed := h.send("q", "d")
	testenv.Eventually(t, waitTimeout, "the notified message", func() bool { return sink.count() == 4 })
	if m := sink.delivered()[3]; m.ID != pushed || m.Message != "d" || m.RC != 1 {
		t.Fatalf("4th delivery = %+v, want id %s body d rc 1", m, pushed)
	}
	sink.write()
	testenv.Eventually(t, waitTimeout, "delete of the notified message", func() bool { return h.attrs("q").Msgs == 0 })
}

// TestSubscriptionChangesDuringAPull covers subscribe and unsubscribe while
// a worker is between Reserve and Deliver. The first case is the regression
// test of 23cc166's slot fix: a subscription closed during its pull must
// give back the slots it reserved, or the connection starves.
func TestSubscriptionChangesDuringAPull(t *testing.T) {
	tests := []struct {
		name string
		// during runs inside the first pull of sub on queue "q".
		during func(t *testing.T, h *harness, sub *Subscription, other *fakeSink) *Subscription
		check  func(t *testing.T, h *harness, sink, other *fakeSink, sent []string)
	}{{
		name: "closing releases the reserved slots and returns the messages at once",
		during: func(t *testing.T, h *harness, sub *Subscription, _ *fakeSink) *Subscription {
			sub.Close(context.Background())
			return nil
		},
		check: func(t *testing.T, h *harness, sink, _ *fakeSink, sent []string) {
			testenv.Eventually(t, waitTimeout, "the closed subscription's slots to be released", func() bool {
				reserved, _, _ := sink.slots()
				return reserved == 0
			})
			testenv.Eventually(t, waitTimeout, "the messages to be visible again", func() bool {
				return h.attrs("q").Msgs == int64(len(sent)) && h.visible("q") == int64(len(sent))
			})
			if n := sink.count(); n != 0 {
				t.Fatalf("a closed subscription delivered %d messages", n)
			}
			res, err := h.q.ReceiveMessages(context.Background(), "q", rsmq.ReceiveOptions{VT: 30, Max: 10})
			if err != nil {
				t.Fatal(err)
			}
			if got := ids(res.Messages); !slices.Equal(got, sorted(sent)) {
				t.Fatalf("returned %v, want %v", got, sorted(sent))
			}
		},
	}, {
		name: "a new subscription of the same queue is served too",
		during: func(t *testing.T, h *harness, _ *Subscription, other *fakeSink) *Subscription {
			s, err := h.e.Subscribe(context.Background(), other, "q", false, nil)
			if err != nil {
				t.Errorf("Subscribe during a pull: %v", err)
				return nil
			}
			return s
		},
		check: func(t *testing.T, h *harness, sink, other *fakeSink, sent []string) {
			testenv.Eventually(t, waitTimeout, "every message", func() bool { return sink.count()+other.count() == len(sent) })
			got := ids(append(sink.delivered(), other.delivered()...))
			if !slices.Equal(got, sorted(sent)) {
				t.Fatalf("delivered %v, want each of %v once", got, sorted(sent))
			}
			// The newcomer is served: once the first subscription's
			// prefetch is used up, the next messages go to it.
			if other.count() == 0 {
				t.Fatalf("the subscription made during the pull got nothing; first got %d", sink.count())
			}
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, Config{Prefetch: 2})
			var sent []string
			for i := range 5 {
				sent = append(sent, h.send("q", fmt.Sprint("m", i)))
			}
			sink, other := newSink(10, false), newSink(10, true)
			var (
				once  sync.Once
				hooks = make(chan *Subscription, 1)
			)
			sink.onReserve = func(s *Subscription) {
				once.Do(func() { hooks <- tt.during(t, h, s, other) })
			}
			h.subscribe(sink, "q", true)
			var made *Subscription
			select {
			case made = <-hooks:
			case <-time.After(waitTimeout):
				t.Fatal("the first pull never reserved slots")
			}
			if made != nil {
				t.Cleanup(func() { made.Close(context.Background()) })
			}
			tt.check(t, h, sink, other, sent)
		})
	}
}

func TestPrefetchBoundsUnackedMessagesAndAnAckLetsTheNextOneIn(t *testing.T) {
	const prefetch = 3
	h := newHarness(t, Config{Prefetch: prefetch})
	sink := newSink(100, true)
	for i := range 5 {
		h.send("q", fmt.Sprint("m", i))
	}
	s := h.subscribe(sink, "q", true)
	testenv.Eventually(t, waitTimeout, "the subscription to wait for credit", func() bool {
		s.mu.Lock()
		waiting := s.waitingForCredit
		s.mu.Unlock()
		return waiting && isIdle(s)
	})
	if n := sink.count(); n != prefetch {
		t.Fatalf("delivered %d unacked messages, want prefetch %d", n, prefetch)
	}
	if _, _, asked := sink.slots(); asked > prefetch {
		t.Fatalf("asked the sink for %d slots, more than prefetch %d", asked, prefetch)
	}
	if v := h.visible("q"); v != 5-prefetch {
		t.Fatalf("%d messages visible in Redis, want %d (pulled no more than prefetch)", v, 5-prefetch)
	}

	if !s.Ack(sink.delivered()[0].ID) {
		t.Fatal("Ack of a delivered message returned false")
	}
	testenv.Eventually(t, waitTimeout, "one more delivery after the ack", func() bool { return sink.count() == prefetch+1 })
	if s.Ack("nonexistentnonexistentnonexist00") {
		t.Fatal("Ack of an id the subscription does not hold returned true")
	}
	for _, m := range sink.delivered()[1:] {
		s.Ack(m.ID)
	}
	testenv.Eventually(t, waitTimeout, "the last message", func() bool { return sink.count() == 5 })
	s.Ack(sink.delivered()[4].ID)
	testenv.Eventually(t, waitTimeout, "every acked message to be deleted", func() bool { return h.attrs("q").Msgs == 0 })
}

// TestAutoModeWrittenButUnconfirmedMessagesHoldCreditAndAreNotDeleted: a
// written frame is not a received one. Until the client confirms them,
// written messages stay in flight, count against Prefetch (a dead peer
// holds at most that many) and stay in Redis; a confirmation deletes them
// and lets the next ones in.
func TestAutoModeWrittenButUnconfirmedMessagesHoldCreditAndAreNotDeleted(t *testing.T) {
	const prefetch = 3
	h := newHarness(t, Config{Prefetch: prefetch})
	sink := newSink(100, false)
	for i := range 5 {
		h.send("q", fmt.Sprint("m", i))
	}
	s := h.subscribe(sink, "q", false)
	testenv.Eventually(t, waitTimeout, "prefetch deliveries", func() bool { return sink.count() == prefetch })
	written := sink.writeOnly()[s]
	testenv.Eventually(t, waitTimeout, "the subscription to wait for credit", func() bool {
		s.mu.Lock()
		waiting := s.waitingForCredit
		s.mu.Unlock()
		return waiting && isIdle(s)
	})
	if n := sink.count(); n != prefetch {
		t.Fatalf("%d delivered with %d written but unconfirmed, want %d: written frames freed credit", n, prefetch, prefetch)
	}
	if a := h.attrs("q"); a.Msgs != 5 {
		t.Fatalf("queue holds %d messages after the write, want 5: unconfirmed messages were deleted", a.Msgs)
	}
	s.Confirmed(written[:1])
	testenv.Eventually(t, waitTimeout, "the confirmed message deleted and one more delivered", func() bool {
		return h.attrs("q").Msgs == 4 && sink.count() == prefetch+1
	})
}

func TestFullSinkStopsPullingAndFreedSlotsResumeIt(t *testing.T) {
	const capacity = 2
	h := newHarness(t, Config{})
	sink := newSink(capacity, false)
	for i := range 5 {
		h.send("q", fmt.Sprint("m", i))
	}
	s := h.subscribe(sink, "q", false)
	for _, want := range []int{2, 4, 5} {
		testenv.Eventually(t, waitTimeout, fmt.Sprintf("%d deliveries", want), func() bool { return sink.count() == want })
		if want < 5 {
			testenv.Eventually(t, waitTimeout, "the subscription to wait for a slot", func() bool { return sink.isWaiting(s) && isIdle(s) })
			if n := sink.count(); n != want {
				t.Fatalf("delivered %d with %d slots, want %d", n, capacity, want)
			}
			if v := h.visible("q"); v != int64(5-want) {
				t.Fatalf("%d visible in Redis, want %d (a full sink must not pull)", v, 5-want)
			}
		}
		sink.write()
	}
	if _, most, _ := sink.slots(); most > capacity {
		t.Fatalf("%d slots reserved at once, capacity %d", most, capacity)
	}
	testenv.Eventually(t, waitTimeout, "the written messages to be deleted", func() bool { return h.attrs("q").Msgs == 0 })
}

func TestUnackedMessageIsRedeliveredAfterTheVisibilityTimeoutWithRCRaised(t *testing.T) {
	h := newHarness(t, Config{VisibilityTimeout: 1})
	sink := newSink(10, true)
	id := h.send("q", "again")
	s := h.subscribe(sink, "q", true)
	testenv.Eventually(t, waitTimeout, "the redelivery", func() bool { return sink.count() == 2 })
	got := sink.delivered()
	for i, m := range got {
		if m.ID != id || m.Message != "again" || m.RC != int64(i+1) {
			t.Fatalf("delivery %d = %+v, want id %s rc %d", i+1, m, id, i+1)
		}
	}
	if got[1].FR != got[0].FR {
		t.Fatalf("first receive changed on redelivery: %d then %d", got[0].FR, got[1].FR)
	}
	if !s.Ack(id) {
		t.Fatal("Ack of the redelivered message returned false")
	}
	testenv.Eventually(t, waitTimeout, "the acked message to be deleted", func() bool { return h.attrs("q").Msgs == 0 })
}

func TestMessagePastMaxReceiveCountMovesToTheDeadLetterQueue(t *testing.T) {
	h := newHarness(t, Config{VisibilityTimeout: 1, MaxReceiveCount: 1})
	sink := newSink(10, true)
	id := h.send("q", "poison")
	h.subscribe(sink, "q", true)
	testenv.Eventually(t, waitTimeout, "the message to reach q-dlq", func() bool {
		a, err := h.q.GetQueueAttributes(context.Background(), "q"+DLQSuffix)
		return err == nil && a.Msgs == 1
	})
	if n := h.attrs("q").Msgs; n != 0 {
		t.Fatalf("q still holds %d messages after the move", n)
	}
	if got := sink.delivered(); len(got) != 1 || got[0].RC != 1 {
		t.Fatalf("deliveries %+v, want exactly one with rc 1 (max receive count 1)", got)
	}
	m, err := h.q.PopMessage(context.Background(), "q"+DLQSuffix)
	if err != nil || m == nil || m.ID != id || m.Message != "poison" {
		t.Fatalf("PopMessage(q-dlq) = %+v, %v; want id %s body poison", m, err, id)
	}
}

func TestRealtimeWakeUpWorksAfterARedisReconnect(t *testing.T) {
	tests := []struct {
		name       string
		disconnect func(t *testing.T, h *harness)
	}{{
		name: "pub/sub connection killed",
		disconnect: func(t *testing.T, h *harness) {
			if err := h.rdb.Do(context.Background(), "CLIENT", "KILL", "TYPE", "pubsub").Err(); err != nil {
				t.Fatalf("CLIENT KILL: %v", err)
			}
		},
	}, {
		name: "redis-server restarted",
		disconnect: func(t *testing.T, h *harness) {
			h.redis.Stop()
			h.redis.Start() // empty: no persistence; send recreates the queue
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// No sweep within the test: only a notification can deliver.
			h := newHarness(t, Config{SweepInterval: time.Hour, HotSweepInterval: time.Hour})
			sink := newSink(10, true)
			h.subscribe(sink, "q", false)
			h.waitRealtime(1, "q")
			h.send("q", "before")
			testenv.Eventually(t, waitTimeout, "the message sent before the disconnect", func() bool { return sink.count() == 1 })
			testenv.Eventually(t, waitTimeout, "its delete", func() bool { return h.attrs("q").Msgs == 0 })

			tt.disconnect(t, h)
			h.waitRealtime(1, "q") // go-redis re-subscribed
			id := h.send("q", "after")
			testenv.Eventually(t, waitTimeout, "the message sent after the reconnect", func() bool { return sink.count() == 2 })
			if m := sink.delivered()[1]; m.ID != id || m.Message != "after" {
				t.Fatalf("delivered %+v, want id %s", m, id)
			}
		})
	}
}

func TestClosingReturnsInFlightMessagesVisibleAtOnce(t *testing.T) {
	tests := []struct {
		name      string
		manual    bool
		autoWrite bool
		acked     int  // messages acked before Close (manual mode)
		written   bool // written (not confirmed) before Close (auto mode)
		confirmed int  // messages confirmed before Close (auto mode)
	}{
		{name: "manual mode, written but unacked", manual: true, autoWrite: true, acked: 1},
		{name: "auto mode, delivered but not yet written", manual: false, autoWrite: false},
		{name: "auto mode, written, one confirmed, two not", manual: false, written: true, confirmed: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, Config{VisibilityTimeout: 30})
			sink := newSink(10, tt.autoWrite)
			for i := range 3 {
				h.send("q", fmt.Sprint("m", i))
			}
			s, err := h.e.Subscribe(context.Background(), sink, "q", tt.manual, nil)
			if err != nil {
				t.Fatal(err)
			}
			testenv.Eventually(t, waitTimeout, "3 deliveries", func() bool { return sink.count() == 3 })
			got := sink.delivered()
			for _, m := range got[:tt.acked] {
				s.Ack(m.ID)
			}
			if tt.written {
				sink.writeOnly()
				s.Confirmed(slices.Clone(got[:tt.confirmed]))
			}
			s.Close(context.Background())
			// Shutdown: Stop sends the deletes still queued.
			h.e.Stop()

			gone := tt.acked + tt.confirmed
			want := int64(3 - gone)
			if n, v := h.attrs("q").Msgs, h.visible("q"); n != want || v != want {
				t.Fatalf("after Close and Stop: %d messages, %d visible; want %d, all visible", n, v, want)
			}
			res, err := h.q.ReceiveMessages(context.Background(), "q", rsmq.ReceiveOptions{VT: 30, Max: 10})
			if err != nil {
				t.Fatal(err)
			}
			if want := ids(got[gone:]); !slices.Equal(ids(res.Messages), want) {
				t.Fatalf("visible again: %v, want %v", ids(res.Messages), want)
			}
			// The return undid the receive: the next one counts 1 again,
			// so returns never move a message toward the dead-letter queue.
			for _, m := range res.Messages {
				if m.RC != 1 {
					t.Fatalf("message %s has rc %d on its next receive, want 1", m.ID, m.RC)
				}
			}
		})
	}
}

// TestRealtimeSubscriptionFollowsServedQueuesWhenLastCloseRacesFirstSubscribe
// is the regression test of 23cc166's realtime fix: when a queue's last
// subscription closes while a new first one subscribes, the queue stays
// subscribed to its realtime channel (decided under one lock against the
// served-queue map), so notifications still wake it.
func TestRealtimeSubscriptionFollowsServedQueuesWhenLastCloseRacesFirstSubscribe(t *testing.T) {
	const queues, rounds = 40, 12 // with the fix reverted, about one round in four breaks a queue
	h := newHarness(t, Config{SweepInterval: time.Hour, HotSweepInterval: time.Hour})
	names := make([]string, queues)
	for i := range names {
		names[i] = fmt.Sprint("race", i)
	}
	ctx := context.Background()
	subs := make([]*Subscription, queues)
	for i, q := range names {
		s, err := h.e.Subscribe(ctx, newSink(1, false), q, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		subs[i] = s
	}
	for range rounds {
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i, q := range names {
			old := subs[i]
			wg.Add(2)
			go func() {
				defer wg.Done()
				<-start
				old.Close(ctx)
			}()
			go func() {
				defer wg.Done()
				// Subscribe's Redis work is done before the start, so the
				// map update and SUBSCRIBE race the Close.
				s, err := h.e.Subscribe(ctx, newSink(1, false), q, false, func() { <-start })
				if err != nil {
					t.Errorf("Subscribe(%s): %v", q, err)
					return
				}
				subs[i] = s
			}()
		}
		close(start)
		wg.Wait()
		if t.Failed() {
			return
		}
		h.waitRealtime(1, names...)
	}
	// And a queue whose last subscription leaves is unsubscribed.
	for _, s := range subs {
		s.Close(ctx)
	}
	h.waitRealtime(0, names...)
}

// TestWrittenAndAckAfterStopAreDroppedNotPanicking is the regression test of
// 7cf9279: a connection that outlives the shutdown deadline may still report
// writes and acks after Stop. They must neither panic (send on a closed
// channel) nor block; the deletes are dropped, so the messages stay queued
// and are redelivered later, never lost.
func TestWrittenAndAckAfterStopAreDroppedNotPanicking(t *testing.T) {
	h := newHarness(t, Config{})
	auto, manual := newSink(10, false), newSink(10, false)
	h.send("auto", "a")
	h.send("manual", "m")
	sa, err := h.e.Subscribe(context.Background(), auto, "auto", false, nil)
	if err != nil {
		t.Fatal(err)
	}
	sm, err := h.e.Subscribe(context.Background(), manual, "manual", true, nil)
	if err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, waitTimeout, "both deliveries", func() bool { return auto.count() == 1 && manual.count() == 1 })

	h.e.Stop()
	done := make(chan struct{})
	go func() {
		defer close(done)
		auto.write()
		manual.write()
		if !sm.Ack(manual.delivered()[0].ID) {
			t.Error("Ack after Stop returned false for a held message")
		}
	}()
	select {
	case <-done:
	case <-time.After(waitTimeout):
		t.Fatal("Written/Ack after Stop blocked")
	}
	for _, q := range []string{"auto", "manual"} {
		if n := h.attrs(q).Msgs; n != 1 {
			t.Fatalf("queue %s holds %d messages after a late delete, want 1 (dropped, not sent)", q, n)
		}
	}
	if _, err := h.e.Subscribe(context.Background(), newSink(1, false), "auto", false, nil); err != ErrClosed {
		t.Fatalf("Subscribe after Stop: %v, want ErrClosed", err)
	}
	sa.Close(context.Background())
	sm.Close(context.Background())
}

// TestStopEndsEveryGoroutineTheEngineStarted proves the engine owns its
// goroutines: none is started by New, and Stop waits for all of them. It
// counts only goroutines running the engine's code or its Redis pub/sub
// connection, so goroutines that earlier tests' cleanups leave ending (a
// stopped redis-server's wait, a closed pool's dialer) cannot disturb it.
func TestStopEndsEveryGoroutineTheEngineStarted(t *testing.T) {
	h := newHarness(t, Config{})
	sink := newSink(10, true)
	s := h.subscribe(sink, "q", false)
	h.send("q", "x")
	testenv.Eventually(t, waitTimeout, "a delivery", func() bool { return sink.count() == 1 })
	s.Close(context.Background())
	h.e.Stop() // the harness's engine; its cleanup's Stop is then a no-op
	testenv.Eventually(t, waitTimeout, "the harness engine's goroutines to end", func() bool { return engineGoroutines() == 0 })

	e := New(Config{Workers: 3}, h.rdb, h.q, h.m, h.e.log)
	if n := engineGoroutines(); n != 0 {
		t.Fatalf("New started %d goroutines", n)
	}
	e.Start()
	if n := engineGoroutines(); n < 3 {
		t.Fatalf("Start left %d goroutines, want at least the 3 workers", n)
	}
	e.Stop()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("goroutines of the engine still running:\n%s", engineStacks())
		}
	})
	testenv.Eventually(t, waitTimeout, "the engine's goroutines to end", func() bool { return engineGoroutines() == 0 })
}

// engineGoroutines is the number of goroutines now running the engine's code
// or go-redis's pub/sub loops.
func engineGoroutines() int { return strings.Count(engineStacks(), "\n\n") }

// engineStacks is the stacks of the goroutines engineGoroutines counts, each
// followed by a blank line.
func engineStacks() string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var out strings.Builder
	for g := range strings.SplitSeq(string(buf), "\n\n") {
		if strings.Contains(g, "internal/delivery.(*Engine)") || strings.Contains(g, "go-redis/v9.(*PubSub)") {
			out.WriteString(g)
			out.WriteString("\n\n")
		}
	}
	return out.String()
}
