package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	publisherv1 "github.com/wsmq/wsmq/gen/wsmq/publisher/v1"
	"github.com/wsmq/wsmq/pkg/rsmq"
	"github.com/wsmq/wsmq/pkg/testenv"
)

// env is a started Redis and publisher, with clients for both.
type env struct {
	redis *testenv.Redis
	rdb   *redis.Client
	q     *rsmq.Client
	pub   *inproc
	api   publisherv1.PublisherServiceClient
	cc    *grpc.ClientConn
}

func start(t *testing.T, vars map[string]string) *env {
	t.Helper()
	r := testenv.StartRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	p := startInProcess(t, r.URL(), vars, nil)
	cc := dial(t, p.Addr)
	return &env{redis: r, rdb: rdb, q: rsmq.New(rdb, rsmq.Options{}), pub: p,
		api: publisherv1.NewPublisherServiceClient(cc), cc: cc}
}

func dial(t *testing.T, addr string, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	if len(opts) == 0 {
		opts = []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	}
	cc, err := grpc.NewClient(addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// authed returns a context carrying key as bearer credential and a deadline.
func authed(t *testing.T, key string) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	if key == "" {
		return ctx
	}
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+key)
}

func TestSendStoresMessageAndPublishesRealtimeNotification(t *testing.T) {
	e := start(t, nil)
	ctx := authed(t, testKey)

	// Subscribe first, and wait for the subscription to be confirmed.
	ps := e.rdb.Subscribe(ctx, "rsmq:rt:orders")
	t.Cleanup(func() { _ = ps.Close() })
	if _, err := ps.Receive(ctx); err != nil {
		t.Fatalf("subscribe: %v", err)
	}

	body := "héllo 🌍 wsmq"
	resp, err := e.api.Send(ctx, &publisherv1.SendRequest{Queue: "orders", Message: body})
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	if err := rsmq.ValidateID(resp.GetId()); err != nil {
		t.Fatalf("Send returned id %q: %v", resp.GetId(), err)
	}

	note, err := ps.ReceiveMessage(ctx)
	if err != nil {
		t.Fatalf("realtime notification: %v", err)
	}
	if note.Channel != "rsmq:rt:orders" || note.Payload != "1" {
		t.Fatalf("realtime notification = %s %q, want rsmq:rt:orders \"1\"", note.Channel, note.Payload)
	}

	msg, err := e.q.ReceiveMessage(ctx, "orders", rsmq.QueueDefault)
	if err != nil || msg == nil {
		t.Fatalf("ReceiveMessage = %v, %v", msg, err)
	}
	if msg.ID != resp.GetId() || msg.Message != body {
		t.Fatalf("stored %q %q, sent %q %q", msg.ID, msg.Message, resp.GetId(), body)
	}
}

func TestSendCreatesMissingQueueWithConfiguredDefaults(t *testing.T) {
	e := start(t, map[string]string{"WSMQ_QUEUE_VT": "45", "WSMQ_QUEUE_DELAY": "3", "WSMQ_QUEUE_MAXSIZE": "2048"})
	ctx := authed(t, testKey)
	if _, err := e.api.Send(ctx, &publisherv1.SendRequest{Queue: "fresh", Message: "x"}); err != nil {
		t.Fatalf("Send: %v", err)
	}
	a, err := e.q.GetQueueAttributes(ctx, "fresh")
	if err != nil {
		t.Fatal(err)
	}
	if a.VT != 45 || a.Delay != 3 || a.MaxSize != 2048 || a.Msgs != 1 || a.HiddenMsgs != 1 {
		t.Fatalf("attributes = %+v, want vt 45, delay 3, maxsize 2048, 1 hidden message", a)
	}
}

