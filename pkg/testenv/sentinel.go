package testenv

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wsmq/wsmq/pkg/redisconn"
)

// HAMasterName is the name the sentinels of StartHA monitor.
const HAMasterName = "wsmq"

// HAOptions configures StartHA; zero values are the defaults.
type HAOptions struct {
	Replicas  int           // replicas of the master; default 1
	Sentinels int           // sentinels; default 3 (quorum: a majority)
	DownAfter time.Duration // down-after-milliseconds; default 1s
	// FailoverTimeout is the sentinels' failover-timeout; default 2s.
	FailoverTimeout time.Duration
}

// HA is a master, its replicas and the sentinels that monitor them, all
// redis-server processes on free loopback ports, stopped by t.Cleanup.
type HA struct {
	t         testing.TB
	Nodes     []*Redis // the data nodes; Nodes[0] started as the master
	sentinels []*exec.Cmd
	ports     []int
	outs      []*SyncBuffer
}

// StartHA starts a master, opts.Replicas replicas and opts.Sentinels
// sentinels (redis-server <conf> --sentinel, each with its own writable
// conf file) and returns once every replica is in sync and every sentinel
// knows the replicas and the other sentinels, so a failover can start.
func StartHA(t testing.TB, opts HAOptions) *HA {
	t.Helper()
	if opts.Replicas == 0 {
		opts.Replicas = 1
	}
	if opts.Sentinels == 0 {
		opts.Sentinels = 3
	}
	if opts.DownAfter == 0 {
		opts.DownAfter = time.Second
	}
	if opts.FailoverTimeout == 0 {
		opts.FailoverTimeout = 2 * time.Second
	}
	master := StartRedis(t)
	h := &HA{t: t, Nodes: []*Redis{master}}
	for range opts.Replicas {
		h.Nodes = append(h.Nodes, startReplica(t, master))
	}
	quorum := opts.Sentinels/2 + 1
	for i := range opts.Sentinels {
		dir := t.TempDir()
		port := FreePort(t)
		conf := redisconn.SentinelConfig(port, dir, HAMasterName, master.port, quorum, opts.DownAfter, opts.FailoverTimeout)
		path := filepath.Join(dir, "sentinel.conf")
		if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
			t.Fatalf("testenv: sentinel conf: %v", err)
		}
		cmd := exec.Command(master.bin, path, "--sentinel")
		out := &SyncBuffer{}
		cmd.Stdout, cmd.Stderr = out, out
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			t.Fatalf("testenv: start sentinel %d: %v", i, err)
		}
		h.sentinels = append(h.sentinels, cmd)
		h.ports = append(h.ports, port)
		h.outs = append(h.outs, out)
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			if t.Failed() {
				t.Logf("--- sentinel %d output:\n%s", i, out)
			}
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	for _, r := range h.Nodes[1:] {
		h.waitInSync(ctx, r)
	}
	h.waitAcks(ctx, master, len(h.Nodes)-1)
	for i := range h.sentinels {
		h.waitSentinelReady(ctx, i, opts.Replicas, opts.Sentinels-1)
	}
	return h
}

// StartReplica starts a replica of master (no sentinels) and returns once
// it is in sync.
func StartReplica(t testing.TB, master *Redis) *Redis {
	t.Helper()
	r := startReplica(t, master)
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	h := &HA{t: t}
	h.waitInSync(ctx, r)
	h.waitAcks(ctx, master, 1)
	return r
}

// waitAcks waits until n replicas acknowledge master's replication stream
// (a PUBLISH, which replicates and changes no key, then WAIT).
func (h *HA) waitAcks(ctx context.Context, master *Redis, n int) {
	h.t.Helper()
	c := redis.NewClient(&redis.Options{Addr: master.Addr(), DisableIdentity: true, PoolSize: 1})
	defer func() { _ = c.Close() }()
	for {
		var wait *redis.Cmd
		_, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
			p.Publish(ctx, "testenv:sync", "1")
			wait = p.Do(ctx, "wait", n, 200)
			return nil
		})
		if got, _ := wait.Int(); err == nil && got >= n {
			return
		}
		if ctx.Err() != nil {
			h.t.Fatalf("testenv: %d replicas of %s never acknowledged: %v", n, master.Addr(), ctx.Err())
		}
	}
}

