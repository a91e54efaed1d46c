package client_test

import (
	"context"
	"crypto/tls"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/redis/go-redis/v9"

	publisherv1 "github.com/wsmq/wsmq/gen/wsmq/publisher/v1"
	"github.com/wsmq/wsmq/pkg/rsmq"
	"github.com/wsmq/wsmq/pkg/testenv"
	"github.com/wsmq/wsmq/services/publisher/client"
	"github.com/wsmq/wsmq/services/publisher/internal/publishertest"
)

// attempts counts calls on the wire and reports each status code.
type attempts struct {
	n     atomic.Int32
	codes chan codes.Code
}

func (a *attempts) interceptor() grpc.DialOption {
	return grpc.WithChainUnaryInterceptor(func(ctx context.Context, method string, req, reply any,
		cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		a.n.Add(1)
		err := invoker(ctx, method, req, reply, cc, opts...)
		select {
		case a.codes <- status.Code(err):
		default:
		}
		return err
	})
}

func setup(t *testing.T, key string, retry client.Retry) (*testenv.Redis, *client.Client, *attempts) {
	t.Helper()
	r := testenv.StartRedis(t)
	p := publishertest.Start(t, r.URL(), nil)
	a := &attempts{codes: make(chan codes.Code, 100)}
	c, err := client.Dial(context.Background(), p.Addr, client.Options{
		Key: key, Insecure: true, Retry: retry, DialOptions: []grpc.DialOption{a.interceptor()}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return r, c, a
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestClientSendStoresTheMessage(t *testing.T) {
	r, c, _ := setup(t, publishertest.Key, client.Retry{})
	ctx := ctxFor(t, 10*time.Second)
	id, err := c.Send(ctx, "inbox", "hello", 0)
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	m, err := rsmq.New(rdb, rsmq.Options{}).PopMessage(ctx, "inbox")
	if err != nil || m == nil || m.ID != id || m.Message != "hello" {
		t.Fatalf("PopMessage = %+v, %v; want id %s", m, err, id)
	}
}

func TestClientSendBatchReturnsPerItemStatusErrors(t *testing.T) {
	_, c, _ := setup(t, publishertest.Key, client.Retry{})
	res, err := c.SendBatch(ctxFor(t, 10*time.Second), []client.Item{
		{Queue: "a", Message: "1"},
		{Queue: "a", Message: "2", Delay: -time.Second},
		{Queue: "b", Message: "3", Delay: 1500 * time.Millisecond},
	})
	if err != nil {
		t.Fatalf("SendBatch: %v", err)
	}
	if len(res) != 3 || res[0].Err != nil || res[0].ID == "" || res[2].Err != nil || res[2].ID == "" {
		t.Fatalf("results = %+v", res)
	}
	if status.Code(res[1].Err) != codes.InvalidArgument || !strings.Contains(res[1].Err.Error(), "items[1].delay_seconds") {
		t.Fatalf("item 1 error = %v, want InvalidArgument naming items[1].delay_seconds", res[1].Err)
	}
}

func TestClientDoesNotRetryNonUnavailableErrors(t *testing.T) {
	for _, tc := range []struct {
		name, key, queue string
		want             codes.Code
	}{
		{"wrong key", "wrong-key-0123456789abcdef", "q", codes.Unauthenticated},
		{"no key", "", "q", codes.Unauthenticated},
		{"bad queue", publishertest.Key, "bad queue", codes.InvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, c, a := setup(t, tc.key, client.Retry{MaxAttempts: 5, InitialBackoff: time.Millisecond})
			_, err := c.Send(ctxFor(t, 10*time.Second), tc.queue, "m", 0)
			if status.Code(err) != tc.want || a.n.Load() != 1 {
				t.Fatalf("Send = %v after %d attempts, want %v after 1", err, a.n.Load(), tc.want)
			}
		})
	}
}

func TestClientRetriesUnavailableUntilRedisIsBack(t *testing.T) {
	r, c, a := setup(t, publishertest.Key, client.Retry{MaxAttempts: 1000, InitialBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond})
	ctx := ctxFor(t, 30*time.Second)
	r.Stop()

	type result struct {
		id  string
		err error
	}
	done := make(chan result, 1)
	go func() {
		id, err := c.Send(ctx, "q", "survives an outage", 0)
		done <- result{id, err}
	}()
	// Restart Redis once the first Unavailable answer has been seen.
	for code := range a.codes {
		if code == codes.Unavailable {
			break
		}
		t.Fatalf("first answer with Redis down = %v, want Unavailable", code)
	}
	r.Start()
	res := <-done
	if res.err != nil || res.id == "" {
		t.Fatalf("Send across the outage = %q, %v", res.id, res.err)
	}
	if a.n.Load() < 2 {
		t.Fatalf("%d attempts, want a retry", a.n.Load())
	}
}

func TestClientRetriesStopAtTheContextDeadline(t *testing.T) {
	r, c, a := setup(t, publishertest.Key, client.Retry{MaxAttempts: 1000, InitialBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	r.Stop()
	start := time.Now()
	_, err := c.Send(ctxFor(t, 500*time.Millisecond), "q", "m", 0)
	took := time.Since(start)
	if code := status.Code(err); (code != codes.Unavailable && code != codes.DeadlineExceeded) || took > 3*time.Second {
		t.Fatalf("Send = %v after %s, want Unavailable or DeadlineExceeded soon after 500ms", err, took)
	}
	if a.n.Load() < 2 {
		t.Fatalf("%d attempts within the deadline, want retries", a.n.Load())
	}
}

func TestDialRejectsInsecureWithTLS(t *testing.T) {
	_, err := client.Dial(context.Background(), "127.0.0.1:1", client.Options{Insecure: true, TLS: &tls.Config{}})
	if err == nil {
		t.Fatal("Dial with Insecure and TLS succeeded")
	}
}

func TestClientSendItemStoresTheTTLAndGetStatusSeesTheMessage(t *testing.T) {
	r, c, _ := setup(t, publishertest.Key, client.Retry{})
	ctx := ctxFor(t, 10*time.Second)
	id, err := c.SendItem(ctx, client.Item{Queue: "inbox", Message: "soon stale", TTL: 90 * time.Second})
	if err != nil {
		t.Fatalf("SendItem: %v", err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	exp, err := rdb.HGet(ctx, "rsmq:inbox:Q", id+":exp").Int64()
	now := time.Now().UnixMilli()
	if err != nil || exp < now+85_000 || exp > now+91_000 {
		t.Fatalf("%s:exp = %d, %v; want about now + 90 s (%d)", id, exp, err, now+90_000)
	}
	st, err := c.GetStatus(ctx, "inbox", id)
	if err != nil || st.GetState() != publisherv1.MessageState_MESSAGE_STATE_QUEUED {
		t.Fatalf("GetStatus = %v, %v; want QUEUED", st, err)
	}
	res, err := c.SendBatch(ctx, []client.Item{{Queue: "inbox", Message: "x", TTL: -time.Second}})
	if err != nil || status.Code(res[0].Err) != codes.InvalidArgument || !strings.Contains(res[0].Err.Error(), "items[0].ttl_seconds") {
		t.Fatalf("negative ttl: %+v, %v", res, err)
	}
}
