package delivery

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wsmq/wsmq/pkg/redisconn"
	"github.com/wsmq/wsmq/pkg/rsmq"
	"github.com/wsmq/wsmq/pkg/testenv"
)

// infoField reads one numeric field of INFO section (e.g. stats
// total_commands_processed, commandstats cmdstat_evalsha calls).
func (h *harness) infoField(section, prefix string) int64 {
	h.t.Helper()
	info, err := h.rdb.Info(context.Background(), section).Result()
	if err != nil {
		h.t.Fatalf("INFO %s: %v", section, err)
	}
	for _, line := range strings.Split(info, "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), prefix); ok {
			end := strings.IndexAny(rest, ",\r")
			if end < 0 {
				end = len(rest)
			}
			n, _ := strconv.ParseInt(rest[:end], 10, 64)
			return n
		}
	}
	return 0
}

func (h *harness) commands() int64 { return h.infoField("stats", "total_commands_processed:") }

// receiveRuns counts runs of the receive script on one queue: each runs
// ZRANGEBYSCORE once per queue, and nothing else of the engine does.
func (h *harness) receiveRuns() int64 {
	return h.infoField("commandstats", "cmdstat_zrangebyscore:calls=")
}

// redisNow is Redis TIME in unix ms.
func (h *harness) redisNow() int64 {
	h.t.Helper()
	tm, err := h.rdb.Time(context.Background()).Result()
	if err != nil {
		h.t.Fatal(err)
	}
	return tm.UnixMilli()
}

func TestRedisAtMaxmemoryKeepsDeliveringAndDeletingAndMemoryFalls(t *testing.T) {
	h := newHarness(t, Config{})
	ctx := context.Background()
	const n = 400
	if err := h.q.CreateQueue(ctx, "q", rsmq.DefaultQueueConfig()); err != nil {
		t.Fatal(err)
	}
	items := make([]rsmq.SendItem, n)
	for i := range items {
		items[i] = rsmq.SendItem{Queue: "q", Message: strings.Repeat("m", 4096)}
	}
	if _, err := h.q.SendBatch(ctx, items); err != nil {
		t.Fatal(err)
	}
	before, _, err := redisconn.MemoryUsage(ctx, h.rdb)
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range [][2]string{{"maxmemory-policy", "noeviction"}, {"maxmemory", strconv.FormatInt(before-256<<10, 10)}} {
		if err := h.rdb.ConfigSet(ctx, kv[0], kv[1]).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := h.q.SendMessage(ctx, "q", "one more", 0); err == nil || !strings.Contains(err.Error(), "OOM") {
		t.Fatalf("send at maxmemory: %v; want Redis's OOM refusal (else the test proves nothing)", err)
	}

	sink := newSink(64, true)
	h.subscribe(sink, "q", false)
	testenv.Eventually(t, waitTimeout, "every message delivered", func() bool { return sink.count() == n })
	testenv.Eventually(t, waitTimeout, "every message deleted", func() bool { return h.attrs("q").Msgs == 0 })
	after, _, err := redisconn.MemoryUsage(ctx, h.rdb)
	if err != nil {
		t.Fatal(err)
	}
	if after > before-1<<20 {
		t.Fatalf("used_memory %d after draining %d KiB, %d before: memory did not come back", after, n*4, before)
	}
	// Below maxmemory again: sends are accepted and receives go on.
	h.send("q", "after")
	testenv.Eventually(t, waitTimeout, "the next message", func() bool { return sink.count() == n+1 })
}

func TestGatewayClockOffsetNeitherDelaysNorBusyLoops(t *testing.T) {
	const lateBound = 700 // ms after the Redis-time due moment
	for _, skew := range []time.Duration{5 * time.Second, -5 * time.Second} {
		t.Run("offset "+skew.String(), func(t *testing.T) {
			h := newHarness(t, Config{
				VisibilityTimeout: 2,
				Now:               func() time.Time { return time.Now().Add(skew) },
			})
			ctx := context.Background()
			if err := h.q.CreateQueue(ctx, "q", rsmq.DefaultQueueConfig()); err != nil {
				t.Fatal(err)
			}
			id, err := h.q.SendMessage(ctx, "q", "delayed", 2)
			if err != nil {
				t.Fatal(err)
			}
			due := int64(h.rdb.ZScore(ctx, "rsmq:q", id).Val())
			start, startCmds := time.Now(), h.commands()
			sink := newSink(10, true)
			h.subscribe(sink, "q", true) // manual and never acked: redelivered after the vt

			testenv.Eventually(t, waitTimeout, "the delayed message", func() bool { return sink.count() >= 1 })
			if late := h.redisNow() - due; late > lateBound {
				t.Fatalf("delayed message arrived %d ms after it was due", late)
			}
			first := sink.delivered()[0]
			testenv.Eventually(t, waitTimeout, "the redelivery", func() bool { return sink.count() >= 2 })
			if late := h.redisNow() - (first.FR + 2000); late > lateBound {
				t.Fatalf("redelivery arrived %d ms after the visibility timeout ran out", late)
			}
			if got := sink.delivered()[1]; got.ID != id || got.RC != 2 {
				t.Fatalf("redelivered %+v", got)
			}
			cmds, secs := h.commands()-startCmds, time.Since(start).Seconds()
			if rate := float64(cmds) / secs; rate > 50 {
				t.Fatalf("%d Redis commands in %.1f s (%.0f/s): the engine polls against its own clock", cmds, secs, rate)
			}
		})
	}
}

// onFailure is a go-redis hook that calls fn after the first command that
// failed on a connection error (not an error reply such as NOSCRIPT).
// Hooks wrap go-redis's retries, so fn sees the server's state when the
// caller gets the error, before it can pull again.
type onFailure struct {
	once sync.Once
	fn   func()
}

func isReply(err error) bool {
	var re redis.Error
	return errors.As(err, &re)
}

func (h *onFailure) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *onFailure) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if err != nil && !isReply(err) {
			h.once.Do(h.fn)
		}
		return err
	}
}

