package main

import (
	"context"
	"fmt"
	"net/http"
	"runtime"
	"testing"
	"time"

	pkgconfig "github.com/wsmq/wsmq/pkg/config"
	"github.com/wsmq/wsmq/pkg/testenv"
	"github.com/wsmq/wsmq/services/gateway/protocol"
)

// TestConnectionGoroutinesEndWithTheirConnection runs the gateway in this
// process, opens and closes many subscribed connections, and checks that the
// goroutine count returns to where it was, then to the level before start-up
// once the gateway shuts down.
func TestConnectionGoroutinesEndWithTheirConnection(t *testing.T) {
	s := newStack(t)
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	admin := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	env := map[string]string{
		"WSMQ_GATEWAY_LISTEN": addr, "WSMQ_GATEWAY_ADMIN_LISTEN": admin, "WSMQ_REDIS_URL": s.Redis.URL(), "WSMQ_AUTH_ADDR": s.AuthAddr,
		"WSMQ_LOG_LEVEL": "error", "WSMQ_CONN_RATE": "1000",
	}
	before := runtime.NumGoroutine()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, nil, pkgconfig.MapEnv(env)) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("gateway run: %v", err)
		}
	}()
	gw := &gateway{Addr: addr}
	testenv.Eventually(t, waitLong, "in-process gateway ready", func() bool {
		code, _, err := testenv.HTTPGet("http://" + admin + "/readyz")
		return err == nil && code == http.StatusOK
	})
	sess := s.user(gw, "leaky")

	cycle := func(n int) {
		clients := make([]*conn, n)
		for i := range clients {
			clients[i] = dial(t, gw, sess, protocol.AckManual)
			clients[i].subscribe(sess.UserID)
		}
		s.send(sess.UserID, "one of them gets it")
		for _, c := range clients {
			_ = c.c.Close()
		}
	}
	cycle(2) // warm-up: pools and the realtime connection exist from now on
	http.DefaultClient.CloseIdleConnections()
	t0 := time.Now()
	settled := settle(t, 0)
	t.Logf("settled at %d goroutines in %s", settled, time.Since(t0))

	cycle(20)
	http.DefaultClient.CloseIdleConnections()
	if after := settle(t, settled); after > settled {
		t.Fatalf("%d goroutines after 20 connections closed, %d before: connection goroutines leaked\n%s", after, settled, stacks())
	}

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("gateway run: %v", err)
	}
	done <- nil // for the deferred receive
	if after := settle(t, before); after > before {
		t.Fatalf("%d goroutines after shutdown, %d before start-up\n%s", after, before, stacks())
	}
}

// settle waits until the goroutine count stops falling (or reaches target)
// and returns it.
func settle(t *testing.T, target int) int {
	t.Helper()
	n := runtime.NumGoroutine()
	deadline := time.Now().Add(10 * time.Second)
	stable := 0
	for time.Now().Before(deadline) && n > target {
		time.Sleep(50 * time.Millisecond) // polling interval
		m := runtime.NumGoroutine()
		if m >= n {
			stable++
			if target == 0 && stable > 10 {
				break
			}
		} else {
			stable = 0
		}
		n = m
	}
	return n
}

func stacks() string {
	buf := make([]byte, 1<<20)
	return string(buf[:runtime.Stack(buf, true)])
}
