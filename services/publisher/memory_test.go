package main

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	publisherv1 "github.com/wsmq/wsmq/gen/wsmq/publisher/v1"
	"github.com/wsmq/wsmq/pkg/redisconn"
	"github.com/wsmq/wsmq/pkg/testenv"
)

// readyz returns the admin /readyz status code and body.
func readyz(t *testing.T, e *env) (int, string) {
	t.Helper()
	return testenv.MustGet(t, "http://"+e.pub.Addrs.Admin.String()+"/readyz")
}

// fillerKey is the hash fill grows.
const fillerKey = "filler"

// fill grows a hash in chunks (one big value would itself count against
// maxmemory while Redis reads it) until used_memory/maxmemory reaches at
// least ratio, staying below 1.
func fill(t *testing.T, e *env, ratio float64) {
	t.Helper()
	ctx := authed(t, "")
	chunk := strings.Repeat("x", 64<<10)
	for i := 0; ; i++ {
		used, limit, err := redisconn.MemoryUsage(ctx, e.rdb)
		if err != nil {
			t.Fatal(err)
		}
		if r := float64(used) / float64(limit); r >= ratio {
			if r >= 1 {
				t.Fatalf("filled Redis past maxmemory: %d of %d", used, limit)
			}
			return
		}
		if err := e.rdb.HSet(ctx, fillerKey, strconv.Itoa(i), chunk).Err(); err != nil {
			t.Fatalf("fill: %v", err)
		}
	}
}

func TestSendsAreRefusedAboveTheMemoryHighWaterMarkAndAcceptedBelow(t *testing.T) {
	e := start(t, map[string]string{"WSMQ_PUBLISHER_MEMORY_INTERVAL": "50ms"}) // default mark 0.90
	ctx := authed(t, testKey)
	send := &publisherv1.SendRequest{Queue: "full", Message: "m"}
	if _, err := e.api.Send(ctx, send); err != nil {
		t.Fatalf("Send before filling: %v", err)
	}
	if code, body := readyz(t, e); code != http.StatusOK || !strings.Contains(body, `"redis_memory":"up"`) {
		t.Fatalf("readyz before filling: %d %s", code, body)
	}

	// maxmemory a little above what Redis uses, then a filler to 95% of it.
	used, _, err := redisconn.MemoryUsage(ctx, e.rdb)
	if err != nil {
		t.Fatal(err)
	}
	const room = 8 << 20
	limit := used + room
	if err := e.rdb.ConfigSet(ctx, "maxmemory-policy", "noeviction").Err(); err != nil {
		t.Fatal(err)
	}
	if err := e.rdb.ConfigSet(ctx, "maxmemory", strconv.FormatInt(limit, 10)).Err(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.rdb.ConfigSet(context.Background(), "maxmemory", "0").Err() })
	fill(t, e, 0.93)

	var refusal error
	testenv.Eventually(t, 10*time.Second, "Send refused", func() bool {
		_, refusal = e.api.Send(ctx, send)
		return status.Code(refusal) == codes.ResourceExhausted
	})
	stored, err := e.rdb.ZCard(ctx, "rsmq:full").Result()
	if err != nil {
		t.Fatal(err)
	}
	if msg := status.Convert(refusal).Message(); !strings.Contains(msg, "high-water") || !strings.Contains(msg, "maxmemory") {
		t.Fatalf("refusal does not name its cause: %q", msg)
	}
	batch, err := e.api.SendBatch(ctx, &publisherv1.SendBatchRequest{Items: []*publisherv1.SendRequest{
		{Queue: "full", Message: "a"}, {Queue: "bad name", Message: "b"}, {Queue: "other", Message: "c"},
	}})
	if err != nil {
		t.Fatalf("SendBatch: %v", err)
	}
	for i, want := range []codes.Code{codes.ResourceExhausted, codes.InvalidArgument, codes.ResourceExhausted} {
		r := batch.GetResults()[i]
		if codes.Code(r.GetCode()) != want || r.GetId() != "" {
			t.Fatalf("item %d: %v %q, want %v", i, codes.Code(r.GetCode()), r.GetError(), want)
		}
		if want == codes.ResourceExhausted && !strings.Contains(r.GetError(), "high-water") {
			t.Fatalf("item %d refusal does not name its cause: %q", i, r.GetError())
		}
	}
	if n, _ := e.rdb.ZCard(ctx, "rsmq:full").Result(); n != stored {
		t.Fatalf("queue holds %d messages after refusals, want the %d sent before", n, stored)
	}
	// Readiness shows it, without going unready; gRPC health stays SERVING.
	code, body := readyz(t, e)
	if code != http.StatusOK || !strings.Contains(body, `"redis_memory":"down"`) || !strings.Contains(body, `"redis":"up"`) {
		t.Fatalf("readyz above high water: %d %s", code, body)
	}
	waitHealth(t, healthpb.NewHealthClient(e.cc), healthpb.HealthCheckResponse_SERVING)

	// Memory freed: sends accepted again, readiness follows.
	if err := e.rdb.Del(ctx, fillerKey).Err(); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "Send accepted again", func() bool {
		_, err := e.api.Send(ctx, send)
		return err == nil
	})
	if code, body := readyz(t, e); code != http.StatusOK || !strings.Contains(body, `"redis_memory":"up"`) {
		t.Fatalf("readyz after freeing: %d %s", code, body)
	}
}

func TestMemoryHighWaterOfZeroOrOneDisablesTheRefusal(t *testing.T) {
	for _, mark := range []string{"0", "1"} {
		t.Run(mark, func(t *testing.T) {
			e := start(t, map[string]string{"WSMQ_PUBLISHER_MEMORY_INTERVAL": "10ms", "WSMQ_PUBLISHER_MEMORY_HIGH_WATER": mark})
			ctx := authed(t, testKey)
			used, _, err := redisconn.MemoryUsage(ctx, e.rdb)
			if err != nil {
				t.Fatal(err)
			}
			// 93% of maxmemory: Redis still accepts the small sends.
			limit := used + 8<<20
			if err := e.rdb.ConfigSet(ctx, "maxmemory", strconv.FormatInt(limit, 10)).Err(); err != nil {
				t.Fatal(err)
			}
			fill(t, e, 0.93)
			for range 20 { // 20 sends over more than ten sampling intervals
				if _, err := e.api.Send(ctx, &publisherv1.SendRequest{Queue: "q", Message: "m"}); err != nil {
					t.Fatalf("Send with the mark disabled: %v", err)
				}
				time.Sleep(10 * time.Millisecond) // spacing sends over sampling intervals, not synchronisation
			}
			if _, body := readyz(t, e); !strings.Contains(body, `"redis_memory":"up"`) {
				t.Fatalf("readyz with the mark disabled: %s", body)
			}
		})
	}
}
