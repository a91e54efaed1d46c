// Command publisher is the wsmq publisher service: a gRPC server that puts
// messages on RSMQ queues in Redis for the gateway to deliver.
//
// This file is the whole wiring: configuration, dependencies, servers, and
// the ordered stop. Request handling is in internal/server, settings in
// internal/config. Run `publisher -h` for the settings, or see README.md.
package main

import (
	"time"

	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	publisherv1 "github.com/wsmq/wsmq/gen/wsmq/publisher/v1"
	"github.com/wsmq/wsmq/pkg/bearer"
	pkgconfig "github.com/wsmq/wsmq/pkg/config"
	"github.com/wsmq/wsmq/pkg/redisconn"
	"github.com/wsmq/wsmq/pkg/rsmq"
	"github.com/wsmq/wsmq/pkg/serve"
	"github.com/wsmq/wsmq/pkg/tlsconf"
	"github.com/wsmq/wsmq/services/publisher/internal/access"
	"github.com/wsmq/wsmq/services/publisher/internal/coalesce"
	"github.com/wsmq/wsmq/services/publisher/internal/config"
	"github.com/wsmq/wsmq/services/publisher/internal/httpapi"
	"github.com/wsmq/wsmq/services/publisher/internal/memwatch"
	"github.com/wsmq/wsmq/services/publisher/internal/metrics"
	"github.com/wsmq/wsmq/services/publisher/internal/server"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], pkgconfig.OSEnv(), hooks{}); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, config.Usage())
			return
		}
		slog.New(slog.NewJSONHandler(os.Stderr, nil)).Error("publisher stopped", "err", err)
		os.Exit(1)
	}
}

// redisTuning: short timeouts, so that calls fail fast while Redis is down.
var redisTuning = redisconn.Tuning{
	DialTimeout:  redisconn.DefaultDialTimeout / 2,
	IOTimeout:    redisconn.DefaultIOTimeout / 3,
	MaxRetries:   2,
	FailFast:     true,
	CtxDeadlines: true,
}

// grpcStreamWorkers is how many goroutines the gRPC server keeps for
// serving streams: about the concurrent callers of a busy publisher.
const grpcStreamWorkers = 64

// addrs are the addresses the publisher listens on.
type addrs struct {
	GRPC  net.Addr
	Admin net.Addr // nil when the admin listener is off
	HTTP  net.Addr // nil when the HTTP API is off
}

// hooks are the seams in-process tests use; main passes none.
type hooks struct {
	ready     func(addrs)  // called once every listener is open
	redisHook redis.Hook   // added to the Redis client
	log       *slog.Logger // replaces the JSON logger on stderr
}

