// Command gateway is the wsmq websocket gateway: clients connect with their
// tokens, subscribe to their queues and receive every message pushed to
// them, at least once, from RSMQ queues in Redis.
//
// This file is the whole wiring: configuration, dependencies, servers, and
// the ordered stop. Request handling is in internal/server (HTTP edge) and
// internal/wsconn (one websocket), delivery in internal/delivery, settings
// in internal/config.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"

	pkgconfig "github.com/wsmq/wsmq/pkg/config"
	"github.com/wsmq/wsmq/pkg/redisconn"
	"github.com/wsmq/wsmq/pkg/rsmq"
	"github.com/wsmq/wsmq/pkg/serve"
	"github.com/wsmq/wsmq/pkg/tlsconf"
	"github.com/wsmq/wsmq/pkg/userqueue"
	"github.com/wsmq/wsmq/services/gateway/internal/authclient"
	"github.com/wsmq/wsmq/services/gateway/internal/config"
	"github.com/wsmq/wsmq/services/gateway/internal/delivery"
	"github.com/wsmq/wsmq/services/gateway/internal/metrics"
	"github.com/wsmq/wsmq/services/gateway/internal/quota"
	"github.com/wsmq/wsmq/services/gateway/internal/server"
	"github.com/wsmq/wsmq/services/gateway/internal/ticket"
	"github.com/wsmq/wsmq/services/gateway/internal/wsconn"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], pkgconfig.OSEnv()); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, err)
			return
		}
		slog.Error("gateway stopped", "err", err)
		os.Exit(1)
	}
}

// Timings of the gateway's life.
const (
	probeInterval   = time.Second
	evictionTimeout = 3 * time.Second
	redisSpareConns = 16  // beyond one per worker: subscribes, deletes, pub/sub
	redisMemoryWarn = 0.9 // used/maxmemory above which the gateway logs that Redis is filling up
)

