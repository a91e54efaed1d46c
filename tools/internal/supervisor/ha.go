package supervisor

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wsmq/wsmq/pkg/redisconn"
)

// SentinelMasterName is the name the stack's sentinels monitor the master
// under (the master_name of RedisURL).
const SentinelMasterName = "wsmq"

// Sentinel timings of the local stack: a loopback dev stack, so a dead
// master is noticed after one second (deploy/HA.md has production values).
const (
	sentinelDownAfterMS       = 1000
	sentinelFailoverTimeoutMS = 3000
)

// haSpecs returns the start phase after the master: its replicas and the
// sentinels (empty without them). Sentinel confs are written afresh in
// sentinel-N/ (writable: a sentinel rewrites its conf with what it learns),
// so a kept data dir never brings back the ports of an earlier run.
func (s *Stack) haSpecs(redisBin string, env []string) ([]spec, error) {
	var out []spec
	master := strconv.Itoa(s.ports.Redis)
	for i, port := range s.replicaPorts {
		args := append(s.redisArgs(port, filepath.Join(s.dataDir, replicaName(i))),
			"--replicaof", "127.0.0.1", master)
		addr := s.addr(port)
		out = append(out, spec{
			name: replicaName(i), bin: redisBin, args: args, env: env,
			check: func(ctx context.Context) error { return replicaInSync(ctx, addr) },
		})
	}
	quorum := len(s.sentinelPorts)/2 + 1
	for i, port := range s.sentinelPorts {
		dir := filepath.Join(s.dataDir, sentinelName(i))
		conf := redisconn.SentinelConfig(port, dir, SentinelMasterName, s.ports.Redis, quorum,
			sentinelDownAfterMS*time.Millisecond, sentinelFailoverTimeoutMS*time.Millisecond)
		path := filepath.Join(dir, "sentinel.conf")
		if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
			return nil, fmt.Errorf("sentinel conf: %w", err)
		}
		addr := s.addr(port)
		out = append(out, spec{
			name: sentinelName(i), bin: redisBin, args: []string{path, "--sentinel"}, env: env,
			check: func(ctx context.Context) error {
				return sentinelReady(ctx, addr, s.RedisAddr(), len(s.replicaPorts), len(s.sentinelPorts)-1)
			},
		})
	}
	return out, nil
}

// replicaInSync answers nil once the node at addr answers PING and is a
// replica whose link to its master is up and synced.
func replicaInSync(ctx context.Context, addr string) error {
	if err := redisPing(ctx, addr); err != nil {
		return err
	}
	c := redis.NewClient(&redis.Options{Addr: addr, DisableIdentity: true, MaxRetries: -1, PoolSize: 1})
	defer func() { _ = c.Close() }()
	info, err := c.Info(ctx, "replication").Result()
	if err != nil {
		return err
	}
	kv := parseInfo(info)
	if kv["role"] != "slave" || kv["master_link_status"] != "up" || kv["master_sync_in_progress"] != "0" {
		return fmt.Errorf("replica not in sync: role %q, link %q", kv["role"], kv["master_link_status"])
	}
	return nil
}

// sentinelReady answers nil once the sentinel at addr names master as the
// master (SENTINEL get-master-addr-by-name) and knows the replicas and its
// peers, so a failover can start.
func sentinelReady(ctx context.Context, addr, master string, replicas, peers int) error {
	sc := redis.NewSentinelClient(&redis.Options{Addr: addr, DisableIdentity: true, MaxRetries: -1, PoolSize: 1})
	defer func() { _ = sc.Close() }()
	hp, err := sc.GetMasterAddrByName(ctx, SentinelMasterName).Result()
	if err != nil {
		return fmt.Errorf("SENTINEL get-master-addr-by-name: %w", err)
	}
	if len(hp) != 2 || net.JoinHostPort(hp[0], hp[1]) != master {
		return fmt.Errorf("sentinel names master %v, want %s", hp, master)
	}
	rs, err := sc.Replicas(ctx, SentinelMasterName).Result()
	if err != nil {
		return fmt.Errorf("SENTINEL replicas: %w", err)
	}
	ss, err := sc.Sentinels(ctx, SentinelMasterName).Result()
	if err != nil {
		return fmt.Errorf("SENTINEL sentinels: %w", err)
	}
	if len(rs) < replicas || len(ss) < peers {
		return fmt.Errorf("sentinel knows %d of %d replicas and %d of %d peers", len(rs), replicas, len(ss), peers)
	}
	return nil
}

// parseInfo maps the "key:value" lines of an INFO reply.
func parseInfo(s string) map[string]string {
	out := map[string]string{}
	for _, line := range strings.Split(s, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
			out[k] = v
		}
	}
	return out
}
