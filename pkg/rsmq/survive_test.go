package rsmq_test

import (
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wsmq/wsmq/pkg/redisconn"
	"github.com/wsmq/wsmq/pkg/rsmq"
	"github.com/wsmq/wsmq/pkg/testenv"
)

// fillToMaxmemory sets Redis's maxmemory just below what it uses now, with
// noeviction, as the project runs Redis: from then on Redis refuses every
// command or script that could grow memory. It returns used_memory then.
func fillToMaxmemory(t *testing.T, e *env) int64 {
	t.Helper()
	used, _, err := redisconn.MemoryUsage(e.ctx, e.raw)
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range [][2]string{{"maxmemory-policy", "noeviction"}, {"maxmemory", strconv.FormatInt(used-256<<10, 10)}} {
		if err := e.raw.ConfigSet(e.ctx, kv[0], kv[1]).Err(); err != nil {
			t.Fatal(err)
		}
	}
	return used
}

func receiptsOf(msgs []rsmq.Message) []rsmq.Receipt {
	rs := make([]rsmq.Receipt, len(msgs))
	for i := range msgs {
		rs[i] = msgs[i].Receipt()
	}
	return rs
}

func isOOM(err error) bool { return err != nil && strings.Contains(err.Error(), "OOM") }

func TestDrainScriptsRunAtMaxmemoryAndMemoryComesBack(t *testing.T) {
	e := newEnv(t, rsmq.Options{})
	e.createQueue(t, "q", 30)
	e.createQueue(t, "p", 0)
	items := make([]rsmq.SendItem, 1000)
	for i := range items {
		items[i] = rsmq.SendItem{Queue: "q", Message: strings.Repeat("x", 2048)}
	}
	if _, err := e.q.SendBatch(e.ctx, items); err != nil {
		t.Fatal(err)
	}
	poison := e.send(t, "p", "poison")
	if m := e.receive(t, "p", 0); m == nil || m.ID != poison { // rc 1: the next receive with limit 1 dead-letters it
		t.Fatalf("receive poison: %+v", m)
	}
	// Redis restarted full would have no scripts cached: they must load
	// (EVAL) at maxmemory too.
	if err := e.raw.ScriptFlush(e.ctx).Err(); err != nil {
		t.Fatal(err)
	}
	before := fillToMaxmemory(t, e)

	// What grows memory is refused.
	if _, err := e.q.SendMessage(e.ctx, "q", "more", 0); !isOOM(err) {
		t.Fatalf("send at maxmemory: %v, want Redis's OOM error", err)
	}
	if err := e.q.CreateQueue(e.ctx, "new", rsmq.DefaultQueueConfig()); !isOOM(err) {
		t.Fatalf("create a new queue at maxmemory: %v, want OOM", err)
	}
	// An existing queue is found without a write (a subscriber's ensure).
	if err := e.q.CreateQueue(e.ctx, "q", rsmq.DefaultQueueConfig()); !errors.Is(err, rsmq.ErrQueueExists) {
		t.Fatalf("create an existing queue at maxmemory: %v, want ErrQueueExists", err)
	}

	// Every drain script runs.
	res, err := e.q.ReceiveMessages(e.ctx, "q", rsmq.ReceiveOptions{VT: rsmq.QueueDefault, Max: 10})
	if err != nil || len(res.Messages) != 10 {
		t.Fatalf("receive at maxmemory: %v, %v", res, err)
	}
	if n, _, err := e.q.ReturnByReceipts(e.ctx, "q", receiptsOf(res.Messages[:5])); err != nil || n != 5 {
		t.Fatalf("return at maxmemory: %d, %v", n, err)
	}
	if ok, err := e.q.ChangeMessageVisibility(e.ctx, "q", res.Messages[5].ID, 0); err != nil || !ok {
		t.Fatalf("change visibility at maxmemory: %v, %v", ok, err)
	}
	if m, err := e.q.PopMessage(e.ctx, "q"); err != nil || m == nil {
		t.Fatalf("pop at maxmemory: %v, %v", m, err)
	}
	if n, _, err := e.q.DeleteByReceiptsMulti(e.ctx, []rsmq.QueueReceipts{{Queue: "q", Receipts: receiptsOf(res.Messages[6:])}}); err != nil || n != 4 {
		t.Fatalf("delete at maxmemory: %d, %v", n, err)
	}
	multi, errs, err := e.q.ReceiveFromQueues(e.ctx, 30, 1, []rsmq.QueueRequest{{Queue: "p", Max: 1, DeadLetterQueue: "p-dlq"}})
	if err != nil || errs[0] != nil || !slices.Equal(multi[0].DeadLettered, []string{poison}) {
		t.Fatalf("dead-letter move at maxmemory: %+v, %v, %v", multi, errs, err)
	}
	for {
		res, err := e.q.ReceiveMessages(e.ctx, "q", rsmq.ReceiveOptions{VT: 60, Max: 500})
		if err != nil {
			t.Fatalf("receive at maxmemory: %v", err)
		}
		if len(res.Messages) == 0 {
			break
		}
		rs := receiptsOf(res.Messages)
		if n, skipped, err := e.q.DeleteByReceiptsMulti(e.ctx, []rsmq.QueueReceipts{{Queue: "q", Receipts: rs}}); err != nil || n != len(rs) || len(skipped) > 0 {
			t.Fatalf("delete at maxmemory: %d of %d, %v, %v", n, len(rs), skipped, err)
		}
	}
	if n := e.raw.ZCard(e.ctx, "rsmq:q").Val(); n != 0 {
		t.Fatalf("%d messages left after the drain", n)
	}
	after, _, err := redisconn.MemoryUsage(e.ctx, e.raw)
	if err != nil {
		t.Fatal(err)
	}
	if after > before-1<<20 {
		t.Fatalf("used_memory %d after draining ~2 MiB, was %d: memory did not come back", after, before)
	}
	if _, err := e.q.SendMessage(e.ctx, "q", "accepted again", 0); err != nil {
		t.Fatalf("send after the drain: %v", err)
	}
}

