package main

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	publisherv1 "github.com/wsmq/wsmq/gen/wsmq/publisher/v1"
)

// expiryOf returns the stored "<id>:exp" of a message minus its send time
// (the id's µs prefix), in ms; -1 when the message has no expiry.
func (e *env) expiryOf(t *testing.T, queue, id string) int64 {
	t.Helper()
	v, err := e.rdb.HGet(t.Context(), "rsmq:"+queue+":Q", id+":exp").Int64()
	if err != nil {
		return -1
	}
	return v - sentMSOf(t, id)
}

func sentMSOf(t *testing.T, id string) int64 {
	t.Helper()
	var us int64
	for _, c := range strings.ToLower(id[:10]) {
		d := strings.IndexRune("0123456789abcdefghijklmnopqrstuvwxyz", c)
		if d < 0 {
			t.Fatalf("id %q", id)
		}
		us = us*36 + int64(d)
	}
	return us / 1000
}

func TestTTLIsStoredFromTheItemOrTheQueueDefault(t *testing.T) {
	e := start(t, map[string]string{"WSMQ_QUEUE_TTL": "300"})
	ctx := authed(t, testKey)
	own, err := e.api.Send(ctx, &publisherv1.SendRequest{Queue: "q", Message: "m", TtlSeconds: 60})
	if err != nil {
		t.Fatal(err)
	}
	def, err := e.api.Send(ctx, &publisherv1.SendRequest{Queue: "q", Message: "m"})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := e.api.SendBatch(ctx, &publisherv1.SendBatchRequest{Items: []*publisherv1.SendRequest{
		{Queue: "q", Message: "a", TtlSeconds: 10},
		{Queue: "q", Message: "b", TtlSeconds: -5},
		{Queue: "q2", Message: "c"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	r := batch.GetResults()
	if codes.Code(r[1].GetCode()) != codes.InvalidArgument || !strings.Contains(r[1].GetError(), "items[1].ttl_seconds: must be between 0 and 9999999") {
		t.Fatalf("bad batch item = %v", r[1])
	}
	// Expiry = send time + ttl; the id's prefix and Redis TIME agree within a second.
	for _, c := range []struct {
		queue, id string
		ttlMS     int64
	}{{"q", own.GetId(), 60_000}, {"q", def.GetId(), 300_000}, {"q", r[0].GetId(), 10_000}, {"q2", r[2].GetId(), 300_000}} {
		if d := e.expiryOf(t, c.queue, c.id); d < c.ttlMS-1000 || d > c.ttlMS+1000 {
			t.Errorf("%s in %s expires %d ms after its send, want about %d", c.id, c.queue, d, c.ttlMS)
		}
	}
}

func TestWithoutTTLOrQueueDefaultNoExpiryIsStored(t *testing.T) {
	e := start(t, nil)
	res, err := e.api.Send(authed(t, testKey), &publisherv1.SendRequest{Queue: "q", Message: "m"})
	if err != nil {
		t.Fatal(err)
	}
	if d := e.expiryOf(t, "q", res.GetId()); d != -1 {
		t.Fatalf("message without ttl has an expiry %d ms after send", d)
	}
}

func TestReceiptsOffLeavesQueuesWithoutStatusAndOnMarksThem(t *testing.T) {
	off := start(t, nil)
	if _, err := off.api.Send(authed(t, testKey), &publisherv1.SendRequest{Queue: "q", Message: "m"}); err != nil {
		t.Fatal(err)
	}
	if ok, _ := off.rdb.HExists(t.Context(), "rsmq:q:Q", "wsmq:status").Result(); ok {
		t.Fatal("receipts off marked the queue for status")
	}
	on := start(t, map[string]string{"WSMQ_PUBLISHER_RECEIPTS": "1", "WSMQ_STATUS_TTL": "90m"})
	if _, err := on.api.Send(authed(t, testKey), &publisherv1.SendRequest{Queue: "q", Message: "m"}); err != nil {
		t.Fatal(err)
	}
	if v, _ := on.rdb.HGet(t.Context(), "rsmq:q:Q", "wsmq:status").Result(); v != "5400" {
		t.Fatalf("wsmq:status = %q, want 5400 (90m)", v)
	}
}

func TestGetStatusValidatesQueueAndID(t *testing.T) {
	e := start(t, nil)
	ctx := authed(t, testKey)
	for _, c := range []struct {
		req  *publisherv1.GetStatusRequest
		want string
	}{
		{&publisherv1.GetStatusRequest{Queue: "a b", Id: strings.Repeat("a", 32)}, "queue: must match"},
		{&publisherv1.GetStatusRequest{Queue: "q", Id: "short"}, "id: must be a 32-character RSMQ id"},
	} {
		_, err := e.api.GetStatus(ctx, c.req)
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), c.want) {
			t.Errorf("GetStatus(%v) = %v, want InvalidArgument %q", c.req, err, c.want)
		}
	}
	r, err := e.api.GetStatus(ctx, &publisherv1.GetStatusRequest{Queue: "q", Id: strings.Repeat("a", 32)})
	if err != nil || r.GetState() != publisherv1.MessageState_MESSAGE_STATE_UNKNOWN {
		t.Fatalf("GetStatus of an unknown message = %v, %v", r, err)
	}
	if _, err := e.api.GetStatus(context.Background(), &publisherv1.GetStatusRequest{Queue: "q", Id: strings.Repeat("a", 32)}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("GetStatus without a key = %v, want Unauthenticated", err)
	}
}
