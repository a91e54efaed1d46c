package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/wsmq/wsmq/pkg/rsmq"
	"github.com/wsmq/wsmq/services/publisher/internal/memwatch"
)

// FieldError is an invalid request field: Field names it as the caller wrote
// it ("queue", "items[3].delay_seconds"), Rule says what it must satisfy.
type FieldError struct {
	Field string
	Rule  string
}

// Error is "field: rule".
func (e *FieldError) Error() string { return e.Field + ": " + e.Rule }

// errQueueVanished: the queue was created for a send and was gone again when
// the send was retried (deleted concurrently).
var errQueueVanished = errors.New("queue was deleted while sending; retry")

// rsmqFields maps the rsmq library's argument names to the request's fields.
var rsmqFields = map[string]string{"qname": "queue", "message": "message", "delay": "delay_seconds"}

// toStatus turns any error of a handler into a gRPC status: the one place
// where errors get their codes. ctx is the caller's context, so that a
// caller's own cancellation or deadline is told apart from a Redis timeout.
func toStatus(ctx context.Context, err error) *status.Status {
	if err == nil {
		return status.New(codes.OK, "")
	}
	if st, ok := status.FromError(err); ok {
		return st
	}
	var fe *FieldError
	var ve *rsmq.ValidationError
	switch {
	case errors.As(err, &fe):
		return status.New(codes.InvalidArgument, fe.Error())
	case errors.As(err, &ve):
		field := ve.Field
		if f, ok := rsmqFields[field]; ok {
			field = f
		}
		return status.New(codes.InvalidArgument, field+": "+ve.Msg)
	case errors.Is(err, rsmq.ErrMessageTooLong):
		return status.New(codes.InvalidArgument, "message: too long for the queue's maxsize")
	case errors.Is(err, rsmq.ErrMessageNotString), errors.Is(err, rsmq.ErrInvalidFormat),
		errors.Is(err, rsmq.ErrInvalidValue), errors.Is(err, rsmq.ErrMissingParameter):
		return status.New(codes.InvalidArgument, err.Error())
	case errors.Is(err, memwatch.ErrHighWater):
		return status.New(codes.ResourceExhausted, err.Error())
	case errors.Is(err, rsmq.ErrNotReplicated):
		// Stored on the master but not yet safe from a failover: the
		// caller retries the same send (ids are idempotent per attempt;
		// a new attempt may store a second copy, a duplicate, never a loss).
		return status.New(codes.Unavailable, "redis: not confirmed by enough replicas; retry")
	case errors.Is(err, errQueueVanished), errors.Is(err, rsmq.ErrQueueNotFound):
		return status.New(codes.Aborted, "queue: "+errQueueVanished.Error())
	}
	if cerr := ctx.Err(); cerr != nil {
		return status.FromContextError(cerr)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		// Our own per-call deadline, not the caller's: Redis did not answer in time.
		return status.New(codes.Unavailable, "redis: no answer in time")
	}
	if errors.Is(err, context.Canceled) {
		return status.New(codes.Canceled, err.Error())
	}
	if redisDown(err) {
		return status.New(codes.Unavailable, "redis unavailable: "+err.Error())
	}
	var rerr redis.Error
	if errors.As(err, &rerr) {
		msg := rerr.Error()
		for _, p := range []string{"LOADING", "BUSY", "READONLY", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN", "NOREPLICAS"} {
			if strings.HasPrefix(msg, p) {
				return status.New(codes.Unavailable, "redis unavailable: "+msg)
			}
		}
		if strings.HasPrefix(msg, "OOM") {
			return status.New(codes.ResourceExhausted, "redis: "+msg)
		}
		return status.New(codes.Internal, "redis: "+msg)
	}
	return status.New(codes.Internal, fmt.Sprintf("internal error: %v", err))
}

// redisDown reports errors meaning Redis could not be reached or the
// connection broke: the caller may retry.
func redisDown(err error) bool {
	var nerr net.Error
	return errors.As(err, &nerr) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed) || errors.Is(err, redis.ErrClosed) || errors.Is(err, redis.ErrPoolTimeout) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}
