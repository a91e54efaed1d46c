// Package supervisor runs wsmq's whole local stack as real processes on
// loopback: redis-server, the MongoDB-wire dev server, auth, publisher and
// one or more gateways. `make run` (tools/wsmq-run), the end-to-end tests
// and the benchmark use it.
//
// Each process runs in its own process group with the parent-death signal
// set, so a terminal Ctrl-C reaches only the supervisor (which stops the
// children in reverse order) and no child outlives a killed supervisor.
// Readiness is checked by health checks (Redis PING, gRPC health SERVING,
// the gateway's /readyz), never by sleeping.
package supervisor

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// DevAdminToken is the auth admin token of dev mode (public, dev only).
const DevAdminToken = "dev-admin-token"

// Defaults.
const (
	DefaultReadyTimeout = 30 * time.Second
	// StopGrace is how long a process may take to exit after SIGTERM
	// before it is killed.
	StopGrace = 10 * time.Second
)

// Config configures Start. Zero values mean the defaults.
type Config struct {
	// BinDir holds wsmq-auth, wsmq-publisher, wsmq-gateway and
	// wsmq-mongowire. "" means the directory of the running executable when
	// it holds wsmq-auth (bin/wsmq-run), else <repo>/bin (repo: the nearest
	// directory upwards holding go.work).
	BinDir string
	// AuthBin, PublisherBin, GatewayBin and MongoBin override the binary
	// paths one by one (tests build them elsewhere).
	AuthBin, PublisherBin, GatewayBin, MongoBin string
	// RedisServer is the redis-server path ("" = look it up in PATH).
	RedisServer string
	// DataDir holds redis/ and mongo/ data, kept between runs. "" means a
	// temp dir removed by Stop.
	DataDir string
	Ports   Ports
	// Persist turns on Redis persistence in DataDir: AOF with appendfsync
	// everysec, and a snapshot on shutdown (SIGTERM). Off: nothing is saved.
	Persist bool
	// Dev runs the services with WSMQ_DEV=1: demo/demo user, dev secrets,
	// keyless publisher, demo page. Outside dev mode Start generates an
	// admin token, a JWT secret and a publisher key unless Env sets them.
	Dev bool
	// Env holds extra KEY=VALUE settings for all three services (e.g.
	// WSMQ_VISIBILITY_TIMEOUT=2); they override the supervisor's own.
	Env []string
	// GatewayEnv holds extra settings only for the gateway(s).
	GatewayEnv []string
	// Gateways is the number of gateway replicas (default 1); replica i>0
	// listens on a free port.
	Gateways int
	// RedisReplicas is the number of Redis replicas of the master
	// (redis-server --replicaof), each on a free loopback port with its
	// own data dir (redis-replica-N/). Default 0.
	RedisReplicas int
	// Sentinels is the number of Redis Sentinels monitoring the master as
	// SentinelMasterName (quorum: a majority), each on a free loopback
	// port with its conf written afresh in sentinel-N/ at every start.
	// With sentinels every service gets a redis+sentinel:// URL. Default 0.
	Sentinels int
	// Log receives the processes' output, one line at a time, prefixed with
	// the process name ("redis      | ..."); JSON log lines are shown as
	// "time LEVEL msg key=value". nil discards it.
	Log io.Writer
	// ReadyTimeout bounds the wait for each start phase (default 30s).
	ReadyTimeout time.Duration
}

// Stack is a running local stack. Its methods are safe for concurrent use.
type Stack struct {
	cfg               Config
	ports             Ports
	gatewayPorts      []int
	gatewayAdminPorts []int
	replicaPorts      []int
	sentinelPorts     []int
	dataDir           string
	dataLock          *os.File
	tempData          bool
	mongoURI          string
	adminToken        string
	publisherKey      string
	publisherAdminKey string // "" in dev mode: the admin service is open

	sink   *logSink
	procs  []*proc // start order
	byName map[string]*proc
	exits  chan error

	stopOnce sync.Once
	stopErr  error
}

