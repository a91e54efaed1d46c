package main

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wsmq/wsmq/pkg/testenv"
	"github.com/wsmq/wsmq/pkg/userqueue"
	"github.com/wsmq/wsmq/services/gateway/client"
	"github.com/wsmq/wsmq/services/gateway/protocol"
)

// userQueues counts the queues of RSMQ's queue set named <user>-*.
func (s *stack) userQueues(user string) int {
	s.t.Helper()
	ctx, cancel := ctxWait()
	defer cancel()
	all, err := s.Queues.ListQueues(ctx)
	if err != nil {
		s.t.Fatal(err)
	}
	n := 0
	for _, q := range all {
		if strings.HasPrefix(q, user+"-") {
			n++
		}
	}
	return n
}

// trySubscribe subscribes and returns the refusal's code, "" on success.
func (c *conn) trySubscribe(q string) string {
	c.t.Helper()
	ctx, cancel := ctxWait()
	defer cancel()
	err := c.c.Subscribe(ctx, q)
	var ev *client.EventError
	switch {
	case err == nil:
		return ""
	case errors.As(err, &ev):
		if ev.Queue != q || ev.Message == "" {
			c.t.Fatalf("refusal of %s: %+v", q, ev)
		}
		return ev.Code
	}
	c.t.Fatalf("subscribe %s: %v", q, err)
	return ""
}

func (c *conn) unsubscribe(q string) {
	c.t.Helper()
	ctx, cancel := ctxWait()
	defer cancel()
	if err := c.c.Unsubscribe(ctx, q); err != nil {
		c.t.Fatalf("unsubscribe %s: %v", q, err)
	}
}

func TestSubscribeCreatesQueuesOnlyWithinThePerUserCap(t *testing.T) {
	s := newStack(t)
	// The default cap (64); the command rate is raised so that the loop
	// below is not throttled.
	gw := s.startGateway("WSMQ_COMMAND_RATE=10000")
	alice := s.user(gw, "alice-cap")
	bob := s.user(gw, "bob-cap")
	c := dial(t, gw, alice, "")

	// The abuse of today: subscribe to a new queue, unsubscribe, repeat.
	const attempts = 100
	refusedAt := -1
	for i := range attempts {
		q := alice.UserID + "-n" + itoa(i)
		switch code := c.trySubscribe(q); code {
		case "":
			if refusedAt >= 0 {
				t.Fatalf("queue %d admitted after queue %d was refused", i, refusedAt)
			}
			c.unsubscribe(q)
		case protocol.CodeLimit:
			if refusedAt < 0 {
				refusedAt = i
			}
		default:
			t.Fatalf("subscribe %s: error %q, want success or %q", q, code, protocol.CodeLimit)
		}
	}
	if refusedAt != 64 {
		t.Fatalf("first refusal at queue %d, want the 65th (index 64)", refusedAt)
	}
	if n := s.userQueues(alice.UserID); n != 64 {
		t.Fatalf("%d subscribe/unsubscribe rounds left %d queues, want the cap 64", attempts, n)
	}

	// Existing queues stay subscribable, and deliver.
	c.subscribe(alice.UserID + "-n5")
	s.send(alice.UserID+"-n5", "still served")
	if m := c.messages(1)[0]; m.Message != "still served" {
		t.Fatalf("got %+v", m)
	}
	// So do the user's own queue and a queue a backend created beyond the cap.
	c.subscribe(alice.UserID)
	s.send(alice.UserID+"-from-backend", "hello")
	c.subscribe(alice.UserID + "-from-backend")
	if m := c.messages(1)[0]; m.Message != "hello" || m.Queue != alice.UserID+"-from-backend" {
		t.Fatalf("got %+v", m)
	}
	// A second connection of the same user is capped too.
	c2 := dial(t, gw, alice, "")
	if code := c2.trySubscribe(alice.UserID + "-other-conn"); code != protocol.CodeLimit {
		t.Fatalf("second connection: %q, want %q", code, protocol.CodeLimit)
	}

	// Another user is unaffected.
	b := dial(t, gw, bob, "")
	for i := range 3 {
		b.subscribe(bob.UserID + "-n" + itoa(i))
	}

	// A pruned queue frees its place in the cap.
	ctx, cancel := ctxWait()
	defer cancel()
	// alice has 65 registered queues (64 + the backend's); delete two.
	reg := userqueue.New(s.RDB, "")
	for _, q := range []string{alice.UserID + "-n62", alice.UserID + "-n63"} {
		if err := s.Queues.DeleteQueue(ctx, q); err != nil {
			t.Fatal(err)
		}
		// Registrations younger than a minute are kept (their queue may
		// be being created); age these as a later subscribe finds them.
		if err := s.RDB.ZAdd(ctx, reg.Key(alice.UserID), redisZ(1, q)).Err(); err != nil {
			t.Fatal(err)
		}
	}
	c.subscribe(alice.UserID + "-replacement")
	if code := c.trySubscribe(alice.UserID + "-one-too-many"); code != protocol.CodeLimit {
		t.Fatalf("after the replacement: %q, want %q", code, protocol.CodeLimit)
	}
}

