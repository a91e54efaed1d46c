package server

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	publisherv1 "github.com/wsmq/wsmq/gen/wsmq/publisher/v1"
	"github.com/wsmq/wsmq/pkg/rsmq"
)

// Admin limits.
const (
	defaultPageSize = 100
	maxPageSize     = 1000
	adminBatch      = 1000 // messages per purge or redrive script: bounds each Redis call
)

// Admin serves QueueAdminService over the rsmq library.
type Admin struct {
	publisherv1.UnimplementedQueueAdminServiceServer

	q    *rsmq.Client
	opts Options
}

// NewAdmin returns the admin service over q; opts.Queue and CallTimeout
// apply as for Server.
func NewAdmin(q *rsmq.Client, opts Options) *Admin {
	if opts.Queue == (rsmq.QueueConfig{}) {
		opts.Queue = rsmq.DefaultQueueConfig()
	}
	if opts.CallTimeout <= 0 {
		opts.CallTimeout = 2 * time.Second
	}
	return &Admin{q: q, opts: opts}
}

// adminStatus maps an admin error to its status: the send mapping plus the
// codes only administration meets.
func adminStatus(ctx context.Context, err error) error {
	var fe *FieldError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &fe):
	case errors.Is(err, rsmq.ErrQueueExists):
		return status.Error(codes.AlreadyExists, "queue: already exists")
	case errors.Is(err, rsmq.ErrDeadLetterQueueNotFound):
		return status.Error(codes.NotFound, "dead_letter_queue: not found")
	case errors.Is(err, rsmq.ErrQueueNotFound):
		return status.Error(codes.NotFound, "queue: not found")
	}
	return toStatus(ctx, err).Err()
}

func checkQueue(field, name string) error {
	if rsmq.ValidateQueueName(name) != nil {
		rule := queueRule
		if name == "" {
			rule = "must not be empty; " + queueRule
		}
		return &FieldError{Field: field, Rule: rule}
	}
	return nil
}

// CreateQueue creates a queue with the given or default attributes.
func (a *Admin) CreateQueue(ctx context.Context, req *publisherv1.CreateQueueRequest) (*publisherv1.CreateQueueResponse, error) {
	if err := checkQueue("queue", req.GetQueue()); err != nil {
		return nil, adminStatus(ctx, err)
	}
	cfg := a.opts.Queue
	for _, f := range []struct {
		name string
		v    int64
		dst  *int
		lo   int64
		hi   int64
	}{
		{"vt_seconds", req.GetVtSeconds(), &cfg.VT, 0, maxDelay},
		{"delay_seconds", req.GetDelaySeconds(), &cfg.Delay, 0, maxDelay},
		{"max_size", req.GetMaxSize(), &cfg.MaxSize, -1, 65536},
	} {
		if f.v < f.lo || f.v > f.hi {
			return nil, adminStatus(ctx, &FieldError{Field: f.name, Rule: fmt.Sprintf("must be between %d and %d (got %d)", f.lo, f.hi, f.v)})
		}
		if f.v != 0 {
			*f.dst = int(f.v)
		}
	}
	ctx2, cancel := context.WithTimeout(ctx, a.opts.CallTimeout)
	defer cancel()
	if err := a.q.CreateQueue(ctx2, req.GetQueue(), cfg); err != nil {
		var ve *rsmq.ValidationError
		if errors.As(err, &ve) && ve.Field == "maxsize" {
			return nil, adminStatus(ctx, &FieldError{Field: "max_size", Rule: ve.Msg})
		}
		return nil, adminStatus(ctx, err)
	}
	return &publisherv1.CreateQueueResponse{}, nil
}

// DeleteQueue deletes a queue and its messages.
func (a *Admin) DeleteQueue(ctx context.Context, req *publisherv1.DeleteQueueRequest) (*publisherv1.DeleteQueueResponse, error) {
	if err := checkQueue("queue", req.GetQueue()); err != nil {
		return nil, adminStatus(ctx, err)
	}
	ctx2, cancel := context.WithTimeout(ctx, a.opts.CallTimeout)
	defer cancel()
	if err := a.q.DeleteQueue(ctx2, req.GetQueue()); err != nil {
		return nil, adminStatus(ctx, err)
	}
	return &publisherv1.DeleteQueueResponse{}, nil
}