func TestMalformedMessagesAreRejectedToTheDLQWithoutHurtingOthers(t *testing.T) {
	e := newEnv(t, rsmq.Options{})
	for _, q := range []string{"a", "b", "broken"} {
		e.createQueue(t, q, 30)
	}
	good1, good2 := e.send(t, "a", "good1"), e.send(t, "a", "good2")
	goodB := e.send(t, "b", "goodB")
	// Foreign writers: an id of the wrong form, rc and fr that are no numbers.
	e.raw.ZAdd(e.ctx, "rsmq:a", redis.Z{Score: 0, Member: "short-id"})
	e.raw.HSet(e.ctx, "rsmq:a:Q", "short-id", "short body")
	badRC, badFR := e.send(t, "a", "bad rc"), e.send(t, "a", "bad fr")
	e.raw.HSet(e.ctx, "rsmq:a:Q", badRC+":rc", "many", badFR+":rc", "1", badFR+":fr", "soon")
	// A queue whose sorted set was overwritten by a string.
	e.send(t, "broken", "lost")
	e.raw.Set(e.ctx, "rsmq:broken", "not a zset", 0)

	res, errs, err := e.q.ReceiveFromQueues(e.ctx, 30, 10, []rsmq.QueueRequest{
		{Queue: "a", Max: 10, DeadLetterQueue: "a-dlq"},
		{Queue: "broken", Max: 10, DeadLetterQueue: "broken-dlq"},
		{Queue: "b", Max: 10, DeadLetterQueue: "b-dlq"},
	})
	if err != nil {
		t.Fatalf("the whole call failed: %v", err)
	}
	if !errors.Is(errs[1], rsmq.ErrCorrupt) {
		t.Fatalf("broken queue: %v, want ErrCorrupt for it alone", errs[1])
	}
	if errs[0] != nil || errs[2] != nil {
		t.Fatalf("healthy queues failed: %v, %v", errs[0], errs[2])
	}
	var ids []string
	for _, m := range res[0].Messages {
		ids = append(ids, m.ID)
	}
	if !slices.Equal(ids, []string{good1, good2}) {
		t.Fatalf("queue a delivered %v, want the two healthy messages", ids)
	}
	if len(res[2].Messages) != 1 || res[2].Messages[0].ID != goodB {
		t.Fatalf("queue b delivered %+v", res[2].Messages)
	}
	want := []rsmq.Rejected{
		{ID: "short-id", Reason: "invalid id", Moved: true},
		{ID: badRC, Reason: "rc is not an integer", Moved: true},
		{ID: badFR, Reason: "fr is not a number", Moved: true},
	}
	if !slices.Equal(res[0].Rejected, want) {
		t.Fatalf("rejected %+v, want %+v", res[0].Rejected, want)
	}
	for _, r := range want {
		if e.raw.ZScore(e.ctx, "rsmq:a", r.ID).Err() != redis.Nil || e.raw.HExists(e.ctx, "rsmq:a:Q", r.ID).Val() {
			t.Fatalf("%s still in queue a", r.ID)
		}
		if e.raw.ZScore(e.ctx, "rsmq:a-dlq", r.ID).Err() != nil || !e.raw.HExists(e.ctx, "rsmq:a-dlq:Q", r.ID).Val() {
			t.Fatalf("%s not in the dead-letter queue", r.ID)
		}
		if e.raw.HExists(e.ctx, "rsmq:a-dlq:Q", r.ID+":rc").Val() {
			t.Fatalf("%s carried its bad rc into the dead-letter queue", r.ID)
		}
	}
	if now := e.redisNowMS(t); res[0].Now < now-5000 || res[0].Now > now {
		t.Fatalf("reply's Redis time %d, Redis now %d", res[0].Now, now)
	}

	// Without a dead-letter queue a malformed message is hidden, not
	// returned, and does not block the head of the queue.
	e.createQueue(t, "c", 0)
	e.raw.ZAdd(e.ctx, "rsmq:c", redis.Z{Score: 0, Member: "x"})
	goodC := e.send(t, "c", "goodC")
	one, err := e.q.ReceiveMessages(e.ctx, "c", rsmq.ReceiveOptions{VT: rsmq.QueueDefault, Max: 1})
	if err != nil || len(one.Messages) != 0 || !slices.Equal(one.Rejected, []rsmq.Rejected{{ID: "x", Reason: "invalid id"}}) {
		t.Fatalf("receive beside a bad id: %+v, %v", one, err)
	}
	if m := e.receive(t, "c", 0); m == nil || m.ID != goodC {
		t.Fatalf("next receive %+v, want the healthy message", m)
	}
	if s := e.raw.ZScore(e.ctx, "rsmq:c", "x").Val(); int64(s) < e.redisNowMS(t)+25_000 {
		t.Fatalf("the bad id is visible again at %v: it would block the queue", s)
	}
}

