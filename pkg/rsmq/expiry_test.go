package rsmq_test

import (
	"errors"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/wsmq/wsmq/pkg/rsmq"
)

// hashFields returns the sorted field names of qname's hash.
func (e *env) hashFields(t *testing.T, qname string) []string {
	t.Helper()
	m, err := e.raw.HGetAll(e.ctx, "rsmq:"+qname+":Q").Result()
	if err != nil {
		t.Fatal(err)
	}
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func (e *env) sendTTL(t *testing.T, qname, msg string, delay, ttl int) string {
	t.Helper()
	id, err := e.q.SendItem(e.ctx, rsmq.SendItem{Queue: qname, Message: msg, Delay: delay, TTL: ttl})
	if err != nil {
		t.Fatalf("SendItem(%q, ttl %d): %v", qname, ttl, err)
	}
	return id
}

// expireNow moves id's expiry to the past, as if its ttl had run out.
func (e *env) expireNow(t *testing.T, qname, id string) {
	t.Helper()
	if err := e.raw.HSet(e.ctx, "rsmq:"+qname+":Q", id+":exp", e.redisNowMS(t)-1).Err(); err != nil {
		t.Fatal(err)
	}
}

func sameFields(got []string, want ...string) bool {
	sort.Strings(want)
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if got[i] != want[i] {
			return false
		}
	}
	return true
}

var queueAttrFields = []string{"vt", "delay", "maxsize", "created", "modified", "totalsent"}

func TestSendWithTTLStoresOnlyAnExpiryFieldBesideTheNodeFields(t *testing.T) {
	e := newEnv(t, rsmq.Options{})
	e.createQueue(t, "q", 30)
	before := e.redisNowMS(t)
	id := e.sendTTL(t, "q", "hello", 0, 600)
	after := e.redisNowMS(t)
	if got := e.hashFields(t, "q"); !sameFields(got, append(append([]string{}, queueAttrFields...), id, id+":exp")...) {
		t.Fatalf("hash fields after a ttl send = %v", got)
	}
	exp, err := e.raw.HGet(e.ctx, "rsmq:q:Q", id+":exp").Int64()
	if err != nil || exp < before+600_000 || exp > after+600_000 {
		t.Fatalf("%s:exp = %d, %v; want send time + 600000 ms in [%d, %d]", id, exp, err, before+600_000, after+600_000)
	}
	// The message itself is stored exactly as without a ttl (Node reads it).
	if body, _ := e.raw.HGet(e.ctx, "rsmq:q:Q", id).Result(); body != "hello" {
		t.Fatalf("body = %q", body)
	}
	m := e.receive(t, "q", 30)
	if m == nil || m.ID != id || m.Message != "hello" || m.RC != 1 {
		t.Fatalf("received %+v, want the unexpired message", m)
	}
	if ok, err := e.q.DeleteMessage(e.ctx, "q", id); !ok || err != nil {
		t.Fatalf("DeleteMessage = %v, %v", ok, err)
	}
	if got := e.hashFields(t, "q"); !sameFields(got, append(append([]string{}, queueAttrFields...), "totalrecv")...) {
		t.Fatalf("hash fields after delete = %v, want no message field left", got)
	}
	// Without a ttl no :exp field is written.
	id2 := e.send(t, "q", "plain")
	if n, _ := e.raw.HExists(e.ctx, "rsmq:q:Q", id2+":exp").Result(); n {
		t.Fatal("a send without ttl wrote an :exp field")
	}
}