// GetQueueAttributes returns a queue's attributes, depth, in-flight count
// and the age of its head message.
func (a *Admin) GetQueueAttributes(ctx context.Context, req *publisherv1.GetQueueAttributesRequest) (*publisherv1.GetQueueAttributesResponse, error) {
	if err := checkQueue("queue", req.GetQueue()); err != nil {
		return nil, adminStatus(ctx, err)
	}
	ctx2, cancel := context.WithTimeout(ctx, a.opts.CallTimeout)
	defer cancel()
	at, err := a.q.GetQueueAttributes(ctx2, req.GetQueue())
	if err != nil {
		return nil, adminStatus(ctx, err)
	}
	sent, err := a.q.OldestSent(ctx2, req.GetQueue())
	if err != nil {
		return nil, adminStatus(ctx, err)
	}
	var age int64
	if sent > 0 {
		age = max(0, (time.Now().UnixMilli()-sent)/1000)
	}
	return &publisherv1.GetQueueAttributesResponse{
		Queue: req.GetQueue(), VtSeconds: int64(at.VT), DelaySeconds: int64(at.Delay), MaxSize: int64(at.MaxSize),
		Messages: at.Msgs, InFlight: at.HiddenMsgs, OldestMessageAgeSeconds: age,
		TotalReceived: at.TotalRecv, TotalSent: at.TotalSent, Created: at.Created, Modified: at.Modified,
	}, nil
}

// ListQueues returns one SSCAN page of queue names by prefix.
func (a *Admin) ListQueues(ctx context.Context, req *publisherv1.ListQueuesRequest) (*publisherv1.ListQueuesResponse, error) {
	size := int64(req.GetPageSize())
	switch {
	case size == 0:
		size = defaultPageSize
	case size < 1 || size > maxPageSize:
		return nil, adminStatus(ctx, &FieldError{Field: "page_size", Rule: fmt.Sprintf("must be between 1 and %d (got %d)", maxPageSize, size)})
	}
	var cursor uint64
	if tok := req.GetPageToken(); tok != "" {
		c, err := strconv.ParseUint(tok, 36, 64)
		if err != nil || c == 0 {
			return nil, adminStatus(ctx, &FieldError{Field: "page_token", Rule: "must be a next_page_token of an earlier response"})
		}
		cursor = c
	}
	ctx2, cancel := context.WithTimeout(ctx, a.opts.CallTimeout)
	defer cancel()
	page, err := a.q.ScanQueues(ctx2, req.GetPrefix(), cursor, size)
	if err != nil {
		return nil, adminStatus(ctx, err)
	}
	resp := &publisherv1.ListQueuesResponse{Queues: page.Names}
	if resp.Queues == nil {
		resp.Queues = []string{}
	}
	if page.Cursor != 0 {
		resp.NextPageToken = strconv.FormatUint(page.Cursor, 36)
	}
	return resp, nil
}

// PurgeQueue removes every message of a queue in bounded batches.
func (a *Admin) PurgeQueue(ctx context.Context, req *publisherv1.PurgeQueueRequest) (*publisherv1.PurgeQueueResponse, error) {
	if err := checkQueue("queue", req.GetQueue()); err != nil {
		return nil, adminStatus(ctx, err)
	}
	var total int64
	for {
		ctx2, cancel := context.WithTimeout(ctx, a.opts.CallTimeout)
		removed, left, err := a.q.PurgeBatch(ctx2, req.GetQueue(), adminBatch)
		cancel()
		if err != nil {
			return nil, adminStatus(ctx, err)
		}
		total += removed
		if left == 0 || removed == 0 {
			return &publisherv1.PurgeQueueResponse{Removed: total}, nil
		}
	}
}

// RedriveDeadLetters moves a dead-letter queue's messages back in bounded,
// atomic batches.
func (a *Admin) RedriveDeadLetters(ctx context.Context, req *publisherv1.RedriveDeadLettersRequest) (*publisherv1.RedriveDeadLettersResponse, error) {
	if err := checkQueue("queue", req.GetQueue()); err != nil {
		return nil, adminStatus(ctx, err)
	}
	dlq := req.GetDeadLetterQueue()
	if dlq == "" {
		dlq = req.GetQueue() + "-dlq"
	}
	if err := checkQueue("dead_letter_queue", dlq); err != nil {
		return nil, adminStatus(ctx, err)
	}
	if dlq == req.GetQueue() {
		return nil, adminStatus(ctx, &FieldError{Field: "dead_letter_queue", Rule: "must differ from queue"})
	}
	limit := req.GetMaxMessages()
	if limit < 0 {
		return nil, adminStatus(ctx, &FieldError{Field: "max_messages", Rule: fmt.Sprintf("must not be negative (got %d)", limit)})
	}
	var moved, left int64
	for {
		n := int64(adminBatch)
		if limit > 0 {
			n = min(n, limit-moved)
		}
		ctx2, cancel := context.WithTimeout(ctx, a.opts.CallTimeout)
		m, l, err := a.q.RedriveBatch(ctx2, dlq, req.GetQueue(), int(n))
		cancel()
		if err != nil {
			if moved > 0 && !errors.Is(err, rsmq.ErrQueueNotFound) && !errors.Is(err, rsmq.ErrDeadLetterQueueNotFound) {
				return nil, adminStatus(ctx, fmt.Errorf("after moving %d: %w", moved, err))
			}
			return nil, adminStatus(ctx, err)
		}
		moved, left = moved+m, l
		if left == 0 || m == 0 || (limit > 0 && moved >= limit) {
			return &publisherv1.RedriveDeadLettersResponse{Moved: moved, Left: left}, nil
		}
	}
}
