package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wsmq/wsmq/pkg/testenv"
)

func TestConnectionPolicies(t *testing.T) {
	s := newStack(t)
	gw := s.startGateway("WSMQ_MAX_CONNS_PER_USER=2", "WSMQ_MAX_SUBS_PER_CONN=2", "WSMQ_ALLOWED_ORIGINS=https://app.example")
	sess := s.user(gw, "quinn")

	t.Run("foreign origin refused", func(t *testing.T) {
		for origin, ok := range map[string]bool{
			"https://evil.example": false,
			"https://app.example":  true,
			"http://" + gw.addr:    true, // same origin
		} {
			h := http.Header{"Origin": {origin}, "X-Token": {sess.Token}}
			ws, res, err := websocket.DefaultDialer.Dial("ws://"+gw.addr+"/ws", h)
			if ok != (err == nil) {
				t.Fatalf("origin %s: err %v (response %v), want allowed=%v", origin, err, res, ok)
			}
			if err == nil {
				_ = ws.Close()
			} else if res == nil || res.StatusCode != http.StatusForbidden {
				t.Fatalf("origin %s: response %v, want 403", origin, res)
			}
		}
	})

	t.Run("connections per user", func(t *testing.T) {
		c1 := dial(t, gw, sess, "")
		c2 := dial(t, gw, sess, "")
		_, res, err := dialRaw(gw, creds{token: sess.Token})
		if err == nil || res == nil || res.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("third connection: %v %v, want 429", err, res)
		}
		_ = c1.ws.Close()
		_ = c1.closeErr()
		// The slot frees once the gateway has seen the close.
		testenv.Eventually(t, waitLong, "slot freed", func() bool {
			ws, _, err := dialRaw(gw, creds{token: sess.Token})
			if err == nil {
				_ = ws.Close()
			}
			return err == nil
		})
		_ = c2
	})

	t.Run("subscriptions per connection", func(t *testing.T) {
		testenv.Eventually(t, waitLong, "connection slots free", func() bool {
			ws, _, err := dialRaw(gw, creds{token: sess.Token})
			if err == nil {
				_ = ws.Close()
			}
			return err == nil
		})
		c := dial(t, gw, sess, "")
		c.subscribe(sess.UserID + "-a")
		c.subscribe(sess.UserID + "-b")
		c.send("/subscribe/" + sess.UserID + "-c")
		if f := c.next(); f.Event != "error" || f.Error != "limit" {
			t.Fatalf("got %+v, want limit error", f)
		}
		c.send("/unsubscribe/" + sess.UserID + "-a")
		if f := c.next(); f.Event != "unsubscribed" {
			t.Fatalf("got %+v", f)
		}
		c.subscribe(sess.UserID + "-c")
	})
}

func TestGatewayRefusesEvictingRedisOutsideDevMode(t *testing.T) {
	s := newStack(t)
	if err := s.rdb.ConfigSet(context.Background(), "maxmemory-policy", "allkeys-lru").Err(); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	p := testenv.StartProcess(t, "gateway", s.gwBin, append([]string{"WSMQ_GATEWAY_LISTEN=" + addr}, s.gwEnv...))
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
	if !strings.Contains(g.p.Output(), "may evict") {
		t.Fatalf("no eviction warning in dev mode:\n%s", g.p.Output())
	}
}
