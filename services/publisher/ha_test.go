package main

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	publisherv1 "github.com/wsmq/wsmq/gen/wsmq/publisher/v1"
	"github.com/wsmq/wsmq/pkg/testenv"
)

// startHAPublisher runs the publisher in-process against h's sentinels.
func startHAPublisher(t *testing.T, h *testenv.HA, vars map[string]string) (*inproc, publisherv1.PublisherServiceClient, healthpb.HealthClient) {
	t.Helper()
	p := startInProcess(t, h.URL(), vars, nil)
	cc := dial(t, p.Addr)
	return p, publisherv1.NewPublisherServiceClient(cc), healthpb.NewHealthClient(cc)
}

// sendEventually sends until a Send succeeds (the publisher follows a new
// master) or 15s pass.
func sendEventually(t *testing.T, ctx context.Context, api publisherv1.PublisherServiceClient) {
	t.Helper()
	var last error
	t.Cleanup(func() {
		if t.Failed() && last != nil {
			t.Logf("the last Send failed with: %v", last)
		}
	})
	testenv.Eventually(t, 15*time.Second, "a Send to succeed", func() bool {
		_, last = api.Send(ctx, &publisherv1.SendRequest{Queue: "q", Message: "m"})
		return last == nil
	})
}

func metricsText(t *testing.T, admin string) string {
	t.Helper()
	res, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = res.Body.Close() }()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestReadinessIsFalseWhileNoRedisMasterIsReachableAndRecovers(t *testing.T) {
	h := testenv.StartHA(t, testenv.HAOptions{Replicas: 1})
	p, api, hc := startHAPublisher(t, h, nil)
	ctx := authed(t, testKey)
	readyz := "http://" + p.Addrs.Admin.String() + "/readyz"
	sendEventually(t, ctx, api)
	waitHealth(t, hc, healthpb.HealthCheckResponse_SERVING)

	// With the only replica stopped the sentinels cannot promote anyone:
	// no master is reachable.
	h.Nodes[1].Stop()
	master := h.KillMaster()

	waitHealth(t, hc, healthpb.HealthCheckResponse_NOT_SERVING)
	if code := httpStatus(t, readyz); code != http.StatusServiceUnavailable {
		t.Fatalf("/readyz with no master reachable = %d, want 503", code)
	}
	if _, err := api.Send(ctx, &publisherv1.SendRequest{Queue: "q", Message: "m"}); status.Code(err) != codes.Unavailable {
		t.Fatalf("Send with no master reachable = %v, want Unavailable", err)
	}

	master.Start()
	sendEventually(t, ctx, api)
	waitHealth(t, hc, healthpb.HealthCheckResponse_SERVING)
	if code := httpStatus(t, readyz); code != http.StatusOK {
		t.Fatalf("/readyz with the master back = %d, want 200", code)
	}
}

func TestMetricsNameTheMasterAndCountFailoversAndReplicaTimeouts(t *testing.T) {
	h := testenv.StartHA(t, testenv.HAOptions{Replicas: 2})
	p, api, _ := startHAPublisher(t, h, map[string]string{"WSMQ_PUBLISHER_MIN_REPLICAS": "1"})
	admin := p.Addrs.Admin.String()
	ctx := authed(t, testKey)
	sendEventually(t, ctx, api)

	old := h.Master().Addr()
	m := metricsText(t, admin)
	for _, want := range []string{
		`wsmq_publisher_redis_master{addr="` + old + `"} 1`,
		"wsmq_publisher_redis_failovers_total 0",
		"wsmq_publisher_replica_timeouts_total 0",
	} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics before the failover lacks %s", want)
		}
	}

	h.KillMaster()
	fctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	promoted := h.WaitFailover(fctx, old)
	sendEventually(t, ctx, api)
	m = metricsText(t, admin)
	for _, want := range []string{
		`wsmq_publisher_redis_master{addr="` + promoted.Addr() + `"} 1`,
		"wsmq_publisher_redis_failovers_total 1",
	} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics after the failover lacks %s", want)
		}
	}
	if strings.Contains(m, `wsmq_publisher_redis_master{addr="`+old+`"}`) {
		t.Errorf("/metrics still names the killed master %s", old)
	}

	// Stop every replica left: a durable send cannot be confirmed.
	before := metricValue(t, m, "wsmq_publisher_replica_timeouts_total")
	for _, r := range h.Nodes {
		if r != promoted && r.Addr() != old {
			r.Stop()
		}
	}
	if _, err := api.Send(ctx, &publisherv1.SendRequest{Queue: "q", Message: "m"}); status.Code(err) != codes.Unavailable {
		t.Fatalf("durable Send without a replica = %v, want Unavailable", err)
	}
	if after := metricValue(t, metricsText(t, admin), "wsmq_publisher_replica_timeouts_total"); after != before+1 {
		t.Errorf("wsmq_publisher_replica_timeouts_total = %v after one unconfirmed durable send, want %v", after, before+1)
	}
}

// metricValue is the value of the unlabelled sample name in the text
// exposition m.
func metricValue(t *testing.T, m, name string) float64 {
	t.Helper()
	for _, l := range strings.Split(m, "\n") {
		if v, ok := strings.CutPrefix(l, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", l, err)
			}
			return f
		}
	}
	t.Fatalf("/metrics has no %s", name)
	return 0
}
