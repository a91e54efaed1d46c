package rsmq_test

import (
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/wsmq/wsmq/pkg/rsmq"
)

func TestSendBatchIsOneRoundTripWithPerItemErrors(t *testing.T) {
	e := newEnv(t, rsmq.Options{})
	e.createQueue(t, "q", 30)
	if err := e.q.CreateQueue(e.ctx, "small", rsmq.QueueConfig{VT: 30, MaxSize: 1024}); err != nil {
		t.Fatal(err)
	}
	c, rt := e.countedClient(t, rsmq.Options{})
	// Warm up: the id clock's first TIME call and the script cache.
	if _, err := c.SendBatch(e.ctx, []rsmq.SendItem{{Queue: "q", Message: "warm"}}); err != nil {
		t.Fatal(err)
	}
	items := []rsmq.SendItem{
		{Queue: "q", Message: "one", Delay: rsmq.QueueDefault},
		{Queue: "bad name", Message: "x"},
		{Queue: "missing", Message: "x"},
		{Queue: "small", Message: strings.Repeat("😀", 513)},
		{Queue: "q", Message: "bad \xff"},
		{Queue: "q", Message: "two", Delay: 100},
		{Queue: "small", Message: "three"},
	}
	rt.n.Store(0)
	res, err := c.SendBatch(e.ctx, items)
	if err != nil {
		t.Fatal(err)
	}
	if n := rt.n.Load(); n != 1 {
		t.Fatalf("SendBatch took %d round trips, want 1", n)
	}
	wantErr := []error{nil, rsmq.ErrInvalidFormat, rsmq.ErrQueueNotFound, rsmq.ErrMessageTooLong, rsmq.ErrMessageNotString, nil, nil}
	for i, r := range res {
		if wantErr[i] == nil {
			if r.Err != nil || len(r.ID) != 32 {
				t.Fatalf("item %d: %+v", i, r)
			}
			if body := e.raw.HGet(e.ctx, "rsmq:"+items[i].Queue+":Q", r.ID).Val(); body != items[i].Message {
				t.Fatalf("item %d stored %q, want %q", i, body, items[i].Message)
			}
			continue
		}
		if !errors.Is(r.Err, wantErr[i]) || r.ID != "" {
			t.Fatalf("item %d: %+v, want error %v", i, r, wantErr[i])
		}
	}
	if res[0].ID >= res[5].ID || res[5].ID >= res[6].ID {
		t.Fatalf("ids not in item order: %s %s %s", res[0].ID, res[5].ID, res[6].ID)
	}
	if n := e.raw.ZCard(e.ctx, "rsmq:q").Val(); n != 3 {
		t.Fatalf("rsmq:q has %d members, want 3", n)
	}
	if e.raw.HGet(e.ctx, "rsmq:small:Q", "totalsent").Val() != "1" {
		t.Fatal("small totalsent not 1")
	}
	if e.raw.Exists(e.ctx, "rsmq:missing", "rsmq:missing:Q").Val() != 0 {
		t.Fatal("send to a missing queue created keys")
	}
}

func TestSendBatchLoadsScriptOnFreshRedis(t *testing.T) {
	e := newEnv(t, rsmq.Options{})
	e.createQueue(t, "q", 30)
	if err := e.raw.ScriptFlush(e.ctx).Err(); err != nil {
		t.Fatal(err)
	}
	res, err := e.q.SendBatch(e.ctx, []rsmq.SendItem{{Queue: "q", Message: "a"}, {Queue: "q", Message: "b"}})
	if err != nil || res[0].Err != nil || res[1].Err != nil {
		t.Fatalf("SendBatch = %+v, %v", res, err)
	}
	if n := e.raw.ZCard(e.ctx, "rsmq:q").Val(); n != 2 {
		t.Fatalf("zset has %d members", n)
	}
}

