package main

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	publisherv1 "github.com/wsmq/wsmq/gen/wsmq/publisher/v1"
	"github.com/wsmq/wsmq/pkg/rsmq"
)

var streamOn = map[string]string{"WSMQ_PUBLISHER_RECEIPTS_STREAM": "1", "WSMQ_RECEIPTS_STREAM_CAP": "1000"}

// deliver sends msg to queue through the publisher, then receives and
// deletes it as a gateway would (auto confirm): two events.
func (e *env) deliver(t *testing.T, queue, msg string) string {
	t.Helper()
	ctx := authed(t, testKey)
	res, err := e.api.Send(ctx, &publisherv1.SendRequest{Queue: queue, Message: msg})
	if err != nil {
		t.Fatal(err)
	}
	m, err := e.q.ReceiveMessage(ctx, queue, 30)
	if err != nil || m == nil || m.ID != res.GetId() {
		t.Fatalf("receive from %s: %+v, %v", queue, m, err)
	}
	if _, _, err := e.q.DeleteByReceiptsMulti(ctx, []rsmq.QueueReceipts{{Queue: queue, Receipts: []rsmq.Receipt{m.Receipt()}}}); err != nil {
		t.Fatal(err)
	}
	return res.GetId()
}

// grpcWatch opens a watch and returns a function giving its next n events.
func (e *env) grpcWatch(t *testing.T, key, prefix, after string) (next func(n int) []*publisherv1.DeliveryEvent, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(authed(t, key))
	st, err := e.api.WatchDeliveries(ctx, &publisherv1.WatchDeliveriesRequest{QueuePrefix: prefix, After: after})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	return func(n int) []*publisherv1.DeliveryEvent {
		t.Helper()
		var out []*publisherv1.DeliveryEvent
		for len(out) < n {
			ev, err := st.Recv()
			if err != nil {
				t.Fatalf("after %d of %d events: %v", len(out), n, err)
			}
			out = append(out, ev)
		}
		return out
	}, cancel
}

// watchErr opens a gRPC watch and returns its first answer's error.
func (e *env) watchErr(t *testing.T, key string, req *publisherv1.WatchDeliveriesRequest) error {
	t.Helper()
	st, err := e.api.WatchDeliveries(authed(t, key), req)
	if err != nil {
		return err
	}
	_, err = st.Recv()
	return err
}

type sseEvent struct{ id, event, data string }

// sse is one open event stream.
type sse struct {
	t      *testing.T
	events chan sseEvent
	cancel context.CancelFunc
}

// openSSE opens GET /v1/deliveries; it returns the non-200 reply instead
// when the stream does not start.
func openSSE(t *testing.T, base, key, query, lastID string) (*sse, *httpReply) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/deliveries?"+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		defer cancel()
		defer func() { _ = resp.Body.Close() }()
		var r httpReply
		r.status = resp.StatusCode
		if err := json.NewDecoder(resp.Body).Decode(&r.body); err != nil {
			t.Fatalf("%d answer without JSON: %v", resp.StatusCode, err)
		}
		return nil, &r
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	s := &sse{t: t, events: make(chan sseEvent, 100), cancel: cancel}
	done := make(chan struct{})
	go func() { // owned by s: ends when its body does (cancel)
		defer close(done)
		defer close(s.events)
		defer func() { _ = resp.Body.Close() }()
		sc := bufio.NewScanner(resp.Body)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev.event != "" {
					s.events <- ev
				}
				ev = sseEvent{}
			case strings.HasPrefix(line, "id: "):
				ev.id = strings.TrimPrefix(line, "id: ")
			case strings.HasPrefix(line, "event: "):
				ev.event = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				ev.data = strings.TrimPrefix(line, "data: ")
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return s, nil
}

func (s *sse) next(n int) []sseEvent {
	s.t.Helper()
	var out []sseEvent
	timeout := time.After(15 * time.Second)
	for len(out) < n {
		select {
		case ev, ok := <-s.events:
			if !ok {
				s.t.Fatalf("event stream ended after %d of %d events", len(out), n)
			}
			if ev.event != "delivery" {
				s.t.Fatalf("event %+v", ev)
			}
			out = append(out, ev)
		case <-timeout:
			s.t.Fatalf("%d of %d events", len(out), n)
		}
	}
	return out
}

