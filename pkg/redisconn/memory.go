package redisconn

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// MemoryUsage returns Redis's used_memory and maxmemory in bytes, from one
// INFO memory call. max is 0 when no limit is set.
func MemoryUsage(ctx context.Context, rdb *redis.Client) (used, max int64, err error) {
	info, err := rdb.Info(ctx, "memory").Result()
	if err != nil {
		return 0, 0, fmt.Errorf("redis INFO memory: %w", err)
	}
	var haveUsed, haveMax bool
	for _, line := range strings.Split(info, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok {
			continue
		}
		switch k {
		case "used_memory":
			used, err = strconv.ParseInt(v, 10, 64)
			haveUsed = err == nil
		case "maxmemory":
			max, err = strconv.ParseInt(v, 10, 64)
			haveMax = err == nil
		}
		if err != nil {
			return 0, 0, fmt.Errorf("redis INFO memory: %s %q: %w", k, v, err)
		}
	}
	if !haveUsed || !haveMax {
		return 0, 0, fmt.Errorf("redis INFO memory: used_memory or maxmemory missing")
	}
	return used, max, nil
}
