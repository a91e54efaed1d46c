package redisconn_test

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/wsmq/wsmq/pkg/redisconn"
	"github.com/wsmq/wsmq/pkg/testenv"
)

func TestMemoryUsageReadsUsedAndMaxMemoryFromInfo(t *testing.T) {
	r := testenv.StartRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	ctx := context.Background()

	used, max, err := redisconn.MemoryUsage(ctx, rdb)
	if err != nil || used <= 0 || max != 0 {
		t.Fatalf("no limit: MemoryUsage = %d, %d, %v; want used > 0, max 0", used, max, err)
	}
	if got := redisconn.MemoryRatio(used, max); got != 0 {
		t.Fatalf("ratio without a limit = %v, want 0", got)
	}
	const limit = 64 << 20
	if err := rdb.ConfigSet(ctx, "maxmemory", "64mb").Err(); err != nil {
		t.Fatal(err)
	}
	used, max, err = redisconn.MemoryUsage(ctx, rdb)
	if err != nil || max != limit || used <= 0 {
		t.Fatalf("limit 64mb: MemoryUsage = %d, %d, %v", used, max, err)
	}
	if got, want := redisconn.MemoryRatio(used, max), float64(used)/limit; got != want {
		t.Fatalf("ratio %v, want %v", got, want)
	}
	if err := rdb.Close(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := redisconn.MemoryUsage(ctx, rdb); err == nil {
		t.Fatal("MemoryUsage on a closed client succeeded")
	}
}