func (h *onFailure) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// newSlowReceiveHarness is a harness whose engine receives through a proxy
// that, once armed, holds back the reply of one receive of queue marker for
// 600 ms, past the receive client's 200 ms read timeout; that client, as
// the gateway's, does not retry, and runs hook on every call. The receive
// script is loaded first (a warm-up delivery on another queue), so the
// held call is a run of the script, not a NOSCRIPT refusal.
func newSlowReceiveHarness(t *testing.T, marker string, vt int, hook redis.Hook) (*harness, *testenv.ReplyDropper) {
	t.Helper()
	var p *testenv.ReplyDropper
	h := newHarnessWith(t, Config{
		VisibilityTimeout: vt,
		Prefetch:          1,
		SweepInterval:     time.Minute, // only the pull path talks to Redis in these tests
		HotSweepInterval:  time.Minute,
	}, func(addr string) *redis.Client {
		p = testenv.StartReplyDelayer(t, addr, marker, 600*time.Millisecond)
		c := redis.NewClient(&redis.Options{Addr: p.Addr(), MaxRetries: -1, ReadTimeout: 200 * time.Millisecond})
		c.AddHook(hook)
		return c
	})
	warm := newSink(1, true)
	ws := h.subscribe(warm, "warm", false)
	h.send("warm", "w")
	testenv.Eventually(t, waitTimeout, "the warm-up delivery", func() bool { return warm.count() == 1 })
	testenv.Eventually(t, waitTimeout, "the warm-up delete", func() bool { return h.attrs("warm").Msgs == 0 })
	ws.Close(context.Background()) // from here on, every receive is a pull of marker
	testenv.Eventually(t, waitTimeout, "the warm-up subscription idle", func() bool { return isIdle(ws) })
	return h, p
}

