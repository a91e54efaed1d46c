package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	publisherv1 "github.com/wsmq/wsmq/gen/wsmq/publisher/v1"
)

// deliveryBody is one delivery event as JSON: state as in statusBody.
type deliveryBody struct {
	Position     string `json:"position"`
	TimeUnixMs   int64  `json:"timeUnixMs"`
	Queue        string `json:"queue"`
	ID           string `json:"id"`
	State        string `json:"state"`
	ReceiveCount int64  `json:"receiveCount,omitempty"`
	Reason       string `json:"reason,omitempty"`
}

// stateName is a MessageState as the HTTP API writes it: "acknowledged".
func stateName(s publisherv1.MessageState) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "MESSAGE_STATE_"))
}

// deliveries is WatchDeliveries as server-sent events: every event is
// "id: <position>", "event: delivery", "data: <deliveryBody JSON>". A
// reconnecting EventSource sends the last id as Last-Event-ID, which wins
// over the after query parameter. Errors before the stream starts are the
// API's JSON errors; an error after it started is an "event: error" whose
// data is the google.rpc.Status JSON, then the stream ends.
func (h *handler) deliveries(w http.ResponseWriter, r *http.Request) {
	ctx := authed(r)
	if err := h.o.Access.CheckSend(ctx); err != nil {
		writeError(w, err)
		return
	}
	if h.o.Watch == nil {
		writeError(w, status.Error(codes.Unimplemented, "WatchDeliveries: off (set WSMQ_PUBLISHER_RECEIPTS_STREAM)"))
		return
	}
	q := r.URL.Query()
	for k := range q {
		if k != "queuePrefix" && k != "after" {
			writeError(w, status.Errorf(codes.InvalidArgument, "%s: unknown query parameter", k))
			return
		}
	}
	req := &publisherv1.WatchDeliveriesRequest{QueuePrefix: q.Get("queuePrefix"), After: q.Get("after")}
	if id := r.Header.Get("Last-Event-ID"); id != "" {
		req.After = id
	}
	rc := http.NewResponseController(w)
	// The server's ReadTimeout would end the stream: its read deadline
	// stays on the connection while the handler runs, and the background
	// read hitting it cancels the request's context.
	_ = rc.SetReadDeadline(time.Time{})
	started := false
	last := time.Now()
	write := func(format string, a ...any) error {
		if !started {
			hd := w.Header()
			hd.Set("Content-Type", "text/event-stream")
			hd.Set("Cache-Control", "no-cache")
			hd.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
			w.WriteHeader(http.StatusOK)
			started = true
		}
		if _, err := fmt.Fprintf(w, format, a...); err != nil {
			return err
		}
		last = time.Now()
		return rc.Flush()
	}
	send := func(ev *publisherv1.DeliveryEvent) error {
		b, err := json.Marshal(deliveryBody{Position: ev.GetPosition(), TimeUnixMs: ev.GetTimeUnixMs(), Queue: ev.GetQueue(),
			ID: ev.GetId(), State: stateName(ev.GetState()), ReceiveCount: ev.GetReceiveCount(), Reason: ev.GetReason()})
		if err != nil {
			return err
		}
		return write("id: %s\nevent: delivery\ndata: %s\n\n", ev.GetPosition(), b)
	}
	idle := func() error {
		if !started {
			return write(": watching\n\n")
		}
		if time.Since(last) >= h.o.KeepAlive {
			return write(": keepalive\n\n")
		}
		return nil
	}
	err := h.o.Watch(ctx, req, send, idle)
	if err == nil {
		return
	}
	if !started {
		writeError(w, err)
		return
	}
	st := status.Convert(err)
	b, _ := json.Marshal(Status{Code: int(st.Code()), Message: st.Message()})
	_ = write("event: error\ndata: %s\n\n", b)
}
