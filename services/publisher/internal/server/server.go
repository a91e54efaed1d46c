// Package server implements wsmq.publisher.v1.PublisherService over the rsmq
// library: validation, queue creation on first send, per-item batch results,
// and the mapping of errors to gRPC status codes.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
	"unicode/utf8"

	"google.golang.org/grpc/codes"

	publisherv1 "github.com/wsmq/wsmq/gen/wsmq/publisher/v1"
	"github.com/wsmq/wsmq/pkg/rsmq"
	"github.com/wsmq/wsmq/services/publisher/internal/metrics"
)

// Request limits (shared/RSMQ.md).
const (
	maxDelay     = 9_999_999
	maxTTL       = rsmq.MaxTTL
	ttlRule      = "must be between 0 and 9999999"
	queueRule    = "must match ^[a-zA-Z0-9_-]{1,160}$"
	delayRule    = "must be between 0 and 9999999"
	createFanout = 16 // queues created concurrently by one SendBatch
)

// Options configure a Server; zero values take the defaults.
type Options struct {
	// MaxBatch is the most items per SendBatch; default rsmq.MaxBatch.
	MaxBatch int
	// Queue holds the attributes of queues created on first send; zero value
	// means rsmq.DefaultQueueConfig().
	Queue rsmq.QueueConfig
	// DefaultTTL is the ttl (seconds) of an item sent without ttl_seconds;
	// 0: such items do not expire.
	DefaultTTL int
	// CallTimeout bounds the Redis work of one RPC; default 2s.
	CallTimeout time.Duration
	// Sender, when not nil, stores the item of each Send (and of the HTTP
	// API's single sends): a coalesce.Coalescer, which gathers concurrent
	// Sends into one round trip. nil sends each through the rsmq Client.
	Sender ItemSender
	// Admit, when not nil, is asked before every valid item is sent; its
	// error refuses the item (memwatch.Watch.Check: RESOURCE_EXHAUSTED
	// while Redis is above the memory high-water mark). It must not block.
	Admit func() error
}

// ItemSender stores one item and returns its id, with rsmq.Client.SendItem's
// errors.
type ItemSender interface {
	Send(ctx context.Context, item rsmq.SendItem) (string, error)
}

// itemSender is an rsmq Client as an ItemSender.
type itemSender struct{ q *rsmq.Client }

func (s itemSender) Send(ctx context.Context, item rsmq.SendItem) (string, error) {
	return s.q.SendItem(ctx, item)
}

// Server serves PublisherService.
type Server struct {
	publisherv1.UnimplementedPublisherServiceServer

	q    *rsmq.Client
	opts Options
	m    *metrics.Metrics
	log  *slog.Logger

	watch    *WatchOptions // nil: WatchDeliveries is off
	watchers chan struct{} // one token per watcher served
}

// New returns a Server sending through q (which should have Realtime set).
func New(q *rsmq.Client, opts Options, m *metrics.Metrics, log *slog.Logger) *Server {
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = rsmq.MaxBatch
	}
	if opts.Queue == (rsmq.QueueConfig{}) {
		opts.Queue = rsmq.DefaultQueueConfig()
	}
	if opts.CallTimeout <= 0 {
		opts.CallTimeout = 2 * time.Second
	}
	if opts.Sender == nil {
		opts.Sender = itemSender{q}
	}
	return &Server{q: q, opts: opts, m: m, log: log}
}

// Send stores one message, creating its queue when missing.
func (s *Server) Send(ctx context.Context, req *publisherv1.SendRequest) (*publisherv1.SendResponse, error) {
	start := time.Now()
	id, err := s.send(ctx, req)
	st := toStatus(ctx, err)
	s.m.Observe("Send", start, st.Code(), 1)
	if err != nil {
		s.logFailure("Send", req.GetQueue(), st.Code(), err)
		return nil, st.Err()
	}
	return &publisherv1.SendResponse{Id: id}, nil
}

