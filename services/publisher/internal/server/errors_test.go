package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"

	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/wsmq/wsmq/pkg/rsmq"
)

func TestToStatusGivesEveryExpectedErrorItsCode(t *testing.T) {
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name string
		ctx  context.Context
		err  error
		want codes.Code
		msg  string
	}{
		{"nil", nil, nil, codes.OK, ""},
		{"field error", nil, &FieldError{Field: "queue", Rule: "must match x"}, codes.InvalidArgument, "queue: must match x"},
		{"rsmq validation names our field", nil, fmt.Errorf("w: %w", &rsmq.ValidationError{Field: "delay", Msg: "delay must be between 0 and 9999999", Err: rsmq.ErrInvalidValue}), codes.InvalidArgument, "delay_seconds: delay must be between 0 and 9999999"},
		{"message too long", nil, fmt.Errorf("%w: queue q", rsmq.ErrMessageTooLong), codes.InvalidArgument, "message: too long"},
		{"queue vanished", nil, errQueueVanished, codes.Aborted, "queue:"},
		{"queue not found after create", nil, rsmq.ErrQueueNotFound, codes.Aborted, "queue:"},
		{"status passes through", nil, status.Error(codes.Unauthenticated, "x"), codes.Unauthenticated, "x"},
		{"caller canceled", canceled, context.Canceled, codes.Canceled, ""},
		{"own deadline is Redis too slow", nil, fmt.Errorf("send: %w", context.DeadlineExceeded), codes.Unavailable, "redis"},
		{"connection refused", nil, &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, codes.Unavailable, "redis unavailable"},
		{"connection reset", nil, fmt.Errorf("x: %w", syscall.ECONNRESET), codes.Unavailable, "redis unavailable"},
		{"EOF", nil, io.EOF, codes.Unavailable, "redis unavailable"},
		{"client closed", nil, redis.ErrClosed, codes.Unavailable, "redis unavailable"},
		{"pool timeout", nil, redis.ErrPoolTimeout, codes.Unavailable, "redis unavailable"},
		{"loading", nil, redisErr("LOADING Redis is loading the dataset in memory"), codes.Unavailable, "LOADING"},
		{"readonly replica", nil, redisErr("READONLY You can't write against a read only replica."), codes.Unavailable, "READONLY"},
		{"out of memory", nil, redisErr("OOM command not allowed when used memory > 'maxmemory'."), codes.ResourceExhausted, "OOM"},
		{"other redis error", nil, redisErr("ERR unknown command"), codes.Internal, "ERR unknown"},
		{"anything else", nil, errors.New("boom"), codes.Internal, "boom"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := tc.ctx
			if ctx == nil {
				ctx = context.Background()
			}
			st := toStatus(ctx, tc.err)
			if st.Code() != tc.want || (tc.msg != "" && !contains(st.Message(), tc.msg)) {
				t.Fatalf("toStatus(%v) = %v %q, want %v containing %q", tc.err, st.Code(), st.Message(), tc.want, tc.msg)
			}
			if st.Code() == codes.Unknown {
				t.Fatal("Unknown is never an answer")
			}
		})
	}
}

// redisErr is an error reply of the Redis server, as go-redis returns it.
type redisErr string

func (e redisErr) Error() string { return string(e) }
func (e redisErr) RedisError()   {}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}
