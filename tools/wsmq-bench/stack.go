package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wsmq/wsmq/pkg/redisconn"

	"github.com/wsmq/wsmq/tools/internal/supervisor"
)

// target is the stack under test: addresses, and the pids whose CPU and
// memory are read from /proc (missing pids are left out of the report).
type target struct {
	gatewayURL    string // http://host:port
	gatewayAdmin  string // http://host:port of its admin listener (/metrics)
	publisherAddr string
	redisAddr     string
	publisherKey  string
	pprofURL      string         // http://host:port of the gateway's pprof listener, "" = none
	pids          map[string]int // "gateway", "publisher", "redis", "auth", "bench"
	gatewayEnv    []string       // settings given to the gateway (report)
	rdb           *redis.Client
	stop          func(context.Context) error
}

// benchGatewayEnv lifts the gateway's abuse limits, which a load test from
// one IP and one user would otherwise hit at once.
var benchGatewayEnv = []string{
	"WSMQ_CONN_RATE=100000",
	"WSMQ_LOGIN_RATE=100000",
	"WSMQ_MAX_CONNS_PER_USER=100000",
	"WSMQ_MAX_QUEUES_PER_USER=1000000", // every bench client has a queue of its own
}

// raiseNoFile lifts the soft open-files limit to the hard one; the stack's
// processes inherit it.
func raiseNoFile() (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return 0, err
		}
	}
	return lim.Cur, nil
}

// startStack starts the whole stack through the supervisor on free ports
// in dev mode (demo user, no publisher key).
func startStack(ctx context.Context, cfg *config, log io.Writer) (*target, error) {
	ports, err := supervisor.FreePorts()
	if err != nil {
		return nil, err
	}
	genv := append([]string{}, benchGatewayEnv...)
	var pprofAddr string
	if cfg.profile {
		port, err := supervisor.FreePort()
		if err != nil {
			return nil, err
		}
		pprofAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		genv = append(genv, "WSMQ_PPROF_LISTEN="+pprofAddr)
	}
	genv = append(genv, cfg.gatewayEnv...)
	s, err := supervisor.Start(ctx, supervisor.Config{
		BinDir:       cfg.bin,
		Ports:        ports,
		Dev:          true,
		GatewayEnv:   genv,
		Env:          cfg.stackEnv,
		Log:          log,
		ReadyTimeout: 60 * time.Second,
	})
	if err != nil {
		return nil, fmt.Errorf("start the stack: %w", err)
	}
	t := targetFromStack(s, genv)
	if pprofAddr != "" {
		t.pprofURL = "http://" + pprofAddr
	}
	return t, nil
}

// targetFromStack describes a supervised stack; Stop of the target stops it.
func targetFromStack(s *supervisor.Stack, genv []string) *target {
	t := &target{
		gatewayURL:    s.GatewayURL(0),
		gatewayAdmin:  "http://" + s.GatewayAdminAddr(0),
		publisherAddr: s.PublisherAddr(),
		redisAddr:     s.RedisAddr(),
		publisherKey:  s.PublisherKey(),
		pids:          map[string]int{"bench": os.Getpid()},
		gatewayEnv:    genv,
		stop:          s.Stop,
	}
	for name, pid := range s.PIDs() {
		if name == "gateway-0" {
			name = "gateway"
		}
		t.pids[name] = pid
	}
	t.rdb = redis.NewClient(&redis.Options{Addr: t.redisAddr, DisableIdentity: true})
	return t
}

