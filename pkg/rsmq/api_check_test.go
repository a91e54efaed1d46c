package rsmq_test

import (
	"context"

	"github.com/redis/go-redis/v9"
	"github.com/wsmq/wsmq/pkg/rsmq"
)

// The signatures of notes/rsmq-api.md, checked by the compiler.
var (
	_ func(redis.UniversalClient, rsmq.Options) *rsmq.Client                                            = rsmq.New
	_ func(*rsmq.Client) string                                                                         = (*rsmq.Client).Namespace
	_ func(*rsmq.Client, string) string                                                                 = (*rsmq.Client).RealtimeChannel
	_ func(string) error                                                                                = rsmq.ValidateQueueName
	_ func(string) error                                                                                = rsmq.ValidateID
	_ func(string) int                                                                                  = rsmq.UTF16Len
	_ func() rsmq.QueueConfig                                                                           = rsmq.DefaultQueueConfig
	_ func(*rsmq.Client, context.Context, string, rsmq.QueueConfig) error                               = (*rsmq.Client).CreateQueue
	_ func(*rsmq.Client, context.Context, string) error                                                 = (*rsmq.Client).DeleteQueue
	_ func(*rsmq.Client, context.Context) ([]string, error)                                             = (*rsmq.Client).ListQueues
	_ func(*rsmq.Client, context.Context, string) (*rsmq.QueueAttributes, error)                        = (*rsmq.Client).GetQueueAttributes
	_ func(*rsmq.Client, context.Context, string, rsmq.AttributeChanges) (*rsmq.QueueAttributes, error) = (*rsmq.Client).SetQueueAttributes
	_ func(*rsmq.Client, context.Context, string, string, int) (string, error)                          = (*rsmq.Client).SendMessage
	_ func(*rsmq.Client, context.Context, []rsmq.SendItem) ([]rsmq.SendResult, error)                   = (*rsmq.Client).SendBatch
	_ func(*rsmq.Message) rsmq.Receipt                                                                  = (*rsmq.Message).Receipt
	_ func(*rsmq.Client, context.Context, string, int) (*rsmq.Message, error)                           = (*rsmq.Client).ReceiveMessage
	_ func(*rsmq.Client, context.Context, string) (*rsmq.Message, error)                                = (*rsmq.Client).PopMessage
	_ func(*rsmq.Client, context.Context, string, string) (bool, error)                                 = (*rsmq.Client).DeleteMessage
	_ func(*rsmq.Client, context.Context, string, string, int) (bool, error)                            = (*rsmq.Client).ChangeMessageVisibility
	_ func(*rsmq.Client, context.Context, string, rsmq.ReceiveOptions) (*rsmq.ReceiveResult, error)     = (*rsmq.Client).ReceiveMessages
	_ func(*rsmq.Client, context.Context, []rsmq.QueueReceipts) (int, []rsmq.SkippedReceipt, error)     = (*rsmq.Client).DeleteByReceiptsMulti
	_ func(*rsmq.Client, context.Context, string, []rsmq.Receipt, int) (int, error)                     = (*rsmq.Client).ChangeVisibilityByReceipts
	_ func(*rsmq.Client, context.Context, []string) ([]int64, error)                                    = (*rsmq.Client).NextVisible

	_ = []error{rsmq.ErrQueueNotFound, rsmq.ErrQueueExists, rsmq.ErrMessageTooLong, rsmq.ErrMessageNotString,
		rsmq.ErrMissingParameter, rsmq.ErrInvalidFormat, rsmq.ErrInvalidValue, rsmq.ErrNoAttributeSupplied}
	_ error = &rsmq.ValidationError{Field: "f", Msg: "m", Err: rsmq.ErrInvalidValue}
	_       = [...]int{rsmq.DefaultVT, rsmq.DefaultDelay, rsmq.DefaultMaxSize, rsmq.MaxSizeUnlimited, rsmq.QueueDefault, rsmq.MaxBatch}
	_       = rsmq.QueueConfig{VT: 1, Delay: 2, MaxSize: 3}
	_       = rsmq.QueueAttributes{VT: 1, Delay: 1, MaxSize: 1, TotalRecv: int64(1), TotalSent: int64(1), Created: int64(1), Modified: int64(1), Msgs: int64(1), HiddenMsgs: int64(1)}
	_       = rsmq.AttributeChanges{VT: new(int), Delay: new(int), MaxSize: new(int)}
	_       = rsmq.SendItem{Queue: "q", Message: "m", Delay: 1}
	_       = rsmq.SendResult{ID: "", Err: nil}
	_       = rsmq.Message{ID: "", Message: "", RC: int64(1), FR: int64(1), Sent: int64(1)}
	_       = rsmq.Receipt{ID: "", RC: int64(1)}
	_       = rsmq.ReceiveOptions{VT: 1, Max: 1, MaxReceiveCount: 1, DeadLetterQueue: ""}
	_       = rsmq.ReceiveResult{Messages: []rsmq.Message{}, DeadLettered: []string{}, NextVisible: int64(0)}
	_       = rsmq.Options{Namespace: "", Realtime: true}
)