func TestReceiveWhoseReplyTimesOutRunsOnceAndThePullRecovers(t *testing.T) {
	var before, runsAtFailure atomic.Int64
	var m2Touched atomic.Bool
	var m2 string
	var h *harness
	failure := &onFailure{fn: func() {
		runsAtFailure.Store(h.receiveRuns() - before.Load())
		m2Touched.Store(h.rdb.HExists(context.Background(), "rsmq:SLOW:Q", m2+":rc").Val())
	}}
	h, p := newSlowReceiveHarness(t, "SLOW", 2, failure)

	m1 := h.send("SLOW", "m1")
	m2 = h.send("SLOW", "m2")
	before.Store(h.receiveRuns())
	p.Armed.Store(true)
	sink := newSink(10, true)
	h.subscribe(sink, "SLOW", false)
	select {
	case <-p.Acted():
	case <-time.After(waitTimeout):
		t.Fatal("no receive went through the proxy")
	}
	if n := runsAtFailure.Load(); n == 0 {
		t.Fatal("the receive whose reply was late never failed: go-redis retried it")
	} else if n != 1 {
		t.Fatalf("Redis ran the receive script %d times for the one call whose reply was late, want 1 (no retry)", n)
	}
	if m2Touched.Load() {
		t.Fatal("m2 was received by a phantom run of the failed call")
	}
	// The normal pull recovers: m2 now, m1 (rc 1 from the lost run) once
	// its visibility runs out.
	testenv.Eventually(t, waitTimeout, "both messages", func() bool { return sink.count() == 2 })
	got := sink.delivered()
	if got[0].ID != m2 || got[0].RC != 1 || got[1].ID != m1 || got[1].RC != 2 {
		t.Fatalf("delivered %s rc %d, %s rc %d; want m2 rc 1, then m1 rc 2", got[0].ID, got[0].RC, got[1].ID, got[1].RC)
	}
	testenv.Eventually(t, waitTimeout, "both deleted", func() bool { return h.attrs("SLOW").Msgs == 0 })
}

// TestWakeUpsDuringTheRetryDelayLeaveThePullToTheRetryTimer: a wake-up
// that arrives while a receive is failing (the subscription is running, so
// it is marked rerun), or during the back-off after the failure, does not
// pull at once: a busy queue on a failing Redis would otherwise be pulled
// as fast as its notifications come. The retry timer pulls, after
// receiveRetryDelay.
func TestWakeUpsDuringTheRetryDelayLeaveThePullToTheRetryTimer(t *testing.T) {
	var sub atomic.Pointer[Subscription]
	var before, runsAtFailure atomic.Int64
	var failedAt atomic.Int64 // unix ns
	var h *harness
	failure := &onFailure{fn: func() {
		// Still inside the failing call: the subscription is running.
		sub.Load().Signal()
		runsAtFailure.Store(h.receiveRuns() - before.Load())
		failedAt.Store(time.Now().UnixNano())
	}}
	// m1, taken by the lost run, stays hidden for the whole test (vt 30).
	h, p := newSlowReceiveHarness(t, "BUSY", 30, failure)

	h.send("BUSY", "m1")
	m2 := h.send("BUSY", "m2")
	before.Store(h.receiveRuns())
	p.Armed.Store(true)
	sink := newSink(10, true)
	sub.Store(h.subscribe(sink, "BUSY", false))
	testenv.Eventually(t, waitTimeout, "the held receive failed", func() bool { return failedAt.Load() != 0 })
	if n := runsAtFailure.Load(); n != 1 {
		t.Fatalf("Redis ran the receive script %d times for the one call whose reply was late, want 1", n)
	}
	// More wake-ups during the back-off: none may pull at once either.
	h.send("BUSY", "m3")
	sub.Load().Signal()
	testenv.Eventually(t, waitTimeout, "m2 delivered by the retry", func() bool { return sink.count() >= 1 })
	took := time.Since(time.Unix(0, failedAt.Load())) // >= the delivery's delay: Eventually polls after it
	if got := sink.delivered()[0]; got.ID != m2 {
		t.Fatalf("first delivery %s, want m2 %s", got.ID, m2)
	}
	if took < receiveRetryDelay-50*time.Millisecond {
		t.Fatalf("m2 delivered %s after the failed receive: a wake-up pulled before the %s retry delay", took, receiveRetryDelay)
	}
}

func TestDisconnectReconnectCyclesDoNotDeadLetter(t *testing.T) {
	h := newHarness(t, Config{MaxReceiveCount: 10})
	id := h.send("q", "m")
	ctx := context.Background()
	for i := range 20 {
		sink := newSink(10, true)
		s, err := h.e.Subscribe(ctx, sink, "q", true, nil) // manual: written, never acked
		if err != nil {
			t.Fatal(err)
		}
		testenv.Eventually(t, waitTimeout, "delivery "+strconv.Itoa(i), func() bool { return sink.count() == 1 })
		if m := sink.delivered()[0]; m.ID != id || m.RC != 1 {
			t.Fatalf("cycle %d: delivered %+v, want rc 1", i, m)
		}
		s.Close(ctx) // the connection goes away: returned
	}
	if h.rdb.HExists(ctx, "rsmq:q:Q", id+":rc").Val() {
		t.Fatalf("rc %s after 20 returns", h.rdb.HGet(ctx, "rsmq:q:Q", id+":rc").Val())
	}
	if n := h.rdb.ZCard(ctx, "rsmq:q-dlq").Val(); n != 0 {
		t.Fatalf("%d messages in the dead-letter queue", n)
	}
	if v := h.visible("q"); v != 1 {
		t.Fatalf("%d visible, want the message", v)
	}
}