func startReplica(t testing.TB, master *Redis) *Redis {
	t.Helper()
	// Redis waits 5 s by default for more replicas before a diskless sync.
	mc := redis.NewClient(&redis.Options{Addr: master.Addr(), DisableIdentity: true})
	err := mc.ConfigSet(context.Background(), "repl-diskless-sync-delay", "0").Err()
	_ = mc.Close()
	if err != nil {
		t.Fatalf("testenv: master %s: %v", master.Addr(), err)
	}
	r := &Redis{t: t, bin: master.bin, dir: t.TempDir(), port: FreePort(t),
		args: []string{"--replicaof", "127.0.0.1", strconv.Itoa(master.port)}}
	r.Start()
	t.Cleanup(r.Stop)
	return r
}

// SentinelAddrs are the sentinels' host:port addresses.
func (h *HA) SentinelAddrs() []string {
	out := make([]string, len(h.ports))
	for i, p := range h.ports {
		out[i] = "127.0.0.1:" + strconv.Itoa(p)
	}
	return out
}

// URL is the redis+sentinel:// URL of the monitored master, database 0.
func (h *HA) URL() string {
	return "redis+sentinel://" + strings.Join(h.SentinelAddrs(), ",") + "/0?master_name=" + HAMasterName
}

// sentinel returns a client of sentinel i; the caller closes it.
func (h *HA) sentinel(i int) *redis.SentinelClient {
	return redis.NewSentinelClient(&redis.Options{Addr: h.SentinelAddrs()[i], DisableIdentity: true})
}

// MasterAddr asks the sentinels (the first that answers) for the master.
func (h *HA) MasterAddr(ctx context.Context) (string, error) {
	var last error
	for i := range h.ports {
		sc := h.sentinel(i)
		hp, err := sc.GetMasterAddrByName(ctx, HAMasterName).Result()
		_ = sc.Close()
		if err == nil && len(hp) == 2 {
			return net.JoinHostPort(hp[0], hp[1]), nil
		}
		last = err
	}
	return "", fmt.Errorf("no sentinel named the master: %w", last)
}

// Node returns the data node at addr, nil if none.
func (h *HA) Node(addr string) *Redis {
	for _, r := range h.Nodes {
		if r.Addr() == addr {
			return r
		}
	}
	return nil
}

// Master returns the node the sentinels name as master.
func (h *HA) Master() *Redis {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	addr, err := h.MasterAddr(ctx)
	if err != nil {
		h.t.Fatalf("testenv: %v", err)
	}
	r := h.Node(addr)
	if r == nil {
		h.t.Fatalf("testenv: sentinels name master %s, not one of the nodes", addr)
	}
	return r
}

// KillMaster SIGKILLs the current master and returns it (stopped; Start
// brings it back, empty, and the sentinels then turn it into a replica).
func (h *HA) KillMaster() *Redis {
	h.t.Helper()
	m := h.Master()
	m.Stop()
	return m
}

