package main

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	publisherv1 "github.com/wsmq/wsmq/gen/wsmq/publisher/v1"
	"github.com/wsmq/wsmq/pkg/redisconn"
	"github.com/wsmq/wsmq/pkg/rsmq"
	"github.com/wsmq/wsmq/pkg/testenv"
	"github.com/wsmq/wsmq/services/gateway/protocol"
)

// memoryRatio is Redis's used_memory/maxmemory now.
func (s *stack) memoryRatio() float64 {
	s.t.Helper()
	used, limit, err := redisconn.MemoryUsage(context.Background(), s.RDB)
	if err != nil {
		s.t.Fatal(err)
	}
	return float64(used) / float64(limit)
}

// TestRedisAtMaxmemoryRefusesSendsDrainsAndRecovers runs the whole stack
// against a Redis with a small maxmemory and noeviction, filled with real
// messages: the publisher refuses sends with RESOURCE_EXHAUSTED naming the
// high-water state (its /readyz says so, advisory: still 200), then the
// queue is filled on to Redis's own OOM refusal; an auto-mode websocket
// client that subscribes then gets every message, and each is deleted (the
// receive and return scripts run under OOM), so memory falls below the
// mark, the publisher accepts sends again, readiness follows and the new
// message is delivered too.
func TestRedisAtMaxmemoryRefusesSendsDrainsAndRecovers(t *testing.T) {
	const size, mark = 8 << 10, 0.9
	s := newStack(t)
	gw := s.startGateway()
	pub := s.StartPublisherAdmin("WSMQ_PUBLISHER_MEMORY_INTERVAL=20ms",
		"WSMQ_PUBLISHER_MEMORY_HIGH_WATER="+strconv.FormatFloat(mark, 'f', -1, 64))
	api := s.DialPublisher(pub.Addr)
	sess := s.user(gw, "fullredis")
	q := sess.UserID
	if err := s.Queues.CreateQueue(context.Background(), q, rsmq.DefaultQueueConfig()); err != nil {
		t.Fatal(err)
	}
	if code, body := testenv.MustGet(t, "http://"+pub.Admin+"/readyz"); code != http.StatusOK || !strings.Contains(body, `"redis_memory":"up"`) {
		t.Fatalf("publisher readyz before filling: %d %s", code, body)
	}

	ctx, cancel := ctxWait()
	defer cancel()
	used, _, err := redisconn.MemoryUsage(ctx, s.RDB)
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range [][2]string{{"maxmemory-policy", "noeviction"}, {"maxmemory", strconv.FormatInt(used+4<<20, 10)}} {
		if err := s.RDB.ConfigSet(ctx, kv[0], kv[1]).Err(); err != nil {
			t.Fatal(err)
		}
	}

	// Fill through the publisher until it refuses on its mark (a send
	// between two samples may meet Redis's own OOM first: go on until the
	// mark's refusal, which names the state).
	ids := map[string]bool{}
	var refusal *status.Status
	for refusal == nil {
		r, err := api.Send(ctx, &publisherv1.SendRequest{Queue: q, Message: numbered(len(ids), size)})
		switch st := status.Convert(err); {
		case err == nil:
			ids[r.GetId()] = true
		case st.Code() != codes.ResourceExhausted:
			t.Fatalf("send %d: %v, want success or RESOURCE_EXHAUSTED", len(ids), err)
		case strings.Contains(st.Message(), "high-water"):
			refusal = st
		}
		if len(ids) > 4<<20/size {
			t.Fatalf("%d sends of %d bytes fit in 4 MiB: maxmemory is not in force", len(ids), size)
		}
	}
	if msg := refusal.Message(); !strings.Contains(msg, "maxmemory") || !strings.Contains(msg, "drain") {
		t.Fatalf("refusal does not name the memory state: %q", msg)
	}
	code, body := testenv.MustGet(t, "http://"+pub.Admin+"/readyz")
	if code != http.StatusOK || !strings.Contains(body, `"redis_memory":"down"`) || !strings.Contains(body, `"redis":"up"`) {
		t.Fatalf("publisher readyz above the mark: %d %s, want 200 with redis_memory down (advisory)", code, body)
	}
	// On to Redis's own refusal, with real messages in the same queue: the
	// drain below runs on a Redis that refuses writes.
	for {
		id, err := s.Queues.SendMessage(ctx, q, numbered(len(ids), size), rsmq.QueueDefault)
		if err != nil {
			if !strings.Contains(err.Error(), "OOM") {
				t.Fatalf("send past the mark: %v, want Redis's OOM refusal", err)
			}
			break
		}
		ids[id] = true
	}
	n := len(ids)
	t.Logf("%d messages of %d bytes fill Redis to OOM (%.1f%% of maxmemory)", n, size, 100*s.memoryRatio())

	// A client that comes back drains them: delivered, and deleted.
	c := dial(t, gw, sess, protocol.AckAuto)
	c.subscribe(q)
	for _, m := range c.messages(n) {
		if !ids[m.ID] {
			t.Fatalf("delivered %s, not one of the %d sent (or twice)", m.ID, n)
		}
		delete(ids, m.ID)
	}
	testenv.Eventually(t, waitLong, "queue empty once the client confirmed every message", func() bool { return s.attrs(q).Msgs == 0 })
	testenv.Eventually(t, waitLong, "used_memory below the mark", func() bool { return s.memoryRatio() < mark })

	// Sends accepted again, readiness follows, and delivery goes on.
	var id string
	testenv.Eventually(t, waitLong, "publisher accepts sends again", func() bool {
		r, err := api.Send(ctx, &publisherv1.SendRequest{Queue: q, Message: "after"})
		if status.Code(err) == codes.ResourceExhausted {
			return false
		}
		if err != nil {
			t.Fatalf("send after draining: %v", err)
		}
		id = r.GetId()
		return true
	})
	if code, body := testenv.MustGet(t, "http://"+pub.Admin+"/readyz"); code != http.StatusOK || !strings.Contains(body, `"redis_memory":"up"`) {
		t.Fatalf("publisher readyz after draining: %d %s", code, body)
	}
	if m := c.messages(1)[0]; m.ID != id || m.Message != "after" {
		t.Fatalf("after recovery got %s %.20q, want %s", m.ID, m.Message, id)
	}
}
