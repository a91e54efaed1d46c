package supervisor_test

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wsmq/wsmq/pkg/testenv"
	gwclient "github.com/wsmq/wsmq/services/gateway/client"
	"github.com/wsmq/wsmq/services/gateway/protocol"
	"github.com/wsmq/wsmq/services/publisher/client"
	"github.com/wsmq/wsmq/tools/internal/supervisor"
	"github.com/wsmq/wsmq/tools/internal/supervisor/supervisortest"
)

// TestSentinelStackKeepsDeliveringAfterTheMasterIsKilled starts the stack
// with a replica and three sentinels, checks every service got the
// sentinel URL and is ready, sends a message through, SIGKILLs the master
// and sees the next message delivered through the promoted replica.
func TestSentinelStackKeepsDeliveringAfterTheMasterIsKilled(t *testing.T) {
	cfg := supervisortest.Config(t)
	cfg.RedisReplicas = 1
	cfg.Sentinels = 3
	s := supervisortest.Start(t, cfg)

	pids := s.PIDs()
	for _, name := range []string{"redis", "redis-replica-0", "sentinel-0", "sentinel-1", "sentinel-2", "publisher", "gateway-0"} {
		if pids[name] == 0 || !alive(pids[name]) {
			t.Fatalf("%s not running (PIDs %v)", name, pids)
		}
	}
	if u := s.RedisURL(); !strings.HasPrefix(u, "redis+sentinel://") || !strings.Contains(u, "master_name="+supervisor.SentinelMasterName) || len(s.SentinelAddrs()) != 3 {
		t.Fatalf("RedisURL = %q (sentinels %v), want a redis+sentinel URL of the 3 sentinels", u, s.SentinelAddrs())
	}
	grpcServing(t, s.PublisherAddr())

	ctx := ctxFor(t, 90*time.Second)
	sess, err := gwclient.Login(ctx, s.GatewayURL(0), "demo", "demo")
	if err != nil {
		t.Fatal(err)
	}
	ws, err := gwclient.Dial(ctx, s.GatewayURL(0), gwclient.Options{Token: sess.Token, AccessToken: sess.AccessToken})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ws.Close() }()
	if err := ws.Subscribe(ctx, sess.UserID); err != nil {
		t.Fatal(err)
	}
	pub, err := client.Dial(ctx, s.PublisherAddr(), client.Options{Insecure: true,
		Retry: client.Retry{MaxAttempts: 100, InitialBackoff: 50 * time.Millisecond, MaxBackoff: 300 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = pub.Close() }()
	receive := func(body string) {
		t.Helper()
		id, err := pub.Send(ctx, sess.UserID, body, 0)
		if err != nil {
			t.Fatalf("send %q: %v", body, err)
		}
		for {
			f, err := ws.Next(ctx)
			if err != nil {
				t.Fatalf("waiting for %q: %v", body, err)
			}
			if m, ok := f.(*protocol.Message); ok && m.ID == id {
				return
			}
		}
	}
	receive("before")

	replica := s.ReplicaAddrs()[0]
	killed := time.Now()
	if err := s.Kill("redis"); err != nil {
		t.Fatal(err)
	}
	// The sentinels promote the replica; the services follow it.
	sc := redis.NewSentinelClient(&redis.Options{Addr: s.SentinelAddrs()[0], DisableIdentity: true})
	defer func() { _ = sc.Close() }()
	deadline, _ := ctx.Deadline()
	testenv.Eventually(t, time.Until(deadline), "the sentinels to promote "+replica, func() bool {
		hp, err := sc.GetMasterAddrByName(ctx, supervisor.SentinelMasterName).Result()
		return err == nil && len(hp) == 2 && net.JoinHostPort(hp[0], hp[1]) == replica
	})
	receive("after")
	t.Logf("message after the master's SIGKILL delivered %.2fs after the kill", time.Since(killed).Seconds())
	select {
	case err := <-s.Exits():
		t.Fatalf("a process crashed: %v", err)
	default:
	}
}
