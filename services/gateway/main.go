// Command gateway is the wsmq websocket gateway: clients connect with their
// tokens, subscribe to their queues and receive every message pushed to
// them, at least once, from RSMQ queues in Redis.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wsmq/wsmq/pkg/rsmq"
	"github.com/wsmq/wsmq/services/gateway/internal/authclient"
	"github.com/wsmq/wsmq/services/gateway/internal/config"
	"github.com/wsmq/wsmq/services/gateway/internal/delivery"
	"github.com/wsmq/wsmq/services/gateway/internal/metrics"
	"github.com/wsmq/wsmq/services/gateway/internal/server"
	"github.com/wsmq/wsmq/services/gateway/internal/wsconn"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv); err != nil {
		slog.Error("gateway stopped", "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string) error {
	cfg, err := config.Parse(args, getenv)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))

	ropts, err := redis.ParseURL(cfg.RedisURL)
	if err != nil {
		return fmt.Errorf("WSMQ_REDIS_URL: %w", err)
	}
	ropts.PoolSize = cfg.Workers + 16
	ropts.DialTimeout = 2 * time.Second
	ropts.ReadTimeout = 3 * time.Second
	ropts.WriteTimeout = 3 * time.Second
	rdb := redis.NewClient(ropts)
	defer func() { _ = rdb.Close() }()
	m := metrics.New()
	rdb.AddHook(m.RedisHook())
	if err := checkEviction(ctx, rdb, cfg, log); err != nil {
		return err
	}
	queues := rsmq.New(rdb, rsmq.Options{Namespace: cfg.NS, Realtime: true})

	engine := delivery.New(delivery.Config{
		VisibilityTimeout: cfg.VisibilityTimeout,
		Prefetch:          cfg.Prefetch,
		MaxReceiveCount:   cfg.MaxReceiveCount,
		Workers:           cfg.Workers,
		SweepInterval:     cfg.SweepInterval,
		HotSweepInterval:  cfg.HotSweepInterval,
	}, rdb, queues, m, log)
	engine.Start()
	defer engine.Stop()

	auth, err := authclient.Dial(cfg.AuthAddr, cfg.AuthTimeout)
	if err != nil {
		return err
	}
	defer func() { _ = auth.Close() }()

	scfg := server.Config{
		Conn: wsconn.Options{
			ConnBuffer:   cfg.ConnBuffer,
			MaxSubs:      cfg.MaxSubsPerConn,
			WriteTimeout: cfg.WriteTimeout,
			PingInterval: cfg.PingInterval,
			ReadLimit:    cfg.ReadLimit,
		},
		AllowedOrigins:   cfg.AllowedOrigins,
		MaxConnsPerUser:  cfg.MaxConnsPerUser,
		ConnRatePerIP:    cfg.ConnRatePerIP,
		LoginRatePerIP:   cfg.LoginRatePerIP,
		ReverifyInterval: cfg.ReverifyInterval,
		Demo:             cfg.Demo,
	}
	if cfg.Dev {
		scfg.DemoSend = server.DemoSender{Auth: auth, Queues: queues}
	}
	redisReady := func(ctx context.Context) error { return rdb.Ping(ctx).Err() }
	srv := server.New(scfg, engine, auth, redisReady, m, log)

	if cfg.PprofListen != "" {
		stopPprof, err := servePprof(cfg.PprofListen, log)
		if err != nil {
			return err
		}
		defer stopPprof()
	}

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s (set WSMQ_GATEWAY_LISTEN to change it): %w", cfg.Listen, err)
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	log.Info("gateway listening", "addr", ln.Addr().String(), "auth", cfg.AuthAddr, "dev", cfg.Dev)

	select {
	case err := <-errc:
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down: returning in-flight messages and closing sockets")
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		log.Warn("http shutdown", "err", err)
	}
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("websocket shutdown incomplete", "err", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	log.Info("gateway stopped")
	return nil
}

// checkEviction refuses (outside dev mode) a Redis that may evict keys:
// an evicted queue loses its messages silently.
func checkEviction(ctx context.Context, rdb *redis.Client, cfg config.Config, log *slog.Logger) error {
	cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
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
	return errors.New(msg + " (or set WSMQ_ALLOW_EVICTION=1 to start anyway)")
}

// servePprof serves net/http/pprof on its own listener (never on the public
// one) and returns a function that stops it.
func servePprof(addr string, log *slog.Logger) (func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("WSMQ_PPROF_LISTEN %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	log.Info("pprof listening", "addr", ln.Addr().String())
	return func() { _ = srv.Close() }, nil
}
