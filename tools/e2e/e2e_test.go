package e2e_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/wsmq/wsmq/services/publisher/client"
	"github.com/wsmq/wsmq/tools/e2e"
	"github.com/wsmq/wsmq/tools/internal/supervisor/supervisortest"
)

const wait = 15 * time.Second

func ctxFor(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func bodies(fs []e2e.Frame) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.Message)
	}
	slices.Sort(out)
	return out
}

// TestMessageSentOverGRPCReachesTheWebsocketAndSurvivesAGatewayRestart runs
// the whole product through real processes: redis-server, the MongoDB-wire
// server, auth, publisher and gateway binaries started by the supervisor.
func TestMessageSentOverGRPCReachesTheWebsocketAndSurvivesAGatewayRestart(t *testing.T) {
	s := supervisortest.Start(t, supervisortest.Config(t))
	ctx := ctxFor(t, 2*time.Minute)

	sess, err := e2e.Login(ctx, s.GatewayURL(0), "demo", "demo")
	if err != nil {
		t.Fatal(err)
	}
	pub, err := client.Dial(ctx, s.PublisherAddr(), client.Options{Insecure: true, Key: s.PublisherKey()})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = pub.Close() }()
	queue := sess.UserID

	// 1. Online: Send over gRPC, the frame arrives on the websocket.
	ws, err := e2e.Dial(ctx, s.GatewayURL(0), sess, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ws.Subscribe(queue, wait); err != nil {
		t.Fatal(err)
	}
	id, err := pub.Send(ctx, queue, "hello through the stack", 0)
	if err != nil {
		t.Fatalf("publisher Send: %v", err)
	}
	got, err := ws.Messages(1, wait)
	if err != nil {
		t.Fatal(err)
	}
	if f := got[0]; f.ID != id || f.Queue != queue || f.Message != "hello through the stack" || f.RC != 1 || f.Sent == 0 {
		t.Fatalf("frame %s, want id %s on queue %s, rc 1", f.Raw, id, queue)
	}
	_ = ws.Close()

	// 2. Offline: messages sent while nobody listens wait in Redis, through
	// a restart of the gateway process, and arrive after reconnecting.
	want := []string{"queued 1", "queued 2", "queued 3"}
	for _, m := range want {
		if _, err := pub.Send(ctx, queue, m, 0); err != nil {
			t.Fatal(err)
		}
	}
	oldPID := s.PIDs()["gateway-0"]
	if err := s.Restart(ctx, "gateway-0"); err != nil {
		t.Fatalf("restart gateway: %v", err)
	}
	if s.PIDs()["gateway-0"] == oldPID {
		t.Fatal("gateway pid unchanged: it was not restarted")
	}
	ws, err = e2e.Dial(ctx, s.GatewayURL(0), sess, "")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ws.Close() }()
	early, err := ws.Subscribe(queue, wait)
	if err != nil {
		t.Fatal(err)
	}
	rest, err := ws.Messages(len(want)-len(early), wait)
	if err != nil {
		t.Fatal(err)
	}
	if got := bodies(append(early, rest...)); !slices.Equal(got, want) {
		t.Fatalf("after the gateway restart got %q, want %q", got, want)
	}
	// Auto ack deleted them: nothing more arrives.
	if f, err := ws.Next(time.Now().Add(300 * time.Millisecond)); err == nil {
		t.Fatalf("unexpected frame after the queued messages: %s", f.Raw)
	}
}

// TestUnackedMessageReturnsToItsQueueWhenTheGatewayStops checks the
// supervisor's stop order and the gateway's graceful shutdown together: a
// message delivered in manual-ack mode but not acked is put back (not left
// hidden for the visibility timeout) when the gateway gets SIGTERM, and is
// delivered again, rc raised, by the restarted gateway.
func TestUnackedMessageReturnsToItsQueueWhenTheGatewayStops(t *testing.T) {
	cfg := supervisortest.Config(t)
	cfg.GatewayEnv = []string{"WSMQ_VISIBILITY_TIMEOUT=600"} // only the shutdown can return it in time
	s := supervisortest.Start(t, cfg)
	ctx := ctxFor(t, 2*time.Minute)

	sess, err := e2e.Login(ctx, s.GatewayURL(0), "demo", "demo")
	if err != nil {
		t.Fatal(err)
	}
	pub, err := client.Dial(ctx, s.PublisherAddr(), client.Options{Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = pub.Close() }()

	ws, err := e2e.Dial(ctx, s.GatewayURL(0), sess, "manual")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ws.Subscribe(sess.UserID, wait); err != nil {
		t.Fatal(err)
	}
	id, err := pub.Send(ctx, sess.UserID, "in flight", 0)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ws.Messages(1, wait)
	if err != nil || got[0].ID != id {
		t.Fatalf("first delivery: %v %v", got, err)
	}
	// Not acked. Restart the gateway under the client's feet.
	if err := s.Restart(ctx, "gateway-0"); err != nil {
		t.Fatal(err)
	}
	_ = ws.Close()

	ws, err = e2e.Dial(ctx, s.GatewayURL(0), sess, "manual")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ws.Close() }()
	early, err := ws.Subscribe(sess.UserID, wait)
	if err != nil {
		t.Fatal(err)
	}
	again := early
	if len(again) == 0 {
		if again, err = ws.Messages(1, wait); err != nil {
			t.Fatalf("the unacked message did not come back after the gateway restart: %v", err)
		}
	}
	if f := again[0]; f.ID != id || f.RC != 2 {
		t.Fatalf("redelivery %s, want id %s with rc 2", f.Raw, id)
	}
	if err := ws.Command("/ack/" + id); err != nil {
		t.Fatal(err)
	}
}