// run wires the gateway and serves until ctx ends; then it stops taking
// connections, returns every connection's in-flight messages and closes the
// sockets with 1001, within WSMQ_SHUTDOWN_TIMEOUT.
func run(ctx context.Context, args []string, env pkgconfig.Env) error {
	cfg, err := config.Parse(args, env)
	if err != nil {
		return err
	}
	log := serve.Logger(cfg.LogLevel, "gateway")

	m := metrics.New()
	// One watch for both clients: they follow the same master.
	master := &redisconn.MasterWatch{OnChange: func(old, addr string) {
		m.MasterChanged(old, addr)
		if old != "" {
			log.Warn("redis master changed: failover followed", "from", old, "to", addr)
		}
	}}
	rdb, err := redisconn.New(cfg.RedisURL, redisconn.Tuning{PoolSize: cfg.Workers + redisSpareConns, Master: master})
	if err != nil {
		return err
	}
	defer func() { _ = rdb.Close() }()
	rdb.AddHook(m.RedisHook())
	rdb.AddHook(redisconn.NoscriptHook(m.ScriptReloads.Inc))
	if err := checkEviction(ctx, rdb, cfg, log); err != nil {
		return err
	}
	// Receives run on a client that never retries: a receive retried after
	// a read timeout runs twice and hides the first run's messages. The
	// engine's next pull recovers instead.
	recv, err := redisconn.New(cfg.RedisURL, redisconn.Tuning{PoolSize: cfg.Workers + 1, MaxRetries: -1, Master: master})
	if err != nil {
		return err
	}
	defer func() { _ = recv.Close() }()
	recv.AddHook(m.RedisHook())
	recv.AddHook(redisconn.NoscriptHook(m.ScriptReloads.Inc))
	queues := rsmq.New(rdb, rsmq.Options{Namespace: cfg.NS, Realtime: true, ReceiveClient: recv})
	engine := delivery.New(delivery.Config{
		Wake:              wakeMode(ctx, rdb, cfg.Wake, log),
		DB:                rdb.Options().DB,
		VisibilityTimeout: cfg.VisibilityTimeout,
		Prefetch:          cfg.Prefetch,
		MaxReceiveCount:   cfg.MaxReceiveCount,
		Workers:           cfg.Workers,
		SweepInterval:     cfg.SweepInterval,
		HotSweepInterval:  cfg.HotSweepInterval,
		QueueConfig:       cfg.Queue,
	}, rdb, queues, m, log)
	engine.Start()
	defer engine.Stop()

	ao := authclient.Options{Addr: cfg.AuthAddr, Timeout: cfg.AuthTimeout, WatchToken: cfg.AuthGatewayToken}
	if cfg.AuthTLS {
		if ao.TLS, err = tlsconf.Client(tlsconf.Files{Cert: cfg.AuthTLSClientCert, Key: cfg.AuthTLSClientKey, CA: cfg.AuthTLSCA,
			CertVar: "WSMQ_AUTH_TLS_CLIENT_CERT", KeyVar: "WSMQ_AUTH_TLS_CLIENT_KEY", CAVar: "WSMQ_AUTH_TLS_CA"}); err != nil {
			return err
		}
	}
	auth, err := authclient.DialWith(ao)
	if err != nil {
		return err
	}
	defer func() { _ = auth.Close() }()

	queueQuota := quota.New(quota.Config{MaxQueuesPerUser: cfg.MaxQueuesPerUser, MarkInterval: cfg.ServedMarkInterval},
		userqueue.New(rdb, cfg.NS), log)
	scfg := server.Config{
		Conn: wsconn.Options{
			ConnBuffer:   cfg.ConnBuffer,
			MaxSubs:      cfg.MaxSubsPerConn,
			WriteTimeout: cfg.WriteTimeout,
			PingInterval: cfg.PingInterval,
			ReadLimit:    cfg.ReadLimit,
			CommandRate:  cfg.CommandRate,
			Queues:       queueQuota,
		},
		AllowedOrigins:      cfg.AllowedOrigins,
		MaxConnsPerUser:     cfg.MaxConnsPerUser,
		ConnRatePerIP:       cfg.ConnRatePerIP,
		LoginRatePerIP:      cfg.LoginRatePerIP,
		ReverifyInterval:    cfg.ReverifyInterval,
		ShutdownSpread:      cfg.ShutdownSpread,
		RevocationRetention: cfg.RevocationRetention,
		Demo:                cfg.Demo,

		TrustedProxies:        cfg.TrustedProxies,
		Tickets:               ticket.New(rdb, ticket.Options{Namespace: cfg.NS, TTL: cfg.TicketTTL}),
		AllowQueryCredentials: cfg.Dev || cfg.AllowQueryCreds,
		LoginFreeFails:        cfg.LoginFreeFails,
		LoginFreeFailsPerIP:   cfg.LoginFreeFailsIP,
		LoginBackoffMax:       cfg.LoginBackoffMax,
	}
	if cfg.Dev {
		scfg.DemoSend = server.DemoSender{Auth: auth, Queues: queues, Queue: cfg.Queue}
	}
	srv := server.New(scfg, engine, auth, m, log)
	srv.Start()

	redisProbe := &serve.Probe{Name: "redis", Check: func(ctx context.Context) error { return rdb.Ping(ctx).Err() },
		Interval: probeInterval, Log: log}
	authProbe := &serve.Probe{Name: "auth", Check: auth.Ready, Interval: probeInterval, Log: log}
	g := serve.NewGroup(log)
	g.Go(redisProbe.Run)
	g.Go(authProbe.Run)
	g.Go(queueQuota.Run)
	g.Go(func(ctx context.Context) { watchRedisMemory(ctx, rdb, m, log) })
	if cfg.AuthGatewayToken != "" {
		g.Go(func(ctx context.Context) { followRevocations(ctx, auth, srv, log) })
	} else {
		log.Warn("WSMQ_AUTH_GATEWAY_TOKEN is not set: revocations reach sockets only at the periodic re-verify (WSMQ_REVERIFY_INTERVAL)")
	}
	// Stopped in this order: the public edge (no new sockets, then every
	// socket returns its messages and closes), then the admin listeners.
	// ReadTimeout bounds reading a request; a websocket is hijacked before
	// it matters (gorilla clears the deadlines) and keeps its own.
	public := serve.NewHTTP(srv, log)
	public.ReadTimeout, public.IdleTimeout = cfg.HTTPReadTimeout, cfg.HTTPIdleTimeout
	if _, err := g.Listen("http", "WSMQ_GATEWAY_LISTEN", cfg.Listen, edge{public, srv}); err != nil {
		return err
	}
	if cfg.AdminListen != "" {
		admin := serve.NewHTTP(serve.AdminHandler(serve.AdminOptions{
			Metrics: promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{}),
			Readiness: []serve.Readiness{
				{Name: redisProbe.Name, Up: redisProbe.Up},
				{Name: authProbe.Name, Up: authProbe.Up},
			},
		}), log)
		if _, err := g.Listen("admin", "WSMQ_GATEWAY_ADMIN_LISTEN", cfg.AdminListen, admin); err != nil {
			g.Close()
			return err
		}
	}
	if cfg.PprofListen != "" {
		if _, err := g.Listen("pprof", "WSMQ_PPROF_LISTEN", cfg.PprofListen, serve.NewHTTP(serve.AdminHandler(serve.AdminOptions{Pprof: true}), log)); err != nil {
			g.Close()
			return err
		}
	}
	log.Info("gateway starting", "auth", cfg.AuthAddr, "dev", cfg.Dev, "trusted_proxies", cfg.TrustedProxies.Len(),
		"query_credentials", scfg.AllowQueryCredentials)
	err = g.Run(ctx, cfg.ShutdownTimeout)
	log.Info("gateway stopped")
	return err
}

// edge is the public listener: the HTTP server, then the websockets it
// upgraded (which the HTTP server no longer tracks).
type edge struct {
	http serve.HTTP
	ws   *server.Server
}