// WaitFailover waits until every sentinel names a master other than old
// and that node reports role master, and returns the new master.
func (h *HA) WaitFailover(ctx context.Context, old string) *Redis {
	h.t.Helper()
	for {
		if addr, ok := h.agreedMaster(ctx); ok && addr != old {
			if r := h.Node(addr); r != nil && role(ctx, addr) == "master" {
				return r
			}
		}
		select {
		case <-ctx.Done():
			h.t.Fatalf("testenv: no failover away from %s: %v", old, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// agreedMaster returns the master when every sentinel names the same one.
func (h *HA) agreedMaster(ctx context.Context) (string, bool) {
	var addr string
	for i := range h.ports {
		sc := h.sentinel(i)
		hp, err := sc.GetMasterAddrByName(ctx, HAMasterName).Result()
		_ = sc.Close()
		if err != nil || len(hp) != 2 {
			return "", false
		}
		a := net.JoinHostPort(hp[0], hp[1])
		if addr != "" && a != addr {
			return "", false
		}
		addr = a
	}
	return addr, true
}

// WaitReplica waits until r (running) is a replica in sync with the master.
func (h *HA) WaitReplica(ctx context.Context, r *Redis) {
	h.t.Helper()
	h.waitInSync(ctx, r)
}

// role is the "role:" of INFO replication at addr, "" when it cannot be read.
func role(ctx context.Context, addr string) string {
	info := replicationInfo(ctx, addr)
	return info["role"]
}

func replicationInfo(ctx context.Context, addr string) map[string]string {
	c := redis.NewClient(&redis.Options{Addr: addr, DisableIdentity: true, MaxRetries: -1})
	defer func() { _ = c.Close() }()
	s, err := c.Info(ctx, "replication").Result()
	out := map[string]string{}
	if err != nil {
		return out
	}
	for _, line := range strings.Split(s, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
			out[k] = v
		}
	}
	return out
}

func (h *HA) waitInSync(ctx context.Context, r *Redis) {
	h.t.Helper()
	for {
		info := replicationInfo(ctx, r.Addr())
		if info["role"] == "slave" && info["master_link_status"] == "up" && info["master_sync_in_progress"] == "0" {
			return
		}
		select {
		case <-ctx.Done():
			h.t.Fatalf("testenv: replica %s never in sync: %v (%v)", r.Addr(), ctx.Err(), info)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (h *HA) waitSentinelReady(ctx context.Context, i, replicas, peers int) {
	h.t.Helper()
	sc := h.sentinel(i)
	defer func() { _ = sc.Close() }()
	for {
		rs, err1 := sc.Replicas(ctx, HAMasterName).Result()
		ss, err2 := sc.Sentinels(ctx, HAMasterName).Result()
		if err1 == nil && err2 == nil && len(rs) >= replicas && len(ss) >= peers {
			return
		}
		select {
		case <-ctx.Done():
			h.t.Fatalf("testenv: sentinel %d never saw %d replicas and %d peers (saw %d, %d): %v\n%s",
				i, replicas, peers, len(rs), len(ss), ctx.Err(), h.outs[i])
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// CommandCalls is how many times the server rdb talks to has run cmd (INFO
// commandstats: the commands run inside scripts count too), 0 before its
// first call.
func CommandCalls(t testing.TB, rdb redis.UniversalClient, cmd string) int {
	t.Helper()
	info, err := rdb.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatalf("testenv: INFO commandstats: %v", err)
	}
	for line := range strings.SplitSeq(info, "\n") {
		if rest, ok := strings.CutPrefix(line, "cmdstat_"+cmd+":calls="); ok {
			n, _ := strconv.Atoi(rest[:strings.IndexByte(rest, ',')])
			return n
		}
	}
	return 0
}

// VisibleNow counts the members of the RSMQ queue sorted set zset
// ("<ns>:<qname>") that Redis, by its own clock, would hand out now (score
// at most TIME in ms). rsmq's HiddenMsgs cannot say this: like Node's, it
// counts from the current second, so a message made visible this second
// counts as hidden.
func VisibleNow(t testing.TB, rdb redis.UniversalClient, zset string) int64 {
	t.Helper()
	ctx := context.Background()
	now, err := rdb.Time(ctx).Result()
	if err != nil {
		t.Fatalf("testenv: TIME: %v", err)
	}
	n, err := rdb.ZCount(ctx, zset, "-inf", strconv.FormatInt(now.UnixMilli(), 10)).Result()
	if err != nil {
		t.Fatalf("testenv: ZCOUNT %s: %v", zset, err)
	}
	return n
}