func TestSendDelayZeroUsesQueueDelayAndPositiveDelayHides(t *testing.T) {
	e := start(t, nil)
	ctx := authed(t, testKey)
	if err := e.q.CreateQueue(ctx, "slow", rsmq.QueueConfig{VT: 30, Delay: 100, MaxSize: 65536}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.api.Send(ctx, &publisherv1.SendRequest{Queue: "slow", Message: "a"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.api.Send(ctx, &publisherv1.SendRequest{Queue: "now", Message: "b", DelaySeconds: 60}); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"slow", "now"} {
		a, err := e.q.GetQueueAttributes(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if a.Msgs != 1 || a.HiddenMsgs != 1 {
			t.Fatalf("%s: msgs %d hidden %d, want the message hidden", q, a.Msgs, a.HiddenMsgs)
		}
	}
}

func TestSendBatchStoresThousandItemsWithResultsInInputOrder(t *testing.T) {
	e := start(t, nil)
	ctx := authed(t, testKey)
	const n = 1000
	queues := []string{"b0", "b1", "b2"}
	if err := e.q.CreateQueue(ctx, "b1", rsmq.DefaultQueueConfig()); err != nil { // b0, b2 are created on send
		t.Fatal(err)
	}
	req := &publisherv1.SendBatchRequest{}
	for i := range n {
		req.Items = append(req.Items, &publisherv1.SendRequest{Queue: queues[i%3], Message: "m" + strconv.Itoa(i)})
	}
	resp, err := e.api.SendBatch(ctx, req)
	if err != nil {
		t.Fatalf("SendBatch: %v", err)
	}
	if len(resp.GetResults()) != n {
		t.Fatalf("%d results for %d items", len(resp.GetResults()), n)
	}
	want := map[string]string{} // id -> body
	for i, r := range resp.GetResults() {
		if r.GetCode() != 0 || r.GetId() == "" {
			t.Fatalf("result %d = %v", i, r)
		}
		want[r.GetId()] = "m" + strconv.Itoa(i)
	}
	got := 0
	for _, q := range queues {
		res, err := e.q.ReceiveMessages(ctx, q, rsmq.ReceiveOptions{Max: n})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range res.Messages {
			if want[m.ID] != m.Message {
				t.Fatalf("queue %s holds id %s with %q; the result at that position said %q", q, m.ID, m.Message, want[m.ID])
			}
			got++
		}
	}
	if got != n {
		t.Fatalf("%d messages stored, want %d", got, n)
	}
}

func TestSendBatchWithInvalidItemsReportsThemAndStoresTheRest(t *testing.T) {
	e := start(t, nil)
	ctx := authed(t, testKey)
	if err := e.q.CreateQueue(ctx, "small", rsmq.QueueConfig{VT: 30, MaxSize: 1024}); err != nil {
		t.Fatal(err)
	}
	items := []*publisherv1.SendRequest{
		{Queue: "ok", Message: "first"},
		{Queue: "bad name!", Message: "x"},
		{Queue: "ok", Message: "second"},
		{Queue: "ok", Message: "y", DelaySeconds: -1},
		{Queue: "small", Message: strings.Repeat("z", 1025)},
		{Queue: "new-one", Message: "third"},
	}
	resp, err := e.api.SendBatch(ctx, &publisherv1.SendBatchRequest{Items: items})
	if err != nil {
		t.Fatalf("SendBatch: %v", err)
	}
	want := []struct {
		code codes.Code
		err  string
	}{
		{codes.OK, ""},
		{codes.InvalidArgument, "items[1].queue: must match ^[a-zA-Z0-9_-]{1,160}$"},
		{codes.OK, ""},
		{codes.InvalidArgument, "items[3].delay_seconds: must be between 0 and 9999999"},
		{codes.InvalidArgument, "items[4].message: too long (1025 > maxsize 1024)"},
		{codes.OK, ""},
	}
	res := resp.GetResults()
	if len(res) != len(want) {
		t.Fatalf("%d results, want %d", len(res), len(want))
	}
	for i, w := range want {
		if codes.Code(res[i].GetCode()) != w.code || !strings.Contains(res[i].GetError(), w.err) || (w.code == codes.OK) != (res[i].GetId() != "") {
			t.Errorf("result %d = %v, want code %v error containing %q", i, res[i], w.code, w.err)
		}
	}
	for q, n := range map[string]int64{"ok": 2, "new-one": 1, "small": 0} {
		a, err := e.q.GetQueueAttributes(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if a.Msgs != n {
			t.Errorf("queue %s holds %d messages, want %d", q, a.Msgs, n)
		}
	}
}

func TestSendBatchOverTheLimitIsInvalidArgumentNamingItems(t *testing.T) {
	e := start(t, map[string]string{"WSMQ_PUBLISHER_MAX_BATCH": "10"})
	req := &publisherv1.SendBatchRequest{}
	for range 11 {
		req.Items = append(req.Items, &publisherv1.SendRequest{Queue: "q", Message: "m"})
	}
	_, err := e.api.SendBatch(authed(t, testKey), req)
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), "items: at most 10") {
		t.Fatalf("SendBatch of 11 with limit 10 = %v, want InvalidArgument naming items", err)
	}
}

func TestEveryValidationRuleIsInvalidArgumentNamingTheField(t *testing.T) {
	e := start(t, nil)
	ctx := authed(t, testKey)
	if err := e.q.CreateQueue(ctx, "small", rsmq.QueueConfig{VT: 30, MaxSize: 1024}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		req  *publisherv1.SendRequest
		want string
	}{
		{"empty queue", &publisherv1.SendRequest{Message: "m"}, "queue: must not be empty; must match ^[a-zA-Z0-9_-]{1,160}$"},
		{"queue with a space", &publisherv1.SendRequest{Queue: "a b", Message: "m"}, "queue: must match ^[a-zA-Z0-9_-]{1,160}$"},
		{"queue with a colon", &publisherv1.SendRequest{Queue: "a:b", Message: "m"}, "queue: must match"},
		{"queue of 161 chars", &publisherv1.SendRequest{Queue: strings.Repeat("q", 161), Message: "m"}, "queue: must match"},
		{"negative delay", &publisherv1.SendRequest{Queue: "q", Message: "m", DelaySeconds: -1}, "delay_seconds: must be between 0 and 9999999"},
		{"delay too large", &publisherv1.SendRequest{Queue: "q", Message: "m", DelaySeconds: 10_000_000}, "delay_seconds: must be between 0 and 9999999"},
		{"negative ttl", &publisherv1.SendRequest{Queue: "q", Message: "m", TtlSeconds: -1}, "ttl_seconds: must be between 0 and 9999999"},
		{"ttl too large", &publisherv1.SendRequest{Queue: "q", Message: "m", TtlSeconds: 10_000_000}, "ttl_seconds: must be between 0 and 9999999"},
		{"message over default maxsize", &publisherv1.SendRequest{Queue: "q", Message: strings.Repeat("a", 70000)}, "message: too long (70000 > maxsize 65536)"},
		{"astral chars count two UTF-16 units", &publisherv1.SendRequest{Queue: "q2", Message: strings.Repeat("😀", 32769)}, "message: too long (65538 > maxsize 65536)"},
		{"message over the queue's own maxsize", &publisherv1.SendRequest{Queue: "small", Message: strings.Repeat("a", 1025)}, "message: too long (1025 > maxsize 1024)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.api.Send(ctx, tc.req)
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), tc.want) {
				t.Fatalf("Send = %v, want InvalidArgument containing %q", err, tc.want)
			}
		})
	}
	// Limits are inclusive: the longest message and the longest delay pass.
	for _, req := range []*publisherv1.SendRequest{
		{Queue: "small", Message: strings.Repeat("a", 1024)},
		{Queue: strings.Repeat("q", 160), Message: "m", DelaySeconds: 9_999_999},
		{Queue: "q", Message: "m", TtlSeconds: 9_999_999},
	} {
		if _, err := e.api.Send(ctx, req); err != nil {
			t.Fatalf("Send at the limit (queue %.10s…, %d chars, delay %d): %v", req.Queue, len(req.Message), req.DelaySeconds, err)
		}
	}
}