func (s *Server) send(ctx context.Context, req *publisherv1.SendRequest) (string, error) {
	item, err := validate("", req, s.opts.DefaultTTL)
	if err != nil {
		return "", err
	}
	if err := s.admit(); err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.CallTimeout)
	defer cancel()
	// Try the send first: one round trip when the queue exists, the usual case.
	id, err := s.opts.Sender.Send(ctx, item)
	if errors.Is(err, rsmq.ErrQueueNotFound) {
		if err := s.createQueue(ctx, item.Queue); err != nil {
			return "", err
		}
		id, err = s.opts.Sender.Send(ctx, item)
		if errors.Is(err, rsmq.ErrQueueNotFound) {
			return "", fmt.Errorf("send to %s: %w", item.Queue, errQueueVanished)
		}
	}
	if errors.Is(err, rsmq.ErrMessageTooLong) {
		return "", s.tooLong(ctx, "message", item)
	}
	if err != nil {
		return "", fmt.Errorf("send to %s: %w", item.Queue, err)
	}
	return id, nil
}

// SendBatch stores many messages in one pipelined round trip (plus one more
// for items whose queue had to be created). Invalid items get their error in
// their result and do not stop the others.
func (s *Server) SendBatch(ctx context.Context, req *publisherv1.SendBatchRequest) (*publisherv1.SendBatchResponse, error) {
	start := time.Now()
	n := len(req.GetItems())
	if n > s.opts.MaxBatch {
		err := &FieldError{Field: "items", Rule: fmt.Sprintf("at most %d items per batch (got %d)", s.opts.MaxBatch, n)}
		st := toStatus(ctx, err)
		s.m.Observe("SendBatch", start, st.Code(), n)
		return nil, st.Err()
	}
	results, err := s.sendBatch(ctx, req.GetItems())
	if err != nil {
		st := toStatus(ctx, err)
		s.m.Observe("SendBatch", start, st.Code(), n)
		s.logFailure("SendBatch", "", st.Code(), err)
		return nil, st.Err()
	}
	counts := map[codes.Code]int{}
	for _, r := range results {
		counts[codes.Code(r.Code)]++
	}
	for c, k := range counts {
		s.m.Count("SendBatch", c, k)
	}
	s.m.Observe("SendBatch", start, codes.OK, 0)
	return &publisherv1.SendBatchResponse{Results: results}, nil
}

// sendBatch returns one result per item, or an error when the whole batch
// failed before anything could be known to be stored.
func (s *Server) sendBatch(ctx context.Context, reqs []*publisherv1.SendRequest) ([]*publisherv1.SendBatchResult, error) {
	results := make([]*publisherv1.SendBatchResult, len(reqs))
	var items []rsmq.SendItem
	var pos []int // pos[j] is the request index of items[j]
	for i, r := range reqs {
		item, err := validate(fmt.Sprintf("items[%d].", i), r, s.opts.DefaultTTL)
		if err != nil {
			results[i] = s.itemResult(ctx, i, "", err)
			continue
		}
		items = append(items, item)
		pos = append(pos, i)
	}
	if len(items) == 0 {
		return results, nil
	}
	if err := s.admit(); err != nil {
		for _, i := range pos {
			results[i] = s.itemResult(ctx, i, "", err)
		}
		return results, nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.CallTimeout)
	defer cancel()
	sent, err := s.q.SendBatch(ctx, items)
	if err != nil {
		return nil, fmt.Errorf("send batch: %w", err)
	}
	var missing []int // indexes into items whose queue does not exist
	for j, r := range sent {
		if errors.Is(r.Err, rsmq.ErrQueueNotFound) {
			missing = append(missing, j)
			continue
		}
		results[pos[j]] = s.itemResult(ctx, pos[j], r.ID, s.itemError(ctx, pos[j], items[j], r.Err))
	}
	if len(missing) == 0 {
		return results, nil
	}

	// Create the missing queues, then resend just their items.
	created := s.createQueues(ctx, items, missing)
	var again []rsmq.SendItem
	var againPos []int
	for _, j := range missing {
		if err := created[items[j].Queue]; err != nil {
			results[pos[j]] = s.itemResult(ctx, pos[j], "", err)
			continue
		}
		again = append(again, items[j])
		againPos = append(againPos, j)
	}
	if len(again) == 0 {
		return results, nil
	}
	sent, err = s.q.SendBatch(ctx, again)
	for k, j := range againPos {
		i := pos[j]
		switch {
		case err != nil:
			results[i] = s.itemResult(ctx, i, "", fmt.Errorf("send batch: %w", err))
		case errors.Is(sent[k].Err, rsmq.ErrQueueNotFound):
			results[i] = s.itemResult(ctx, i, "", errQueueVanished)
		default:
			results[i] = s.itemResult(ctx, i, sent[k].ID, s.itemError(ctx, i, items[j], sent[k].Err))
		}
	}
	return results, nil
}