// Serve serves the public edge on corkable connections (wsconn.CorkListener):
// a batch of frames and its confirm ping leave a socket in one write.
func (e edge) Serve(ln net.Listener) error { return e.http.Serve(wsconn.CorkListener(ln)) }

func (e edge) Shutdown(ctx context.Context) error {
	return errors.Join(e.http.Shutdown(ctx), e.ws.Shutdown(ctx))
}

// followRevocations closes the sockets of every session the auth service
// revokes, as it announces them, until ctx ends (reconnecting with
// back-off; the periodic re-verify covers what a broken stream missed).
func followRevocations(ctx context.Context, auth *authclient.Client, srv *server.Server, log *slog.Logger) {
	auth.OnWatchError(func(err error, retryIn time.Duration) {
		log.Warn("revocation stream broken; reconnecting", "err", err, "retry_in", retryIn)
	})
	_ = auth.WatchRevocations(ctx, srv.Revoke, func() { log.Info("following revocations") })
}

// watchRedisMemory keeps the wsmq_gateway_redis_memory_ratio gauge and
// logs when Redis crosses redisMemoryWarn. It is not a readiness condition:
// the gateway is what drains a full Redis, so taking it out of rotation
// then would stop the cure (the publisher refuses sends instead).
func watchRedisMemory(ctx context.Context, rdb *redis.Client, m *metrics.Metrics, log *slog.Logger) {
	t := time.NewTicker(probeInterval)
	defer t.Stop()
	high := false
	for {
		used, max, err := redisconn.MemoryUsage(ctx, rdb)
		if err == nil {
			r := redisconn.MemoryRatio(used, max)
			m.RedisMemory.Set(r)
			if now := r >= redisMemoryWarn; now != high {
				high = now
				log.Warn("redis memory", "used", used, "max", max, "high", high)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// wakeMode picks what wakes served queues from the setting and what Redis
// publishes (notify-keyspace-events), and logs the choice once. A mode
// that Redis does not support falls back to realtime with a warning. Redis
// does not replicate the setting, and the keyspace modes replace the
// realtime channel: a master reached by a failover without it leaves every
// queue to the sweep, so set it on every node.
func wakeMode(ctx context.Context, rdb *redis.Client, want string, log *slog.Logger) delivery.Wake {
	if want == config.WakeRealtime {
		log.Info("queues are woken by realtime notifications; senders without them (plain Node rsmq) are found by the sweep")
		return delivery.WakeRealtime
	}
	cctx, cancel := context.WithTimeout(ctx, evictionTimeout)
	defer cancel()
	n, err := rsmq.KeyspaceNotifications(cctx, rdb)
	if err != nil {
		log.Warn("could not read notify-keyspace-events; queues are woken by realtime notifications and the sweep", "err", err)
		return delivery.WakeRealtime
	}
	w := delivery.WakeRealtime
	switch {
	case (want == config.WakeAuto || want == config.WakeKeyevent) && n.KeyEvent:
		w = delivery.WakeKeyevent
	case (want == config.WakeAuto || want == config.WakeKeyspace) && n.KeySpace:
		w = delivery.WakeKeyspace
	case want != config.WakeAuto:
		log.Warn("WSMQ_GATEWAY_WAKE="+want+" needs Redis notify-keyspace-events with "+map[string]string{config.WakeKeyevent: "E", config.WakeKeyspace: "K"}[want]+" and z; using realtime notifications and the sweep",
			"notify_keyspace_events", n.Flags)
		return w
	default:
		log.Info("keyspace notifications off: senders without realtime (plain Node rsmq) are found by the sweep; set notify-keyspace-events Ez for push",
			"notify_keyspace_events", n.Flags)
		return w
	}
	log.Info("keyspace notifications on: every send wakes its queue, senders without realtime included", "wake", w.String(), "notify_keyspace_events", n.Flags)
	return w
}

// checkEviction refuses (outside dev mode) a Redis that may evict keys:
// an evicted queue loses its messages silently.
func checkEviction(ctx context.Context, rdb *redis.Client, cfg config.Config, log *slog.Logger) error {
	cctx, cancel := context.WithTimeout(ctx, evictionTimeout)
	defer cancel()
	res, err := rdb.ConfigGet(cctx, "maxmemory-policy").Result()
	if err != nil {
		log.Warn("could not read Redis maxmemory-policy; make sure it is noeviction", "err", err)
		return nil
	}
	policy := res["maxmemory-policy"]
	if policy == "" || policy == "noeviction" {
		return nil
	}
	msg := "Redis maxmemory-policy " + policy + " may evict queues and lose messages; set it to noeviction"
	if strings.HasPrefix(policy, "volatile-") {
		log.Warn(msg + " (volatile policies only evict keys with a TTL; RSMQ keys have none)")
		return nil
	}
	if cfg.Dev || cfg.AllowEviction {
		log.Warn(msg)
		return nil
	}
	return fmt.Errorf("%s (or set WSMQ_ALLOW_EVICTION=1 to start anyway)", msg)
}
