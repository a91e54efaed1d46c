package rsmq_test

import (
	"errors"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/wsmq/wsmq/pkg/rsmq"
	"github.com/wsmq/wsmq/pkg/testenv"
)

// cmdCalls reads how many times Redis ran command name (scripts' calls included).
func cmdCalls(t *testing.T, e *env, name string) int {
	t.Helper()
	info := e.raw.Info(e.ctx, "commandstats").Val()
	for _, line := range strings.Split(info, "\n") {
		if rest, ok := strings.CutPrefix(line, "cmdstat_"+name+":calls="); ok {
			n, _ := strconv.Atoi(rest[:strings.IndexByte(rest, ',')])
			return n
		}
	}
	return 0
}

func TestDurableSendFailsNotReplicatedWhileTheReplicaIsFrozenAndSucceedsAfter(t *testing.T) {
	e := newEnv(t, rsmq.Options{})
	replica := testenv.StartReplica(t, e.redis)
	e.createQueue(t, "q", 30)
	var timeouts atomic.Int32
	const timeout = 100 * time.Millisecond
	q := rsmq.New(e.raw, rsmq.Options{MinReplicas: 1, ReplicaTimeout: timeout,
		OnReplicaTimeout: func(int) { timeouts.Add(1) }})
	// A generous timeout where the replica is live: a loaded machine is slow.
	patient := rsmq.New(e.raw, rsmq.Options{MinReplicas: 1, ReplicaTimeout: 2 * time.Second})
	id, err := patient.SendMessage(e.ctx, "q", "ok", rsmq.QueueDefault)
	if err != nil {
		t.Fatalf("durable send with a live replica: %v", err)
	}
	rep := redis.NewClient(&redis.Options{Addr: replica.Addr()})
	t.Cleanup(func() { _ = rep.Close() })
	if rep.HGet(e.ctx, "rsmq:q:Q", id).Val() != "ok" {
		t.Fatal("an acknowledged durable send is not on the replica")
	}

	replica.Signal(syscall.SIGSTOP)
	frozen := true
	t.Cleanup(func() {
		if frozen {
			replica.Signal(syscall.SIGCONT)
		}
	})
	start := time.Now()
	id2, err := q.SendMessage(e.ctx, "q", "unconfirmed", rsmq.QueueDefault)
	took := time.Since(start)
	if !errors.Is(err, rsmq.ErrNotReplicated) {
		t.Fatalf("durable send to a frozen replica = %q, %v; want ErrNotReplicated", id2, err)
	}
	if took < timeout || took > timeout+time.Second {
		t.Fatalf("the failed send took %s, want about the replica timeout %s", took, timeout)
	}
	res, err := q.SendBatch(e.ctx, []rsmq.SendItem{{Queue: "q", Message: "b1"}, {Queue: "nosuch", Message: "b2"}})
	if err != nil || !errors.Is(res[0].Err, rsmq.ErrNotReplicated) || res[0].ID == "" || !errors.Is(res[1].Err, rsmq.ErrQueueNotFound) {
		t.Fatalf("durable batch to a frozen replica = %+v, %v; want ErrNotReplicated (with the id), then queue not found", res, err)
	}
	if timeouts.Load() != 2 {
		t.Fatalf("OnReplicaTimeout called %d times, want 2", timeouts.Load())
	}

	replica.Signal(syscall.SIGCONT)
	frozen = false
	testenv.Eventually(t, 10*time.Second, "durable sends to succeed once the replica is back", func() bool {
		_, err := q.SendMessage(e.ctx, "q", "after", rsmq.QueueDefault)
		return err == nil
	})
}

func TestDurableSendRetriedAfterLostReplyMakesAReplicatedWriteBeforeWait(t *testing.T) {
	e := newEnv(t, rsmq.Options{})
	testenv.StartReplica(t, e.redis)
	e.createQueue(t, "q", 30)
	p := testenv.StartReplyDropper(t, e.redis.Addr(), "RETRY-ME")
	rdb := redis.NewClient(&redis.Options{Addr: p.Addr(), MaxRetries: 3, MinRetryBackoff: time.Millisecond, MaxRetryBackoff: 5 * time.Millisecond})
	t.Cleanup(func() { _ = rdb.Close() })
	q := rsmq.New(rdb, rsmq.Options{MinReplicas: 1})
	if _, err := q.SendMessage(e.ctx, "q", "warm", 0); err != nil {
		t.Fatal(err)
	}
	before := cmdCalls(t, e, "hincrby")
	offset := func() int64 {
		info := e.raw.Info(e.ctx, "replication").Val()
		for _, line := range strings.Split(info, "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "master_repl_offset:"); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				return n
			}
		}
		return 0
	}
	p.Armed.Store(true)
	id, err := q.SendMessage(e.ctx, "q", "RETRY-ME", 0)
	if err != nil || p.Dropped.Load() != 1 {
		t.Fatalf("durable send through a dropped reply = %q, %v (dropped %d)", id, err, p.Dropped.Load())
	}
	// First attempt: totalsent +1; retry: the replicated no-op HINCRBY 0.
	if n := cmdCalls(t, e, "hincrby") - before; n != 2 {
		t.Fatalf("HINCRBY ran %d times, want 2 (the send, then the retry's no-op write)", n)
	}
	if got := e.raw.HGet(e.ctx, "rsmq:q:Q", "totalsent").Val(); got != "2" {
		t.Fatalf("totalsent %s, want 2: the retry stored nothing twice", got)
	}
	// The no-op moved the replication offset (it is replicated), so a WAIT
	// after it covers the first write.
	o1 := offset()
	if _, err := rdb.Eval(e.ctx, "return 1", nil).Result(); err != nil {
		t.Fatal(err)
	}
	if offset() != o1 {
		t.Fatal("a script without writes moved the replication offset: the check above proves nothing")
	}
}

func TestDurableSendReloadsTheScriptAfterNoscript(t *testing.T) {
	e := newEnv(t, rsmq.Options{})
	testenv.StartReplica(t, e.redis)
	e.createQueue(t, "q", 30)
	q := rsmq.New(e.raw, rsmq.Options{MinReplicas: 1})
	if _, err := q.SendMessage(e.ctx, "q", "a", 0); err != nil {
		t.Fatal(err)
	}
	if err := e.raw.ScriptFlush(e.ctx).Err(); err != nil { // a new master has no script cache
		t.Fatal(err)
	}
	if _, err := q.SendMessage(e.ctx, "q", "b", 0); err != nil {
		t.Fatalf("durable send after SCRIPT FLUSH: %v", err)
	}
	if n := e.raw.ZCard(e.ctx, "rsmq:q").Val(); n != 2 {
		t.Fatalf("%d messages stored, want 2", n)
	}
}
