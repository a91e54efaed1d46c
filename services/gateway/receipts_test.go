package main

import (
	"context"
	"fmt"
	"strings"
	"testing"

	publisherv1 "github.com/wsmq/wsmq/gen/wsmq/publisher/v1"
	"github.com/wsmq/wsmq/pkg/rsmq"
	"github.com/wsmq/wsmq/pkg/testenv"
	"github.com/wsmq/wsmq/services/gateway/protocol"
)

// watcher collects the events of one WatchDeliveries stream.
type watcher struct {
	t      *testing.T
	cancel context.CancelFunc
	events chan *publisherv1.DeliveryEvent
	got    []*publisherv1.DeliveryEvent
}

func watch(t *testing.T, pub publisherv1.PublisherServiceClient, prefix, after string) *watcher {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 4*waitLong)
	st, err := pub.WatchDeliveries(ctx, &publisherv1.WatchDeliveriesRequest{QueuePrefix: prefix, After: after})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	w := &watcher{t: t, cancel: cancel, events: make(chan *publisherv1.DeliveryEvent, 100)}
	done := make(chan struct{})
	go func() { // owned by the watcher: ends when its stream does (cancel)
		defer close(done)
		defer close(w.events)
		for {
			ev, err := st.Recv()
			if err != nil {
				return
			}
			w.events <- ev
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return w
}

// next returns the next n events.
func (w *watcher) next(n int) []*publisherv1.DeliveryEvent {
	w.t.Helper()
	ctx, cancel := ctxWait()
	defer cancel()
	var out []*publisherv1.DeliveryEvent
	for len(out) < n {
		select {
		case ev, ok := <-w.events:
			if !ok {
				w.t.Fatalf("watch ended after %d of %d events", len(out), n)
			}
			out = append(out, ev)
		case <-ctx.Done():
			w.t.Fatalf("%d of %d events in %v: %v", len(out), n, waitLong, out)
		}
	}
	w.got = append(w.got, out...)
	return out
}

// story is the events of one message as "state rc reason" words.
func story(evs []*publisherv1.DeliveryEvent, id string) []string {
	var out []string
	for _, ev := range evs {
		if ev.GetId() == id {
			s := strings.TrimPrefix(ev.GetState().String(), "MESSAGE_STATE_") + fmt.Sprintf(" %d", ev.GetReceiveCount())
			if ev.GetReason() != "" {
				s += " " + ev.GetReason()
			}
			out = append(out, s)
		}
	}
	return out
}

// TestWatchDeliveriesStreamsEveryChangeOfARealRunAndResumes drives messages
// of a receipts-stream publisher through a real gateway into every state,
// watched live over gRPC (all queues, and one queue by prefix), with one
// watcher reconnecting half-way from its last position.
func TestWatchDeliveriesStreamsEveryChangeOfARealRunAndResumes(t *testing.T) {
	s := newStack(t, "WSMQ_VISIBILITY_TIMEOUT=1", "WSMQ_MAX_RECEIVE_COUNT=2")
	gw := s.startGateway()
	pub := s.DialPublisher(s.StartPublisherEnv("WSMQ_PUBLISHER_RECEIPTS_STREAM=1", "WSMQ_RECEIPTS_STREAM_CAP=1000"))
	ctx, cancel := ctxWait()
	defer cancel()
	send := func(q, msg string, delay, ttl int64) string {
		t.Helper()
		r, err := pub.Send(ctx, &publisherv1.SendRequest{Queue: q, Message: msg, DelaySeconds: delay, TtlSeconds: ttl})
		if err != nil {
			t.Fatal(err)
		}
		return r.GetId()
	}
	auto, manual := s.user(gw, "rc-auto"), s.user(gw, "rc-manual")
	ca, cm := dial(t, gw, auto, protocol.AckAuto), dial(t, gw, manual, protocol.AckManual)
	ca.subscribe(auto.UserID)
	cm.subscribe(manual.UserID)
	all := watch(t, pub, "", "")
	autoOnly := watch(t, pub, auto.UserID, "")

	// Auto: delivered; expired (its ttl ends before its delay).
	d := send(auto.UserID, "auto", 0, 0)
	ca.messages(1)
	all.next(2)
	x := send(auto.UserID, "stale", 2, 1)
	all.next(1)
	// Manual: acknowledged; redelivered then acknowledged; dead-lettered.
	a := send(manual.UserID, "ack me", 0, 0)
	cm.messages(1)
	last := all.next(1)[0].GetPosition()
	// The backend goes away after the 4th event and comes back after the
	// last one it handled, while messages keep changing state.
	all.cancel()
	cm.ack(a)
	r := send(manual.UserID, "again", 0, 0)
	cm.messages(2)
	cm.ack(r)
	again := watch(t, pub, "", last)
	dl := send(manual.UserID, "never acked", 0, 0)
	cm.messages(2)
	rest := again.next(7)

	// From the beginning: the reconnected watch saw exactly the rest.
	full := watch(t, pub, "", "0").next(11)
	for i := 1; i < len(full); i++ {
		if !positionLess(t, full[i-1].GetPosition(), full[i].GetPosition()) {
			t.Fatalf("positions not increasing: %s then %s", full[i-1].GetPosition(), full[i].GetPosition())
		}
	}
	for i, ev := range rest {
		if ev.GetPosition() != full[4+i].GetPosition() {
			t.Fatalf("after the reconnect event %d is %s, want %s (no gap, no repeat)", i, ev.GetPosition(), full[4+i].GetPosition())
		}
	}
	for _, c := range []struct {
		id   string
		want []string
	}{
		{d, []string{"IN_FLIGHT 1", "DELIVERED 1"}},
		{x, []string{"EXPIRED 0"}},
		{a, []string{"IN_FLIGHT 1", "ACKNOWLEDGED 1"}},
		{r, []string{"IN_FLIGHT 1", "IN_FLIGHT 2", "ACKNOWLEDGED 2"}},
		{dl, []string{"IN_FLIGHT 1", "IN_FLIGHT 2", "DEAD_LETTERED 2 max receive count"}},
	} {
		if got := story(full, c.id); strings.Join(got, ", ") != strings.Join(c.want, ", ") {
			t.Errorf("events of %s: %v, want %v", c.id, got, c.want)
		}
	}
	// The prefix watch saw the auto queue's three events only.
	for _, ev := range autoOnly.next(3) {
		if ev.GetQueue() != auto.UserID {
			t.Errorf("prefix %s watch got %v", auto.UserID, ev)
		}
	}
	select {
	case ev := <-autoOnly.events:
		t.Errorf("prefix watch got an event of another queue: %v", ev)
	default:
	}
}

func positionLess(t *testing.T, a, b string) bool {
	t.Helper()
	pa, err1 := rsmq.ParsePosition(a)
	pb, err2 := rsmq.ParsePosition(b)
	if err1 != nil || err2 != nil {
		t.Fatalf("positions %q %q", a, b)
	}
	return pa.Less(pb)
}

// TestReceiptsStreamOffWritesNothingInARealRun: a publisher with delivery
// status on but the stream off, through a real gateway: no stream key, no
// queue mark.
func TestReceiptsStreamOffWritesNothingInARealRun(t *testing.T) {
	s := newStack(t)
	gw := s.startGateway()
	pub := s.DialPublisher(s.StartPublisherEnv("WSMQ_PUBLISHER_RECEIPTS=1"))
	ctx, cancel := ctxWait()
	defer cancel()
	u := s.user(gw, "rc-off")
	c := dial(t, gw, u, protocol.AckManual)
	c.subscribe(u.UserID)
	res, err := pub.Send(ctx, &publisherv1.SendRequest{Queue: u.UserID, Message: "m"})
	if err != nil {
		t.Fatal(err)
	}
	c.messages(1)
	c.ack(res.GetId())
	testenv.Eventually(t, waitLong, "acknowledged", func() bool {
		st, err := pub.GetStatus(ctx, &publisherv1.GetStatusRequest{Queue: u.UserID, Id: res.GetId()})
		return err == nil && st.GetState() == publisherv1.MessageState_MESSAGE_STATE_ACKNOWLEDGED
	})
	if n, err := s.RDB.Exists(ctx, "rsmq:wsmq:receipts").Result(); err != nil || n != 0 {
		t.Fatalf("receipts stream exists (%d, %v) with the stream off", n, err)
	}
	if on, _ := s.RDB.HExists(ctx, "rsmq:"+u.UserID+":Q", "wsmq:receipts").Result(); on {
		t.Fatal("queue marked for receipts by a publisher with the stream off")
	}
}
