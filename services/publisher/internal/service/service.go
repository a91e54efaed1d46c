// Package service assembles the publisher from its configuration: Redis
// client, rsmq, gRPC server with key check and health, admin HTTP server,
// Redis pinger; and runs it until its context ends, then shuts down
// gracefully.
package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	publisherv1 "github.com/wsmq/wsmq/gen/wsmq/publisher/v1"
	"github.com/wsmq/wsmq/pkg/rsmq"
	"github.com/wsmq/wsmq/services/publisher/internal/config"
	"github.com/wsmq/wsmq/services/publisher/internal/keyauth"
	"github.com/wsmq/wsmq/services/publisher/internal/metrics"
	"github.com/wsmq/wsmq/services/publisher/internal/readiness"
	"github.com/wsmq/wsmq/services/publisher/internal/server"
	"github.com/wsmq/wsmq/services/publisher/internal/tlsconf"
)

// Redis client timeouts: short, so that calls fail fast while Redis is down.
const (
	redisDialTimeout = time.Second
	redisIOTimeout   = time.Second
	redisMaxRetries  = 2
	redisDialRetries = 2
)

// Addrs are the addresses the service listens on.
type Addrs struct {
	GRPC  net.Addr
	Admin net.Addr // nil when the admin server is disabled
}

// Options are extras for Run; the zero value is what main uses.
type Options struct {
	// Ready, when not nil, is called once both listeners accept connections.
	Ready func(Addrs)
	// RedisHook, when not nil, is added to the Redis client (tests count
	// round trips with it).
	RedisHook redis.Hook
}

