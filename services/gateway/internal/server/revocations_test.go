package server

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wsmq/wsmq/pkg/testenv"
	"github.com/wsmq/wsmq/services/gateway/internal/authclient"
	"github.com/wsmq/wsmq/services/gateway/protocol"
)

// TestGatewayRefusesARevokedSessionsJWTAtReconnectWhileAuthStillAcceptsIt
// is the case the revoked set exists for: the auth replica a gateway asks
// may accept a revoked session's JWT for its session cache's TTL (a
// single auth server refuses it at once, so a full-stack test cannot show
// this), and the gateway refuses it on its own.
func TestGatewayRefusesARevokedSessionsJWTAtReconnectWhileAuthStillAcceptsIt(t *testing.T) {
	for _, tc := range []struct {
		name string
		rev  authclient.Revocation
	}{
		{"session revoked", authclient.Revocation{UserID: "alice", SessionID: "s1"}},
		// Valid after a time well past the reconnect's JWT (the fake
		// issues it with the current second): refused whenever it runs.
		{"all sessions revoked", authclient.Revocation{UserID: "alice", AllSessions: true, ValidAfter: time.Now().Add(time.Hour)}},
		{"user deleted", authclient.Revocation{UserID: "alice", UserDeleted: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			auth := newFakeAuth(0) // never refuses alice's JWT
			s, ln, wg := startPipeGateway(t, Config{ConnRatePerIP: 1e9}, auth)
			dialer := websocket.Dialer{NetDialContext: ln.dial, HandshakeTimeout: 10 * time.Second}
			h := http.Header{}
			h.Set(protocol.HeaderToken, "jwt:alice:s1")
			ws, resp, err := dialer.Dial("ws://gateway"+protocol.WebsocketPath, h)
			if err != nil {
				t.Fatalf("first connect: %v", err)
			}
			_ = resp.Body.Close()
			closed := make(chan error, 1)
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { _ = ws.Close() }()
				for {
					if _, _, err := ws.ReadMessage(); err != nil {
						closed <- err
						return
					}
				}
			}()
			testenv.Eventually(t, 10*time.Second, "socket registered", func() bool { return s.liveConns() == 1 })

			s.Revoke(tc.rev)
			select {
			case err := <-closed:
				if !websocket.IsCloseError(err, protocol.CloseUnauthorized) {
					t.Fatalf("revoked socket ended with %v, want close %d", err, protocol.CloseUnauthorized)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("revoked socket still open")
			}
			if _, err := auth.Verify(context.Background(), "jwt:alice:s1", ""); err != nil {
				t.Fatalf("the fake auth refuses the JWT itself (%v): the test would prove nothing", err)
			}
			_, resp, err = dialer.Dial("ws://gateway"+protocol.WebsocketPath, h)
			if err == nil {
				t.Fatal("reconnect with the revoked session's JWT was accepted")
			}
			if resp == nil || resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("reconnect: %v (response %v), want 401", err, resp)
			}
			_ = resp.Body.Close()
			// Another session of another user still connects.
			h.Set(protocol.HeaderToken, "jwt:bob:s2")
			ws2, resp, err := dialer.Dial("ws://gateway"+protocol.WebsocketPath, h)
			if err != nil {
				t.Fatalf("bob's connect: %v", err)
			}
			_ = resp.Body.Close()
			_ = ws2.Close()
		})
	}
}