// TestSendBatchDoesPerQueueWorkOncePerCall: 300 items over three queues are
// one round trip of three script calls (chunks of at most 128 items); each
// queue's realtime notification goes out once per call that stored in it,
// carrying its size, and totalsent counts every message.
func TestSendBatchDoesPerQueueWorkOncePerCall(t *testing.T) {
	e := newEnv(t, rsmq.Options{})
	for _, q := range []string{"a", "b", "c"} {
		e.createQueue(t, q, 30)
	}
	c, rt := e.countedClient(t, rsmq.Options{Realtime: true})
	if _, err := c.SendBatch(e.ctx, []rsmq.SendItem{{Queue: "a", Message: "warm"}}); err != nil {
		t.Fatal(err)
	}
	sub := e.raw.Subscribe(e.ctx, c.RealtimeChannel("a"), c.RealtimeChannel("b"), c.RealtimeChannel("c"))
	t.Cleanup(func() { _ = sub.Close() })
	if _, err := sub.Receive(e.ctx); err != nil { // the subscription is in place
		t.Fatal(err)
	}
	items := make([]rsmq.SendItem, 300)
	for i := range items {
		items[i] = rsmq.SendItem{Queue: []string{"a", "b", "c"}[i%3], Message: "m" + strconv.Itoa(i)}
	}
	before := evalshaCalls(t, e)
	rt.n.Store(0)
	res, err := c.SendBatch(e.ctx, items)
	if err != nil {
		t.Fatal(err)
	}
	if n := rt.n.Load(); n != 1 {
		t.Fatalf("SendBatch of 300 took %d round trips, want 1", n)
	}
	if n := evalshaCalls(t, e) - before; n != 3 {
		t.Fatalf("Redis ran %d send scripts for 300 items, want 3 (128 + 128 + 44)", n)
	}
	for i, r := range res {
		if r.Err != nil || e.raw.HGet(e.ctx, "rsmq:"+items[i].Queue+":Q", r.ID).Val() != items[i].Message {
			t.Fatalf("item %d: %+v not stored as sent", i, r)
		}
	}
	for q, want := range map[string]string{"a": "101", "b": "100", "c": "100"} {
		if got := e.raw.HGet(e.ctx, "rsmq:"+q+":Q", "totalsent").Val(); got != want {
			t.Errorf("queue %s: totalsent %s, want %s", q, got, want)
		}
	}
	// Every call stored in all three queues: 3 calls × 3 queues
	// notifications, the last of each queue carrying its final size.
	last := map[string]string{}
	for range 9 {
		m, err := sub.ReceiveMessage(e.ctx)
		if err != nil {
			t.Fatal(err)
		}
		last[m.Channel] = m.Payload
	}
	for q, want := range map[string]string{"a": "101", "b": "100", "c": "100"} {
		if got := last[c.RealtimeChannel(q)]; got != want {
			t.Errorf("queue %s: last notification %q, want its size %s", q, got, want)
		}
	}
	// A marker published after the batch must be the next message: there
	// was no tenth notification before it.
	if err := e.raw.Publish(e.ctx, c.RealtimeChannel("a"), "marker").Err(); err != nil {
		t.Fatal(err)
	}
	if m, err := sub.ReceiveMessage(e.ctx); err != nil || m.Payload != "marker" {
		t.Fatalf("after 9 notifications got %v, %v; want the marker (one notification per queue per call)", m, err)
	}
}