func TestGatewayMarksTheQueuesItServes(t *testing.T) {
	s := newStack(t)
	gw := s.startGateway("WSMQ_SERVED_MARK_INTERVAL=50ms")
	sess := s.user(gw, "mark")
	c := dial(t, gw, sess, "")
	q := sess.UserID + "-served"
	c.subscribe(q)
	reg := userqueue.New(s.RDB, "")
	ctx, cancel := ctxWait()
	defer cancel()
	// Pretend the mark is a day old: the gateway refreshes it.
	old := time.Now().Add(-24 * time.Hour).UnixMilli()
	if err := s.RDB.ZAdd(ctx, reg.Key(sess.UserID), redisZ(float64(old), q)).Err(); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, waitLong, "served queue re-marked", func() bool {
		last, err := reg.LastServed(ctx, q)
		return err == nil && last > time.Now().Add(-time.Minute).UnixMilli()
	})
	// So prune keeps it, even with the shortest idle age.
	if res, err := reg.Prune(ctx, q, time.Minute, false); err != nil || res != userqueue.Recent {
		t.Fatalf("prune of a served queue: %v %v", res, err)
	}
	// Once unsubscribed, the mark is no longer refreshed: after two rounds
	// that refreshed another served queue (the second surely began after
	// the unsubscribe), q's mark is still old, and prune deletes q.
	other := sess.UserID + "-other"
	c.subscribe(other)
	c.unsubscribe(q)
	for range 2 {
		for _, name := range []string{q, other} {
			if err := s.RDB.ZAdd(ctx, reg.Key(sess.UserID), redisZ(float64(old), name)).Err(); err != nil {
				t.Fatal(err)
			}
		}
		testenv.Eventually(t, waitLong, "other served queue re-marked", func() bool {
			last, err := reg.LastServed(ctx, other)
			return err == nil && last > old
		})
	}
	if last, _ := reg.LastServed(ctx, q); last != old {
		t.Fatalf("mark of an unsubscribed queue refreshed to %d", last)
	}
	if res, err := reg.Prune(ctx, q, time.Minute, false); err != nil || res != userqueue.Pruned {
		t.Fatalf("prune of an unserved empty queue: %v %v", res, err)
	}
}

// redisZ is a sorted-set member.
func redisZ(score float64, member string) redis.Z { return redis.Z{Score: score, Member: member} }

func TestCommandFloodGetsRateErrorsThenIsClosed(t *testing.T) {
	s := newStack(t)
	const rate = 20 // burst 40
	gw := s.startGateway("WSMQ_COMMAND_RATE=" + itoa(rate))
	sess := s.user(gw, "flood")
	c := dial(t, gw, sess, "")
	notSubscribed := "/unsubscribe/" + sess.UserID + "-none" // answered with bad_request
	ctx, cancel := ctxWait()
	defer cancel()

	// A burst of twice the rate passes.
	for range 2 * rate {
		c.send(notSubscribed)
	}
	for i := range 2 * rate {
		if ev := c.eventErr(); ev.Code != protocol.CodeBadRequest {
			t.Fatalf("burst command %d: %+v, want bad_request", i, ev)
		}
	}

	// More at once: refused with rate errors, the connection stays up
	// (refusals have a budget of twice the rate, refilled at the rate).
	const flood = rate
	for range flood {
		c.send(notSubscribed)
	}
	rated := 0
	for range flood {
		switch ev := c.eventErr(); ev.Code {
		case protocol.CodeRate:
			rated++
			if !strings.Contains(ev.Message, "per second") {
				t.Fatalf("rate error does not say the limit: %q", ev.Message)
			}
		case protocol.CodeBadRequest:
		default:
			t.Fatalf("flood: %+v", ev)
		}
	}
	if rated < flood/2 {
		t.Fatalf("%d of %d flood commands refused, want most", rated, flood)
	}
	// After a pause the client is served again.
	testenv.Eventually(t, waitLong, "commands accepted again", func() bool {
		c.send(notSubscribed)
		return c.eventErr().Code == protocol.CodeBadRequest
	})
	// A refused subscribe names its queue, so a client waiting for the
	// answer gets it.
	testenv.Eventually(t, waitLong, "subscribed", func() bool {
		return c.trySubscribe(sess.UserID) != protocol.CodeRate
	})

	// Sustained abuse: closed with 4029.
	go func() {
		for ctx.Err() == nil {
			if err := c.c.WriteCommand(ctx, notSubscribed); err != nil {
				return
			}
		}
	}()
	err := c.closeErr()
	if code := closeCode(err); code != protocol.CloseRateLimited {
		t.Fatalf("flood ended with %v (code %d), want close 4029", err, code)
	}
}