// run wires the publisher and serves until ctx ends, then stops the gRPC
// server gracefully within WSMQ_PUBLISHER_SHUTDOWN_TIMEOUT, then the admin
// listener.
func run(ctx context.Context, args []string, env pkgconfig.Env, h hooks) error {
	cfg, err := config.Parse(args, env)
	if err != nil {
		return err
	}
	log := h.log
	if log == nil {
		log = serve.Logger(cfg.LogLevel, "publisher")
	}
	// go-redis logs through a process-wide logger (pool dial failures while
	// Redis is down); route it into the JSON log.
	redis.SetLogger(redisLog{log.With("component", "go-redis")})
	if cfg.Dev && len(cfg.KeyDigests) == 0 {
		log.Warn("dev mode: caller keys are not checked")
	}

	m := metrics.New()
	tuning := redisTuning
	tuning.Master = &redisconn.MasterWatch{OnChange: func(old, addr string) {
		m.MasterChanged(old, addr)
		if old != "" {
			log.Warn("redis master changed: failover followed", "from", old, "to", addr)
		}
	}}
	rdb, err := redisconn.New(cfg.RedisURL, tuning)
	if err != nil {
		return err
	}
	defer func() { _ = rdb.Close() }()
	rdb.AddHook(redisconn.NoscriptHook(m.ScriptReloads.Inc))
	if h.redisHook != nil {
		rdb.AddHook(h.redisHook)
	}
	queues := rsmq.New(rdb, rsmq.Options{Namespace: cfg.Namespace, Realtime: true,
		MinReplicas: cfg.MinReplicas, ReplicaTimeout: cfg.ReplicaTimeout,
		OnReplicaTimeout: func(int) { m.ReplicaTimeouts.Inc() }, StatusTTL: statusTTL(cfg), ReceiptsCap: receiptsCap(cfg)})
	if cfg.MinReplicas > 0 {
		checkDurability(ctx, rdb, cfg.MinReplicas, log)
	}
	// Sends stop before Redis is full, so the memory left serves the
	// consumers that drain it; sampled, never asked per send.
	memory := &memwatch.Watch{
		HighWater: cfg.MemoryHighWater, Interval: cfg.MemoryInterval, Log: log,
		Usage: func(ctx context.Context) (int64, int64, error) { return redisconn.MemoryUsage(ctx, rdb) },
	}
	var sender server.ItemSender
	var gather *coalesce.Coalescer
	if cfg.CoalesceMax > 1 {
		gather = coalesce.New(queues, coalesce.Options{MaxBatch: cfg.CoalesceMax, MaxInFlight: cfg.CoalesceInFlight,
			Linger: cfg.CoalesceLinger, FlushTimeout: cfg.CallTimeout, OnFlush: m.ObserveFlush})
		sender = gather
	}
	handler := server.New(queues, server.Options{MaxBatch: cfg.MaxBatch, Queue: cfg.Queue, DefaultTTL: cfg.QueueTTL, CallTimeout: cfg.CallTimeout,
		Sender: sender, Admit: memory.Check}, m, log)
	if cfg.ReceiptsStream {
		// The watchers' blocking reads get a pool of their own, so they
		// never hold the connections sends need.
		wt := redisTuning
		wt.PoolSize = cfg.MaxWatchers
		wdb, err := redisconn.New(cfg.RedisURL, wt)
		if err != nil {
			return err
		}
		defer func() { _ = wdb.Close() }()
		handler.EnableWatch(server.WatchOptions{RDB: wdb, Max: cfg.MaxWatchers,
			Stop: ctx.Done()}) // watches end when the stop begins: a graceful gRPC stop waits for streams
	}

	var admin *server.Admin
	if cfg.AdminEnabled() {
		admin = server.NewAdmin(queues, server.Options{Queue: cfg.Queue, CallTimeout: cfg.CallTimeout})
	}

	var creds []grpc.ServerOption
	var tc *tls.Config
	if cfg.TLSEnabled() {
		tc, err = tlsconf.Server(tlsconf.Files{Cert: cfg.TLSCert, Key: cfg.TLSKey, CA: cfg.TLSClientCA,
			CertVar: "WSMQ_TLS_CERT", KeyVar: "WSMQ_TLS_KEY", CAVar: "WSMQ_TLS_CLIENT_CA"})
		if err != nil {
			return err
		}
		creds = append(creds, grpc.Creds(credentials.NewTLS(tc)))
	}
	keys := &access.Access{Send: bearer.New(cfg.KeyDigests, cfg.Dev), OnReject: m.AuthFailures.Inc}
	if admin != nil {
		keys.Admin = bearer.New(cfg.AdminKeyDigests, cfg.Dev)
	}
	gs := grpc.NewServer(append(creds,
		grpc.ForceServerCodecV2(server.Codec()),
		grpc.MaxRecvMsgSize(cfg.GRPCMaxMsgBytes),
		grpc.MaxSendMsgSize(cfg.GRPCMaxMsgBytes),
		// A pool of goroutines serves streams (more are started only while
		// all are busy): concurrent unary Sends reuse grown stacks instead
		// of a fresh goroutine each.
		grpc.NumStreamWorkers(grpcStreamWorkers),
		grpc.ChainUnaryInterceptor(serve.RecoverUnary(log), keys.Unary),
		grpc.ChainStreamInterceptor(keys.Stream),
	)...)
	publisherv1.RegisterPublisherServiceServer(gs, handler)
	if admin != nil {
		publisherv1.RegisterQueueAdminServiceServer(gs, admin)
	}
	hs := health.NewServer()
	services := []string{"", publisherv1.PublisherService_ServiceDesc.ServiceName}
	for _, s := range services {
		hs.SetServingStatus(s, healthpb.HealthCheckResponse_NOT_SERVING)
	}
	healthpb.RegisterHealthServer(gs, hs)
	redisProbe := &serve.Probe{
		Name: "redis", Check: func(ctx context.Context) error { return rdb.Ping(ctx).Err() },
		Interval: cfg.HealthInterval, Health: hs, Services: services, Log: log,
		OnChange: func(up bool) { m.RedisUp.Set(map[bool]float64{true: 1}[up]) },
	}

	g := serve.NewGroup(log)
	g.Go(redisProbe.Run)
	g.Go(memory.Run)
	if gather != nil {
		g.Go(gather.Run) // stops after the servers: every Send they took is flushed
	}
	var a addrs
	if a.GRPC, err = g.Listen("grpc", "WSMQ_PUBLISHER_LISTEN", cfg.Listen, serve.GRPC{Server: gs, Health: hs}); err != nil {
		return err
	}
	if cfg.HTTPListen != "" {
		o := httpapi.Options{Send: handler, Access: keys, MaxBody: int64(cfg.HTTPMaxBody)}
		if admin != nil {
			o.Admin = admin
		}
		if cfg.ReceiptsStream {
			o.Watch = handler.Watch
		}
		api := httpapi.New(o)
		srv := serve.NewHTTP(api, log)
		var hs serve.Server = srv
		if tc != nil {
			hs = tlsHTTP{HTTP: srv, tc: tc.Clone()}
		}
		if a.HTTP, err = g.Listen("http", "WSMQ_PUBLISHER_HTTP_LISTEN", cfg.HTTPListen, hs); err != nil {
			g.Close()
			return err
		}
	}
	if cfg.AdminListen != "" {
		adminSrv := serve.NewHTTP(serve.AdminHandler(serve.AdminOptions{
			Metrics: promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry}),
			Readiness: []serve.Readiness{
				{Name: redisProbe.Name, Up: redisProbe.Up},
				// Reported, not failing readiness: every publisher shares
				// the Redis, so going unready would only move the load (or
				// leave callers with no endpoint instead of a clear
				// RESOURCE_EXHAUSTED). gRPC health is left alone likewise.
				{Name: "redis_memory", Up: memory.Below, Advisory: true},
			},
		}), log)
		if a.Admin, err = g.Listen("admin", "WSMQ_PUBLISHER_ADMIN_LISTEN", cfg.AdminListen, adminSrv); err != nil {
			g.Close()
			return err
		}
	}
	log.Info("publisher starting", "tls", cfg.TLSEnabled(), "mtls", cfg.TLSClientCA != "", "dev", cfg.Dev,
		"keys", len(cfg.KeyDigests), "admin_keys", len(cfg.AdminKeyDigests), "admin_service", admin != nil,
		"http", cfg.HTTPListen, "namespace", cfg.Namespace, "min_replicas", cfg.MinReplicas,
		"coalesce_max", cfg.CoalesceMax, "coalesce_inflight", cfg.CoalesceInFlight,
		"receipts", cfg.Receipts, "receipts_stream", cfg.ReceiptsStream)
	if h.ready != nil {
		h.ready(a)
	}
	err = g.Run(ctx, cfg.ShutdownTimeout)
	log.Info("publisher stopped")
	return err
}

