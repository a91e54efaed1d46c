// Command auth is the wsmq auth service: `auth serve` (the default) runs
// the gRPC AuthService; `auth user ...` administers users in MongoDB.
//
// This file is the whole wiring of the service: configuration,
// dependencies, servers, and the ordered stop. Request handling is in
// internal/server, settings in internal/config, the user commands in
// internal/cli.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"

	authv1 "github.com/wsmq/wsmq/gen/wsmq/auth/v1"
	pkgconfig "github.com/wsmq/wsmq/pkg/config"
	"github.com/wsmq/wsmq/pkg/serve"
	"github.com/wsmq/wsmq/pkg/tlsconf"
	"github.com/wsmq/wsmq/services/auth/internal/authn"
	"github.com/wsmq/wsmq/services/auth/internal/cli"
	"github.com/wsmq/wsmq/services/auth/internal/config"
	"github.com/wsmq/wsmq/services/auth/internal/passwords"
	"github.com/wsmq/wsmq/services/auth/internal/revocations"
	"github.com/wsmq/wsmq/services/auth/internal/server"
	"github.com/wsmq/wsmq/services/auth/internal/store"
	"github.com/wsmq/wsmq/services/auth/internal/throttle"
	"github.com/wsmq/wsmq/services/auth/internal/tokens"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	env := cli.Env{Env: pkgconfig.OSEnv(), Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr}
	err := cli.Run(ctx, os.Args[1:], env, func(ctx context.Context, cfg config.Config, log *slog.Logger) error {
		return run(ctx, cfg, log, hooks{})
	})
	switch {
	case err == nil:
	case errors.Is(err, flag.ErrHelp):
		os.Exit(2)
	default:
		fmt.Fprintf(os.Stderr, "auth: %v\n", err)
		os.Exit(1)
	}
}

// Timings of the service's life.
const (
	indexRetry      = time.Second     // wait between attempts to reach MongoDB at start-up
	healthInterval  = 2 * time.Second // MongoDB probe period
	shutdownTimeout = 10 * time.Second
)

// hooks are the seams in-process tests use; main passes none.
type hooks struct {
	healthInterval time.Duration // replaces healthInterval
}