// Start checks every port is free (the error names the port and the flag /
// WSMQ_RUN_* setting that changes it), starts redis-server, wsmq-mongowire,
// auth, publisher and the gateway(s) in that order (Redis and MongoDB
// together, then auth and publisher together), and waits until each is ready by health checks: Redis PING,
// the mongo URI line and TCP, auth and publisher gRPC health SERVING, the
// gateway's /readyz 200. On failure it stops what it started and returns an
// error with the failing process's last log lines.
func Start(ctx context.Context, cfg Config) (*Stack, error) {
	if cfg.ReadyTimeout <= 0 {
		cfg.ReadyTimeout = DefaultReadyTimeout
	}
	if cfg.Gateways <= 0 {
		cfg.Gateways = 1
	}
	s := &Stack{
		cfg:    cfg,
		ports:  cfg.Ports.withDefaults(),
		byName: map[string]*proc{},
		exits:  make(chan error, 16),
	}
	bins, err := resolveBinaries(cfg)
	if err != nil {
		return nil, err
	}
	if err := checkPorts(s.ports); err != nil {
		return nil, err
	}
	s.gatewayPorts = []int{s.ports.Gateway}
	s.gatewayAdminPorts = []int{s.ports.GatewayAdmin}
	for i := 1; i < cfg.Gateways; i++ {
		p, err := FreePort()
		if err != nil {
			return nil, fmt.Errorf("free port for gateway-%d: %w", i, err)
		}
		a, err := FreePort()
		if err != nil {
			return nil, fmt.Errorf("free admin port for gateway-%d: %w", i, err)
		}
		s.gatewayPorts = append(s.gatewayPorts, p)
		s.gatewayAdminPorts = append(s.gatewayAdminPorts, a)
	}
	for i := range cfg.RedisReplicas {
		p, err := FreePort()
		if err != nil {
			return nil, fmt.Errorf("free port for redis-replica-%d: %w", i, err)
		}
		s.replicaPorts = append(s.replicaPorts, p)
	}
	for i := range cfg.Sentinels {
		p, err := FreePort()
		if err != nil {
			return nil, fmt.Errorf("free port for sentinel-%d: %w", i, err)
		}
		s.sentinelPorts = append(s.sentinelPorts, p)
	}
	if err := s.prepareData(); err != nil {
		return nil, err
	}
	s.prepareSecrets()
	s.mongoURI = "mongodb://" + s.addr(s.ports.Mongo) + "/"

	width := len("supervisor")
	for i := range cfg.Gateways {
		width = max(width, len(gatewayName(i)))
	}
	if cfg.RedisReplicas > 0 {
		width = max(width, len(replicaName(cfg.RedisReplicas-1)))
	}
	s.sink = &logSink{w: cfg.Log, width: width}
	phases, err := s.specs(bins)
	if err != nil {
		return nil, err
	}
	for _, phase := range phases {
		for _, sp := range phase {
			p := &proc{spec: sp, sink: s.sink, onExit: s.unexpectedExit}
			s.procs = append(s.procs, p)
			s.byName[sp.name] = p
		}
	}
	for _, phase := range phases {
		if err := s.startPhase(ctx, phase); err != nil {
			_ = s.Stop(context.Background())
			return nil, err
		}
	}
	return s, nil
}

