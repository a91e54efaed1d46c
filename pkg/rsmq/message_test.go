package rsmq_test

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/wsmq/wsmq/pkg/rsmq"
	"github.com/wsmq/wsmq/pkg/testenv"
)

var wireIDRE = regexp.MustCompile(`^[0-9a-z]{10}[A-Za-z0-9]{22}$`)

func TestSendMessageStoresNodeFormat(t *testing.T) {
	e := newEnv(t, rsmq.Options{})
	e.createQueue(t, "q", 30)
	before := e.redisNowMS(t)
	id := e.send(t, "q", "hello wörld")
	after := e.redisNowMS(t)
	delayed, err := e.q.SendMessage(e.ctx, "q", "later", 60)
	if err != nil {
		t.Fatal(err)
	}

	keys := e.raw.Keys(e.ctx, "*").Val()
	slices.Sort(keys)
	if !slices.Equal(keys, []string{"rsmq:QUEUES", "rsmq:q", "rsmq:q:Q"}) {
		t.Fatalf("keys = %v", keys)
	}
	h := e.raw.HGetAll(e.ctx, "rsmq:q:Q").Val()
	fields := make([]string, 0, len(h))
	for f := range h {
		fields = append(fields, f)
	}
	slices.Sort(fields)
	want := []string{delayed, id, "created", "delay", "maxsize", "modified", "totalsent", "vt"}
	slices.Sort(want)
	if !slices.Equal(fields, want) {
		t.Fatalf("rsmq:q:Q fields = %v, want %v", fields, want)
	}
	if h[id] != "hello wörld" || h[delayed] != "later" || h["totalsent"] != "2" {
		t.Fatalf("rsmq:q:Q = %v", h)
	}
	score := int64(e.raw.ZScore(e.ctx, "rsmq:q", id).Val())
	if score < before || score > after {
		t.Fatalf("score %d not in [%d, %d]", score, before, after)
	}
	if ds := int64(e.raw.ZScore(e.ctx, "rsmq:q", delayed).Val()); ds < before+60000 || ds > e.redisNowMS(t)+60000 {
		t.Fatalf("delayed score %d, want about %d", ds, before+60000)
	}
}

func TestMessageIDHasRedisTimePrefixAndSortsInSendOrder(t *testing.T) {
	e := newEnv(t, rsmq.Options{})
	e.createQueue(t, "q", 30)
	var ids []string
	for i := range 50 {
		ids = append(ids, e.send(t, "q", strconv.Itoa(i)))
	}
	batch, err := e.q.SendBatch(e.ctx, []rsmq.SendItem{{Queue: "q", Message: "a"}, {Queue: "q", Message: "b"}})
	if err != nil {
		t.Fatal(err)
	}
	ids = append(ids, batch[0].ID, batch[1].ID)
	nowUS := e.redisNowMS(t) * 1000
	for i, id := range ids {
		if !wireIDRE.MatchString(id) {
			t.Fatalf("id %q is not 10 base36 + 22 [A-Za-z0-9]", id)
		}
		us, err := strconv.ParseInt(id[:10], 36, 64)
		if err != nil {
			t.Fatal(err)
		}
		if d := nowUS - us; d < -1e6 || d > 1e6 {
			t.Fatalf("id %s time prefix %d is %d µs away from Redis TIME", id, us, d)
		}
		if i > 0 && id <= ids[i-1] {
			t.Fatalf("id %d %s not after %s", i, id, ids[i-1])
		}
	}
	// The order is also the receive order, and Sent decodes the prefix.
	m := e.receive(t, "q", 60)
	us, _ := strconv.ParseInt(ids[0][:10], 36, 64)
	if m.ID != ids[0] || m.Sent != us/1000 {
		t.Fatalf("first receive %+v, want id %s sent %d", m, ids[0], us/1000)
	}
}

