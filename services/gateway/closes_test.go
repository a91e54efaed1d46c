package main

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	authv1 "github.com/wsmq/wsmq/gen/wsmq/auth/v1"
	"github.com/wsmq/wsmq/pkg/testenv"
	"github.com/wsmq/wsmq/services/gateway/client"
	"github.com/wsmq/wsmq/services/gateway/protocol"
)

// TestServerCloseReturnsUnconfirmedMessagesBeforeTheCloseFrame: an
// auto-mode client reads its frames but its websocket stack never answers
// a ping, so none is confirmed. Whatever makes the gateway close it (the
// access token revoked, a graceful shutdown, the pong timeout), the
// messages are neither deleted nor left hidden for the 120 s visibility
// timeout: by the time the client reads the close frame they are visible
// in Redis again, with rc undone, and none went to the dead-letter queue.
func TestServerCloseReturnsUnconfirmedMessagesBeforeTheCloseFrame(t *testing.T) {
	const n = 3
	s := newStack(t, "WSMQ_VISIBILITY_TIMEOUT=120", "WSMQ_REVERIFY_INTERVAL=1h")
	for i, tc := range []struct {
		name   string
		env    []string
		close  func(t *testing.T, gw *gateway, sess client.Session)
		code   int
		reason string
	}{
		{"revoked", nil, func(t *testing.T, _ *gateway, sess client.Session) {
			if _, err := s.Auth.Revoke(context.Background(), &authv1.RevokeRequest{AccessToken: sess.AccessToken}); err != nil {
				t.Fatal(err)
			}
		}, protocol.CloseUnauthorized, "token revoked"},
		{"shutdown", nil, func(t *testing.T, gw *gateway, _ client.Session) {
			done := make(chan error, 1)
			go func() { done <- gw.P.Terminate(waitLong) }()
			t.Cleanup(func() {
				if err := <-done; err != nil {
					t.Errorf("gateway exit: %v", err)
				}
			})
		}, websocket.CloseGoingAway, "server shutting down"},
		{"pong timeout", []string{"WSMQ_WRITE_TIMEOUT=3s"}, func(*testing.T, *gateway, client.Session) {}, protocol.CloseSlowConsumer, "pong timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gw := s.startGateway(tc.env...)
			gw.WaitFollowingRevocations(t)
			sess := s.user(gw, "closed"+itoa(i))
			q := sess.UserID
			rc := dialRaw(t, gw.Addr, sess, false)
			rc.ws.SetPingHandler(func(string) error { return nil }) // reads, never pongs
			rc.subscribe(q)
			for k := range n {
				s.send(q, "m"+itoa(k))
			}
			rc.messages(n)
			if v := testenv.VisibleNow(t, s.RDB, "rsmq:"+q); v != 0 {
				t.Fatalf("%d of %d delivered messages visible before the close", v, n)
			}

			tc.close(t, gw, sess)
			_ = rc.ws.SetReadDeadline(time.Now().Add(waitLong))
			var ce *websocket.CloseError
			for {
				_, _, err := rc.ws.ReadMessage()
				if err == nil {
					continue
				}
				if !errors.As(err, &ce) {
					t.Fatalf("connection ended without a close frame: %v", err)
				}
				break
			}
			// At once, no waiting: returned before the close frame was sent.
			visible := testenv.VisibleNow(t, s.RDB, "rsmq:"+q)
			if ce.Code != tc.code || ce.Text != tc.reason {
				t.Fatalf("closed %d %q, want %d %q", ce.Code, ce.Text, tc.code, tc.reason)
			}
			if visible != n {
				t.Fatalf("%d of %d unconfirmed messages visible when the client read the close frame", visible, n)
			}
			if a := s.attrs(q); a.Msgs != n {
				t.Fatalf("queue holds %d messages after the close, want the %d unconfirmed (none deleted)", a.Msgs, n)
			}
			ctx := context.Background()
			for _, id := range s.RDB.ZRange(ctx, "rsmq:"+q, 0, -1).Val() {
				if rcv, _ := s.RDB.HGet(ctx, "rsmq:"+q+":Q", id+":rc").Int(); rcv > 0 {
					t.Fatalf("message %s rc %d after its return, want the receive undone", id, rcv)
				}
			}
			if d := s.RDB.ZCard(ctx, "rsmq:"+q+"-dlq").Val(); d != 0 {
				t.Fatalf("%d messages dead-lettered", d)
			}
		})
	}
}
