package rsmq_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/wsmq/wsmq/pkg/rsmq"
	"github.com/wsmq/wsmq/pkg/testenv"
)

// evalshaCalls reads how many EVALSHA commands Redis has run.
func evalshaCalls(t *testing.T, e *env) int { return testenv.CommandCalls(t, e.raw, "evalsha") }

func TestSendRetriedAfterLostReplyIsStoredOnce(t *testing.T) {
	e := newEnv(t, rsmq.Options{})
	e.createQueue(t, "q", 30)
	sub := e.raw.Subscribe(e.ctx, "rsmq:rt:q")
	defer func() { _ = sub.Close() }()
	if _, err := sub.Receive(e.ctx); err != nil {
		t.Fatal(err)
	}
	p := testenv.StartReplyDropper(t, e.redis.Addr(), "RETRY-ME")
	rdb := redis.NewClient(&redis.Options{Addr: p.Addr(), MaxRetries: 3, MinRetryBackoff: time.Millisecond, MaxRetryBackoff: 5 * time.Millisecond})
	t.Cleanup(func() { _ = rdb.Close() })
	c := rsmq.New(rdb, rsmq.Options{Realtime: true})
	// Warm up: the id clock's TIME call and the script cache, so the dropped
	// reply is the one of a successful write.
	if _, err := c.SendMessage(e.ctx, "q", "warm", 0); err != nil {
		t.Fatal(err)
	}

	before := evalshaCalls(t, e)
	p.Armed.Store(true)
	id, err := c.SendMessage(e.ctx, "q", "RETRY-ME", 0)
	if err != nil {
		t.Fatalf("SendMessage through a dropped reply: %v", err)
	}
	if p.Dropped.Load() != 1 {
		t.Fatal("the proxy dropped no reply: the test proves nothing")
	}
	if n := evalshaCalls(t, e) - before; n != 2 {
		t.Fatalf("Redis ran the send script %d times, want 2 (first attempt + retry)", n)
	}
	if got := e.raw.ZCard(e.ctx, "rsmq:q").Val(); got != 2 {
		t.Fatalf("zset has %d members, want 2 (warm + one retried send)", got)
	}
	if e.raw.HGet(e.ctx, "rsmq:q:Q", "totalsent").Val() != "2" {
		t.Fatalf("totalsent %s, want 2", e.raw.HGet(e.ctx, "rsmq:q:Q", "totalsent").Val())
	}
	if e.raw.HGet(e.ctx, "rsmq:q:Q", id).Val() != "RETRY-ME" {
		t.Fatal("returned id is not the stored one")
	}
	// One notification per message: "1" (warm), "2"; nothing for the retry.
	for _, want := range []string{"1", "2"} {
		ctx, cancel := context.WithTimeout(e.ctx, 5*time.Second)
		msg, err := sub.ReceiveMessage(ctx)
		cancel()
		if err != nil || msg.Payload != want {
			t.Fatalf("notification %v, %v; want %q", msg, err, want)
		}
	}
	if err := e.raw.Publish(e.ctx, "rsmq:rt:q", "end").Err(); err != nil {
		t.Fatal(err)
	}
	if msg, err := sub.ReceiveMessage(e.ctx); err != nil || msg.Payload != "end" {
		t.Fatalf("after the send's notifications got %v, %v; want only our end marker", msg, err)
	}
}

func TestSendBatchRetriedAfterLostReplyStoresEachOnce(t *testing.T) {
	e := newEnv(t, rsmq.Options{})
	e.createQueue(t, "q", 30)
	p := testenv.StartReplyDropper(t, e.redis.Addr(), "RETRY-ME")
	rdb := redis.NewClient(&redis.Options{Addr: p.Addr(), MaxRetries: 3, MinRetryBackoff: time.Millisecond, MaxRetryBackoff: 5 * time.Millisecond})
	t.Cleanup(func() { _ = rdb.Close() })
	c := rsmq.New(rdb, rsmq.Options{})
	if _, err := c.SendBatch(e.ctx, []rsmq.SendItem{{Queue: "q", Message: "warm"}}); err != nil {
		t.Fatal(err)
	}
	before := evalshaCalls(t, e)
	p.Armed.Store(true)
	res, err := c.SendBatch(e.ctx, []rsmq.SendItem{
		{Queue: "q", Message: "a"}, {Queue: "q", Message: "RETRY-ME"}, {Queue: "q", Message: "c"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if p.Dropped.Load() != 1 {
		t.Fatal("the proxy dropped no reply")
	}
	if n := evalshaCalls(t, e) - before; n != 2 {
		t.Fatalf("Redis ran %d send scripts, want 2 (one call for the 3 items, twice)", n)
	}
	for i, r := range res {
		if r.Err != nil || !e.raw.HExists(e.ctx, "rsmq:q:Q", r.ID).Val() {
			t.Fatalf("item %d: %+v not stored", i, r)
		}
	}
	if n := e.raw.ZCard(e.ctx, "rsmq:q").Val(); n != 4 {
		t.Fatalf("zset has %d members, want 4", n)
	}
	if s := e.raw.HGet(e.ctx, "rsmq:q:Q", "totalsent").Val(); s != "4" {
		t.Fatalf("totalsent %s, want 4", s)
	}
}

// TestReceiveRetriedAfterLostReplyHidesOneMoreMessage documents the limit
// stated in the package doc: the first attempt's message is hidden and
// counted but never returned; it comes back after its vt with rc raised.
func TestReceiveRetriedAfterLostReplyHidesOneMoreMessage(t *testing.T) {
	e := newEnv(t, rsmq.Options{})
	e.createQueue(t, "q", 1)
	p := testenv.StartReplyDropper(t, e.redis.Addr(), "RETRY-RECV")
	rdb := redis.NewClient(&redis.Options{Addr: p.Addr(), MaxRetries: 3, MinRetryBackoff: time.Millisecond, MaxRetryBackoff: 5 * time.Millisecond})
	t.Cleanup(func() { _ = rdb.Close() })
	c := rsmq.New(rdb, rsmq.Options{})
	if err := e.q.CreateQueue(e.ctx, "RETRY-RECV", rsmq.QueueConfig{VT: 1, MaxSize: 65536}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ReceiveMessage(e.ctx, "RETRY-RECV", rsmq.QueueDefault); err != nil { // load script
		t.Fatal(err)
	}
	first := e.send(t, "RETRY-RECV", "first")
	second := e.send(t, "RETRY-RECV", "second")
	p.Armed.Store(true)
	m, err := c.ReceiveMessage(e.ctx, "RETRY-RECV", rsmq.QueueDefault)
	if err != nil || p.Dropped.Load() != 1 {
		t.Fatalf("ReceiveMessage = %+v, %v (dropped %d)", m, err, p.Dropped.Load())
	}
	if m == nil || m.ID != second {
		t.Fatalf("retried receive got %+v, want the second message", m)
	}
	var back *rsmq.Message
	testenv.Eventually(t, 5*time.Second, "the lost delivery to come back", func() bool {
		back = e.receive(t, "RETRY-RECV", 60)
		return back != nil
	})
	if back.ID != first || back.RC != 2 {
		t.Fatalf("came back %+v, want the first message with rc 2", back)
	}
}