func TestDeleteByReceiptsMultiSkipsABadReceiptOrQueueAlone(t *testing.T) {
	e := newEnv(t, rsmq.Options{})
	e.createQueue(t, "a", 30)
	e.createQueue(t, "broken", 30)
	e.send(t, "a", "a1")
	e.send(t, "broken", "b1")
	m := e.receive(t, "a", 30)
	mb := e.receive(t, "broken", 30)
	e.raw.Del(e.ctx, "rsmq:broken:Q")
	e.raw.Set(e.ctx, "rsmq:broken:Q", "not a hash", 0)
	n, skipped, err := e.q.DeleteByReceiptsMulti(e.ctx, []rsmq.QueueReceipts{
		{Queue: "a", Receipts: []rsmq.Receipt{{ID: "short", RC: 1}, m.Receipt()}},
		{Queue: "broken", Receipts: []rsmq.Receipt{mb.Receipt()}},
	})
	if err != nil || n != 1 {
		t.Fatalf("deleted %d, %v; want the one good receipt deleted", n, err)
	}
	if len(skipped) != 2 || !errors.Is(skipped[0].Err, rsmq.ErrInvalidFormat) || skipped[0].Receipt.ID != "short" ||
		!errors.Is(skipped[1].Err, rsmq.ErrCorrupt) || skipped[1].Queue != "broken" {
		t.Fatalf("skipped %+v", skipped)
	}
	if left := e.raw.ZCard(e.ctx, "rsmq:a").Val(); left != 0 {
		t.Fatalf("queue a holds %d", left)
	}
}