// admit asks Options.Admit.
func (s *Server) admit() error {
	if s.opts.Admit == nil {
		return nil
	}
	return s.opts.Admit()
}

// createQueues creates the distinct queues of items[missing], a few at a
// time, and returns the error per queue (nil: it exists now).
func (s *Server) createQueues(ctx context.Context, items []rsmq.SendItem, missing []int) map[string]error {
	var queues []string
	seen := map[string]bool{}
	for _, j := range missing {
		if q := items[j].Queue; !seen[q] {
			seen[q] = true
			queues = append(queues, q)
		}
	}
	errs := make([]error, len(queues))
	var wg sync.WaitGroup
	sem := make(chan struct{}, createFanout)
	for k, q := range queues {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			errs[k] = s.createQueue(ctx, q)
		}()
	}
	wg.Wait()
	created := make(map[string]error, len(queues))
	for k, q := range queues {
		created[q] = errs[k]
	}
	return created
}

// itemError refines the error of one stored-or-failed batch item.
func (s *Server) itemError(ctx context.Context, i int, item rsmq.SendItem, err error) error {
	if errors.Is(err, rsmq.ErrMessageTooLong) {
		return s.tooLong(ctx, fmt.Sprintf("items[%d].message", i), item)
	}
	return err
}

// itemResult is the result of request item i: an id, or err as code and text.
func (s *Server) itemResult(ctx context.Context, i int, id string, err error) *publisherv1.SendBatchResult {
	if err == nil {
		return &publisherv1.SendBatchResult{Id: id}
	}
	st := toStatus(ctx, err)
	msg := st.Message()
	var fe *FieldError
	if st.Code() == codes.InvalidArgument && !errors.As(err, &fe) {
		msg = fmt.Sprintf("items[%d].%s", i, msg) // an rsmq error names the bare field
	}
	return &publisherv1.SendBatchResult{Code: int32(st.Code()), Error: msg}
}

// createQueue creates qname with the default attributes; an existing queue
// (created meanwhile by someone else) is fine.
func (s *Server) createQueue(ctx context.Context, qname string) error {
	created, err := s.q.EnsureQueue(ctx, qname, s.opts.Queue)
	if err != nil {
		return fmt.Errorf("create queue %s: %w", qname, err)
	}
	if created {
		s.log.Info("queue created", "queue", qname,
			"vt", s.opts.Queue.VT, "delay", s.opts.Queue.Delay, "maxsize", s.opts.Queue.MaxSize)
	}
	return nil
}

// tooLong builds the "message too long" error with the message's length and
// the queue's maxsize, read only on this error path.
func (s *Server) tooLong(ctx context.Context, field string, item rsmq.SendItem) error {
	n := rsmq.UTF16Len(item.Message)
	attrs, err := s.q.GetQueueAttributes(ctx, item.Queue)
	if err != nil {
		return &FieldError{Field: field, Rule: fmt.Sprintf("too long (%d UTF-16 units > the queue's maxsize)", n)}
	}
	return &FieldError{Field: field, Rule: fmt.Sprintf("too long (%d > maxsize %d)", n, attrs.MaxSize)}
}

