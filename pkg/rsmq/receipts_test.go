package rsmq_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/wsmq/wsmq/pkg/rsmq"
)

// deliveries reads every entry after `after` without blocking.
func (e *env) deliveries(t *testing.T, after string) []rsmq.Delivery {
	t.Helper()
	d, err := e.q.ReadDeliveries(e.ctx, nil, after, 1000, -1)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// brief is a delivery without its position and time, for comparisons.
func brief(d rsmq.Delivery) string {
	return fmt.Sprintf("%s %s %s rc=%d r=%q", d.Queue, d.ID, d.Status, d.RC, d.Reason)
}

func TestReceiptsStreamRecordsEveryChangeInTheScriptThatMakesIt(t *testing.T) {
	e := newEnv(t, rsmq.Options{})
	on := rsmq.New(e.raw, rsmq.Options{ReceiptsCap: 1000})
	e.createQueue(t, "q", 30)
	start, err := e.q.StartDeliveries(e.ctx, "")
	if err != nil || start != "0-0" {
		t.Fatalf("StartDeliveries of a missing stream = %q, %v; want 0-0", start, err)
	}
	send := func(msg string, ttl int) string {
		t.Helper()
		id, err := on.SendItem(e.ctx, rsmq.SendItem{Queue: "q", Message: msg, Delay: rsmq.QueueDefault, TTL: ttl})
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	del := func(m *rsmq.Message, acked bool) {
		t.Helper()
		if _, _, err := e.q.DeleteByReceiptsMulti(e.ctx, []rsmq.QueueReceipts{{Queue: "q", Receipts: []rsmq.Receipt{m.Receipt()}, Acked: acked}}); err != nil {
			t.Fatal(err)
		}
	}
	acked := send("a", 0)
	if got := e.deliveries(t, start); len(got) != 0 {
		t.Fatalf("a send wrote receipts: %v", got)
	}
	if v, _ := e.raw.HGet(e.ctx, "rsmq:q:Q", "wsmq:receipts").Result(); v != "1000" {
		t.Fatalf("queue mark wsmq:receipts = %q, want the cap 1000", v)
	}
	del(e.receive(t, "q", 30), true)
	delivered := send("d", 0)
	// Received twice (a redelivery), then confirmed with the second receipt.
	e.receive(t, "q", 0)
	del(e.receive(t, "q", 30), false)
	expired := send("x", 60)
	e.expireNow(t, "q", expired)
	dead := send("y", 0)
	for range 2 {
		if _, err := e.q.ReceiveMessages(e.ctx, "q", rsmq.ReceiveOptions{VT: 0, Max: 5, MaxReceiveCount: 1, DeadLetterQueue: "q-dlq"}); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{
		"q " + acked + " in_flight rc=1 r=\"\"",
		"q " + acked + " acknowledged rc=1 r=\"\"",
		"q " + delivered + " in_flight rc=1 r=\"\"",
		"q " + delivered + " in_flight rc=2 r=\"\"",
		"q " + delivered + " delivered rc=2 r=\"\"",
		"q " + expired + " expired rc=0 r=\"\"",
		"q " + dead + " in_flight rc=1 r=\"\"",
		"q " + dead + " dead_lettered rc=1 r=\"max receive count\"",
	}
	got := e.deliveries(t, start)
	if len(got) != len(want) {
		t.Fatalf("got %d receipts, want %d: %v", len(got), len(want), got)
	}
	last := rsmq.Position{}
	for i, d := range got {
		if brief(d) != want[i] {
			t.Errorf("receipt %d = %s, want %s", i, brief(d), want[i])
		}
		p, err := rsmq.ParsePosition(d.Position)
		if err != nil || !last.Less(p) || int64(p.MS) != d.TimeMS {
			t.Errorf("receipt %d position %q (time %d) not after %v", i, d.Position, d.TimeMS, last)
		}
		last = p
	}
	// Resuming after any position gives exactly the rest.
	for i := range got {
		rest := e.deliveries(t, got[i].Position)
		if len(rest) != len(got)-i-1 || (len(rest) > 0 && rest[0].Position != got[i+1].Position) {
			t.Fatalf("after %s: %d receipts, want %d", got[i].Position, len(rest), len(got)-i-1)
		}
	}
	if p, err := e.q.StartDeliveries(e.ctx, got[2].Position); err != nil || p != got[2].Position {
		t.Fatalf("StartDeliveries(%s) = %q, %v", got[2].Position, p, err)
	}
	if p, err := e.q.StartDeliveries(e.ctx, ""); err != nil || p != got[len(got)-1].Position {
		t.Fatalf("StartDeliveries(\"\") = %q, %v; want the last position", p, err)
	}
	if _, err := e.q.StartDeliveries(e.ctx, fmt.Sprintf("%d-0", last.MS+1)); !errors.Is(err, rsmq.ErrPositionAhead) {
		t.Fatalf("StartDeliveries past the end: %v, want ErrPositionAhead", err)
	}
}

func TestReceiptsOffWritesNothing(t *testing.T) {
	e := newEnv(t, rsmq.Options{})
	status := rsmq.New(e.raw, rsmq.Options{StatusTTL: 3600e9}) // status on, receipts off
	e.createQueue(t, "q", 30)
	for _, c := range []*rsmq.Client{e.q, status} {
		id, err := c.SendItem(e.ctx, rsmq.SendItem{Queue: "q", Message: "m", Delay: rsmq.QueueDefault})
		if err != nil {
			t.Fatal(err)
		}
		m := e.receive(t, "q", 30)
		if m == nil || m.ID != id {
			t.Fatalf("received %+v, want %s", m, id)
		}
		if _, _, err := e.q.DeleteByReceiptsMulti(e.ctx, []rsmq.QueueReceipts{{Queue: "q", Receipts: []rsmq.Receipt{m.Receipt()}}}); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := e.raw.Exists(e.ctx, "rsmq:wsmq:receipts").Result(); err != nil || n != 0 {
		t.Fatalf("receipts stream exists (%d, %v) with receipts off", n, err)
	}
	if v, _ := e.raw.HExists(e.ctx, "rsmq:q:Q", "wsmq:receipts").Result(); v {
		t.Fatal("queue marked for receipts by a client without ReceiptsCap")
	}
}

func TestReceiptsStreamIsCappedAndATrimmedPositionIsRefused(t *testing.T) {
	e := newEnv(t, rsmq.Options{})
	on := rsmq.New(e.raw, rsmq.Options{ReceiptsCap: 10})
	e.createQueue(t, "q", 30)
	for range 300 {
		if _, err := on.SendItem(e.ctx, rsmq.SendItem{Queue: "q", Message: "m", Delay: rsmq.QueueDefault}); err != nil {
			t.Fatal(err)
		}
		e.receive(t, "q", 30)
	}
	n, err := e.raw.XLen(e.ctx, "rsmq:wsmq:receipts").Result()
	if err != nil || n >= 300 {
		t.Fatalf("stream length %d (%v): not trimmed toward the cap", n, err)
	}
	all := e.deliveries(t, "0-0") // from the beginning: whatever is kept, no check
	if len(all) != int(n) {
		t.Fatalf("read %d of %d kept entries", len(all), n)
	}
	if _, err := e.q.StartDeliveries(e.ctx, "1-0"); !errors.Is(err, rsmq.ErrPositionTrimmed) {
		t.Fatalf("StartDeliveries at a trimmed position: %v, want ErrPositionTrimmed", err)
	}
	if _, err := e.q.ReadDeliveries(e.ctx, nil, "1-0", 10, -1); !errors.Is(err, rsmq.ErrPositionTrimmed) {
		t.Fatalf("ReadDeliveries at a trimmed position: %v, want ErrPositionTrimmed", err)
	}
	if _, err := e.q.StartDeliveries(e.ctx, all[len(all)-1].Position); err != nil {
		t.Fatalf("StartDeliveries at a kept position: %v", err)
	}
}

func TestParsePosition(t *testing.T) {
	for _, c := range []struct {
		in   string
		want string
		ok   bool
	}{
		{"1-2", "1-2", true}, {"17", "17-0", true}, {"0-0", "0-0", true},
		{"", "", false}, {"-1", "", false}, {"1-", "", false}, {"a-1", "", false}, {"+1-1", "", false}, {"1-2-3", "", false},
	} {
		p, err := rsmq.ParsePosition(c.in)
		if (err == nil) != c.ok || (c.ok && p.String() != c.want) {
			t.Errorf("ParsePosition(%q) = %v, %v", c.in, p, err)
		}
	}
}