// run serves until ctx ends: it validates cfg, waits for MongoDB and
// creates the indexes, then serves gRPC on cfg.Listen (port 0 picks a free
// port; the "grpc listening" log line names it) and the admin listener on
// cfg.MetricsListen, and stops them in that order.
func run(ctx context.Context, cfg config.Config, log *slog.Logger, h hooks) error {
	warnings, err := cfg.Validate()
	if err != nil {
		return err
	}
	for _, w := range warnings {
		log.Warn(w)
	}
	hasher, err := passwords.NewHasher(cfg.BcryptCost)
	if err != nil {
		return err
	}
	jwt, err := tokens.NewJWT(tokens.Options{Keys: cfg.JWTKeys, Issuer: cfg.JWTIssuer, TTL: cfg.JWTTTL})
	if err != nil {
		return err
	}
	st, err := store.Open(store.Options{URI: cfg.MongoURI, Database: cfg.MongoDB, Timeout: cfg.MongoTimeout})
	if err != nil {
		return err
	}
	defer func() { _ = st.Close(context.WithoutCancel(ctx)) }()
	if err := waitIndexes(ctx, st, log); err != nil {
		return err
	}
	if cfg.AccessTokenTTL > 0 {
		if err := st.EnsureExpiryIndex(ctx); err != nil {
			log.Debug("no TTL index on access tokens (expired tokens are refused at lookup anyway)", "err", err)
		}
	}
	hub := revocations.NewHub(0)
	svc := authn.New(st, jwt, hasher, authn.Options{AccessTokenTTL: cfg.AccessTokenTTL, Logger: log,
		SessionCacheTTL: cfg.SessionCacheTTL, Revocations: hub})
	if cfg.Dev {
		created, err := svc.EnsureDemoUser(ctx)
		if err != nil {
			return fmt.Errorf("dev user: %w", err)
		}
		if created {
			log.Warn("DEV MODE: created user demo with the well-known password demo")
		}
	}

	metrics := server.NewMetrics()
	handler := server.New(server.Options{Service: svc, AdminToken: cfg.AdminToken, GatewayToken: cfg.GatewayToken,
		Logger: log, Metrics: metrics, Revocations: hub,
		Throttle: throttle.New(throttle.Options{RatePerIP: cfg.LoginRate, Backoff: cfg.LoginBackoff, MaxBackoff: cfg.LoginMaxBackoff})})
	opts := []grpc.ServerOption{grpc.ChainUnaryInterceptor(serve.RecoverUnary(log), handler.Interceptor()),
		// Gateways ping every 10 s, idle or not (authclient), to notice a
		// dead connection; the default policy (5 min) would close them.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true})}
	if cfg.TLSCert != "" {
		tc, err := tlsconf.Server(tlsconf.Files{Cert: cfg.TLSCert, Key: cfg.TLSKey, CA: cfg.TLSClientCA,
			CertVar: "WSMQ_AUTH_TLS_CERT", KeyVar: "WSMQ_AUTH_TLS_KEY", CAVar: "WSMQ_AUTH_TLS_CLIENT_CA"})
		if err != nil {
			return err
		}
		opts = append(opts, grpc.Creds(credentials.NewTLS(tc)))
	}
	gs := grpc.NewServer(opts...)
	handler.Register(gs)
	hs := health.NewServer()
	services := []string{"", authv1.AuthService_ServiceDesc.ServiceName}
	for _, s := range services {
		hs.SetServingStatus(s, healthpb.HealthCheckResponse_NOT_SERVING)
	}
	healthpb.RegisterHealthServer(gs, hs)
	interval := healthInterval
	if h.healthInterval > 0 {
		interval = h.healthInterval
	}
	mongoProbe := &serve.Probe{Name: "mongodb", Check: st.Ping, Interval: interval,
		Health: hs, Services: services, OnChange: metrics.SetDBUp, Log: log}

	g := serve.NewGroup(log)
	g.Go(mongoProbe.Run)
	if _, err := g.Listen("grpc", "WSMQ_AUTH_LISTEN", cfg.Listen, streams{serve.GRPC{Server: gs, Health: hs}, hub}); err != nil {
		return err
	}
	if cfg.MetricsListen != "" {
		admin := serve.NewHTTP(serve.AdminHandler(serve.AdminOptions{
			Metrics:   metrics.Handler(),
			Readiness: []serve.Readiness{{Name: mongoProbe.Name, Up: mongoProbe.Up}},
		}), log)
		if _, err := g.Listen("admin", "WSMQ_AUTH_METRICS_LISTEN", cfg.MetricsListen, admin); err != nil {
			g.Close()
			return err
		}
	}
	err = g.Run(ctx, shutdownTimeout)
	log.Info("stopped")
	return err
}

// streams is the gRPC listener whose stop first ends the revocation
// streams (their watchers reconnect elsewhere), which a graceful stop
// would otherwise wait for until its deadline.
type streams struct {
	serve.GRPC
	hub *revocations.Hub
}

func (s streams) Shutdown(ctx context.Context) error {
	s.hub.Close()
	return s.GRPC.Shutdown(ctx)
}

// waitIndexes creates the indexes, waiting for MongoDB while it is
// unreachable (until ctx is done).
func waitIndexes(ctx context.Context, st *store.Store, log *slog.Logger) error {
	for {
		err := st.EnsureIndexes(ctx)
		if err == nil {
			return nil
		}
		if !errors.Is(err, store.ErrUnavailable) {
			return fmt.Errorf("create indexes: %w", err)
		}
		log.Warn("waiting for MongoDB", "err", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("create indexes: %w", err)
		case <-time.After(indexRetry):
		}
	}
}