// validate checks one request item; prefix is prepended to field names.
// defTTL is the ttl of an item without one.
func validate(prefix string, r *publisherv1.SendRequest, defTTL int) (rsmq.SendItem, error) {
	if err := rsmq.ValidateQueueName(r.GetQueue()); err != nil {
		rule := queueRule
		if r.GetQueue() == "" {
			rule = "must not be empty; " + queueRule
		}
		return rsmq.SendItem{}, &FieldError{Field: prefix + "queue", Rule: rule}
	}
	if !utf8.ValidString(r.GetMessage()) {
		return rsmq.SendItem{}, &FieldError{Field: prefix + "message", Rule: "must be valid UTF-8"}
	}
	d := r.GetDelaySeconds()
	if d < 0 || d > maxDelay {
		return rsmq.SendItem{}, &FieldError{Field: prefix + "delay_seconds", Rule: fmt.Sprintf("%s (got %d)", delayRule, d)}
	}
	ttl := r.GetTtlSeconds()
	if ttl < 0 || ttl > maxTTL {
		return rsmq.SendItem{}, &FieldError{Field: prefix + "ttl_seconds", Rule: fmt.Sprintf("%s (got %d)", ttlRule, ttl)}
	}
	delay := int(d)
	if delay == 0 {
		delay = rsmq.QueueDefault // the contract: 0 means the queue's default delay
	}
	if ttl == 0 {
		ttl = int64(defTTL) // 0 means the publisher's default, WSMQ_QUEUE_TTL
	}
	return rsmq.SendItem{Queue: r.GetQueue(), Message: r.GetMessage(), Delay: delay, TTL: int(ttl)}, nil
}

// logFailure logs a failed call without the message body. Caller errors
// are debug; server-side trouble is a warning.
func (s *Server) logFailure(method, queue string, code codes.Code, err error) {
	level := slog.LevelDebug
	switch code {
	case codes.InvalidArgument, codes.Canceled, codes.DeadlineExceeded:
	default:
		level = slog.LevelWarn
	}
	s.log.Log(context.Background(), level, "call failed", "method", method, "queue", queue, "code", code.String(), "err", err)
}

// GetStatus reports the delivery status of one message.
func (s *Server) GetStatus(ctx context.Context, req *publisherv1.GetStatusRequest) (*publisherv1.GetStatusResponse, error) {
	start := time.Now()
	resp, err := s.getStatus(ctx, req)
	st := toStatus(ctx, err)
	s.m.Observe("GetStatus", start, st.Code(), 0)
	if err != nil {
		s.logFailure("GetStatus", req.GetQueue(), st.Code(), err)
		return nil, st.Err()
	}
	return resp, nil
}

var statusStates = map[rsmq.Status]publisherv1.MessageState{
	rsmq.StatusQueued:       publisherv1.MessageState_MESSAGE_STATE_QUEUED,
	rsmq.StatusInFlight:     publisherv1.MessageState_MESSAGE_STATE_IN_FLIGHT,
	rsmq.StatusDelivered:    publisherv1.MessageState_MESSAGE_STATE_DELIVERED,
	rsmq.StatusAcknowledged: publisherv1.MessageState_MESSAGE_STATE_ACKNOWLEDGED,
	rsmq.StatusDeadLettered: publisherv1.MessageState_MESSAGE_STATE_DEAD_LETTERED,
	rsmq.StatusExpired:      publisherv1.MessageState_MESSAGE_STATE_EXPIRED,
	rsmq.StatusUnknown:      publisherv1.MessageState_MESSAGE_STATE_UNKNOWN,
}

func (s *Server) getStatus(ctx context.Context, req *publisherv1.GetStatusRequest) (*publisherv1.GetStatusResponse, error) {
	if err := rsmq.ValidateQueueName(req.GetQueue()); err != nil {
		return nil, &FieldError{Field: "queue", Rule: queueRule}
	}
	if err := rsmq.ValidateID(req.GetId()); err != nil {
		return nil, &FieldError{Field: "id", Rule: "must be a 32-character RSMQ id ([a-zA-Z0-9:]{32})"}
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.CallTimeout)
	defer cancel()
	ms, err := s.q.GetStatus(ctx, req.GetQueue(), req.GetId())
	if err != nil {
		return nil, fmt.Errorf("status of %s in %s: %w", req.GetId(), req.GetQueue(), err)
	}
	state, ok := statusStates[ms.Status]
	if !ok {
		state = publisherv1.MessageState_MESSAGE_STATE_UNKNOWN
	}
	return &publisherv1.GetStatusResponse{State: state, ReceiveCount: ms.RC, Reason: ms.Reason}, nil
}