func TestInvalidUTF8MessageIsInvalidArgumentNamingTheField(t *testing.T) {
	e := start(t, nil)
	ctx := authed(t, testKey)
	// The Go protobuf runtime refuses to marshal invalid UTF-8, so the request
	// is encoded by hand: field 1 "q", field 2 "\xff\xfe".
	single := []byte{0x0a, 1, 'q', 0x12, 2, 0xff, 0xfe}
	var out publisherv1.SendResponse
	err := e.cc.Invoke(ctx, "/wsmq.publisher.v1.PublisherService/Send", rawRequest(single), &out, grpc.ForceCodecV2(rawCodec{}))
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), "message: must be valid UTF-8") {
		t.Fatalf("Send of invalid UTF-8 = %v, want InvalidArgument naming message", err)
	}
	valid := []byte{0x0a, 1, 'q', 0x12, 2, 'o', 'k'}
	batch := append([]byte{0x0a, byte(len(valid))}, valid...)
	batch = append(batch, 0x0a, byte(len(single)))
	batch = append(batch, single...)
	var bout publisherv1.SendBatchResponse
	if err := e.cc.Invoke(ctx, "/wsmq.publisher.v1.PublisherService/SendBatch", rawRequest(batch), &bout, grpc.ForceCodecV2(rawCodec{})); err != nil {
		t.Fatalf("SendBatch: %v", err)
	}
	r := bout.GetResults()
	if len(r) != 2 || r[0].GetCode() != 0 || codes.Code(r[1].GetCode()) != codes.InvalidArgument ||
		r[1].GetError() != "items[1].message: must be valid UTF-8" {
		t.Fatalf("SendBatch results = %v", r)
	}
}