// tlsHTTP serves an HTTP server over TLS with the gRPC listener's
// certificate and client-certificate rule.
type tlsHTTP struct {
	serve.HTTP
	tc *tls.Config
}

// Serve implements serve.Server.
func (t tlsHTTP) Serve(ln net.Listener) error { return t.HTTP.Serve(tls.NewListener(ln, t.tc)) }

// checkDurability logs, once at start, what on the Redis master undermines
// durable acknowledgement. A Redis that is down is reported by readiness.
func checkDurability(ctx context.Context, rdb *redis.Client, minReplicas int, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(ctx, 2*redisTuning.IOTimeout)
	defer cancel()
	for _, w := range redisconn.DurabilityWarnings(ctx, rdb, minReplicas) {
		log.Warn("durable sends: " + w)
	}
}

// redisLog adapts slog to go-redis's logger interface. Its messages repeat
// what the readiness probe reports, so they are debug level.
type redisLog struct{ log *slog.Logger }

func (l redisLog) Printf(ctx context.Context, format string, v ...any) {
	l.log.DebugContext(ctx, fmt.Sprintf(format, v...))
}

// receiptsCap is the rsmq ReceiptsCap: cfg.ReceiptsCap with the stream on, else 0.
func receiptsCap(cfg config.Config) int64 {
	if !cfg.ReceiptsStream {
		return 0
	}
	return int64(cfg.ReceiptsCap)
}

// statusTTL is the rsmq StatusTTL: cfg.StatusTTL with receipts on, else 0.
func statusTTL(cfg config.Config) time.Duration {
	if !cfg.Receipts {
		return 0
	}
	return cfg.StatusTTL
}