// Run serves until ctx ends, then stops accepting calls, lets in-flight
// calls finish within cfg.ShutdownTimeout, and returns. It returns early
// with an error when a listener cannot be opened or a server fails.
func Run(ctx context.Context, cfg config.Config, log *slog.Logger, opts Options) error {
	ropts, err := redis.ParseURL(cfg.RedisURL)
	if err != nil {
		return fmt.Errorf("WSMQ_REDIS_URL: %w", err)
	}
	ropts.DialTimeout = redisDialTimeout
	ropts.ReadTimeout = redisIOTimeout
	ropts.WriteTimeout = redisIOTimeout
	ropts.MaxRetries = redisMaxRetries
	ropts.DialerRetries = redisDialRetries
	ropts.DialerRetryTimeout = 50 * time.Millisecond
	ropts.PoolTimeout = redisDialTimeout + redisIOTimeout
	ropts.ContextTimeoutEnabled = true
	rdb := redis.NewClient(ropts)
	defer func() { _ = rdb.Close() }()
	if opts.RedisHook != nil {
		rdb.AddHook(opts.RedisHook)
	}

	var serverOpts []grpc.ServerOption
	if cfg.TLSEnabled() {
		tc, err := tlsconf.Server(cfg.TLSCert, cfg.TLSKey, cfg.TLSClientCA)
		if err != nil {
			return err
		}
		serverOpts = append(serverOpts, grpc.Creds(credentials.NewTLS(tc)))
	}
	m := metrics.New()
	keys := keyauth.New(cfg.KeyDigests, cfg.Dev, m.AuthFailures.Inc)
	serverOpts = append(serverOpts,
		grpc.ForceServerCodecV2(server.Codec()),
		grpc.MaxRecvMsgSize(cfg.GRPCMaxMsgBytes),
		grpc.MaxSendMsgSize(cfg.GRPCMaxMsgBytes),
		grpc.ChainUnaryInterceptor(recoverUnary(log), keys.Unary),
		grpc.ChainStreamInterceptor(keys.Stream),
	)

	q := rsmq.New(rdb, rsmq.Options{Namespace: cfg.Namespace, Realtime: true})
	srv := server.New(q, server.Options{
		MaxBatch:    cfg.MaxBatch,
		Queue:       rsmq.QueueConfig{VT: cfg.Queue.VT, Delay: cfg.Queue.Delay, MaxSize: cfg.Queue.MaxSize},
		CallTimeout: cfg.CallTimeout,
	}, m, log)

	gs := grpc.NewServer(serverOpts...)
	publisherv1.RegisterPublisherServiceServer(gs, srv)
	hs := health.NewServer()
	for _, s := range []string{"", publisherv1.PublisherService_ServiceDesc.ServiceName} {
		hs.SetServingStatus(s, healthpb.HealthCheckResponse_NOT_SERVING)
	}
	healthpb.RegisterHealthServer(gs, hs)
	tracker := readiness.New(func(ctx context.Context) error { return rdb.Ping(ctx).Err() },
		cfg.HealthInterval, hs, []string{"", publisherv1.PublisherService_ServiceDesc.ServiceName},
		func(up bool) {
			if up {
				m.RedisUp.Set(1)
			} else {
				m.RedisUp.Set(0)
			}
		}, log)

	gln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("WSMQ_PUBLISHER_LISTEN: %w", err)
	}
	addrs := Addrs{GRPC: gln.Addr()}
	var admin *http.Server
	var aln net.Listener
	if cfg.AdminListen != "" {
		aln, err = net.Listen("tcp", cfg.AdminListen)
		if err != nil {
			_ = gln.Close()
			return fmt.Errorf("WSMQ_PUBLISHER_ADMIN_LISTEN: %w", err)
		}
		addrs.Admin = aln.Addr()
		admin = &http.Server{Handler: adminHandler(m, tracker), ReadHeaderTimeout: 5 * time.Second}
	}

	g, gctx := errgroup.WithContext(ctx)
	pingCtx, stopPing := context.WithCancel(context.Background())
	defer stopPing()
	g.Go(func() error { tracker.Run(pingCtx); return nil })
	g.Go(func() error {
		if err := gs.Serve(gln); err != nil {
			return fmt.Errorf("grpc server: %w", err)
		}
		return nil
	})
	if admin != nil {
		g.Go(func() error {
			if err := admin.Serve(aln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("admin server: %w", err)
			}
			return nil
		})
	}
	log.Info("publisher listening", "grpc", addrs.GRPC.String(), "admin", adminString(addrs.Admin),
		"tls", cfg.TLSEnabled(), "mtls", cfg.TLSClientCA != "", "dev", cfg.Dev, "keys", len(cfg.KeyDigests),
		"namespace", cfg.Namespace)
	if opts.Ready != nil {
		opts.Ready(addrs)
	}

	// Shutdown: on ctx end (SIGTERM) or when a server failed.
	g.Go(func() error {
		<-gctx.Done()
		log.Info("publisher shutting down", "grace", cfg.ShutdownTimeout.String())
		hs.Shutdown() // NOT_SERVING, so balancers stop sending here
		stopPing()
		done := make(chan struct{})
		go func() { gs.GracefulStop(); close(done) }()
		timer := time.NewTimer(cfg.ShutdownTimeout)
		defer timer.Stop()
		select {
		case <-done:
		case <-timer.C:
			log.Warn("grace period over: closing remaining calls")
			gs.Stop()
			<-done
		}
		if admin != nil {
			sctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			_ = admin.Shutdown(sctx)
		}
		return nil
	})
	err = g.Wait()
	log.Info("publisher stopped")
	return err
}

func adminString(a net.Addr) string {
	if a == nil {
		return "disabled"
	}
	return a.String()
}

// adminHandler serves /metrics, /healthz (the process runs) and /readyz
// (Redis answers).
func adminHandler(m *metrics.Metrics, t *readiness.Tracker) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !t.Ready() {
			http.Error(w, "redis unreachable", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	return mux
}

// recoverUnary turns a handler panic into an Internal error instead of a
// crashed process.
func recoverUnary(log *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
		defer func() {
			if r := recover(); r != nil {
				log.Error("handler panic", "method", info.FullMethod, "panic", fmt.Sprint(r))
				err = status.Error(codes.Internal, "internal error")
			}
		}()
		return handler(ctx, req)
	}
}