// useTarget benches a stack that is already running at the flags' addresses.
func useTarget(ctx context.Context, cfg *config) (*target, error) {
	t := &target{
		gatewayURL:    strings.TrimSuffix(cfg.gatewayURL, "/"),
		gatewayAdmin:  strings.TrimSuffix(cfg.gatewayAdmin, "/"),
		publisherAddr: cfg.publisherAddr,
		redisAddr:     cfg.redisAddr,
		publisherKey:  cfg.publisherKey,
		pprofURL:      cfg.pprofURL,
		pids:          map[string]int{"bench": os.Getpid()},
		gatewayEnv:    []string{"(target: as configured by its operator)"},
		stop:          func(context.Context) error { return nil },
	}
	for k, v := range cfg.pids {
		t.pids[k] = v
	}
	if strings.Contains(t.redisAddr, "://") { // a WSMQ_REDIS_URL, Sentinel included
		tg, err := redisconn.ParseURL(t.redisAddr)
		if err != nil {
			return nil, fmt.Errorf("-redis: %w", err)
		}
		t.rdb = tg.Client(redisconn.Tuning{})
		if t.redisAddr, err = tg.MasterAddr(ctx); err != nil {
			return nil, fmt.Errorf("-redis: %w", err)
		}
	} else {
		t.rdb = redis.NewClient(&redis.Options{Addr: t.redisAddr, DisableIdentity: true})
	}
	if _, ok := t.pids["redis"]; !ok {
		if info, err := t.rdb.Info(ctx, "server").Result(); err == nil {
			for line := range strings.Lines(info) {
				if v, ok := strings.CutPrefix(strings.TrimSpace(line), "process_id:"); ok {
					if pid, err := strconv.Atoi(v); err == nil && processExists(pid) {
						t.pids["redis"] = pid
					}
				}
			}
		}
	}
	if err := t.rdb.Ping(ctx).Err(); err != nil {
		return nil, fmt.Errorf("target redis %s: %w", t.redisAddr, err)
	}
	return t, nil
}

func processExists(pid int) bool {
	_, err := os.Stat(fmt.Sprintf("/proc/%d", pid))
	return err == nil
}

// snapshot is what the stack has used up to one moment.
type snapshot struct {
	at       time.Time
	cpu      map[string]float64
	commands map[string]int64
	usec     map[string]int64
	gateway  map[string]int64 // commands the gateway sent, by its own metric
}

func (t *target) snapshot(ctx context.Context) (snapshot, error) {
	s := snapshot{at: time.Now(), cpu: map[string]float64{}}
	for name, pid := range t.pids {
		if c, err := procCPU(pid); err == nil {
			s.cpu[name] = c
		}
	}
	info, err := t.rdb.Info(ctx, "commandstats").Result()
	if err != nil {
		return s, fmt.Errorf("redis INFO commandstats: %w", err)
	}
	if s.commands, err = parseCommandStats(info); err != nil {
		return s, err
	}
	if s.usec, err = parseCommandUsec(info); err != nil {
		return s, err
	}
	s.gateway = t.gatewayCommands(ctx)
	return s, nil
}

// gatewayCommands scrapes wsmq_gateway_redis_commands_total from the
// gateway's /metrics; nil when it cannot.
func (t *target) gatewayCommands(ctx context.Context) map[string]int64 {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.gatewayAdmin+"/metrics", nil)
	if err != nil {
		return nil
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return nil
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil
	}
	return parseGatewayCommands(string(b))
}

// parseGatewayCommands reads the lines
// wsmq_gateway_redis_commands_total{cmd="evalsha"} 123 of a Prometheus text page.
func parseGatewayCommands(page string) map[string]int64 {
	const metric = `wsmq_gateway_redis_commands_total{cmd="`
	out := map[string]int64{}
	for line := range strings.Lines(page) {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), metric)
		if !ok {
			continue
		}
		name, val, ok := strings.Cut(rest, `"}`)
		if !ok {
			continue
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err != nil {
			continue
		}
		out[name] = int64(f)
	}
	return out
}

// usage is what the stack used between two snapshots.
type usage struct {
	seconds  float64
	cpu      map[string]float64
	commands map[string]int64
	total    int64
	usec     map[string]int64
	gateway  map[string]int64 // nil when the gateway's metrics were not read
	gwTotal  int64
}

func between(a, b snapshot) usage {
	u := usage{seconds: b.at.Sub(a.at).Seconds(), cpu: map[string]float64{}}
	for name, c := range b.cpu {
		if c0, ok := a.cpu[name]; ok {
			u.cpu[name] = round(c-c0, 2)
		}
	}
	u.commands, u.total = commandDelta(a.commands, b.commands)
	u.usec, _ = commandDelta(a.usec, b.usec)
	if a.gateway != nil && b.gateway != nil {
		u.gateway, u.gwTotal = commandDelta(a.gateway, b.gateway)
	}
	return u
}

// rss returns the gateway's RSS in KiB, or 0 when its pid is unknown.
func (t *target) rss(name string) int64 {
	pid, ok := t.pids[name]
	if !ok {
		return 0
	}
	kb, err := procRSSKB(pid)
	if err != nil {
		return 0
	}
	return kb
}

func round(v float64, digits int) float64 {
	p := 1.0
	for range digits {
		p *= 10
	}
	if v < 0 {
		return -float64(int64(-v*p+0.5)) / p
	}
	return float64(int64(v*p+0.5)) / p
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
