package main

import (
	"context"
	"strings"
	"testing"

	publisherv1 "github.com/wsmq/wsmq/gen/wsmq/publisher/v1"
	"github.com/wsmq/wsmq/pkg/testenv"
	"github.com/wsmq/wsmq/services/gateway/protocol"
)

// TestDeliveryStatusReachesEveryStateInARealRun drives messages of a
// receipts-on publisher through a real gateway into each state GetStatus
// reports.
func TestDeliveryStatusReachesEveryStateInARealRun(t *testing.T) {
	s := newStack(t, "WSMQ_VISIBILITY_TIMEOUT=1", "WSMQ_MAX_RECEIVE_COUNT=2")
	gw := s.startGateway()
	pub := s.DialPublisher(s.StartPublisherEnv("WSMQ_PUBLISHER_RECEIPTS=1", "WSMQ_STATUS_TTL=1h"))
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	send := func(q, msg string, delay, ttl int64) string {
		t.Helper()
		r, err := pub.Send(ctx, &publisherv1.SendRequest{Queue: q, Message: msg, DelaySeconds: delay, TtlSeconds: ttl})
		if err != nil {
			t.Fatal(err)
		}
		return r.GetId()
	}
	get := func(q, id string) *publisherv1.GetStatusResponse {
		t.Helper()
		r, err := pub.GetStatus(ctx, &publisherv1.GetStatusRequest{Queue: q, Id: id})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	eventually := func(q, id string, want publisherv1.MessageState) {
		t.Helper()
		testenv.Eventually(t, waitLong, id+" "+want.String(), func() bool { return get(q, id).GetState() == want })
	}
	auto, manual := s.user(gw, "st-auto"), s.user(gw, "st-manual")
	ca, cm := dial(t, gw, auto, protocol.AckAuto), dial(t, gw, manual, protocol.AckManual)
	ca.subscribe(auto.UserID)
	cm.subscribe(manual.UserID)

	// Queued (delayed), unknown (never sent).
	later := send(auto.UserID, "later", 3600, 0)
	if r := get(auto.UserID, later); r.GetState() != publisherv1.MessageState_MESSAGE_STATE_QUEUED || r.GetReceiveCount() != 0 {
		t.Fatalf("delayed message: %v, want QUEUED rc 0", r)
	}
	if r := get(auto.UserID, strings.Repeat("z", 32)); r.GetState() != publisherv1.MessageState_MESSAGE_STATE_UNKNOWN {
		t.Fatalf("never-sent id: %v, want UNKNOWN", r)
	}
	// Delivered (auto mode, confirmed).
	d := send(auto.UserID, "auto", 0, 0)
	if m := ca.messages(1)[0]; m.ID != d {
		t.Fatalf("auto frame %+v, want %s", m, d)
	}
	eventually(auto.UserID, d, publisherv1.MessageState_MESSAGE_STATE_DELIVERED)
	// Expired: its ttl runs out before its delay ends.
	x := send(auto.UserID, "stale", 2, 1)
	eventually(auto.UserID, x, publisherv1.MessageState_MESSAGE_STATE_EXPIRED)

	// Manual: in flight, then acknowledged.
	a := send(manual.UserID, "ack me", 0, 0)
	if m := cm.messages(1)[0]; m.ID != a {
		t.Fatalf("manual frame %+v, want %s", m, a)
	}
	if r := get(manual.UserID, a); r.GetState() != publisherv1.MessageState_MESSAGE_STATE_IN_FLIGHT || r.GetReceiveCount() != 1 {
		t.Fatalf("unacked delivery: %v, want IN_FLIGHT rc 1", r)
	}
	cm.ack(a)
	eventually(manual.UserID, a, publisherv1.MessageState_MESSAGE_STATE_ACKNOWLEDGED)
	// Redelivered, then acknowledged.
	r := send(manual.UserID, "again", 0, 0)
	if m := cm.messages(2); m[0].ID != r || m[1].ID != r || m[1].RC != 2 {
		t.Fatalf("frames %+v %+v, want %s twice, rc 2 the second time", m[0], m[1], r)
	}
	cm.ack(r)
	eventually(manual.UserID, r, publisherv1.MessageState_MESSAGE_STATE_ACKNOWLEDGED)
	// Dead-lettered after the receive limit.
	dl := send(manual.UserID, "never acked", 0, 0)
	cm.messages(2)
	eventually(manual.UserID, dl, publisherv1.MessageState_MESSAGE_STATE_DEAD_LETTERED)
	if got := get(manual.UserID, dl).GetReason(); got != "max receive count" {
		t.Fatalf("dead-letter reason %q", got)
	}
}
