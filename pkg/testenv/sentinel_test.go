package testenv_test

import (
	"context"
	"testing"
	"time"

	"github.com/wsmq/wsmq/pkg/redisconn"
	"github.com/wsmq/wsmq/pkg/testenv"
)

func TestHAFailoverPromotesTheReplicaAndTheFailoverClientFollows(t *testing.T) {
	ha := testenv.StartHA(t, testenv.HAOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rdb, err := redisconn.New(ha.URL(), redisconn.Tuning{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
	if err := rdb.Set(ctx, "k", "before", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := rdb.Wait(ctx, 1, time.Second).Result(); err != nil || n != 1 {
		t.Fatalf("WAIT 1 = %d, %v", n, err)
	}
	old := ha.KillMaster()
	start := time.Now()
	m := ha.WaitFailover(ctx, old.Addr())
	t.Logf("failover to %s took %s", m.Addr(), time.Since(start))
	testenv.Eventually(t, 10*time.Second, "the failover client to write to the new master", func() bool {
		return rdb.Set(ctx, "k2", "after", 0).Err() == nil
	})
	if v, err := rdb.Get(ctx, "k").Result(); err != nil || v != "before" {
		t.Fatalf("GET k on the new master = %q, %v; want the replicated write", v, err)
	}
	old.Start()
	ha.WaitReplica(ctx, old)
}
