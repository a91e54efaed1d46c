package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wsmq/wsmq/pkg/testenv"
	"github.com/wsmq/wsmq/services/gateway/client"
	"github.com/wsmq/wsmq/services/gateway/protocol"
)

func TestConnectionPolicies(t *testing.T) {
	s := newStack(t)
	gw := s.startGateway("WSMQ_MAX_CONNS_PER_USER=2", "WSMQ_MAX_SUBS_PER_CONN=2", "WSMQ_ALLOWED_ORIGINS=https://app.example")
	sess := s.user(gw, "quinn")

	t.Run("foreign origin refused", func(t *testing.T) {
		for origin, ok := range map[string]bool{
			"https://evil.example": false,
			"https://app.example":  true,
			"http://" + gw.Addr:    true, // same origin
		} {
			err := tryDial(gw, client.Options{Token: sess.Token, Header: http.Header{"Origin": {origin}}})
			if ok != (err == nil) {
				t.Fatalf("origin %s: err %v, want allowed=%v", origin, err, ok)
			}
			if err != nil && !errors.Is(err, client.ErrForbidden) {
				t.Fatalf("origin %s: %v, want 403", origin, err)
			}
		}
	})

	t.Run("connections per user", func(t *testing.T) {
		c1 := dial(t, gw, sess, "")
		c2 := dial(t, gw, sess, "")
		var se *client.StatusError
		if err := tryDial(gw, client.Options{Token: sess.Token}); !errors.As(err, &se) || se.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("third connection: %v, want 429", err)
		}
		_ = c1.c.Close()
		// The slot frees once the gateway has seen the close.
		testenv.Eventually(t, waitLong, "slot freed", func() bool {
			return tryDial(gw, client.Options{Token: sess.Token}) == nil
		})
		_ = c2
	})

	t.Run("subscriptions per connection", func(t *testing.T) {
		testenv.Eventually(t, waitLong, "connection slots free", func() bool {
			return tryDial(gw, client.Options{Token: sess.Token}) == nil
		})
		c := dial(t, gw, sess, "")
		c.subscribe(sess.UserID + "-a")
		c.subscribe(sess.UserID + "-b")
		ctx, cancel := ctxWait()
		defer cancel()
		var ev *client.EventError
		if err := c.c.Subscribe(ctx, sess.UserID+"-c"); !errors.As(err, &ev) || ev.Code != protocol.CodeLimit {
			t.Fatalf("third subscription: %v, want limit error", err)
		}
		if err := c.c.Unsubscribe(ctx, sess.UserID+"-a"); err != nil {
			t.Fatal(err)
		}
		c.subscribe(sess.UserID + "-c")
	})
}

func TestGatewayRefusesEvictingRedisOutsideDevMode(t *testing.T) {
	s := newStack(t)
	if err := s.RDB.ConfigSet(context.Background(), "maxmemory-policy", "allkeys-lru").Err(); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	admin := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	p := testenv.StartProcess(t, "gateway", s.GatewayBin, append([]string{"WSMQ_GATEWAY_LISTEN=" + addr, "WSMQ_GATEWAY_ADMIN_LISTEN=" + admin}, s.GatewayEnv...))
	select {
	case <-p.Done():
	case <-time.After(waitLong):
		t.Fatal("gateway started on a Redis that evicts keys")
	}
	if out := p.Output(); !strings.Contains(out, "maxmemory-policy allkeys-lru") || !strings.Contains(out, "WSMQ_ALLOW_EVICTION") {
		t.Fatalf("exit message does not explain the refusal:\n%s", out)
	}
	// Dev mode starts, with a warning.
	g := s.startGateway("WSMQ_DEV=1")
	if !strings.Contains(g.P.Output(), "may evict") {
		t.Fatalf("no eviction warning in dev mode:\n%s", g.P.Output())
	}
}

func TestReadinessAndMetricsAreOnlyOnTheAdminListener(t *testing.T) {
	s := newStack(t)
	g := s.startGateway()
	for _, tc := range []struct {
		base, path string
		code       int
		body       string
	}{
		{g.Addr, "/healthz", http.StatusOK, `{"status":"ok"}`},
		{g.Addr, "/readyz", http.StatusNotFound, ""},
		{g.Addr, "/metrics", http.StatusNotFound, ""},
		{g.Admin, "/healthz", http.StatusOK, `{"status":"ok"}`},
		{g.Admin, "/readyz", http.StatusOK, `"checks":{"auth":"up","redis":"up"}`},
		{g.Admin, "/metrics", http.StatusOK, "go_goroutines"},
	} {
		res, err := http.Get("http://" + tc.base + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		_ = res.Body.Close()
		if res.StatusCode != tc.code || !strings.Contains(string(b), tc.body) {
			t.Errorf("GET %s%s = %d %q, want %d containing %q", tc.base, tc.path, res.StatusCode, b, tc.code, tc.body)
		}
	}
	// Redis gone: not ready, and the answer names the dependency, not an error text.
	s.Redis.Stop()
	testenv.Eventually(t, waitLong, "readyz turns 503 without Redis", func() bool {
		code, b, err := testenv.HTTPGet("http://" + g.Admin + "/readyz")
		return err == nil && code == http.StatusServiceUnavailable && strings.Contains(b, `"redis":"down"`) && !strings.Contains(b, "refused")
	})
}
