package rsmq_test

import (
	"errors"
	"testing"

	"github.com/wsmq/wsmq/pkg/rsmq"
)

func TestReceiveFromQueuesIsOneRoundTripWithPerQueueResults(t *testing.T) {
	e := newEnv(t, rsmq.Options{})
	c, rt := e.countedClient(t, rsmq.Options{})
	e.createQueue(t, "a", 30)
	e.createQueue(t, "b", 30)
	a1, a2 := e.send(t, "a", "a1"), e.send(t, "a", "a2")
	b1 := e.send(t, "b", "b1")
	// Warm the script cache so the counted call is the steady state.
	if _, _, err := c.ReceiveFromQueues(e.ctx, 0, 0, []rsmq.QueueRequest{{Queue: "b", Max: 1}}); err != nil {
		t.Fatal(err)
	}
	// b1 was received with vt 0: visible again at once, rc 1.
	rt.n.Store(0)
	res, errs, err := c.ReceiveFromQueues(e.ctx, 60, 0, []rsmq.QueueRequest{
		{Queue: "a", Max: 5}, {Queue: "missing", Max: 1}, {Queue: "b", Max: 1},
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := rt.n.Load(); n != 1 {
		t.Fatalf("%d round trips, want 1", n)
	}
	if errs[0] != nil || len(res[0].Messages) != 2 || res[0].Messages[0].ID != a1 || res[0].Messages[1].ID != a2 {
		t.Fatalf("queue a: %+v %v", res[0], errs[0])
	}
	if !errors.Is(errs[1], rsmq.ErrQueueNotFound) || res[1] != nil {
		t.Fatalf("missing queue: %+v %v, want ErrQueueNotFound", res[1], errs[1])
	}
	if errs[2] != nil || len(res[2].Messages) != 1 || res[2].Messages[0].ID != b1 || res[2].Messages[0].RC != 2 {
		t.Fatalf("queue b: %+v %v", res[2], errs[2])
	}
	// The stored effect is a normal receive: hidden for vt, rc recorded.
	if rc, _ := e.raw.HGet(e.ctx, "rsmq:a:Q", a1+":rc").Result(); rc != "1" {
		t.Fatalf("a1 rc %q, want 1", rc)
	}
	if res[0].NextVisible <= e.redisNowMS(t) {
		t.Fatalf("NextVisible %d is not in the future", res[0].NextVisible)
	}
}

func TestReceiveFromQueuesDeadLettersPerQueue(t *testing.T) {
	e := newEnv(t, rsmq.Options{})
	e.createQueue(t, "a", 0)
	id := e.send(t, "a", "poison")
	req := []rsmq.QueueRequest{{Queue: "a", Max: 1, DeadLetterQueue: "a-dlq"}}
	for rc := 1; rc <= 2; rc++ {
		res, errs, err := e.q.ReceiveFromQueues(e.ctx, 0, 2, req)
		if err != nil || errs[0] != nil || len(res[0].Messages) != 1 || res[0].Messages[0].RC != int64(rc) {
			t.Fatalf("receive %d: %+v %v %v", rc, res, errs, err)
		}
	}
	res, errs, err := e.q.ReceiveFromQueues(e.ctx, 0, 2, req)
	if err != nil || errs[0] != nil || len(res[0].Messages) != 0 || len(res[0].DeadLettered) != 1 || res[0].DeadLettered[0] != id {
		t.Fatalf("third receive: %+v %v %v", res, errs, err)
	}
	if body, _ := e.raw.HGet(e.ctx, "rsmq:a-dlq:Q", id).Result(); body != "poison" {
		t.Fatalf("dead letter body %q", body)
	}
}

func TestDeleteByReceiptsMultiDeletesOnlyCurrentDeliveries(t *testing.T) {
	e := newEnv(t, rsmq.Options{})
	c, rt := e.countedClient(t, rsmq.Options{})
	e.createQueue(t, "a", 0)
	e.createQueue(t, "b", 30)
	e.send(t, "a", "a1")
	e.send(t, "b", "b1")
	stale := e.receive(t, "a", 0)
	current := e.receive(t, "a", 30) // received again: the first receipt is stale
	b := e.receive(t, "b", 30)
	if _, _, err := c.DeleteByReceiptsMulti(e.ctx, nil); err != nil { // nothing to do: no round trip
		t.Fatal(err)
	}
	if _, _, err := c.DeleteByReceiptsMulti(e.ctx, []rsmq.QueueReceipts{{Queue: "a", Receipts: []rsmq.Receipt{stale.Receipt()}}}); err != nil {
		t.Fatal(err) // warms the script
	}
	rt.n.Store(0)
	n, skipped, err := c.DeleteByReceiptsMulti(e.ctx, []rsmq.QueueReceipts{
		{Queue: "a", Receipts: []rsmq.Receipt{stale.Receipt(), current.Receipt()}},
		{Queue: "b", Receipts: []rsmq.Receipt{b.Receipt()}},
	})
	if err != nil || n != 2 || len(skipped) != 0 {
		t.Fatalf("deleted %d (skipped %v, %v), want 2", n, skipped, err)
	}
	if k := rt.n.Load(); k != 1 {
		t.Fatalf("%d round trips, want 1", k)
	}
	for _, q := range []string{"rsmq:a", "rsmq:b"} {
		if left, _ := e.raw.ZCard(e.ctx, q).Result(); left != 0 {
			t.Fatalf("%s still holds %d messages", q, left)
		}
	}
}
