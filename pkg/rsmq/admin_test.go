package rsmq_test

import (
	"encoding/json"
	"errors"
	"sort"
	"testing"

	"github.com/wsmq/wsmq/pkg/rsmq"
)

func TestRedriveBatchMovesBoundedBatchesKeepingIDs(t *testing.T) {
	e := newEnv(t, rsmq.Options{Realtime: true})
	e.createQueue(t, "work", 30)
	e.createQueue(t, "work-dlq", 30)
	var ids []string
	for range 5 {
		ids = append(ids, e.send(t, "work-dlq", "dead"))
	}
	e.receive(t, "work-dlq", 30) // an rc in the dlq is reset by the move
	sub := e.raw.Subscribe(e.ctx, e.q.RealtimeChannel("work"))
	defer func() { _ = sub.Close() }()
	if _, err := sub.Receive(e.ctx); err != nil {
		t.Fatal(err)
	}

	moved, left, err := e.q.RedriveBatch(e.ctx, "work-dlq", "work", 3)
	if err != nil || moved != 3 || left != 2 {
		t.Fatalf("first batch: moved %d left %d %v", moved, left, err)
	}
	if msg, err := sub.ReceiveMessage(e.ctx); err != nil || msg.Payload != "3" {
		t.Fatalf("realtime notification %v %v", msg, err)
	}
	if moved, left, err = e.q.RedriveBatch(e.ctx, "work-dlq", "work", 3); err != nil || moved != 2 || left != 0 {
		t.Fatalf("second batch: moved %d left %d %v", moved, left, err)
	}
	got, _ := e.raw.ZRange(e.ctx, "rsmq:work", 0, -1).Result()
	sort.Strings(got)
	sort.Strings(ids)
	if len(got) != 5 || got[0] != ids[0] || got[4] != ids[4] {
		t.Fatalf("work holds %v, want %v", got, ids)
	}
	if n, _ := e.raw.HLen(e.ctx, "rsmq:work-dlq:Q").Result(); n != 7 {
		t.Fatalf("dlq hash keeps %d fields, want its 7 attributes only", n)
	}
	a, err := e.q.GetQueueAttributes(e.ctx, "work")
	if err != nil || a.TotalSent != 5 || a.Msgs != 5 {
		t.Fatalf("attributes %+v %v", a, err)
	}

	if _, _, err := e.q.RedriveBatch(e.ctx, "nope-dlq", "work", 3); !errors.Is(err, rsmq.ErrDeadLetterQueueNotFound) {
		t.Fatalf("missing dlq: %v", err)
	}
	if _, _, err := e.q.RedriveBatch(e.ctx, "work-dlq", "nope", 3); !errors.Is(err, rsmq.ErrQueueNotFound) {
		t.Fatalf("missing queue: %v", err)
	}
}

// TestNodeRSMQReceivesARedrivenMessage is manual like the other Node
// cross-checks (WSMQ_RSMQ_NODE_DIR).
func TestNodeRSMQReceivesARedrivenMessage(t *testing.T) {
	e := newEnv(t, rsmq.Options{})
	node := newNodeRSMQ(t, e)
	e.createQueue(t, "work", 30)
	e.createQueue(t, "work-dlq", 30)
	e.send(t, "work-dlq", "dead")
	e.receive(t, "work-dlq", 30)
	if moved, _, err := e.q.RedriveBatch(e.ctx, "work-dlq", "work", 10); err != nil || moved != 1 {
		t.Fatalf("redrive: %d %v", moved, err)
	}
	// Node rsmq receives a redriven message with a fresh count.
	res, errName := node.call("receiveMessage", map[string]any{"qname": "work"})
	var nm nodeMessage
	if errName != "" || json.Unmarshal(res, &nm) != nil || nm.RC != 1 || nm.Message != "dead" {
		t.Fatalf("node receiveMessage: %s %s", res, errName)
	}

}

func TestPurgeBatchKeepsTheQueueAndItsAttributes(t *testing.T) {
	e := newEnv(t, rsmq.Options{})
	e.createQueue(t, "p", 45)
	for range 4 {
		e.send(t, "p", "x")
	}
	e.receive(t, "p", 30)
	removed, left, err := e.q.PurgeBatch(e.ctx, "p", 3)
	if err != nil || removed != 3 || left != 1 {
		t.Fatalf("first: %d %d %v", removed, left, err)
	}
	if removed, left, err = e.q.PurgeBatch(e.ctx, "p", 3); err != nil || removed != 1 || left != 0 {
		t.Fatalf("second: %d %d %v", removed, left, err)
	}
	a, err := e.q.GetQueueAttributes(e.ctx, "p")
	if err != nil || a.VT != 45 || a.Msgs != 0 || a.TotalSent != 4 {
		t.Fatalf("after purge %+v %v", a, err)
	}
	if n, _ := e.raw.HLen(e.ctx, "rsmq:p:Q").Result(); n != 7 {
		t.Fatalf("hash keeps %d fields, want 7 attributes", n)
	}
	if _, _, err := e.q.PurgeBatch(e.ctx, "none", 3); !errors.Is(err, rsmq.ErrQueueNotFound) {
		t.Fatalf("missing queue: %v", err)
	}
}

func TestScanQueuesMatchesThePrefixLiterally(t *testing.T) {
	e := newEnv(t, rsmq.Options{})
	for _, n := range []string{"a1", "a2", "b1"} {
		e.createQueue(t, n, 30)
	}
	e.raw.SAdd(e.ctx, "rsmq:QUEUES", "a*x") // a glob character in the set is matched only literally
	var names []string
	var cursor uint64
	for {
		p, err := e.q.ScanQueues(e.ctx, "a", cursor, 1)
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, p.Names...)
		if cursor = p.Cursor; cursor == 0 {
			break
		}
	}
	sort.Strings(names)
	if len(names) != 3 || names[0] != "a*x" || names[1] != "a1" || names[2] != "a2" {
		t.Fatalf("prefix a: %v", names)
	}
	p, err := e.q.ScanQueues(e.ctx, "a*", 0, 100)
	if err != nil || len(p.Names) != 1 || p.Names[0] != "a*x" {
		t.Fatalf("prefix a*: %v %v", p, err)
	}
	oldest, err := e.q.OldestSent(e.ctx, "b1")
	if err != nil || oldest != 0 {
		t.Fatalf("oldest of an empty queue: %d %v", oldest, err)
	}
}
