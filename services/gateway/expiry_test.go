package main

import (
	"context"
	"testing"
	"time"

	publisherv1 "github.com/wsmq/wsmq/gen/wsmq/publisher/v1"
	"github.com/wsmq/wsmq/pkg/rsmq"
	"github.com/wsmq/wsmq/pkg/testenv"
	"github.com/wsmq/wsmq/services/gateway/protocol"
)

// TestExpiredMessageIsNeverFramedInAutoOrManualMode publishes through the
// real publisher, per queue, a message whose ttl (1 s) runs out before its
// delay (2 s) makes it visible, and one that lives longer. Both become
// visible together, the stale one first: a client in either mode gets only
// the live one, and the stale one lands where its queue says: the
// dead-letter queue (the default) or nowhere (wsmq:expired = delete).
func TestExpiredMessageIsNeverFramedInAutoOrManualMode(t *testing.T) {
	s := newStack(t)
	gw := s.startGateway()
	pub := s.DialPublisher(s.StartPublisher())
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()

	auto, manual := s.user(gw, "auto-ttl"), s.user(gw, "manual-ttl")
	// The manual user's queue deletes expired messages.
	if err := s.Queues.CreateQueue(ctx, manual.UserID, rsmq.DefaultQueueConfig()); err != nil {
		t.Fatal(err)
	}
	if err := s.Queues.SetExpiredAction(ctx, manual.UserID, rsmq.ExpiredDelete); err != nil {
		t.Fatal(err)
	}
	ca, cm := dial(t, gw, auto, protocol.AckAuto), dial(t, gw, manual, protocol.AckManual)
	ca.subscribe(auto.UserID)
	cm.subscribe(manual.UserID)

	stale, fresh := map[string]string{}, map[string]string{}
	for _, q := range []string{auto.UserID, manual.UserID} {
		res, err := pub.SendBatch(ctx, &publisherv1.SendBatchRequest{Items: []*publisherv1.SendRequest{
			{Queue: q, Message: "stale", DelaySeconds: 2, TtlSeconds: 1},
			{Queue: q, Message: "fresh", DelaySeconds: 2, TtlSeconds: 600},
		}})
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range res.GetResults() {
			if r.GetCode() != 0 {
				t.Fatalf("%s item %d: %v", q, i, r)
			}
		}
		stale[q], fresh[q] = res.GetResults()[0].GetId(), res.GetResults()[1].GetId()
	}

	for _, c := range []struct {
		conn *conn
		q    string
	}{{ca, auto.UserID}, {cm, manual.UserID}} {
		m := c.conn.messages(1)[0]
		if m.ID != fresh[c.q] || m.Message != "fresh" {
			t.Fatalf("%s: first frame %+v, want the fresh message %s (the stale one %s is expired)", c.q, m, fresh[c.q], stale[c.q])
		}
	}
	cm.ack(fresh[manual.UserID])
	ca.quiet(300 * time.Millisecond)
	cm.quiet(300 * time.Millisecond)

	// Auto mode's queue: the stale message is in the dead-letter queue with
	// its body, and gone from the source.
	dlq := auto.UserID + "-dlq"
	if body, err := s.RDB.HGet(ctx, "rsmq:"+dlq+":Q", stale[auto.UserID]).Result(); err != nil || body != "stale" {
		t.Fatalf("dlq %s holds %q, %v for %s; want the stale body", dlq, body, err, stale[auto.UserID])
	}
	// Manual mode's queue deletes: no dead-letter queue, nothing left.
	if n, _ := s.RDB.Exists(ctx, "rsmq:"+manual.UserID+"-dlq:Q").Result(); n != 0 {
		t.Fatal("delete mode wrote a dead-letter queue")
	}
	for _, q := range []string{auto.UserID, manual.UserID} {
		for _, f := range []string{stale[q], stale[q] + ":exp", stale[q] + ":rc"} {
			if ok, _ := s.RDB.HExists(ctx, "rsmq:"+q+":Q", f).Result(); ok {
				t.Errorf("%s still holds field %s of the expired message", q, f)
			}
		}
	}
	// Both fresh messages are confirmed and deleted (auto after the pong,
	// manual after the ack).
	for _, q := range []string{auto.UserID, manual.UserID} {
		testenv.Eventually(t, waitLong, q+" emptied by confirmed deletes", func() bool { return s.attrs(q).Msgs == 0 })
	}
}