// startPhase starts the processes of one phase together and waits until
// all are ready.
func (s *Stack) startPhase(ctx context.Context, phase []spec) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ReadyTimeout)
	defer cancel()
	errs := make([]error, len(phase))
	var wg sync.WaitGroup
	for i, sp := range phase {
		p := s.byName[sp.name]
		if err := p.start(); err != nil {
			errs[i] = err
			continue
		}
		wg.Go(func() { errs[i] = p.waitReady(ctx) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

type binaries struct{ redis, mongo, auth, publisher, gateway string }

func resolveBinaries(cfg Config) (binaries, error) {
	var b binaries
	redis := cfg.RedisServer
	if redis == "" {
		redis = "redis-server"
	}
	p, err := exec.LookPath(redis)
	if err != nil {
		msg := "redis-server not found: run `make deps` as root, or install it with `sudo apt-get install -y --no-install-recommends redis-server` (macOS: `brew install redis`)"
		if cfg.RedisServer != "" {
			msg = fmt.Sprintf("redis-server %q not found: %v", cfg.RedisServer, err)
		}
		return b, errors.New(msg)
	}
	b.redis = p
	dir := cfg.BinDir
	if dir == "" {
		dir, err = defaultBinDir()
		if err != nil {
			return b, err
		}
	}
	pick := func(override, name, hint string) (string, error) {
		path := override
		if path == "" {
			path = filepath.Join(dir, name)
		}
		if st, err := os.Stat(path); err != nil || st.IsDir() {
			return "", fmt.Errorf("%s not found: build it with `%s` (or set -bin to the directory holding it)", path, hint)
		}
		return path, nil
	}
	if b.mongo, err = pick(cfg.MongoBin, "wsmq-mongowire", "make tools"); err != nil {
		return b, err
	}
	if b.auth, err = pick(cfg.AuthBin, "wsmq-auth", "make build"); err != nil {
		return b, err
	}
	if b.publisher, err = pick(cfg.PublisherBin, "wsmq-publisher", "make build"); err != nil {
		return b, err
	}
	if b.gateway, err = pick(cfg.GatewayBin, "wsmq-gateway", "make build"); err != nil {
		return b, err
	}
	return b, nil
}

// defaultBinDir is the running executable's directory when it holds
// wsmq-auth, else <repo>/bin.
func defaultBinDir() (string, error) {
	if exe, err := os.Executable(); err == nil {
		dir := filepath.Dir(exe)
		if _, err := os.Stat(filepath.Join(dir, "wsmq-auth")); err == nil {
			return dir, nil
		}
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return filepath.Join(dir, "bin"), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("cannot find the binaries: set BinDir (wsmq-run -bin DIR) or run from the repository")
		}
		dir = parent
	}
}

func (s *Stack) prepareData() error {
	dir := s.cfg.DataDir
	if dir == "" {
		d, err := os.MkdirTemp("", "wsmq-stack-")
		if err != nil {
			return fmt.Errorf("data dir: %w", err)
		}
		dir, s.tempData = d, true
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	subs := []string{"redis", "mongo"}
	for i := range s.cfg.RedisReplicas {
		subs = append(subs, replicaName(i))
	}
	for i := range s.cfg.Sentinels {
		subs = append(subs, sentinelName(i))
	}
	for _, sub := range subs {
		if err := os.MkdirAll(filepath.Join(abs, sub), 0o700); err != nil {
			return fmt.Errorf("data dir: %w", err)
		}
	}
	// One stack per data dir: two redis-servers appending to one AOF, or
	// two SQLite writers, would corrupt it. The lock dies with the process.
	lock, err := os.OpenFile(filepath.Join(abs, ".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = lock.Close()
		return fmt.Errorf("data dir %s is in use by another running stack (stop it, or choose another -data / WSMQ_RUN_DATA): %w", abs, err)
	}
	s.dataDir, s.dataLock = abs, lock
	return nil
}

// prepareSecrets picks the admin token and publisher key: the dev ones in
// dev mode, else those in Env, else fresh random ones.
func (s *Stack) prepareSecrets() {
	env := envMap(s.cfg.Env)
	s.adminToken = env["WSMQ_AUTH_ADMIN_TOKEN"]
	if keys := env["WSMQ_PUBLISHER_KEYS"]; keys != "" {
		s.publisherKey = strings.TrimSpace(strings.Split(keys, ",")[0])
	}
	if s.cfg.Dev {
		if s.adminToken == "" {
			s.adminToken = DevAdminToken
		}
		return
	}
	if s.adminToken == "" {
		s.adminToken = randomToken()
	}
	if s.publisherKey == "" {
		s.publisherKey = randomToken()
	}
	s.publisherAdminKey = strings.TrimSpace(strings.Split(env["WSMQ_PUBLISHER_ADMIN_KEYS"], ",")[0])
	if s.publisherAdminKey == "" {
		s.publisherAdminKey = randomToken()
	}
}

func randomToken() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func envMap(env []string) map[string]string {
	m := map[string]string{}
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return m
}

func (s *Stack) addr(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

func gatewayName(i int) string { return "gateway-" + strconv.Itoa(i) }

func replicaName(i int) string { return "redis-replica-" + strconv.Itoa(i) }

func sentinelName(i int) string { return "sentinel-" + strconv.Itoa(i) }

// redisArgs are the redis-server arguments of a data node on port with its
// data in dir.
func (s *Stack) redisArgs(port int, dir string) []string {
	args := []string{
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--dir", dir,
		"--daemonize", "no", "--protected-mode", "yes", "--loglevel", "notice",
		// Keyevent notifications of sorted sets ("__keyevent@0__:zadd")
		// wake gateways for every send, senders without realtime (plain
		// Node rsmq) included.
		"--notify-keyspace-events", "Ez",
	}
	if s.cfg.RedisReplicas > 0 {
		// Redis waits 5 s by default for more replicas before a diskless
		// sync; every node may become the master.
		args = append(args, "--repl-diskless-sync-delay", "0")
	}
	if s.cfg.Persist {
		// Default save points stay, so a SIGTERM also writes a snapshot.
		return append(args, "--appendonly", "yes", "--appendfsync", "everysec")
	}
	return append(args, "--save", "", "--appendonly", "no")
}

// specs returns the processes in start phases: Redis and MongoDB first,
// then the Redis replicas and sentinels (when configured), then auth and
// publisher, then the gateways (each phase ready before the next).
func (s *Stack) specs(b binaries) ([][]spec, error) {
	redisArgs := s.redisArgs(s.ports.Redis, filepath.Join(s.dataDir, "redis"))
	base := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	if tz, ok := os.LookupEnv("TZ"); ok {
		base = append(base, "TZ="+tz)
	}
	svcEnv := func(own ...string) []string {
		env := append([]string{}, base...)
		if s.cfg.Dev {
			env = append(env, "WSMQ_DEV=1")
		} else {
			env = append(env, "WSMQ_DEV=0")
		}
		env = append(env, own...)
		return append(env, s.cfg.Env...)
	}
	redisURL := s.RedisURL()

	authEnv := svcEnv(
		"WSMQ_MONGO_URI="+s.mongoURI,
		"WSMQ_AUTH_LISTEN="+s.AuthAddr(),
		"WSMQ_AUTH_METRICS_LISTEN="+s.addr(s.ports.AuthAdmin),
	)
	pubEnv := svcEnv(
		"WSMQ_REDIS_URL="+redisURL,
		"WSMQ_PUBLISHER_LISTEN="+s.PublisherAddr(),
		"WSMQ_PUBLISHER_ADMIN_LISTEN="+s.addr(s.ports.PublisherAdmin),
		"WSMQ_PUBLISHER_HTTP_LISTEN="+s.PublisherHTTPAddr(),
	)
	var gatewayToken string
	if !s.cfg.Dev {
		env := envMap(s.cfg.Env)
		if env["WSMQ_AUTH_ADMIN_TOKEN"] == "" {
			authEnv = append(authEnv, "WSMQ_AUTH_ADMIN_TOKEN="+s.adminToken)
		}
		if env["WSMQ_JWT_SECRET"] == "" && env["WSMQ_JWT_KEYS_FILE"] == "" {
			authEnv = append(authEnv, "WSMQ_JWT_SECRET="+randomToken())
		}
		if env["WSMQ_PUBLISHER_KEYS"] == "" {
			pubEnv = append(pubEnv, "WSMQ_PUBLISHER_KEYS="+s.publisherKey)
		}
		if env["WSMQ_PUBLISHER_ADMIN_KEYS"] == "" {
			pubEnv = append(pubEnv, "WSMQ_PUBLISHER_ADMIN_KEYS="+s.publisherAdminKey)
		}
		if env["WSMQ_AUTH_GATEWAY_TOKEN"] == "" {
			// Auth and every gateway share it: the revocation stream.
			gatewayToken = randomToken()
			authEnv = append(authEnv, "WSMQ_AUTH_GATEWAY_TOKEN="+gatewayToken)
		}
	}
	authCheck := func(ctx context.Context) error { return grpcHealth(ctx, s.AuthAddr()) }
	pubCheck := func(ctx context.Context) error { return grpcHealth(ctx, s.PublisherAddr()) }

	var gateways []spec
	for i := range s.gatewayPorts {
		env := svcEnv(
			"WSMQ_GATEWAY_LISTEN="+s.GatewayAddr(i),
			"WSMQ_GATEWAY_ADMIN_LISTEN="+s.GatewayAdminAddr(i),
			"WSMQ_AUTH_ADDR="+s.AuthAddr(),
			"WSMQ_REDIS_URL="+redisURL,
		)
		if gatewayToken != "" {
			env = append(env, "WSMQ_AUTH_GATEWAY_TOKEN="+gatewayToken)
		}
		gateways = append(gateways, spec{
			name:  gatewayName(i),
			bin:   b.gateway,
			env:   append(env, s.cfg.GatewayEnv...),
			check: httpOK("http://" + s.GatewayAdminAddr(i) + "/readyz"),
		})
	}
	ha, err := s.haSpecs(b.redis, base)
	if err != nil {
		return nil, err
	}
	phases := [][]spec{
		{
			{
				name: "redis", bin: b.redis, args: redisArgs, env: base,
				check: func(ctx context.Context) error { return redisPing(ctx, s.RedisAddr()) },
			},
			{
				name: "mongo", bin: b.mongo, env: base,
				args: []string{"-listen", s.addr(s.ports.Mongo), "-data", filepath.Join(s.dataDir, "mongo"),
					// FerretDB logs every error reply (unsupported commands the
					// driver tries) as multi-line warnings: noise here.
					"-log-level", "error"},
				readyLine: "mongodb://",
				check:     func(ctx context.Context) error { return tcpDial(ctx, s.addr(s.ports.Mongo)) },
			},
		},
		{
			{name: "auth", bin: b.auth, args: []string{"serve"}, env: authEnv, check: authCheck},
			{name: "publisher", bin: b.publisher, env: pubEnv, check: pubCheck},
		},
		// After auth is ready: a gateway started earlier finds auth down and
		// its gRPC client then waits a reconnect backoff (1s) before /readyz
		// turns 200.
		gateways,
	}
	if len(ha) > 0 {
		phases = append(phases[:1], append([][]spec{ha}, phases[1:]...)...)
	}
	return phases, nil
}

// unexpectedExit reports a process that exited without being asked to.
func (s *Stack) unexpectedExit(name string, err error) {
	if err == nil {
		err = errors.New("exit status 0")
	}
	e := fmt.Errorf("%s exited unexpectedly: %w", name, err)
	s.sink.write("supervisor", e.Error())
	select {
	case s.exits <- e:
	default:
	}
}

// Exits delivers an error each time a process exits without Stop, Restart
// or Kill asking it to (a crash). wsmq-run stops the stack on the first.
func (s *Stack) Exits() <-chan error { return s.exits }

// RedisAddr is Redis's host:port.
func (s *Stack) RedisAddr() string { return s.addr(s.ports.Redis) }

// RedisURL is the URL every service of the stack is given: with
// sentinels redis+sentinel://sentinel,.../0?master_name=SentinelMasterName,
// else redis://host:port/0 of the master.
func (s *Stack) RedisURL() string {
	if len(s.sentinelPorts) == 0 {
		return "redis://" + s.RedisAddr() + "/0"
	}
	return "redis+sentinel://" + strings.Join(s.SentinelAddrs(), ",") + "/0?master_name=" + SentinelMasterName
}

// ReplicaAddrs are the host:port addresses of the Redis replicas (started
// as replicas; a failover may promote one).
func (s *Stack) ReplicaAddrs() []string {
	out := make([]string, len(s.replicaPorts))
	for i, p := range s.replicaPorts {
		out[i] = s.addr(p)
	}
	return out
}

// SentinelAddrs are the host:port addresses of the sentinels.
func (s *Stack) SentinelAddrs() []string {
	out := make([]string, len(s.sentinelPorts))
	for i, p := range s.sentinelPorts {
		out[i] = s.addr(p)
	}
	return out
}

// MongoURI is the MongoDB-wire server's mongodb:// URI.
func (s *Stack) MongoURI() string { return s.mongoURI }

// AuthAddr is the auth service's gRPC host:port.
func (s *Stack) AuthAddr() string { return s.addr(s.ports.Auth) }

// PublisherHTTPAddr is the publisher's HTTP/JSON API host:port.
func (s *Stack) PublisherHTTPAddr() string { return s.addr(s.ports.PublisherHTTP) }

// PublisherAdminKey is the publisher's admin key (QueueAdminService); ""
// in dev mode, where the admin service is open.
func (s *Stack) PublisherAdminKey() string { return s.publisherAdminKey }

// PublisherAddr is the publisher's gRPC host:port.
func (s *Stack) PublisherAddr() string { return s.addr(s.ports.Publisher) }

// GatewayAddr is the HTTP host:port of gateway replica i.
func (s *Stack) GatewayAddr(i int) string { return s.addr(s.gatewayPorts[i]) }

// GatewayAdminAddr is the admin host:port (/readyz /metrics) of gateway
// replica i.
func (s *Stack) GatewayAdminAddr(i int) string { return s.addr(s.gatewayAdminPorts[i]) }

// GatewayURL is http://host:port of gateway replica i.
func (s *Stack) GatewayURL(i int) string { return "http://" + s.GatewayAddr(i) }

// Gateways is the number of gateway replicas.
func (s *Stack) Gateways() int { return len(s.gatewayPorts) }

// Ports are the stack's ports (defaults filled in).
func (s *Stack) Ports() Ports { return s.ports }

// DataDir is the absolute data directory (redis/ and mongo/ under it).
func (s *Stack) DataDir() string { return s.dataDir }

// AdminToken is the auth admin token the stack uses (the dev one in dev mode).
func (s *Stack) AdminToken() string { return s.adminToken }

// PublisherKey is the publisher caller key ("" in dev mode unless Env set one).
func (s *Stack) PublisherKey() string { return s.publisherKey }

// Names are the process names in start order.
func (s *Stack) Names() []string {
	names := make([]string, len(s.procs))
	for i, p := range s.procs {
		names[i] = p.name
	}
	return names
}

// PIDs maps each running process's name ("redis", "mongo", "auth",
// "publisher", "gateway-0", ...) to its pid.
func (s *Stack) PIDs() map[string]int {
	m := map[string]int{}
	for _, p := range s.procs {
		if pid := p.pid(); pid != 0 {
			m[p.name] = pid
		}
	}
	return m
}

func (s *Stack) proc(name string) (*proc, error) {
	p, ok := s.byName[name]
	if !ok {
		return nil, fmt.Errorf("%q: %w (have %s)", name, errNotRunning, strings.Join(s.Names(), ", "))
	}
	return p, nil
}

// Restart stops the named process (SIGTERM, then SIGKILL after StopGrace)
// if it runs, starts it again with the same settings and waits until it is
// ready.
func (s *Stack) Restart(ctx context.Context, name string) error {
	p, err := s.proc(name)
	if err != nil {
		return err
	}
	_ = p.stop(ctx, StopGrace)
	if err := p.start(); err != nil {
		return err
	}
	rctx, cancel := context.WithTimeout(ctx, s.cfg.ReadyTimeout)
	defer cancel()
	return p.waitReady(rctx)
}

// Kill SIGKILLs the named process (a crash); Restart starts it again.
func (s *Stack) Kill(name string) error {
	p, err := s.proc(name)
	if err != nil {
		return err
	}
	return p.kill()
}

// Stop stops everything in reverse start order, gateways first so they
// return in-flight messages while Redis is still up: SIGTERM, then SIGKILL
// after StopGrace or when ctx ends. It reports the first error. After Stop
// returns no child process is left. A temp data dir is removed. Calling
// Stop again returns the first call's result.
func (s *Stack) Stop(ctx context.Context) error {
	s.stopOnce.Do(func() {
		var first error
		for i := len(s.procs) - 1; i >= 0; i-- {
			if err := s.procs[i].stop(ctx, StopGrace); err != nil && first == nil {
				first = err
			}
		}
		if s.dataLock != nil {
			_ = s.dataLock.Close() // releases the flock
		}
		if s.tempData {
			if err := os.RemoveAll(s.dataDir); err != nil && first == nil {
				first = err
			}
		}
		s.stopErr = first
	})
	return s.stopErr
}
