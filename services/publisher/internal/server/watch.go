package server

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	publisherv1 "github.com/wsmq/wsmq/gen/wsmq/publisher/v1"
	"github.com/wsmq/wsmq/pkg/rsmq"
)

// Defaults of WatchOptions.
const (
	DefaultWatchBlock = 2 * time.Second
	watchBatch        = 200 // stream entries per XREAD
	maxPrefixLen      = 160
)

// WatchOptions turn WatchDeliveries on.
type WatchOptions struct {
	// RDB runs the watchers' blocking reads: a client of its own, so that a
	// watcher holding a connection for Block never takes one from sends.
	// Its pool should hold Max connections. nil: WatchDeliveries is off
	// (UNIMPLEMENTED).
	RDB redis.UniversalClient
	// Max is the most watchers served at once; more are refused with
	// RESOURCE_EXHAUSTED.
	Max int
	// Block is how long one read waits for new events (and so how soon a
	// watcher notices that its caller left or the publisher stops).
	Block time.Duration
	// Stop, when closed, ends every watch with UNAVAILABLE (the publisher
	// stops; a graceful gRPC stop waits for streams).
	Stop <-chan struct{}
}

// EnableWatch turns WatchDeliveries on.
func (s *Server) EnableWatch(o WatchOptions) {
	if o.Block <= 0 {
		o.Block = DefaultWatchBlock
	}
	if o.Max <= 0 {
		o.Max = 1
	}
	s.watch = &o
	s.watchers = make(chan struct{}, o.Max)
}

// WatchDeliveries streams delivery events (see the proto).
func (s *Server) WatchDeliveries(req *publisherv1.WatchDeliveriesRequest, stream grpc.ServerStreamingServer[publisherv1.DeliveryEvent]) error {
	return s.Watch(stream.Context(), req, stream.Send, nil)
}

// Watch runs one watch: it validates req, then calls send for every event
// of the watched queues, in stream order, and idle (when not nil) once the
// watch has started and after every read that found nothing, until ctx ends (nil), send fails (its error) or
// the publisher stops. Its error is a gRPC status error.
func (s *Server) Watch(ctx context.Context, req *publisherv1.WatchDeliveriesRequest, send func(*publisherv1.DeliveryEvent) error, idle func() error) error {
	err := s.runWatch(ctx, req, send, idle)
	if err == nil || ctx.Err() != nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	st := toStatus(ctx, err)
	s.logFailure("WatchDeliveries", req.GetQueuePrefix(), st.Code(), err)
	return st.Err()
}

// ValidateWatch checks a WatchDeliveriesRequest.
func ValidateWatch(req *publisherv1.WatchDeliveriesRequest) error {
	p := req.GetQueuePrefix()
	if len(p) > maxPrefixLen || strings.IndexFunc(p, func(r rune) bool { return !queueNameRune(r) }) >= 0 {
		return &FieldError{Field: "queue_prefix", Rule: "must match ^[a-zA-Z0-9_-]{0,160}$"}
	}
	if a := req.GetAfter(); a != "" && a != "0" {
		if _, err := rsmq.ParsePosition(a); err != nil {
			return &FieldError{Field: "after", Rule: fmt.Sprintf(`must be a position "<ms>-<seq>", "0" or empty (got %q)`, a)}
		}
	}
	return nil
}

func (s *Server) runWatch(ctx context.Context, req *publisherv1.WatchDeliveriesRequest, send func(*publisherv1.DeliveryEvent) error, idle func() error) error {
	if s.watch == nil {
		return status.Error(codes.Unimplemented, "WatchDeliveries: off (set WSMQ_PUBLISHER_RECEIPTS_STREAM)")
	}
	if err := ValidateWatch(req); err != nil {
		return err
	}
	select {
	case s.watchers <- struct{}{}:
		defer func() { <-s.watchers }()
	default:
		return status.Errorf(codes.ResourceExhausted, "WatchDeliveries: already %d watchers (WSMQ_PUBLISHER_MAX_WATCHERS)", cap(s.watchers))
	}
	s.m.Watchers.Inc()
	defer s.m.Watchers.Dec()

	sctx, cancel := context.WithTimeout(ctx, s.opts.CallTimeout)
	pos, err := s.q.StartDeliveries(sctx, req.GetAfter())
	cancel()
	if err != nil {
		return positionError(err)
	}
	prefix := req.GetQueuePrefix()
	if idle != nil { // the watch has started: an SSE answer sends its headers now
		if err := idle(); err != nil {
			return err
		}
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.watch.Stop:
			return status.Error(codes.Unavailable, "publisher: stopping; reconnect with after = the last position")
		default:
		}
		ds, err := s.q.ReadDeliveries(ctx, s.watch.RDB, pos, watchBatch, s.watch.Block)
		if err != nil {
			return positionError(err)
		}
		if len(ds) == 0 && idle != nil {
			if err := idle(); err != nil {
				return err
			}
		}
		for _, d := range ds {
			pos = d.Position
			if d.Queue == "" || !strings.HasPrefix(d.Queue, prefix) {
				continue
			}
			if err := send(deliveryEvent(d)); err != nil {
				return err
			}
			s.m.DeliveryEvents.Inc()
		}
	}
}

// queueNameRune reports whether r may appear in a queue name.
func queueNameRune(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-'
}

// positionError names the after field for the position errors of rsmq.
func positionError(err error) error {
	if errors.Is(err, rsmq.ErrPositionTrimmed) || errors.Is(err, rsmq.ErrPositionAhead) {
		return status.Error(codes.OutOfRange, "after: "+strings.TrimPrefix(err.Error(), "rsmq: ")+
			`; restart from "0" (the oldest event kept) or "" (from now)`)
	}
	return err
}

func deliveryEvent(d rsmq.Delivery) *publisherv1.DeliveryEvent {
	state, ok := statusStates[d.Status]
	if !ok {
		state = publisherv1.MessageState_MESSAGE_STATE_UNKNOWN
	}
	return &publisherv1.DeliveryEvent{Position: d.Position, TimeUnixMs: d.TimeMS, Queue: d.Queue, Id: d.ID,
		State: state, ReceiveCount: d.RC, Reason: d.Reason}
}
