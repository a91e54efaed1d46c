package client_test

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	publisherv1 "github.com/wsmq/wsmq/gen/wsmq/publisher/v1"
	"github.com/wsmq/wsmq/pkg/testenv"
	"github.com/wsmq/wsmq/services/gateway/client"
	"github.com/wsmq/wsmq/services/gateway/internal/gatewaytest"
	"github.com/wsmq/wsmq/services/gateway/protocol"
)

const wait = gatewaytest.Wait

func ctxFor(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func login(t *testing.T, s *gatewaytest.Stack, gw *gatewaytest.Gateway, name string) client.Session {
	t.Helper()
	pw := s.CreateUser(name)
	sess, err := client.Login(ctxFor(t), gw.URL(), name, pw)
	if err != nil {
		t.Fatal(err)
	}
	return sess
}

func dial(t *testing.T, gw *gatewaytest.Gateway, opts client.Options) *client.Conn {
	t.Helper()
	c, err := client.Dial(ctxFor(t), gw.URL(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// nextMessage reads frames until a message, failing on error events.
func nextMessage(t *testing.T, c *client.Conn) *protocol.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	for {
		f, err := c.Next(ctx)
		if err != nil {
			t.Fatalf("waiting for a message: %v", err)
		}
		if m, ok := f.(*protocol.Message); ok {
			return m
		}
	}
}

// quiet asserts that no frame arrives within d.
func quiet(t *testing.T, c *client.Conn, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if f, err := c.Next(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("unexpected frame %#v (%v)", f, err)
	}
}

func TestLoginReturnsTokensAndAWrongPasswordIsUnauthorized(t *testing.T) {
	s := gatewaytest.Start(t)
	gw := s.StartGateway()
	sess := login(t, s, gw, "alice")
	if sess.UserID == "" || sess.Token == "" || sess.AccessToken == "" || sess.ExpiresAt <= time.Now().UnixMilli() {
		t.Fatalf("session %+v", sess)
	}
	_, err := client.Login(ctxFor(t), gw.URL(), "alice", "wrong")
	var se *client.StatusError
	if !errors.Is(err, client.ErrUnauthorized) || !errors.As(err, &se) || se.StatusCode != http.StatusUnauthorized || se.Message == "" {
		t.Fatalf("wrong password: %v, want a 401 StatusError with the gateway's message", err)
	}
}

func TestEveryCredentialTransportReceivesMessages(t *testing.T) {
	s := gatewaytest.Start(t)
	gw := s.StartGateway("WSMQ_ALLOW_QUERY_CREDENTIALS=1") // the query case needs it outside dev mode
	sess := login(t, s, gw, "bob")
	for _, tc := range []struct {
		name string
		opts func() client.Options
	}{
		{"headers", func() client.Options { return client.Options{Token: sess.Token, AccessToken: sess.AccessToken} }},
		{"ticket", func() client.Options {
			tk, exp, err := client.Ticket(ctxFor(t), gw.URL(), sess.Token, sess.AccessToken)
			if err != nil || exp <= time.Now().UnixMilli() {
				t.Fatalf("Ticket: %v (expires %d)", err, exp)
			}
			return client.Options{Ticket: tk}
		}},
		{"subprotocol", func() client.Options {
			return client.Options{Token: sess.Token, AccessToken: sess.AccessToken, UseSubprotocol: true}
		}},
		{"query parameters", func() client.Options {
			return client.Options{Token: sess.Token, AccessToken: sess.AccessToken, UseQuery: true}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := tc.opts()
			c := dial(t, gw, opts)
			if want := map[bool]string{true: "wsmq.v1"}[opts.UseSubprotocol]; c.Subprotocol() != want {
				t.Fatalf("subprotocol %q, want %q", c.Subprotocol(), want)
			}
			if err := c.Subscribe(ctxFor(t), sess.UserID); err != nil {
				t.Fatal(err)
			}
			id := s.Send(sess.UserID, "hello "+tc.name)
			m := nextMessage(t, c)
			if m.ID != id || m.Queue != sess.UserID || m.Message != "hello "+tc.name || m.RC != 1 {
				t.Fatalf("message %+v, want id %s rc 1", m, id)
			}
			if d := time.Since(time.UnixMilli(m.Sent)); d < -time.Second || d > time.Minute {
				t.Fatalf("sent %d is not the send time", m.Sent)
			}
			// Auto ack: the client's pong lets the gateway delete it.
			testenv.Eventually(t, wait, "auto-acked message deleted", func() bool { return s.Attrs(sess.UserID).Msgs == 0 })
		})
	}
}

func TestAccessTokenAloneGetsAFreshTokenFrame(t *testing.T) {
	s := gatewaytest.Start(t)
	gw := s.StartGateway()
	sess := login(t, s, gw, "ben")
	c := dial(t, gw, client.Options{AccessToken: sess.AccessToken})
	f, err := c.Next(ctxFor(t))
	if err != nil {
		t.Fatal(err)
	}
	tok, ok := f.(*protocol.Token)
	if !ok || tok.Token == "" || tok.ExpiresAt <= time.Now().UnixMilli() {
		t.Fatalf("first frame %#v, want a token event", f)
	}
	if c.Token() != tok.Token {
		t.Fatalf("Token() = %q, want the refreshed %q", c.Token(), tok.Token)
	}
}

func TestManualAckDeletesOnlyAckedMessagesAndUnknownIDIsTyped(t *testing.T) {
	s := gatewaytest.Start(t, "WSMQ_VISIBILITY_TIMEOUT=1")
	gw := s.StartGateway()
	sess := login(t, s, gw, "carol")
	c := dial(t, gw, client.Options{Token: sess.Token, AckMode: protocol.AckManual})
	ctx := ctxFor(t)
	if err := c.Subscribe(ctx, sess.UserID); err != nil {
		t.Fatal(err)
	}
	acked := s.Send(sess.UserID, "ack me")
	ignored := s.Send(sess.UserID, "ignore me")
	if m := nextMessage(t, c); m.ID != acked {
		t.Fatalf("first %+v, want %s", m, acked)
	}
	if err := c.Ack(ctx, acked); err != nil {
		t.Fatal(err)
	}
	if m := nextMessage(t, c); m.ID != ignored || m.RC != 1 {
		t.Fatalf("second %+v, want %s", m, ignored)
	}
	// Not acked: back after the 1 s visibility timeout, rc raised.
	if m := nextMessage(t, c); m.ID != ignored || m.RC != 2 {
		t.Fatalf("redelivery %+v, want %s with rc 2", m, ignored)
	}
	if err := c.Ack(ctx, ignored); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, wait, "both acked messages deleted", func() bool { return s.Attrs(sess.UserID).Msgs == 0 })

	unknown := "abcdefghij0123456789abcdefghij01"
	if err := c.Ack(ctx, unknown); err != nil {
		t.Fatal(err)
	}
	_, err := c.Next(ctx)
	var ev *client.EventError
	if !errors.As(err, &ev) || ev.Code != protocol.CodeUnknownID || ev.ID != unknown || ev.Message == "" {
		t.Fatalf("ack of an unknown id: %v, want an unknown_id EventError", err)
	}
	// An error event leaves the connection up.
	s.Send(sess.UserID, "still up")
	if m := nextMessage(t, c); m.Message != "still up" {
		t.Fatalf("got %+v", m)
	}
}

func TestSubscribeToAForeignQueueIsAForbiddenEventError(t *testing.T) {
	s := gatewaytest.Start(t)
	gw := s.StartGateway()
	sess := login(t, s, gw, "dave")
	c := dial(t, gw, client.Options{Token: sess.Token})
	ctx := ctxFor(t)
	err := c.Subscribe(ctx, "someone-else")
	var ev *client.EventError
	if !errors.As(err, &ev) || ev.Code != protocol.CodeForbidden || ev.Queue != "someone-else" || ev.Message == "" {
		t.Fatalf("Subscribe(someone-else) = %v, want a forbidden EventError", err)
	}
	// Unsubscribing a queue not subscribed is refused the same way.
	err = c.Unsubscribe(ctx, sess.UserID)
	if !errors.As(err, &ev) || ev.Code != protocol.CodeBadRequest || ev.Queue != sess.UserID {
		t.Fatalf("Unsubscribe(not subscribed) = %v, want a bad_request EventError", err)
	}
	// The refusals were answers, not frames for Next; the connection works.
	if err := c.Subscribe(ctx, sess.UserID+"-news"); err != nil {
		t.Fatal(err)
	}
	if err := c.Unsubscribe(ctx, sess.UserID+"-news"); err != nil {
		t.Fatal(err)
	}
	quiet(t, c, 200*time.Millisecond)
}

func TestBadCredentialsAreUnauthorizedAtDial(t *testing.T) {
	s := gatewaytest.Start(t)
	gw := s.StartGateway()
	sess := login(t, s, gw, "erin")
	for _, tc := range []struct {
		name string
		opts client.Options
	}{
		{"none", client.Options{}},
		{"tampered JWT in a header", client.Options{Token: sess.Token[:len(sess.Token)-4] + "AAAA"}},
		{"wrong access token in the subprotocol", client.Options{AccessToken: "x" + sess.AccessToken, UseSubprotocol: true}},
		{"access token in the query outside dev mode", client.Options{AccessToken: sess.AccessToken, UseQuery: true}},
		{"unknown ticket", client.Options{Ticket: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := client.Dial(ctxFor(t), gw.URL(), tc.opts)
			if err == nil {
				_ = c.Close()
				t.Fatal("connected with bad credentials")
			}
			var se *client.StatusError
			if !errors.Is(err, client.ErrUnauthorized) || !errors.As(err, &se) || se.Message == "" {
				t.Fatalf("Dial: %v, want a 401 StatusError with a message", err)
			}
		})
	}
}

// publisher dials the publisher process started by the stack.
func publisher(t *testing.T, s *gatewaytest.Stack) publisherv1.PublisherServiceClient {
	t.Helper()
	cc, err := grpc.NewClient(s.StartPublisher(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return publisherv1.NewPublisherServiceClient(cc)
}

// TestMessageSentOverGRPCReachesTheClientAndQueuedOnesSurviveAGatewayRestart
// runs the product through real processes: redis-server, the MongoDB-wire
// server, auth, publisher and gateway binaries.
func TestMessageSentOverGRPCReachesTheClientAndQueuedOnesSurviveAGatewayRestart(t *testing.T) {
	s := gatewaytest.Start(t)
	gw := s.StartGateway()
	pub := publisher(t, s)
	sess := login(t, s, gw, "frank")
	ctx := ctxFor(t)
	q := sess.UserID

	// Online: Send over gRPC, the frame arrives on the websocket.
	c := dial(t, gw, client.Options{Token: sess.Token, AccessToken: sess.AccessToken})
	if err := c.Subscribe(ctx, q); err != nil {
		t.Fatal(err)
	}
	res, err := pub.Send(ctx, &publisherv1.SendRequest{Queue: q, Message: "hello through the stack"})
	if err != nil {
		t.Fatalf("publisher Send: %v", err)
	}
	if m := nextMessage(t, c); m.ID != res.GetId() || m.Queue != q || m.Message != "hello through the stack" || m.RC != 1 || m.Sent == 0 {
		t.Fatalf("message %+v, want id %s rc 1", m, res.GetId())
	}
	testenv.Eventually(t, wait, "auto-acked message deleted", func() bool { return s.Attrs(q).Msgs == 0 })
	_ = c.Close()

	// Offline: messages sent while nobody listens wait in Redis, through a
	// restart of the gateway, and arrive after reconnecting.
	want := []string{"queued 1", "queued 2", "queued 3"}
	for _, m := range want {
		if _, err := pub.Send(ctx, &publisherv1.SendRequest{Queue: q, Message: m}); err != nil {
			t.Fatal(err)
		}
	}
	gw = s.RestartGateway(gw)
	c = dial(t, gw, client.Options{Token: sess.Token, AccessToken: sess.AccessToken})
	if err := c.Subscribe(ctx, q); err != nil {
		t.Fatal(err)
	}
	var got []string
	for range want {
		got = append(got, nextMessage(t, c).Message)
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("after the gateway restart got %q, want %q", got, want)
	}
	// Auto ack deleted them: nothing more arrives.
	quiet(t, c, 300*time.Millisecond)
}

// TestUnackedMessageReturnsToItsQueueWhenTheGatewayStops: a message
// delivered in manual mode but not acked is put back (not left hidden for
// the visibility timeout) on SIGTERM, the client sees 1001, and the
// restarted gateway delivers it again with rc raised.
func TestUnackedMessageReturnsToItsQueueWhenTheGatewayStops(t *testing.T) {
	s := gatewaytest.Start(t, "WSMQ_VISIBILITY_TIMEOUT=600") // only the shutdown can return it in time
	gw := s.StartGateway()
	pub := publisher(t, s)
	sess := login(t, s, gw, "gina")
	ctx := ctxFor(t)
	opts := client.Options{Token: sess.Token, AccessToken: sess.AccessToken, AckMode: protocol.AckManual}
	c := dial(t, gw, opts)
	if err := c.Subscribe(ctx, sess.UserID); err != nil {
		t.Fatal(err)
	}
	res, err := pub.Send(ctx, &publisherv1.SendRequest{Queue: sess.UserID, Message: "in flight"})
	if err != nil {
		t.Fatal(err)
	}
	if m := nextMessage(t, c); m.ID != res.GetId() {
		t.Fatalf("first delivery %+v", m)
	}
	gw = s.RestartGateway(gw)
	_, err = c.Next(ctx)
	var ce *client.CloseError
	if !errors.As(err, &ce) || ce.Code != 1001 {
		t.Fatalf("after shutdown Next = %v, want a 1001 CloseError", err)
	}
	// Redelivered below within the test's two minutes: with a 600 s
	// visibility timeout, only the shutdown can have returned it.
	c = dial(t, gw, opts)
	if err := c.Subscribe(ctx, sess.UserID); err != nil {
		t.Fatal(err)
	}
	// rc 1: the shutdown returned it unprocessed, which undoes the receive.
	if m := nextMessage(t, c); m.ID != res.GetId() || m.RC != 1 {
		t.Fatalf("redelivery %+v, want id %s with rc 1", m, res.GetId())
	}
	if err := c.Ack(ctx, res.GetId()); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, wait, "acked message deleted", func() bool { return s.Attrs(sess.UserID).Msgs == 0 })
}