func TestMissingOrWrongKeyIsUnauthenticated(t *testing.T) {
	e := start(t, map[string]string{"WSMQ_PUBLISHER_KEYS": testKey + ",second-key-0123456789"})
	req := &publisherv1.SendRequest{Queue: "q", Message: "m"}
	for _, tc := range []struct {
		name, header string
		want         codes.Code
	}{
		{"no key", "", codes.Unauthenticated},
		{"wrong key", "Bearer wrong-key-0123456789abc", codes.Unauthenticated},
		{"basic scheme", "Basic " + testKey, codes.Unauthenticated},
		{"bearer without key", "Bearer ", codes.Unauthenticated},
		{"first key", "Bearer " + testKey, codes.OK},
		{"second key, lower-case scheme", "bearer second-key-0123456789", codes.OK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := authed(t, "")
			if tc.header != "" {
				ctx = metadata.AppendToOutgoingContext(ctx, "authorization", tc.header)
			}
			_, err := e.api.Send(ctx, req)
			if status.Code(err) != tc.want {
				t.Fatalf("Send = %v, want %v", err, tc.want)
			}
			_, err = e.api.SendBatch(ctx, &publisherv1.SendBatchRequest{Items: []*publisherv1.SendRequest{req}})
			if status.Code(err) != tc.want {
				t.Fatalf("SendBatch = %v, want %v", err, tc.want)
			}
		})
	}
	// Health checks carry no key.
	if _, err := healthpb.NewHealthClient(e.cc).Check(authed(t, ""), &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatalf("health Check without key: %v", err)
	}
}

func TestDevModeWithoutKeysAcceptsCallsWithoutKey(t *testing.T) {
	e := start(t, map[string]string{"WSMQ_DEV": "1", "WSMQ_PUBLISHER_KEYS": ""})
	if _, err := e.api.Send(authed(t, ""), &publisherv1.SendRequest{Queue: "q", Message: "m"}); err != nil {
		t.Fatalf("Send without key in dev mode: %v", err)
	}
}

func TestTLSAndMutualTLS(t *testing.T) {
	pki := newPKI(t)
	r := testenv.StartRedis(t)
	req := &publisherv1.SendRequest{Queue: "q", Message: "m"}

	t.Run("TLS", func(t *testing.T) {
		p := startInProcess(t, r.URL(), map[string]string{"WSMQ_TLS_CERT": pki.serverCert, "WSMQ_TLS_KEY": pki.serverKey}, nil)
		cc := dial(t, p.Addr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: pki.roots, ServerName: "localhost"})))
		if _, err := publisherv1.NewPublisherServiceClient(cc).Send(authed(t, testKey), req); err != nil {
			t.Fatalf("Send over TLS: %v", err)
		}
		plain := dial(t, p.Addr)
		if _, err := publisherv1.NewPublisherServiceClient(plain).Send(authed(t, testKey), req); status.Code(err) != codes.Unavailable {
			t.Fatalf("plaintext Send to a TLS publisher = %v, want Unavailable", err)
		}
	})
	t.Run("mTLS", func(t *testing.T) {
		p := startInProcess(t, r.URL(), map[string]string{
			"WSMQ_TLS_CERT": pki.serverCert, "WSMQ_TLS_KEY": pki.serverKey, "WSMQ_TLS_CLIENT_CA": pki.caFile}, nil)
		noCert := dial(t, p.Addr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: pki.roots, ServerName: "localhost"})))
		if _, err := publisherv1.NewPublisherServiceClient(noCert).Send(authed(t, testKey), req); err == nil {
			t.Fatal("Send without a client certificate succeeded")
		}
		withCert := dial(t, p.Addr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{
			RootCAs: pki.roots, ServerName: "localhost", Certificates: []tls.Certificate{pki.client}})))
		if _, err := publisherv1.NewPublisherServiceClient(withCert).Send(authed(t, testKey), req); err != nil {
			t.Fatalf("Send with a client certificate: %v", err)
		}
	})
}

