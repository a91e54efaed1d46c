package rsmq_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/wsmq/wsmq/pkg/rsmq"
	"github.com/wsmq/wsmq/pkg/testenv"
)

// env is one test's Redis, a raw go-redis client to check the stored format,
// and an rsmq Client on it.
type env struct {
	redis *testenv.Redis
	raw   *redis.Client
	q     *rsmq.Client
	ctx   context.Context
}

func newEnv(t testing.TB, opts rsmq.Options) *env {
	t.Helper()
	r := testenv.StartRedis(t)
	raw := redis.NewClient(&redis.Options{Addr: r.Addr()})
	t.Cleanup(func() { _ = raw.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return &env{redis: r, raw: raw, q: rsmq.New(raw, opts), ctx: ctx}
}

// createQueue creates qname with vt and the default delay and maxsize.
func (e *env) createQueue(t testing.TB, qname string, vt int) {
	t.Helper()
	cfg := rsmq.DefaultQueueConfig()
	cfg.VT = vt
	if err := e.q.CreateQueue(e.ctx, qname, cfg); err != nil {
		t.Fatalf("CreateQueue(%q): %v", qname, err)
	}
}

func (e *env) send(t testing.TB, qname, msg string) string {
	t.Helper()
	id, err := e.q.SendMessage(e.ctx, qname, msg, rsmq.QueueDefault)
	if err != nil {
		t.Fatalf("SendMessage(%q): %v", qname, err)
	}
	return id
}

func (e *env) receive(t testing.TB, qname string, vt int) *rsmq.Message {
	t.Helper()
	m, err := e.q.ReceiveMessage(e.ctx, qname, vt)
	if err != nil {
		t.Fatalf("ReceiveMessage(%q): %v", qname, err)
	}
	return m
}

// redisNowMS returns Redis TIME in unix ms.
func (e *env) redisNowMS(t testing.TB) int64 {
	t.Helper()
	tm, err := e.raw.Time(e.ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	return tm.UnixMilli()
}

func intp(v int) *int { return &v }

// roundTrips is a go-redis hook counting commands and pipelines sent: one
// round trip each. The commands go-redis sends to set up a new connection
// (HELLO, CLIENT SETINFO) are not counted.
type roundTrips struct{ n atomic.Int64 }

func connSetup(cmd redis.Cmder) bool {
	switch cmd.Name() {
	case "hello", "client", "auth", "select":
		return true
	}
	return false
}

func (h *roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if !connSetup(cmd) {
			h.n.Add(1)
		}
		return next(ctx, cmd)
	}
}

func (h *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if len(cmds) > 0 && !connSetup(cmds[0]) {
			h.n.Add(1)
		}
		return next(ctx, cmds)
	}
}

// countedClient returns an rsmq Client on its own go-redis client whose
// round trips are counted.
func (e *env) countedClient(t testing.TB, opts rsmq.Options) (*rsmq.Client, *roundTrips) {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: e.redis.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	h := &roundTrips{}
	rdb.AddHook(h)
	return rsmq.New(rdb, opts), h
}