func TestReceiveStoresRCAndFirstReceiveTime(t *testing.T) {
	e := newEnv(t, rsmq.Options{})
	e.createQueue(t, "q", 30)
	id := e.send(t, "q", "m")
	before := e.redisNowMS(t)
	m := e.receive(t, "q", rsmq.QueueDefault)
	after := e.redisNowMS(t)
	if m == nil || m.ID != id || m.Message != "m" || m.RC != 1 || m.FR < before || m.FR > after {
		t.Fatalf("received %+v (window %d..%d)", m, before, after)
	}
	h := e.raw.HGetAll(e.ctx, "rsmq:q:Q").Val()
	if h[id+":rc"] != "1" || h[id+":fr"] != strconv.FormatInt(m.FR, 10) || h["totalrecv"] != "1" {
		t.Fatalf("rsmq:q:Q = %v", h)
	}
	if s := int64(e.raw.ZScore(e.ctx, "rsmq:q", id).Val()); s != m.FR+30000 {
		t.Fatalf("score %d, want fr+vt*1000 = %d", s, m.FR+30000)
	}
	if m := e.receive(t, "q", 0); m != nil {
		t.Fatalf("hidden message received: %+v", m)
	}
}

func TestReceiveHidesMessageUntilVisibilityTimeout(t *testing.T) {
	e := newEnv(t, rsmq.Options{})
	e.createQueue(t, "q", 1)
	id := e.send(t, "q", "m")
	first := e.receive(t, "q", rsmq.QueueDefault)
	if first == nil || first.ID != id {
		t.Fatalf("first receive %+v", first)
	}
	if m := e.receive(t, "q", rsmq.QueueDefault); m != nil {
		t.Fatalf("received during vt: %+v", m)
	}
	var again *rsmq.Message
	testenv.Eventually(t, 5*time.Second, "message to come back after vt", func() bool {
		again = e.receive(t, "q", rsmq.QueueDefault)
		return again != nil
	})
	if time.Duration(again.Sent) < 0 || again.ID != id || again.RC != 2 || again.FR != first.FR {
		t.Fatalf("second receive %+v, want rc 2 and fr %d", again, first.FR)
	}
	if a, _ := e.q.GetQueueAttributes(e.ctx, "q"); a.TotalRecv != 2 || a.TotalSent != 1 {
		t.Fatalf("attributes %+v", a)
	}
}

func TestDelayHoldsMessageBack(t *testing.T) {
	e := newEnv(t, rsmq.Options{})
	cfg := rsmq.DefaultQueueConfig()
	cfg.Delay = 1
	if err := e.q.CreateQueue(e.ctx, "q", cfg); err != nil {
		t.Fatal(err)
	}
	sentAt := e.redisNowMS(t)
	id := e.send(t, "q", "queue delay") // queue's delay: 1 s
	if _, err := e.q.SendMessage(e.ctx, "q", "long delay", 3600); err != nil {
		t.Fatal(err)
	}
	if m := e.receive(t, "q", 30); m != nil {
		t.Fatalf("delayed message received at once: %+v", m)
	}
	var m *rsmq.Message
	testenv.Eventually(t, 5*time.Second, "delayed message", func() bool {
		m = e.receive(t, "q", 30)
		return m != nil
	})
	if m.ID != id || e.redisNowMS(t) < sentAt+1000 {
		t.Fatalf("received %+v too early or wrong", m)
	}
	if m := e.receive(t, "q", 30); m != nil {
		t.Fatalf("message delayed by an hour received: %+v", m)
	}
	// Delay 0 overrides the queue's delay.
	now, err := e.q.SendMessage(e.ctx, "q", "now", 0)
	if err != nil {
		t.Fatal(err)
	}
	if m := e.receive(t, "q", 30); m == nil || m.ID != now {
		t.Fatalf("delay 0 message not received at once: %+v", m)
	}
}