func TestRedisDownGivesUnavailablePromptlyAndRecoversWithoutRestart(t *testing.T) {
	e := start(t, nil)
	ctx := authed(t, testKey)
	hc := healthpb.NewHealthClient(e.cc)
	req := &publisherv1.SendRequest{Queue: "q", Message: "m"}
	if _, err := e.api.Send(ctx, req); err != nil {
		t.Fatalf("Send with Redis up: %v", err)
	}
	waitHealth(t, hc, healthpb.HealthCheckResponse_SERVING)

	e.redis.Stop()

	for _, call := range []struct {
		name string
		do   func(context.Context) error
	}{
		{"Send", func(ctx context.Context) error { _, err := e.api.Send(ctx, req); return err }},
		{"SendBatch", func(ctx context.Context) error {
			_, err := e.api.SendBatch(ctx, &publisherv1.SendBatchRequest{Items: []*publisherv1.SendRequest{req, req}})
			return err
		}},
	} {
		start := time.Now()
		err := call.do(ctx)
		if took := time.Since(start); status.Code(err) != codes.Unavailable || took > 5*time.Second {
			t.Fatalf("%s with Redis down = %v after %s, want Unavailable within 5s", call.name, err, took)
		}
	}
	waitHealth(t, hc, healthpb.HealthCheckResponse_NOT_SERVING)
	if code := httpStatus(t, "http://"+e.pub.Addrs.Admin.String()+"/readyz"); code != http.StatusServiceUnavailable {
		t.Fatalf("/readyz with Redis down = %d, want 503", code)
	}

	e.redis.Start()

	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := e.api.Send(ctx, req)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Send still failing 10s after Redis came back: %v", err)
		}
		time.Sleep(20 * time.Millisecond) // polling interval, not synchronisation
	}
	waitHealth(t, hc, healthpb.HealthCheckResponse_SERVING)
	if code := httpStatus(t, "http://"+e.pub.Addrs.Admin.String()+"/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz with Redis back = %d, want 200", code)
	}
}

func TestMetricsCountMessagesByMethodAndCode(t *testing.T) {
	e := start(t, nil)
	ctx := authed(t, testKey)
	for range 3 {
		if _, err := e.api.Send(ctx, &publisherv1.SendRequest{Queue: "q", Message: "m"}); err != nil {
			t.Fatal(err)
		}
	}
	_, _ = e.api.Send(ctx, &publisherv1.SendRequest{Queue: "bad name", Message: "m"})
	_, _ = e.api.Send(authed(t, "wrong-key-0123456789abcdef"), &publisherv1.SendRequest{Queue: "q", Message: "m"})
	_, err := e.api.SendBatch(ctx, &publisherv1.SendBatchRequest{Items: []*publisherv1.SendRequest{
		{Queue: "q", Message: "a"}, {Queue: "q", Message: "b"}, {Queue: "", Message: "c"}}})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + e.pub.Addrs.Admin.String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	for _, want := range []string{
		`wsmq_publisher_messages_total{code="OK",method="Send"} 3`,
		`wsmq_publisher_messages_total{code="InvalidArgument",method="Send"} 1`,
		`wsmq_publisher_messages_total{code="OK",method="SendBatch"} 2`,
		`wsmq_publisher_messages_total{code="InvalidArgument",method="SendBatch"} 1`,
		`wsmq_publisher_send_duration_seconds_count{method="Send"} 4`,
		`wsmq_publisher_redis_up 1`,
		`wsmq_publisher_auth_failures_total 1`,
		// The three valid Sends, one after another: flushes of one, the
		// first twice (its queue is created in between).
		`wsmq_publisher_send_flush_items_sum 4`,
		`wsmq_publisher_send_flush_items_count 4`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// TestConcurrentSendsAreCoalescedAndEachStoredOnce: 64 concurrent unary
// Sends through the real binary all succeed with distinct ids, every one
// stored, and they went to Redis in coalesced flushes (the flush-size
// histogram counts each Send once).
func TestConcurrentSendsAreCoalescedAndEachStoredOnce(t *testing.T) {
	e := start(t, nil)
	ctx := authed(t, testKey)
	if _, err := e.api.Send(ctx, &publisherv1.SendRequest{Queue: "burst", Message: "creates the queue"}); err != nil {
		t.Fatal(err)
	}
	const n = 64
	ids := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			r, err := e.api.Send(ctx, &publisherv1.SendRequest{Queue: "burst", Message: "m" + strconv.Itoa(i)})
			ids[i], errs[i] = r.GetId(), err
		})
	}
	wg.Wait()
	seen := map[string]bool{}
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("Send %d: %v", i, errs[i])
		}
		if got := e.rdb.HGet(context.Background(), "rsmq:burst:Q", ids[i]).Val(); got != "m"+strconv.Itoa(i) {
			t.Fatalf("Send %d: stored %q", i, got)
		}
		seen[ids[i]] = true
	}
	if len(seen) != n {
		t.Fatalf("%d distinct ids for %d Sends", len(seen), n)
	}
	resp, err := http.Get("http://" + e.pub.Addrs.Admin.String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	// The first Send is flushed twice: before and after its queue is created.
	if want := fmt.Sprintf("wsmq_publisher_send_flush_items_sum %d", n+2); !strings.Contains(string(b), want) {
		t.Fatalf("/metrics lacks %s: every Send goes through exactly one flush\n%s", want, b)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "wsmq_publisher_send_flush_items_count "); ok {
			t.Logf("%d Sends (64 concurrent; the first flushed twice) took %s flushes", n+1, rest)
		}
	}
}