func TestExpiredMessageIsNeverReceivedAndMovesToTheDLQ(t *testing.T) {
	e := newEnv(t, rsmq.Options{})
	e.createQueue(t, "q", 30)
	old := e.sendTTL(t, "q", "stale", 0, 600)
	fresh := e.sendTTL(t, "q", "fresh", 0, 600)
	e.expireNow(t, "q", old)
	res, errs, err := e.q.ReceiveFromQueues(e.ctx, rsmq.QueueDefault, 0,
		[]rsmq.QueueRequest{{Queue: "q", Max: 10, DeadLetterQueue: "q-dlq"}})
	if err != nil || errs[0] != nil {
		t.Fatal(err, errs)
	}
	r := res[0]
	if len(r.Messages) != 1 || r.Messages[0].ID != fresh {
		t.Fatalf("received %+v, want only the fresh message", r.Messages)
	}
	if len(r.Expired) != 1 || r.Expired[0].ID != old || !r.Expired[0].Moved {
		t.Fatalf("expired = %+v, want %s moved", r.Expired, old)
	}
	if got := e.hashFields(t, "q"); !sameFields(got, append(append([]string{}, queueAttrFields...),
		"totalrecv", fresh, fresh+":exp", fresh+":rc", fresh+":fr")...) {
		t.Fatalf("source hash fields = %v, want no field of the expired message", got)
	}
	if body, _ := e.raw.HGet(e.ctx, "rsmq:q-dlq:Q", old).Result(); body != "stale" {
		t.Fatalf("dlq body of %s = %q", old, body)
	}
	if n, _ := e.raw.HExists(e.ctx, "rsmq:q-dlq:Q", old+":exp").Result(); n {
		t.Fatal("the dead-lettered copy carries the expiry (it would expire again)")
	}
	if ok, _ := e.raw.SIsMember(e.ctx, "rsmq:QUEUES", "q-dlq").Result(); !ok {
		t.Fatal("dlq not listed in QUEUES")
	}
}

