package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/wsmq/wsmq/services/auth/internal/authn"
	"github.com/wsmq/wsmq/services/auth/internal/config"
	"github.com/wsmq/wsmq/services/auth/internal/passwords"
	"github.com/wsmq/wsmq/services/auth/internal/server"
	"github.com/wsmq/wsmq/services/auth/internal/store"
	"github.com/wsmq/wsmq/services/auth/internal/tokens"
)

// indexRetry is the wait between attempts to reach MongoDB at start-up.
const indexRetry = time.Second

// Serve runs the service until ctx is done: it validates cfg, waits for
// MongoDB and creates the indexes, then serves gRPC on cfg.Listen (port 0
// picks a free port; the "listening" log line names it) and HTTP metrics and
// health on cfg.MetricsListen.
func Serve(ctx context.Context, cfg config.Config, logw io.Writer) error {
	log := NewLogger(logw, cfg.LogLevel)
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
	svc := authn.New(st, jwt, hasher, authn.Options{AccessTokenTTL: cfg.AccessTokenTTL, Logger: log})
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
	srv := server.New(server.Options{Service: svc, DB: st, AdminToken: cfg.AdminToken, Logger: log, Metrics: metrics})
	lis, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("WSMQ_AUTH_LISTEN: %w", err)
	}
	var hs *http.Server
	var hlis net.Listener
	if cfg.MetricsListen != "" {
		hlis, err = net.Listen("tcp", cfg.MetricsListen)
		if err != nil {
			_ = lis.Close()
			return fmt.Errorf("WSMQ_AUTH_METRICS_LISTEN: %w", err)
		}
		hs = &http.Server{Handler: httpHandler(metrics, srv), ReadHeaderTimeout: 5 * time.Second}
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	var httpErr error
	if hs != nil {
		log.Info("metrics listening", "addr", hlis.Addr().String())
		wg.Go(func() {
			if err := hs.Serve(hlis); err != nil && !errors.Is(err, http.ErrServerClosed) {
				httpErr = err
				cancel()
			}
		})
		wg.Go(func() {
			<-ctx.Done()
			sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer scancel()
			_ = hs.Shutdown(sctx)
		})
	}
	err = srv.Serve(ctx, lis)
	cancel()
	wg.Wait()
	log.Info("stopped")
	return errors.Join(err, httpErr)
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

func httpHandler(m *server.Metrics, srv *server.Server) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !srv.Ready() {
			http.Error(w, "mongodb unreachable", http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ok\n")
	})
	return mux
}