func TestReceiveMessagesTakesUpToMaxInOrderAndReportsNextVisible(t *testing.T) {
	e := newEnv(t, rsmq.Options{})
	e.createQueue(t, "q", 30)
	c, rt := e.countedClient(t, rsmq.Options{})
	var ids []string
	for _, m := range []string{"a", "b", "c", "d", "e"} {
		ids = append(ids, e.send(t, "q", m))
	}
	e.createQueue(t, "warm", 30)
	if _, err := c.ReceiveMessages(e.ctx, "warm", rsmq.ReceiveOptions{}); err != nil { // loads the script
		t.Fatal(err)
	}
	rt.n.Store(0)
	res, err := c.ReceiveMessages(e.ctx, "q", rsmq.ReceiveOptions{VT: 60, Max: 3})
	if err != nil {
		t.Fatal(err)
	}
	if n := rt.n.Load(); n != 1 {
		t.Fatalf("ReceiveMessages took %d round trips, want 1", n)
	}
	got := func(ms []rsmq.Message) (out []string) {
		for _, m := range ms {
			out = append(out, m.ID)
		}
		return out
	}
	if !slices.Equal(got(res.Messages), ids[:3]) {
		t.Fatalf("received %v, want %v", got(res.Messages), ids[:3])
	}
	for _, m := range res.Messages {
		if m.RC != 1 || m.FR == 0 || e.raw.HGet(e.ctx, "rsmq:q:Q", m.ID+":rc").Val() != "1" {
			t.Fatalf("message %+v", m)
		}
	}
	now := e.redisNowMS(t)
	if res.NextVisible == 0 || res.NextVisible > now {
		t.Fatalf("NextVisible %d, want <= now %d (two messages still visible)", res.NextVisible, now)
	}
	res, err = c.ReceiveMessages(e.ctx, "q", rsmq.ReceiveOptions{VT: 60, Max: 10})
	if err != nil || !slices.Equal(got(res.Messages), ids[3:]) {
		t.Fatalf("received %v, %v; want %v", got(res.Messages), err, ids[3:])
	}
	first := int64(e.raw.ZScore(e.ctx, "rsmq:q", ids[0]).Val())
	if res.NextVisible != first || first < now+59000 {
		t.Fatalf("NextVisible %d, want the earliest hidden score %d", res.NextVisible, first)
	}
	if a, _ := e.q.GetQueueAttributes(e.ctx, "q"); a.TotalRecv != 5 {
		t.Fatalf("totalrecv %d", a.TotalRecv)
	}
	res, err = c.ReceiveMessages(e.ctx, "q", rsmq.ReceiveOptions{VT: 60, Max: 10})
	if err != nil || len(res.Messages) != 0 || res.NextVisible != first {
		t.Fatalf("receive from hidden-only queue = %+v, %v", res, err)
	}
	for _, id := range ids {
		if _, err := e.q.DeleteMessage(e.ctx, "q", id); err != nil {
			t.Fatal(err)
		}
	}
	res, err = c.ReceiveMessages(e.ctx, "q", rsmq.ReceiveOptions{Max: 10})
	if err != nil || len(res.Messages) != 0 || res.NextVisible != 0 {
		t.Fatalf("receive from empty queue = %+v, %v", res, err)
	}
}