func TestPopMessageRemovesMessage(t *testing.T) {
	e := newEnv(t, rsmq.Options{})
	e.createQueue(t, "q", 30)
	a := e.send(t, "q", "a")
	b := e.send(t, "q", "b")
	m, err := e.q.PopMessage(e.ctx, "q")
	if err != nil || m == nil || m.ID != a || m.Message != "a" || m.RC != 1 || m.FR == 0 {
		t.Fatalf("PopMessage = %+v, %v", m, err)
	}
	if e.raw.ZScore(e.ctx, "rsmq:q", a).Err() != redis.Nil || e.raw.HExists(e.ctx, "rsmq:q:Q", a).Val() {
		t.Fatal("popped message still stored")
	}
	// A received message keeps its fr and counts its rc when popped.
	r := e.receive(t, "q", 0)
	m, err = e.q.PopMessage(e.ctx, "q")
	if err != nil || m == nil || m.ID != b || m.RC != 2 || m.FR != r.FR {
		t.Fatalf("PopMessage = %+v, %v; received before %+v", m, err, r)
	}
	if n := e.raw.HLen(e.ctx, "rsmq:q:Q").Val(); n != 7 { // vt delay maxsize created modified totalsent totalrecv
		t.Fatalf("hash has %d fields: %v", n, e.raw.HGetAll(e.ctx, "rsmq:q:Q").Val())
	}
	if e.raw.HGet(e.ctx, "rsmq:q:Q", "totalrecv").Val() != "3" {
		t.Fatal("totalrecv not 3")
	}
	if m, err := e.q.PopMessage(e.ctx, "q"); m != nil || err != nil {
		t.Fatalf("PopMessage on empty queue = %+v, %v", m, err)
	}
}

func TestDeleteMessageRemovesAllFields(t *testing.T) {
	e := newEnv(t, rsmq.Options{})
	e.createQueue(t, "q", 30)
	id := e.send(t, "q", "m")
	e.receive(t, "q", 30)
	ok, err := e.q.DeleteMessage(e.ctx, "q", id)
	if err != nil || !ok {
		t.Fatalf("DeleteMessage = %v, %v", ok, err)
	}
	if n := e.raw.ZCard(e.ctx, "rsmq:q").Val(); n != 0 {
		t.Fatalf("zset has %d members", n)
	}
	for _, f := range []string{id, id + ":rc", id + ":fr"} {
		if e.raw.HExists(e.ctx, "rsmq:q:Q", f).Val() {
			t.Fatalf("field %s left", f)
		}
	}
	if ok, err := e.q.DeleteMessage(e.ctx, "q", id); ok || err != nil {
		t.Fatalf("second DeleteMessage = %v, %v", ok, err)
	}
}

func TestChangeMessageVisibilityMovesScore(t *testing.T) {
	e := newEnv(t, rsmq.Options{})
	e.createQueue(t, "q", 30)
	id := e.send(t, "q", "m")
	e.receive(t, "q", 3600)
	ok, err := e.q.ChangeMessageVisibility(e.ctx, "q", id, 0)
	if err != nil || !ok {
		t.Fatalf("ChangeMessageVisibility = %v, %v", ok, err)
	}
	if m := e.receive(t, "q", 30); m == nil || m.ID != id || m.RC != 2 {
		t.Fatalf("message not visible after vt 0: %+v", m)
	}
	before := e.redisNowMS(t)
	if ok, err := e.q.ChangeMessageVisibility(e.ctx, "q", id, 100); err != nil || !ok {
		t.Fatalf("ChangeMessageVisibility = %v, %v", ok, err)
	}
	if s := int64(e.raw.ZScore(e.ctx, "rsmq:q", id).Val()); s < before+100000 || s > e.redisNowMS(t)+100000 {
		t.Fatalf("score %d, want now+100000", s)
	}
	other := "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	if ok, err := e.q.ChangeMessageVisibility(e.ctx, "q", other, 0); ok || err != nil {
		t.Fatalf("ChangeMessageVisibility on unknown id = %v, %v", ok, err)
	}
	if e.raw.ZScore(e.ctx, "rsmq:q", other).Err() != redis.Nil {
		t.Fatal("unknown id added to the zset")
	}
}