func TestWatchDeliveriesFiltersByPrefixAndResumesWithoutGapOrRepeat(t *testing.T) {
	e, base := startHTTP(t, streamOn)
	var ids []string
	for _, q := range []string{"alpha-1", "beta-1", "alpha-2", "alpha-1"} {
		ids = append(ids, e.deliver(t, q, "m"))
	}
	// Everything, from the beginning: 8 events in order.
	nextAll, stopAll := e.grpcWatch(t, testKey, "", "0")
	full := nextAll(8)
	stopAll()
	var alpha []*publisherv1.DeliveryEvent
	for i, ev := range full {
		want := []publisherv1.MessageState{publisherv1.MessageState_MESSAGE_STATE_IN_FLIGHT, publisherv1.MessageState_MESSAGE_STATE_DELIVERED}[i%2]
		if ev.GetId() != ids[i/2] || ev.GetState() != want || ev.GetReceiveCount() != 1 || ev.GetTimeUnixMs() <= 0 {
			t.Errorf("event %d = %v, want %s of %s rc 1", i, ev, want, ids[i/2])
		}
		if strings.HasPrefix(ev.GetQueue(), "alpha") {
			alpha = append(alpha, ev)
		}
	}
	// gRPC, prefix alpha: 3 events, the backend leaves, comes back after the
	// third, gets the other 3, and then a new one as it happens.
	next, stop := e.grpcWatch(t, testKey, "alpha", "0")
	got := next(3)
	stop()
	next, stop = e.grpcWatch(t, testKey, "alpha", got[2].GetPosition())
	defer stop()
	got = append(got, next(3)...)
	for i, ev := range got {
		if ev.GetPosition() != alpha[i].GetPosition() {
			t.Fatalf("gRPC alpha event %d at %s, want %s", i, ev.GetPosition(), alpha[i].GetPosition())
		}
	}
	live := e.deliver(t, "alpha-3", "later")
	e.deliver(t, "beta-2", "not watched")
	if evs := next(2); evs[0].GetId() != live || evs[1].GetId() != live || evs[1].GetState() != publisherv1.MessageState_MESSAGE_STATE_DELIVERED {
		t.Fatalf("live events %v, want in_flight and delivered of %s", evs, live)
	}

	// SSE, prefix alpha: 2 events, reconnect with Last-Event-ID (it wins
	// over after=0), the rest.
	s, _ := openSSE(t, base, testKey, "queuePrefix=alpha&after=0", "")
	first := s.next(2)
	s.cancel()
	s, _ = openSSE(t, base, testKey, "queuePrefix=alpha&after=0", first[1].id)
	evs := append(first, s.next(6)...)
	for i, ev := range evs[:6] {
		var b map[string]any
		if err := json.Unmarshal([]byte(ev.data), &b); err != nil {
			t.Fatalf("data %q: %v", ev.data, err)
		}
		a := alpha[i]
		state := strings.ToLower(strings.TrimPrefix(a.GetState().String(), "MESSAGE_STATE_"))
		if ev.id != a.GetPosition() || b["position"] != a.GetPosition() || b["queue"] != a.GetQueue() || b["id"] != a.GetId() ||
			b["state"] != state || b["receiveCount"] != float64(1) || b["timeUnixMs"] != float64(a.GetTimeUnixMs()) {
			t.Errorf("SSE event %d = %+v, want %v", i, ev, a)
		}
	}
	if !strings.Contains(evs[6].data, live) || !strings.Contains(evs[7].data, live) || !strings.Contains(evs[7].data, `"state":"delivered"`) {
		t.Errorf("SSE events after the resume %+v", evs[6:])
	}
}