func TestExpiredMessageIsDeletedWhenTheQueueSaysDelete(t *testing.T) {
	e := newEnv(t, rsmq.Options{})
	e.createQueue(t, "q", 30)
	if err := e.q.SetExpiredAction(e.ctx, "q", rsmq.ExpiredDelete); err != nil {
		t.Fatal(err)
	}
	if err := e.q.SetExpiredAction(e.ctx, "missing", rsmq.ExpiredDelete); !errors.Is(err, rsmq.ErrQueueNotFound) {
		t.Fatalf("SetExpiredAction(missing) = %v", err)
	}
	old := e.sendTTL(t, "q", "stale", 0, 5)
	e.expireNow(t, "q", old)
	res, err := e.q.ReceiveMessages(e.ctx, "q", rsmq.ReceiveOptions{VT: rsmq.QueueDefault, Max: 5, DeadLetterQueue: "q-dlq"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Messages) != 0 || len(res.Expired) != 1 || res.Expired[0].Moved {
		t.Fatalf("result %+v, want one expired message deleted", res)
	}
	if n, _ := e.raw.Exists(e.ctx, "rsmq:q-dlq:Q", "rsmq:q-dlq").Result(); n != 0 {
		t.Fatal("delete mode created or wrote the dlq")
	}
	if got := e.hashFields(t, "q"); !sameFields(got, append(append([]string{}, queueAttrFields...), "wsmq:expired")...) {
		t.Fatalf("hash fields = %v", got)
	}
	if n, _ := e.raw.ZCard(e.ctx, "rsmq:q").Result(); n != 0 {
		t.Fatalf("zset holds %d members", n)
	}
}

func TestExpiredMessageWithoutADeadLetterQueueIsDeleted(t *testing.T) {
	e := newEnv(t, rsmq.Options{})
	e.createQueue(t, "q", 30)
	old := e.sendTTL(t, "q", "stale", 0, 5)
	e.expireNow(t, "q", old)
	res, err := e.q.ReceiveMessages(e.ctx, "q", rsmq.ReceiveOptions{VT: rsmq.QueueDefault})
	if err != nil || len(res.Messages) != 0 || len(res.Expired) != 1 || res.Expired[0].Moved {
		t.Fatalf("result %+v, %v", res, err)
	}
	if n, _ := e.raw.HExists(e.ctx, "rsmq:q:Q", old).Result(); n {
		t.Fatal("expired body still stored")
	}
}

func TestEveryDeletePathRemovesTheExpiryField(t *testing.T) {
	e := newEnv(t, rsmq.Options{})
	e.createQueue(t, "q", 0)
	clean := func(what string) {
		t.Helper()
		for _, f := range e.hashFields(t, "q") {
			if len(f) > 4 && f[len(f)-4:] == ":exp" {
				t.Fatalf("after %s the field %s is left", what, f)
			}
		}
	}
	// Receipt delete.
	e.sendTTL(t, "q", "a", 0, 600)
	m := e.receive(t, "q", 30)
	if n, _, err := e.q.DeleteByReceiptsMulti(e.ctx, []rsmq.QueueReceipts{{Queue: "q", Receipts: []rsmq.Receipt{m.Receipt()}}}); n != 1 || err != nil {
		t.Fatalf("DeleteByReceiptsMulti = %d, %v", n, err)
	}
	clean("a receipt delete")
	// Pop.
	e.sendTTL(t, "q", "b", 0, 600)
	if m, err := e.q.PopMessage(e.ctx, "q"); m == nil || err != nil {
		t.Fatalf("PopMessage = %v, %v", m, err)
	}
	clean("a pop")
	// Dead-letter move after too many receives.
	id := e.sendTTL(t, "q", "c", 0, 600)
	for i := 0; i < 2; i++ {
		res, err := e.q.ReceiveMessages(e.ctx, "q", rsmq.ReceiveOptions{VT: 0, MaxReceiveCount: 1, DeadLetterQueue: "q-dlq"})
		if err != nil {
			t.Fatal(err)
		}
		if i == 1 && (len(res.DeadLettered) != 1 || res.DeadLettered[0] != id) {
			t.Fatalf("receive %d: %+v, want %s dead-lettered", i, res, id)
		}
	}
	clean("a dead-letter move")
}

func TestSweepRemovesExpiryFieldsANodeDeleteLeftBehind(t *testing.T) {
	e := newEnv(t, rsmq.Options{})
	e.createQueue(t, "q", 30)
	var gone []string
	for i := 0; i < 30; i++ {
		id := e.sendTTL(t, "q", "m"+strconv.Itoa(i), 0, 600)
		if i%3 != 0 {
			// Node's deleteMessage: ZREM id, HDEL id id:rc id:fr.
			e.raw.ZRem(e.ctx, "rsmq:q", id)
			e.raw.HDel(e.ctx, "rsmq:q:Q", id, id+":rc", id+":fr")
			gone = append(gone, id)
		}
	}
	var cursor uint64
	removed, steps := 0, 0
	for {
		next, n, err := e.q.SweepExpiryOrphans(e.ctx, "q", cursor, 5)
		if err != nil {
			t.Fatal(err)
		}
		removed += n
		steps++
		if cursor = next; cursor == 0 || steps > 100 {
			break
		}
	}
	if removed != len(gone) {
		t.Fatalf("swept %d orphans, want %d", removed, len(gone))
	}
	exps := 0
	for _, f := range e.hashFields(t, "q") {
		if len(f) == 36 && f[32:] == ":exp" {
			exps++
		}
	}
	if exps != 10 {
		t.Fatalf("%d :exp fields left, want the 10 of live messages", exps)
	}
}

func TestTTLOutOfRangeIsRefusedNamingTheField(t *testing.T) {
	e := newEnv(t, rsmq.Options{})
	e.createQueue(t, "q", 30)
	for _, ttl := range []int{-1, rsmq.MaxTTL + 1} {
		_, err := e.q.SendItem(e.ctx, rsmq.SendItem{Queue: "q", Message: "x", TTL: ttl})
		var ve *rsmq.ValidationError
		if !errors.As(err, &ve) || ve.Field != "ttl" {
			t.Fatalf("ttl %d: %v, want a ValidationError on ttl", ttl, err)
		}
		res, err := e.q.SendBatch(e.ctx, []rsmq.SendItem{{Queue: "q", Message: "x", TTL: ttl}})
		if err != nil || !errors.As(res[0].Err, &ve) || ve.Field != "ttl" {
			t.Fatalf("batch ttl %d: %v %v", ttl, res, err)
		}
	}
	if _, err := e.q.SendItem(e.ctx, rsmq.SendItem{Queue: "q", Message: "x", TTL: rsmq.MaxTTL}); err != nil {
		t.Fatalf("ttl MaxTTL: %v", err)
	}
}

func TestStatusFollowsAMessageThroughItsLife(t *testing.T) {
	e := newEnv(t, rsmq.Options{})
	on := rsmq.New(e.raw, rsmq.Options{StatusTTL: time.Hour})
	e.createQueue(t, "q", 30)
	e.createQueue(t, "off", 30)
	status := func(q, id string) rsmq.MessageStatus {
		t.Helper()
		st, err := e.q.GetStatus(e.ctx, q, id)
		if err != nil {
			t.Fatal(err)
		}
		return *st
	}
	want := func(q, id string, w rsmq.MessageStatus) {
		t.Helper()
		if got := status(q, id); got != w {
			t.Fatalf("status of %s in %s = %+v, want %+v", id, q, got, w)
		}
	}
	// Sent by a Client with StatusTTL: queued, in flight, acknowledged.
	acked, err := on.SendItem(e.ctx, rsmq.SendItem{Queue: "q", Message: "a", Delay: rsmq.QueueDefault})
	if err != nil {
		t.Fatal(err)
	}
	want("q", acked, rsmq.MessageStatus{Status: rsmq.StatusQueued})
	m := e.receive(t, "q", 30)
	want("q", acked, rsmq.MessageStatus{Status: rsmq.StatusInFlight, RC: 1})
	if _, _, err := e.q.DeleteByReceiptsMulti(e.ctx, []rsmq.QueueReceipts{{Queue: "q", Receipts: []rsmq.Receipt{m.Receipt()}, Acked: true}}); err != nil {
		t.Fatal(err)
	}
	want("q", acked, rsmq.MessageStatus{Status: rsmq.StatusAcknowledged})
	if ttl, _ := e.raw.TTL(e.ctx, "rsmq:wsmq:status:q:"+acked).Result(); ttl <= 59*time.Minute || ttl > time.Hour {
		t.Fatalf("status key ttl = %v, want the StatusTTL of 1h", ttl)
	}
	// Delivered (auto confirm), expired, dead-lettered.
	delivered := e.send(t, "q", "d")
	m = e.receive(t, "q", 30)
	if _, _, err := e.q.DeleteByReceiptsMulti(e.ctx, []rsmq.QueueReceipts{{Queue: "q", Receipts: []rsmq.Receipt{m.Receipt()}}}); err != nil {
		t.Fatal(err)
	}
	want("q", delivered, rsmq.MessageStatus{Status: rsmq.StatusDelivered})
	expired := e.sendTTL(t, "q", "x", 0, 60)
	e.expireNow(t, "q", expired)
	dead := e.send(t, "q", "y")
	for range 2 {
		if _, err := e.q.ReceiveMessages(e.ctx, "q", rsmq.ReceiveOptions{VT: 0, Max: 5, MaxReceiveCount: 1, DeadLetterQueue: "q-dlq"}); err != nil {
			t.Fatal(err)
		}
	}
	want("q", expired, rsmq.MessageStatus{Status: rsmq.StatusExpired})
	want("q", dead, rsmq.MessageStatus{Status: rsmq.StatusDeadLettered, Reason: "max receive count"})
	// A queue without status on records nothing: a deleted message is unknown.
	plain := e.send(t, "off", "p")
	m = e.receive(t, "off", 30)
	if _, _, err := e.q.DeleteByReceiptsMulti(e.ctx, []rsmq.QueueReceipts{{Queue: "off", Receipts: []rsmq.Receipt{m.Receipt()}, Acked: true}}); err != nil {
		t.Fatal(err)
	}
	want("off", plain, rsmq.MessageStatus{Status: rsmq.StatusUnknown})
	if n, _ := e.raw.Keys(e.ctx, "rsmq:wsmq:status:off:*").Result(); len(n) != 0 {
		t.Fatalf("status keys written for a queue with status off: %v", n)
	}
}

func TestReceiveOfAnEmptiedQueueSweepsExpiryFieldsANodeDeleteLeft(t *testing.T) {
	e := newEnv(t, rsmq.Options{})
	e.createQueue(t, "q", 30)
	for i := 0; i < 20; i++ {
		id := e.sendTTL(t, "q", "m", 0, 600)
		e.raw.ZRem(e.ctx, "rsmq:q", id) // Node's deleteMessage
		e.raw.HDel(e.ctx, "rsmq:q:Q", id, id+":rc", id+":fr")
	}
	if _, err := e.q.ReceiveMessages(e.ctx, "q", rsmq.ReceiveOptions{VT: rsmq.QueueDefault}); err != nil {
		t.Fatal(err)
	}
	if got := e.hashFields(t, "q"); !sameFields(got, queueAttrFields...) {
		t.Fatalf("hash fields after the receive of the emptied queue = %v", got)
	}
	// A queue that still holds a message keeps its fields: no scan.
	live := e.sendTTL(t, "q", "live", 0, 600)
	orphan := e.sendTTL(t, "q", "gone", 0, 600)
	e.raw.ZRem(e.ctx, "rsmq:q", orphan)
	e.raw.HDel(e.ctx, "rsmq:q:Q", orphan)
	if m := e.receive(t, "q", 30); m == nil || m.ID != live {
		t.Fatalf("received %+v, want %s", m, live)
	}
	if ok, _ := e.raw.HExists(e.ctx, "rsmq:q:Q", orphan+":exp").Result(); !ok {
		t.Fatal("receive of a non-empty queue scanned its hash")
	}
}