func TestConcurrentReceiversGetEachMessageExactlyOnce(t *testing.T) {
	e := newEnv(t, rsmq.Options{})
	e.createQueue(t, "q", 3600)
	const total = 2000
	sent := map[string]bool{}
	for b := 0; b < total/rsmq.MaxBatch; b++ {
		items := make([]rsmq.SendItem, rsmq.MaxBatch)
		for i := range items {
			items[i] = rsmq.SendItem{Queue: "q", Message: fmt.Sprint(b, i), Delay: rsmq.QueueDefault}
		}
		res, err := e.q.SendBatch(e.ctx, items)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res {
			if r.Err != nil {
				t.Fatal(r.Err)
			}
			sent[r.ID] = true
		}
	}
	var (
		mu   sync.Mutex
		got  = map[string]int{}
		wg   sync.WaitGroup
		errs = make(chan error, 8)
	)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				m, err := e.q.ReceiveMessage(e.ctx, "q", rsmq.QueueDefault)
				if err != nil {
					errs <- err
					return
				}
				if m == nil {
					return
				}
				mu.Lock()
				got[m.ID]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if len(got) != total {
		t.Fatalf("received %d distinct messages, want %d", len(got), total)
	}
	for id, n := range got {
		if n != 1 || !sent[id] {
			t.Fatalf("message %s received %d times (sent: %v)", id, n, sent[id])
		}
	}
}

func TestStaleReceiptChangesNothingCurrentReceiptActs(t *testing.T) {
	e := newEnv(t, rsmq.Options{})
	e.createQueue(t, "q", 30)
	id := e.send(t, "q", "m")
	stale := e.receive(t, "q", 0) // visible again at once
	current := e.receive(t, "q", 3600)
	other := e.send(t, "q", "other")
	if stale.ID != id || current.ID != id || current.RC != 2 {
		t.Fatalf("receives %+v, %+v", stale, current)
	}
	score := e.raw.ZScore(e.ctx, "rsmq:q", id).Val()

	deleteIn := func(rs ...rsmq.Receipt) (int, error) {
		n, skipped, err := e.q.DeleteByReceiptsMulti(e.ctx, []rsmq.QueueReceipts{{Queue: "q", Receipts: rs}})
		if err == nil && len(skipped) > 0 {
			err = skipped[0].Err
		}
		return n, err
	}
	if n, err := e.q.ChangeVisibilityByReceipts(e.ctx, "q", []rsmq.Receipt{stale.Receipt()}, 0); n != 0 || err != nil {
		t.Fatalf("stale ChangeVisibilityByReceipts = %d, %v", n, err)
	}
	if s := e.raw.ZScore(e.ctx, "rsmq:q", id).Val(); s != score {
		t.Fatalf("stale receipt moved score %v -> %v", score, s)
	}
	if n, err := deleteIn(stale.Receipt()); n != 0 || err != nil {
		t.Fatalf("stale DeleteByReceiptsMulti = %d, %v", n, err)
	}
	if !e.raw.HExists(e.ctx, "rsmq:q:Q", id).Val() {
		t.Fatal("stale receipt deleted the message")
	}
	// A receipt of a message never received (rc 0 stored as absent) does not match rc 1.
	if n, err := deleteIn(rsmq.Receipt{ID: other, RC: 1}); n != 0 || err != nil {
		t.Fatalf("DeleteByReceiptsMulti on unreceived message = %d, %v", n, err)
	}

	before := e.redisNowMS(t)
	if n, err := e.q.ChangeVisibilityByReceipts(e.ctx, "q", []rsmq.Receipt{current.Receipt()}, 100); n != 1 || err != nil {
		t.Fatalf("current ChangeVisibilityByReceipts = %d, %v", n, err)
	}
	if s := int64(e.raw.ZScore(e.ctx, "rsmq:q", id).Val()); s < before+100000 {
		t.Fatalf("score %d, want >= %d", s, before+100000)
	}
	n, err := deleteIn(stale.Receipt(), current.Receipt())
	if n != 1 || err != nil {
		t.Fatalf("DeleteByReceiptsMulti = %d, %v", n, err)
	}
	for _, f := range []string{id, id + ":rc", id + ":fr"} {
		if e.raw.HExists(e.ctx, "rsmq:q:Q", f).Val() {
			t.Fatalf("field %s left", f)
		}
	}
	if e.raw.ZScore(e.ctx, "rsmq:q", id).Err() != redis.Nil {
		t.Fatal("zset member left")
	}
	if n, err := e.q.ChangeVisibilityByReceipts(e.ctx, "q", []rsmq.Receipt{current.Receipt()}, 0); n != 0 || err != nil {
		t.Fatalf("ChangeVisibilityByReceipts on deleted message = %d, %v", n, err)
	}
}

