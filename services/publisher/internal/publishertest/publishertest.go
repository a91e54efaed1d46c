// Package publishertest runs an in-process publisher on loopback ports for
// tests of this module, against a Redis the test started.
package publishertest

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wsmq/wsmq/services/publisher/internal/config"
	"github.com/wsmq/wsmq/services/publisher/internal/service"
)

// Key is the caller key configured by Start unless env overrides
// WSMQ_PUBLISHER_KEYS.
const Key = "test-key-0123456789abcdef"

// Publisher is a running in-process publisher.
type Publisher struct {
	Addrs service.Addrs
	// Addr is the gRPC address (host:port).
	Addr string

	stop func() error
}

// Stop cancels the publisher's context, as SIGTERM does, and returns what
// its Run returned. Later calls return the same.
func (p *Publisher) Stop() error { return p.stop() }

// Start runs a publisher against redisURL with listeners on 127.0.0.1:0,
// the key Key, a 2s call timeout and a fast health interval; env entries
// override or add WSMQ_* settings. The publisher stops (gracefully) when
// the test ends. hook, when not nil, is added to its Redis client.
func Start(t testing.TB, redisURL string, env map[string]string, hook redis.Hook) *Publisher {
	t.Helper()
	vars := map[string]string{
		"WSMQ_REDIS_URL":                  redisURL,
		"WSMQ_PUBLISHER_LISTEN":           "127.0.0.1:0",
		"WSMQ_PUBLISHER_ADMIN_LISTEN":     "127.0.0.1:0",
		"WSMQ_PUBLISHER_KEYS":             Key,
		"WSMQ_PUBLISHER_CALL_TIMEOUT":     "2s",
		"WSMQ_PUBLISHER_HEALTH_INTERVAL":  "50ms",
		"WSMQ_PUBLISHER_SHUTDOWN_TIMEOUT": "2s",
	}
	for k, v := range env {
		vars[k] = v
	}
	var environ []string
	for k, v := range vars {
		environ = append(environ, k+"="+v)
	}
	cfg, err := config.Parse(nil, func(k string) (string, bool) { v, ok := vars[k]; return v, ok }, environ)
	if err != nil {
		t.Fatalf("publishertest: config: %v", err)
	}
	out := io.Writer(io.Discard)
	if os.Getenv("WSMQ_TEST_LOG") != "" {
		out = os.Stderr
	}
	log := slog.New(slog.NewJSONHandler(out, &slog.HandlerOptions{Level: slog.LevelDebug}))

	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan service.Addrs, 1)
	done := make(chan error, 1)
	go func() {
		done <- service.Run(ctx, cfg, log, service.Options{Ready: func(a service.Addrs) { ready <- a }, RedisHook: hook})
	}()
	stop := sync.OnceValue(func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(10 * time.Second):
			return errors.New("publishertest: publisher did not stop within 10s")
		}
	})
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("publishertest: publisher stopped with %v", err)
		}
	})
	select {
	case a := <-ready:
		return &Publisher{Addrs: a, Addr: a.GRPC.String(), stop: stop}
	case err := <-done:
		done <- err // for the cleanup's stop
		t.Fatalf("publishertest: publisher failed to start: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatalf("publishertest: publisher not listening within 10s")
	}
	return nil
}