func TestReceiveMessagesMovesMessageToDeadLetterQueueAfterMaxReceiveCount(t *testing.T) {
	e := newEnv(t, rsmq.Options{})
	if err := e.q.CreateQueue(e.ctx, "q", rsmq.QueueConfig{VT: 45, Delay: 0, MaxSize: 2048}); err != nil {
		t.Fatal(err)
	}
	id := e.send(t, "q", "poison")
	opts := rsmq.ReceiveOptions{VT: 0, Max: 10, MaxReceiveCount: 2, DeadLetterQueue: "q-dead"}
	for rc := int64(1); rc <= 2; rc++ {
		res, err := e.q.ReceiveMessages(e.ctx, "q", opts)
		if err != nil || len(res.Messages) != 1 || res.Messages[0].RC != rc || len(res.DeadLettered) != 0 {
			t.Fatalf("receive %d = %+v, %v", rc, res, err)
		}
	}
	if e.raw.Exists(e.ctx, "rsmq:q-dead:Q").Val() != 0 {
		t.Fatal("dead-letter queue created before it was needed")
	}
	res, err := e.q.ReceiveMessages(e.ctx, "q", opts)
	if err != nil || len(res.Messages) != 0 || !slices.Equal(res.DeadLettered, []string{id}) || res.NextVisible != 0 {
		t.Fatalf("third receive = %+v, %v", res, err)
	}
	// Gone from the source.
	if e.raw.ZCard(e.ctx, "rsmq:q").Val() != 0 {
		t.Fatal("source zset not empty")
	}
	h := e.raw.HGetAll(e.ctx, "rsmq:q:Q").Val()
	for _, f := range []string{id, id + ":rc", id + ":fr"} {
		if _, ok := h[f]; ok {
			t.Fatalf("source field %s left", f)
		}
	}
	if h["totalrecv"] != "2" {
		t.Fatalf("source totalrecv %q, want 2 (dead-lettering is not a receive)", h["totalrecv"])
	}
	// In the dead-letter queue, with the source's attributes.
	d := e.raw.HGetAll(e.ctx, "rsmq:q-dead:Q").Val()
	if d[id] != "poison" || d["vt"] != "45" || d["delay"] != "0" || d["maxsize"] != "2048" ||
		d["totalsent"] != "1" || d["created"] == "" || d["modified"] == "" {
		t.Fatalf("rsmq:q-dead:Q = %v", d)
	}
	if e.raw.ZScore(e.ctx, "rsmq:q-dead", id).Err() != nil {
		t.Fatal("id not in the dead-letter zset")
	}
	if !e.raw.SIsMember(e.ctx, "rsmq:QUEUES", "q-dead").Val() {
		t.Fatal("dead-letter queue not in QUEUES")
	}
	// It is an ordinary queue, readable by the plain API.
	m := e.receive(t, "q-dead", rsmq.QueueDefault)
	if m == nil || m.ID != id || m.Message != "poison" || m.RC != 1 {
		t.Fatalf("dead-letter receive %+v", m)
	}
}

func TestNextVisibleReportsFirstScorePerQueue(t *testing.T) {
	e := newEnv(t, rsmq.Options{})
	e.createQueue(t, "a", 30)
	e.createQueue(t, "b", 30)
	id, err := e.q.SendMessage(e.ctx, "b", "later", 100)
	if err != nil {
		t.Fatal(err)
	}
	got, err := e.q.NextVisible(e.ctx, []string{"a", "b", "never-created"})
	if err != nil {
		t.Fatal(err)
	}
	want := int64(e.raw.ZScore(e.ctx, "rsmq:b", id).Val())
	if !slices.Equal(got, []int64{0, want, 0}) {
		t.Fatalf("NextVisible = %v, want [0 %d 0]", got, want)
	}
	if got, err := e.q.NextVisible(e.ctx, nil); err != nil || len(got) != 0 {
		t.Fatalf("NextVisible(nil) = %v, %v", got, err)
	}
}

func TestEveryOperationIsOneRoundTrip(t *testing.T) {
	e := newEnv(t, rsmq.Options{})
	c, rt := e.countedClient(t, rsmq.Options{Realtime: true})
	ctx := e.ctx
	var id string
	var m *rsmq.Message
	ops := []struct {
		name string
		op   func() error
	}{
		{"CreateQueue", func() error { return c.CreateQueue(ctx, "q", rsmq.DefaultQueueConfig()) }},
		{"ListQueues", func() error { _, err := c.ListQueues(ctx); return err }},
		{"GetQueueAttributes", func() error { _, err := c.GetQueueAttributes(ctx, "q"); return err }},
		{"SetQueueAttributes", func() error {
			_, err := c.SetQueueAttributes(ctx, "q", rsmq.AttributeChanges{VT: intp(0)})
			return err
		}},
		{"SendMessage", func() (err error) { id, err = c.SendMessage(ctx, "q", "m", 0); return err }},
		{"SendBatch", func() error { _, err := c.SendBatch(ctx, []rsmq.SendItem{{Queue: "q", Message: "b"}}); return err }},
		{"ReceiveMessage", func() (err error) { m, err = c.ReceiveMessage(ctx, "q", 0); return err }},
		{"ReceiveMessages", func() error { _, err := c.ReceiveMessages(ctx, "q", rsmq.ReceiveOptions{VT: 0, Max: 10}); return err }},
		{"ChangeMessageVisibility", func() error { _, err := c.ChangeMessageVisibility(ctx, "q", id, 0); return err }},
		{"ChangeVisibilityByReceipts", func() error {
			_, err := c.ChangeVisibilityByReceipts(ctx, "q", []rsmq.Receipt{m.Receipt()}, 0)
			return err
		}},
		{"DeleteByReceiptsMulti", func() error {
			_, _, err := c.DeleteByReceiptsMulti(ctx, []rsmq.QueueReceipts{{Queue: "q", Receipts: []rsmq.Receipt{m.Receipt()}}})
			return err
		}},
		{"DeleteMessage", func() error { _, err := c.DeleteMessage(ctx, "q", id); return err }},
		{"PopMessage", func() error { _, err := c.PopMessage(ctx, "q"); return err }},
		{"NextVisible", func() error { _, err := c.NextVisible(ctx, []string{"q", "r"}); return err }},
		{"DeleteQueue", func() error { return c.DeleteQueue(ctx, "q") }},
	}
	// First pass loads the scripts (EVALSHA, then EVAL) and the id clock (TIME).
	for _, o := range ops {
		if err := o.op(); err != nil {
			t.Fatalf("%s: %v", o.name, err)
		}
	}
	for _, o := range ops {
		rt.n.Store(0)
		if err := o.op(); err != nil {
			t.Fatalf("%s: %v", o.name, err)
		}
		if n := rt.n.Load(); n != 1 {
			t.Errorf("%s took %d round trips, want 1", o.name, n)
		}
	}
}

