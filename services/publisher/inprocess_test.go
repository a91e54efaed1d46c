package main

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

	pkgconfig "github.com/wsmq/wsmq/pkg/config"
	"github.com/wsmq/wsmq/services/publisher/internal/publishertest"
)

// testKey is the caller key startInProcess configures unless env overrides
// WSMQ_PUBLISHER_KEYS.
const testKey = publishertest.Key

// inproc is a publisher running in this test process, through run.
type inproc struct {
	Addrs addrs
	Addr  string // gRPC host:port
	stop  func() error
}

// Stop cancels the publisher's context, as SIGTERM does, and returns what
// run returned. Later calls return the same.
func (p *inproc) Stop() error { return p.stop() }

// startInProcess runs the publisher against redisURL with listeners on
// 127.0.0.1:0, the key testKey, a 2s call timeout and a fast health
// interval; env entries override or add settings. It stops when the test
// ends. hook, when not nil, is added to its Redis client.
func startInProcess(t testing.TB, redisURL string, env map[string]string, hook redis.Hook) *inproc {
	t.Helper()
	vars := publishertest.Env(redisURL, "127.0.0.1:0", "127.0.0.1:0", env)
	out := io.Writer(io.Discard)
	if os.Getenv("WSMQ_TEST_LOG") != "" {
		out = os.Stderr
	}
	log := slog.New(slog.NewJSONHandler(out, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan addrs, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, nil, pkgconfig.MapEnv(vars), hooks{ready: func(a addrs) { ready <- a }, redisHook: hook, log: log})
	}()
	stop := sync.OnceValue(func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(10 * time.Second):
			return errors.New("publisher did not stop within 10s")
		}
	})
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("publisher stopped with %v", err)
		}
	})
	select {
	case a := <-ready:
		return &inproc{Addrs: a, Addr: a.GRPC.String(), stop: stop}
	case err := <-done:
		done <- err // for the cleanup's stop
		t.Fatalf("publisher failed to start: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatalf("publisher not listening within 10s")
	}
	return nil
}