func TestCorruptMessageGoesToTheDLQWhileHealthyOnesAreDeliveredAndDeleted(t *testing.T) {
	logs := &records{}
	h := newHarnessLog(t, Config{}, nil, logs)
	ctx := context.Background()
	healthy := []string{h.send("q", "h1"), h.send("q", "h2"), h.send("q", "h3")}
	h.rdb.ZAdd(ctx, "rsmq:q", redis.Z{Score: 0, Member: "foreign-id"})
	h.rdb.HSet(ctx, "rsmq:q:Q", "foreign-id", "foreign body")
	badRC := h.send("q", "bad rc")
	h.rdb.HSet(ctx, "rsmq:q:Q", badRC+":rc", "NaN")
	// A neighbour queue whose sorted set is a string, served by the same
	// engine (its pulls share calls with q's).
	h.send("broken", "lost")
	h.rdb.Set(ctx, "rsmq:broken", "not a zset", 0)
	h.send("other", "o1")

	sink := newSink(64, true)
	h.subscribe(sink, "broken", false)
	h.subscribe(sink, "q", false)
	h.subscribe(sink, "other", false)
	testenv.Eventually(t, waitTimeout, "the healthy messages", func() bool { return sink.count() == 4 })
	var got []string
	for _, m := range sink.delivered() {
		got = append(got, m.ID)
	}
	slices.Sort(got)
	want := append(slices.Clone(healthy), h.rdb.ZRange(ctx, "rsmq:other", 0, -1).Val()...)
	if len(want) != 4 {
		// other's message may already be deleted; compare q's only.
		want = healthy
		got = slices.DeleteFunc(got, func(id string) bool { return !slices.Contains(healthy, id) })
	}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("delivered %v, want %v", got, want)
	}
	testenv.Eventually(t, waitTimeout, "q emptied", func() bool { return h.attrs("q").Msgs == 0 })
	for _, id := range []string{"foreign-id", badRC} {
		if err := h.rdb.ZScore(ctx, "rsmq:q-dlq", id).Err(); err != nil {
			t.Fatalf("%s not in q-dlq: %v", id, err)
		}
	}
	if body := h.rdb.HGet(ctx, "rsmq:q-dlq:Q", "foreign-id").Val(); body != "foreign body" {
		t.Fatalf("dead-lettered body %q", body)
	}
	// Each move is logged with its reason (an operator finds why a message
	// left its queue without a client ever seeing it).
	const moved = "malformed message moved to dead-letter queue"
	testenv.Eventually(t, waitTimeout, "both moves logged", func() bool { return len(logs.withMessage(moved)) == 2 })
	reasons := map[string]string{}
	for _, rec := range logs.withMessage(moved) {
		id, _ := attr(rec, "id")
		reason, _ := attr(rec, "reason")
		q, _ := attr(rec, "queue")
		dlq, _ := attr(rec, "dlq")
		if rec.Level != slog.LevelWarn || q.String() != "q" || dlq.String() != "q-dlq" {
			t.Fatalf("move of %s logged at %v queue %q dlq %q, want WARN q -> q-dlq", id, rec.Level, q, dlq)
		}
		reasons[id.String()] = reason.String()
	}
	if want := map[string]string{"foreign-id": "invalid id", badRC: "rc is not an integer"}; !maps.Equal(reasons, want) {
		t.Fatalf("moves logged with reasons %v, want %v", reasons, want)
	}
	_, err := h.q.ReceiveMessage(ctx, "broken", 0)
	if !errors.Is(err, rsmq.ErrCorrupt) {
		t.Fatalf("broken queue: %v, want ErrCorrupt", err)
	}
}