func waitHealth(t *testing.T, hc healthpb.HealthClient, want healthpb.HealthCheckResponse_ServingStatus) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for _, svc := range []string{"", "wsmq.publisher.v1.PublisherService"} {
		for {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
			cancel()
			if err == nil && resp.GetStatus() == want {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("health of %q = %v, %v; want %v", svc, resp.GetStatus(), err, want)
			}
			time.Sleep(20 * time.Millisecond) // polling interval
		}
	}
}

func httpStatus(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	return resp.StatusCode
}

// rawRequest is a request already encoded; rawCodec sends it as is.
type rawRequest []byte

type rawCodec struct{}

func (rawCodec) Name() string { return "proto" }

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	r, ok := v.(rawRequest)
	if !ok {
		return nil, fmt.Errorf("rawCodec: %T", v)
	}
	return mem.BufferSlice{mem.SliceBuffer(r)}, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	return encoding.GetCodecV2("proto").Unmarshal(data, v)
}

func TestShutdownLetsInFlightCallsFinish(t *testing.T) {
	e := start(t, nil)
	ctx := authed(t, testKey)
	req := &publisherv1.SendRequest{Queue: "q", Message: "m"}
	if _, err := e.api.Send(ctx, req); err != nil { // queue created, script loaded
		t.Fatal(err)
	}
	// Hold writes in Redis (shorter than the Redis read timeout) so that the
	// next Send is in flight when shutdown starts.
	if err := e.rdb.Do(ctx, "CLIENT", "PAUSE", "600", "WRITE").Err(); err != nil {
		t.Fatal(err)
	}
	sent := make(chan error, 1)
	go func() { _, err := e.api.Send(ctx, req); sent <- err }()
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(e.rdb.Info(ctx, "clients").Val(), "blocked_clients:1") {
		if time.Now().After(deadline) {
			t.Fatal("the Send never reached Redis")
		}
		time.Sleep(5 * time.Millisecond) // polling interval
	}
	if err := e.pub.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := <-sent; err != nil {
		t.Fatalf("in-flight Send during shutdown = %v, want success", err)
	}
	if _, err := e.api.Send(ctx, req); status.Code(err) != codes.Unavailable {
		t.Fatalf("Send after shutdown = %v, want Unavailable", err)
	}
}

func TestPublisherStartsWhileRedisIsDownAndServesOnceItAnswers(t *testing.T) {
	r := testenv.StartRedis(t)
	r.Stop()
	p := startInProcess(t, r.URL(), nil, nil)
	cc := dial(t, p.Addr)
	hc := healthpb.NewHealthClient(cc)
	waitHealth(t, hc, healthpb.HealthCheckResponse_NOT_SERVING)
	api := publisherv1.NewPublisherServiceClient(cc)
	ctx := authed(t, testKey)
	if _, err := api.Send(ctx, &publisherv1.SendRequest{Queue: "q", Message: "m"}); status.Code(err) != codes.Unavailable {
		t.Fatalf("Send before Redis started = %v, want Unavailable", err)
	}
	r.Start()
	waitHealth(t, hc, healthpb.HealthCheckResponse_SERVING)
	if _, err := api.Send(ctx, &publisherv1.SendRequest{Queue: "q", Message: "m"}); err != nil {
		t.Fatalf("Send once Redis answers: %v", err)
	}
}
