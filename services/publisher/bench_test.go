package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	publisherv1 "github.com/wsmq/wsmq/gen/wsmq/publisher/v1"
	"github.com/wsmq/wsmq/pkg/testenv"
)

// roundTrips is a go-redis hook counting round trips to Redis: one per
// command, one per pipeline. The health pinger's PINGs are not counted.
type roundTrips struct{ n atomic.Int64 }

func (h *roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if cmd.Name() != "ping" {
			h.n.Add(1)
		}
		return next(ctx, cmd)
	}
}

func (h *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmds)
	}
}

func benchClient(b *testing.B) (publisherv1.PublisherServiceClient, *roundTrips, context.Context) {
	b.Helper()
	r := testenv.StartRedis(b)
	return benchPublisher(b, r.URL(), nil)
}

// benchPublisher runs a publisher against redisURL with extra settings
// and returns a client of it with the queue "bench" created.
func benchPublisher(b *testing.B, redisURL string, vars map[string]string) (publisherv1.PublisherServiceClient, *roundTrips, context.Context) {
	b.Helper()
	hook := &roundTrips{}
	env := map[string]string{"WSMQ_PUBLISHER_HEALTH_INTERVAL": "1s"}
	for k, v := range vars {
		env[k] = v
	}
	p := startInProcess(b, redisURL, env, hook)
	cc, err := grpc.NewClient(p.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cc.Close() })
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+testKey)
	api := publisherv1.NewPublisherServiceClient(cc)
	// Create the queue and load the script before measuring.
	if _, err := api.Send(ctx, &publisherv1.SendRequest{Queue: "bench", Message: "warm-up"}); err != nil {
		b.Fatal(err)
	}
	return api, hook, ctx
}

// BenchmarkSend measures Send end to end (gRPC over loopback, Redis),
// from parallel callers.
func BenchmarkSend(b *testing.B) {
	api, hook, ctx := benchClient(b)
	req := &publisherv1.SendRequest{Queue: "bench", Message: `{"event":"bench","payload":"0123456789abcdef"}`}
	hook.n.Store(0)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := api.Send(ctx, req); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	b.ReportMetric(float64(hook.n.Load())/float64(b.N), "redis-rt/msg")
}

// BenchmarkSendBatch measures SendBatch of 1,000 items end to end.
func BenchmarkSendBatch(b *testing.B) {
	api, hook, ctx := benchClient(b)
	const n = 1000
	req := &publisherv1.SendBatchRequest{}
	for i := range n {
		req.Items = append(req.Items, &publisherv1.SendRequest{Queue: "bench", Message: "message " + strconv.Itoa(i)})
	}
	hook.n.Store(0)
	b.ResetTimer()
	for b.Loop() {
		resp, err := api.SendBatch(ctx, req)
		if err != nil {
			b.Fatal(err)
		}
		if r := resp.GetResults()[n-1]; r.GetCode() != 0 {
			b.Fatal(r.GetError())
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "msgs/s")
	b.ReportMetric(float64(hook.n.Load())/float64(b.N*n), "redis-rt/msg")
}

// BenchmarkSendUnary32Callers compares plain and durable-acknowledgement
// Send (WSMQ_PUBLISHER_MIN_REPLICAS=1: WAIT 1 in the send pipeline) on the
// same master and replica (testenv.StartHA, through the sentinels): unary
// calls, closed loop, 32 concurrent callers. us/send is the mean latency
// of one call; the difference of the two is the cost of WAIT per Send.
func BenchmarkSendUnary32Callers(b *testing.B) {
	h := testenv.StartHA(b, testenv.HAOptions{Replicas: 1})
	const callers = 32
	for _, bc := range []struct {
		name string
		vars map[string]string
	}{
		{"plain", nil},
		{"durable", map[string]string{"WSMQ_PUBLISHER_MIN_REPLICAS": "1"}},
	} {
		api, _, ctx := benchPublisher(b, h.URL(), bc.vars)
		b.Run(bc.name, func(b *testing.B) {
			req := &publisherv1.SendRequest{Queue: "bench", Message: `{"event":"bench","payload":"0123456789abcdef"}`}
			procs := runtime.GOMAXPROCS(0)
			b.SetParallelism((callers + procs - 1) / procs)
			var total atomic.Int64 // ns spent in calls
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					start := time.Now()
					_, err := api.Send(ctx, req)
					total.Add(int64(time.Since(start)))
					if err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
			b.ReportMetric(float64(total.Load())/float64(b.N)/1e3, "us/send")
		})
	}
}

// BenchmarkUnarySend compares the two ways a backend sends one message,
// on one publisher and one Redis, in one run: unary gRPC Send and HTTP
// POST /v1/queues/{queue}/messages (HTTP/1.1 keep-alive), each from the
// same 32 concurrent callers in a closed loop over loopback. It reports
// throughput and the p50 and p99 latency of a call.
func BenchmarkUnarySend(b *testing.B) {
	r := testenv.StartRedis(b)
	p := startInProcess(b, r.URL(), map[string]string{"WSMQ_PUBLISHER_HEALTH_INTERVAL": "1s", "WSMQ_PUBLISHER_HTTP_LISTEN": "127.0.0.1:0"}, nil)
	cc, err := grpc.NewClient(p.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cc.Close() })
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+testKey)
	api := publisherv1.NewPublisherServiceClient(cc)
	const callers = 32
	msg := `{"event":"bench","payload":"0123456789abcdef"}`
	req := &publisherv1.SendRequest{Queue: "bench", Message: msg}
	url := "http://" + p.Addrs.HTTP.String() + "/v1/queues/bench/messages"
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: callers}}
	body := []byte(`{"message":` + strconv.Quote(msg) + `}`)
	post := func() error {
		req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+testKey)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	}
	if err := post(); err != nil { // create the queue, load the script
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		send func() error
	}{
		{"grpc", func() error { _, err := api.Send(ctx, req); return err }},
		{"http", post},
	} {
		b.Run(bc.name, func(b *testing.B) {
			procs := runtime.GOMAXPROCS(0)
			b.SetParallelism((callers + procs - 1) / procs)
			var mu sync.Mutex
			var lat []time.Duration
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				var mine []time.Duration
				for pb.Next() {
					start := time.Now()
					if err := bc.send(); err != nil {
						b.Error(err)
						return
					}
					mine = append(mine, time.Since(start))
				}
				mu.Lock()
				lat = append(lat, mine...)
				mu.Unlock()
			})
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
			if len(lat) > 0 {
				slices.Sort(lat)
				b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
				b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
			}
		})
	}
}