func TestRealtimePublishesQueueSizeOnEverySend(t *testing.T) {
	e := newEnv(t, rsmq.Options{})
	sub := e.raw.Subscribe(e.ctx, "rsmq:rt:q")
	defer func() { _ = sub.Close() }()
	if _, err := sub.Receive(e.ctx); err != nil { // subscription confirmed
		t.Fatal(err)
	}
	rt := rsmq.New(e.raw, rsmq.Options{Realtime: true})
	e.createQueue(t, "q", 30)
	e.send(t, "q", "plain client: no notification")
	if _, err := rt.SendMessage(e.ctx, "q", "a", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := rt.SendMessage(e.ctx, "q", "delayed", 3600); err != nil {
		t.Fatal(err)
	}
	if _, err := rt.SendBatch(e.ctx, []rsmq.SendItem{{Queue: "q", Message: "b"}}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"2", "3", "4"} {
		ctx, cancel := context.WithTimeout(e.ctx, 5*time.Second)
		msg, err := sub.ReceiveMessage(ctx)
		cancel()
		if err != nil {
			t.Fatalf("waiting for %q: %v", want, err)
		}
		if msg.Channel != "rsmq:rt:q" || msg.Payload != want {
			t.Fatalf("got %s %q, want rsmq:rt:q %q", msg.Channel, msg.Payload, want)
		}
	}
}

func TestErrorNameMapsSentinels(t *testing.T) {
	e := newEnv(t, rsmq.Options{})
	_, err := e.q.SendMessage(e.ctx, "nope", "m", 0)
	if rsmq.ErrorName(err) != "queueNotFound" || !errors.Is(err, rsmq.ErrQueueNotFound) {
		t.Fatalf("err %v name %q", err, rsmq.ErrorName(err))
	}
	if rsmq.ErrorName(errors.New("other")) != "" {
		t.Fatal("foreign error named")
	}
}

func TestConcurrentSendsGetDistinctIncreasingTimePrefixes(t *testing.T) {
	e := newEnv(t, rsmq.Options{})
	e.createQueue(t, "q", 30)
	var (
		mu       sync.Mutex
		prefixes = map[string]bool{}
		wg       sync.WaitGroup
	)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			last := ""
			for range 100 {
				id, err := e.q.SendMessage(e.ctx, "q", "m", 0)
				if err != nil {
					t.Error(err)
					return
				}
				if id[:10] <= last {
					t.Errorf("prefix %s not after %s in one goroutine", id[:10], last)
				}
				last = id[:10]
				mu.Lock()
				prefixes[id[:10]] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(prefixes) != 800 {
		t.Fatalf("%d distinct time prefixes for 800 sends of one Client", len(prefixes))
	}
}