func TestReturnByReceiptsUndoesTheReceiveSoReturnsNeverDeadLetter(t *testing.T) {
	e := newEnv(t, rsmq.Options{})
	e.createQueue(t, "q", 30)
	id := e.send(t, "q", "m")
	opts := rsmq.ReceiveOptions{VT: rsmq.QueueDefault, Max: 1, MaxReceiveCount: 10, DeadLetterQueue: "q-dlq"}
	for i := range 20 {
		res, err := e.q.ReceiveMessages(e.ctx, "q", opts)
		if err != nil || len(res.Messages) != 1 || res.Messages[0].RC != 1 {
			t.Fatalf("cycle %d: received %+v, %v; want the message with rc 1", i, res, err)
		}
		r := res.Messages[0].Receipt()
		n, now, err := e.q.ReturnByReceipts(e.ctx, "q", []rsmq.Receipt{r})
		if err != nil || n != 1 || now < res.Now {
			t.Fatalf("cycle %d: returned %d at %d, %v", i, n, now, err)
		}
		// A retried return finds the message visible and changes nothing.
		if n, _, err := e.q.ReturnByReceipts(e.ctx, "q", []rsmq.Receipt{r}); err != nil || n != 0 {
			t.Fatalf("cycle %d: second return %d, %v", i, n, err)
		}
	}
	// The fields are what Node reads for a message never received.
	fields := e.raw.HGetAll(e.ctx, "rsmq:q:Q").Val()
	if _, ok := fields[id+":rc"]; ok || fields[id] != "m" {
		t.Fatalf("after returns the hash holds %v", fields)
	}
	if _, ok := fields[id+":fr"]; ok {
		t.Fatalf("fr left behind: %v", fields)
	}
	if e.raw.Exists(e.ctx, "rsmq:q-dlq:Q").Val() != 0 {
		t.Fatal("a dead-letter queue appeared")
	}

	// A delivery whose visibility ran out is not returned (it may be
	// someone else's by now), and its stale receipt does not touch the
	// next delivery.
	stale := e.receive(t, "q", 0) // rc 1, visible again at once
	current, err := e.q.ReceiveMessages(e.ctx, "q", opts)
	if err != nil || len(current.Messages) != 1 || current.Messages[0].RC != 2 {
		t.Fatalf("redelivery %+v, %v", current, err)
	}
	if n, _, _ := e.q.ReturnByReceipts(e.ctx, "q", []rsmq.Receipt{stale.Receipt()}); n != 0 {
		t.Fatal("a stale receipt returned the current delivery")
	}
	if n, _, _ := e.q.DeleteByReceiptsMulti(e.ctx, []rsmq.QueueReceipts{{Queue: "q", Receipts: []rsmq.Receipt{stale.Receipt()}}}); n != 0 {
		t.Fatal("a stale receipt deleted the current delivery")
	}
	if rc := e.raw.HGet(e.ctx, "rsmq:q:Q", id+":rc").Val(); rc != "2" {
		t.Fatalf("rc %q, want 2", rc)
	}
	// A later plain receive (as Node's) sees a normal message.
	if _, _, err := e.q.ReturnByReceipts(e.ctx, "q", []rsmq.Receipt{current.Messages[0].Receipt()}); err != nil {
		t.Fatal(err)
	}
	if m := e.receive(t, "q", 30); m == nil || m.ID != id || m.RC != 2 || m.FR != stale.FR {
		t.Fatalf("receive after a return: %+v (first receive at %d)", m, stale.FR)
	}

	// A returned message keeps its place ahead of messages sent after it.
	e.createQueue(t, "order", 30)
	o1 := e.send(t, "order", "o1")
	r1 := e.receive(t, "order", 30)
	o2 := e.send(t, "order", "o2")
	if n, _, err := e.q.ReturnByReceipts(e.ctx, "order", []rsmq.Receipt{r1.Receipt()}); err != nil || n != 1 {
		t.Fatalf("return: %d, %v", n, err)
	}
	res, err := e.q.ReceiveMessages(e.ctx, "order", rsmq.ReceiveOptions{VT: 30, Max: 2})
	if err != nil || len(res.Messages) != 2 || res.Messages[0].ID != o1 || res.Messages[1].ID != o2 {
		t.Fatalf("after a return received %+v, %v; want o1 then o2", res, err)
	}
}

func TestReceiveWithoutRetriesRunsOnceWhenTheReplyTimesOut(t *testing.T) {
	e := newEnv(t, rsmq.Options{})
	p := testenv.StartReplyDelayer(t, e.redis.Addr(), "SLOW-RECV", 500*time.Millisecond)
	noRetry := redis.NewClient(&redis.Options{Addr: p.Addr(), MaxRetries: -1, ReadTimeout: 100 * time.Millisecond})
	t.Cleanup(func() { _ = noRetry.Close() })
	c := rsmq.New(e.raw, rsmq.Options{ReceiveClient: noRetry})
	e.createQueue(t, "SLOW-RECV", 30)
	if _, err := c.ReceiveMessage(e.ctx, "SLOW-RECV", rsmq.QueueDefault); err != nil { // loads the script
		t.Fatal(err)
	}
	first := e.send(t, "SLOW-RECV", "first")
	second := e.send(t, "SLOW-RECV", "second")
	before := evalshaCalls(t, e)
	p.Armed.Store(true)
	if m, err := c.ReceiveMessage(e.ctx, "SLOW-RECV", rsmq.QueueDefault); err == nil || p.Dropped.Load() != 1 {
		t.Fatalf("receive through a late reply = %+v, %v (delayed %d)", m, err, p.Dropped.Load())
	}
	if n := evalshaCalls(t, e) - before; n != 1 {
		t.Fatalf("Redis ran the receive script %d times, want 1", n)
	}
	if rc := e.raw.HGet(e.ctx, "rsmq:SLOW-RECV:Q", first+":rc").Val(); rc != "1" {
		t.Fatalf("rc of the first message %q, want 1", rc)
	}
	if e.raw.HExists(e.ctx, "rsmq:SLOW-RECV:Q", second+":rc").Val() {
		t.Fatal("the second message was received by a phantom run")
	}
	// The caller's next pull gets the next message.
	if m, err := c.ReceiveMessage(e.ctx, "SLOW-RECV", rsmq.QueueDefault); err != nil || m == nil || m.ID != second || m.RC != 1 {
		t.Fatalf("next receive %+v, %v; want the second message, rc 1", m, err)
	}
}