// TestSendBatchFailsOnlyTheItemsOfAQueueWithUnusableKeys: one script call
// carries several queues' messages; a queue whose sorted set has the wrong
// type, or whose attributes are not numbers, fails its own items without
// writing anything, and the others are stored and counted as usual.
func TestSendBatchFailsOnlyTheItemsOfAQueueWithUnusableKeys(t *testing.T) {
	e := newEnv(t, rsmq.Options{})
	for _, q := range []string{"good", "badzset", "badattrs"} {
		e.createQueue(t, q, 30)
	}
	if err := e.raw.Del(e.ctx, "rsmq:badzset").Err(); err != nil {
		t.Fatal(err)
	}
	if err := e.raw.Set(e.ctx, "rsmq:badzset", "not a zset", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := e.raw.HSet(e.ctx, "rsmq:badattrs:Q", "maxsize", "lots").Err(); err != nil {
		t.Fatal(err)
	}
	items := []rsmq.SendItem{
		{Queue: "good", Message: "g1"}, {Queue: "badzset", Message: "b1"}, {Queue: "badattrs", Message: "a1"},
		{Queue: "good", Message: "g2"}, {Queue: "badzset", Message: "b2"},
	}
	res, err := e.q.SendBatch(e.ctx, items)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if items[i].Queue == "good" {
			if r.Err != nil || e.raw.HGet(e.ctx, "rsmq:good:Q", r.ID).Val() != items[i].Message {
				t.Fatalf("item %d: %+v, want stored", i, r)
			}
			continue
		}
		if !errors.Is(r.Err, rsmq.ErrCorrupt) {
			t.Fatalf("item %d (%s): %v, want ErrCorrupt", i, items[i].Queue, r.Err)
		}
		if e.raw.HExists(e.ctx, "rsmq:"+items[i].Queue+":Q", r.ID).Val() {
			t.Fatalf("item %d: a body was left in the unusable queue", i)
		}
	}
	if n := e.raw.HLen(e.ctx, "rsmq:badzset:Q").Val(); n != 5 {
		t.Fatalf("the queue with the bad zset has %d hash fields, want its 5 attributes only", n)
	}
	if s := e.raw.HGet(e.ctx, "rsmq:good:Q", "totalsent").Val(); s != "2" {
		t.Fatalf("good totalsent %s, want 2", s)
	}
	if s := e.raw.HGet(e.ctx, "rsmq:badzset:Q", "totalsent").Val(); s != "" && s != "0" {
		t.Fatalf("badzset totalsent %s, want untouched", s)
	}
}