func TestWatchDeliveriesRefusesBadArgumentsNamingTheField(t *testing.T) {
	e, base := startHTTP(t, streamOn)
	for _, c := range []struct {
		prefix, after, field string
	}{
		{"a:b", "", "queue_prefix"},
		{strings.Repeat("q", 161), "", "queue_prefix"},
		{"ok", "abc", "after"},
		{"ok", "1-", "after"},
		{"", "-5", "after"},
		{"", "1-2-3", "after"},
	} {
		err := e.watchErr(t, testKey, &publisherv1.WatchDeliveriesRequest{QueuePrefix: c.prefix, After: c.after})
		if status.Code(err) != codes.InvalidArgument || !strings.HasPrefix(status.Convert(err).Message(), c.field+": ") {
			t.Errorf("gRPC prefix %q after %q: %v, want InvalidArgument naming %s", c.prefix, c.after, err, c.field)
		}
		_, r := openSSE(t, base, testKey, url.Values{"queuePrefix": {c.prefix}, "after": {c.after}}.Encode(), "")
		if r == nil {
			t.Fatalf("SSE prefix %q after %q: the stream started", c.prefix, c.after)
		}
		wantStatus(t, *r, http.StatusBadRequest, codes.InvalidArgument, c.field+": ")
	}
	_, r := openSSE(t, base, testKey, "queue=x", "")
	wantStatus(t, *r, http.StatusBadRequest, codes.InvalidArgument, "queue: unknown query parameter")
	_, r = openSSE(t, base, testKey, "", "not-a-position")
	wantStatus(t, *r, http.StatusBadRequest, codes.InvalidArgument, "after: ")
}

func TestWatchDeliveriesTakesSendKeysAndIsOffWithoutTheStream(t *testing.T) {
	e, base := startHTTP(t, streamOn)
	if err := e.watchErr(t, adminKey, &publisherv1.WatchDeliveriesRequest{}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("admin key: %v, want PermissionDenied", err)
	}
	if err := e.watchErr(t, "", &publisherv1.WatchDeliveriesRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("no key: %v, want Unauthenticated", err)
	}
	_, r := openSSE(t, base, adminKey, "", "")
	wantStatus(t, *r, http.StatusForbidden, codes.PermissionDenied, "")
	_, r = openSSE(t, base, "", "", "")
	wantStatus(t, *r, http.StatusUnauthorized, codes.Unauthenticated, "")

	off, offBase := startHTTP(t, nil)
	if err := off.watchErr(t, testKey, &publisherv1.WatchDeliveriesRequest{}); status.Code(err) != codes.Unimplemented {
		t.Errorf("stream off: %v, want Unimplemented", err)
	}
	_, r = openSSE(t, offBase, testKey, "", "")
	wantStatus(t, *r, http.StatusNotImplemented, codes.Unimplemented, "WSMQ_PUBLISHER_RECEIPTS_STREAM")
	// Sends of a publisher with the stream off write no receipts.
	off.deliver(t, "q", "m")
	if n, err := off.rdb.Exists(t.Context(), "rsmq:wsmq:receipts").Result(); err != nil || n != 0 {
		t.Fatalf("receipts stream exists (%d, %v) with the stream off", n, err)
	}
}

func TestWatchDeliveriesOutOfRangeAndWatcherLimit(t *testing.T) {
	vars := map[string]string{"WSMQ_PUBLISHER_MAX_WATCHERS": "1"}
	for k, v := range streamOn {
		vars[k] = v
	}
	e, base := startHTTP(t, vars)
	e.deliver(t, "q", "m")
	ahead := &publisherv1.WatchDeliveriesRequest{After: "99999999999999-0"}
	if err := e.watchErr(t, testKey, ahead); status.Code(err) != codes.OutOfRange || !strings.HasPrefix(status.Convert(err).Message(), "after: ") {
		t.Errorf("position past the end: %v, want OutOfRange naming after", err)
	}
	_, r := openSSE(t, base, testKey, "after=99999999999999-0", "")
	wantStatus(t, *r, http.StatusBadRequest, codes.OutOfRange, "after: ")
	// One watcher at most: the second is refused while the first is open.
	s, _ := openSSE(t, base, testKey, "", "")
	if err := e.watchErr(t, testKey, &publisherv1.WatchDeliveriesRequest{}); status.Code(err) != codes.ResourceExhausted {
		t.Errorf("second watcher: %v, want ResourceExhausted", err)
	}
	_, r = openSSE(t, base, testKey, "", "")
	wantStatus(t, *r, http.StatusTooManyRequests, codes.ResourceExhausted, "WSMQ_PUBLISHER_MAX_WATCHERS")
	s.cancel()
}
