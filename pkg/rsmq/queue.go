package rsmq

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// QueueConfig holds a new queue's attributes.
type QueueConfig struct {
	VT      int // visibility timeout, seconds, 0..9,999,999
	Delay   int // default delay, seconds, 0..9,999,999
	MaxSize int // max message length in UTF-16 code units, 1,024..65,536, or MaxSizeUnlimited
}

// DefaultQueueConfig returns Node rsmq's defaults: vt 30, delay 0, maxsize 65536.
func DefaultQueueConfig() QueueConfig {
	return QueueConfig{VT: DefaultVT, Delay: DefaultDelay, MaxSize: DefaultMaxSize}
}

// QueueAttributes are a queue's stored attributes and counts.
type QueueAttributes struct {
	VT, Delay, MaxSize   int
	TotalRecv, TotalSent int64
	Created, Modified    int64 // unix seconds
	Msgs, HiddenMsgs     int64 // messages in the queue; of them, not visible now
}

// AttributeChanges names the attributes SetQueueAttributes changes; nil
// fields stay as they are.
type AttributeChanges struct {
	VT, Delay, MaxSize *int
}

// CreateQueue creates qname with cfg; ErrQueueExists when it exists.
// One round trip.
func (c *Client) CreateQueue(ctx context.Context, qname string, cfg QueueConfig) error {
	if err := ValidateQueueName(qname); err != nil {
		return err
	}
	if err := cfg.validate(); err != nil {
		return err
	}
	n, err := createScript.Run(ctx, c.rdb, []string{c.hashKey(qname), c.queuesKey()},
		cfg.VT, cfg.Delay, cfg.MaxSize, qname).Int64()
	if err != nil {
		return fmt.Errorf("rsmq: create queue %q: %w", qname, err)
	}
	if n == 0 {
		return fmt.Errorf("%w: %q", ErrQueueExists, qname)
	}
	return nil
}

// EnsureQueue creates qname with cfg unless it exists, and reports whether
// it created it. It is how wsmq creates queues on demand (first send,
// subscribe), so all those paths give a new queue the same attributes.
func (c *Client) EnsureQueue(ctx context.Context, qname string, cfg QueueConfig) (created bool, err error) {
	err = c.CreateQueue(ctx, qname, cfg)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, ErrQueueExists):
		return false, nil
	}
	return false, err
}

// DeleteQueue deletes qname and all its messages; ErrQueueNotFound when
// nothing was removed. One round trip (MULTI).
func (c *Client) DeleteQueue(ctx context.Context, qname string) error {
	if err := ValidateQueueName(qname); err != nil {
		return err
	}
	pipe := c.rdb.TxPipeline()
	del := pipe.Del(ctx, c.hashKey(qname), c.zsetKey(qname))
	pipe.SRem(ctx, c.queuesKey(), qname)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("rsmq: delete queue %q: %w", qname, err)
	}
	if del.Val() == 0 {
		return fmt.Errorf("%w: %q", ErrQueueNotFound, qname)
	}
	return nil
}

// ListQueues returns the names in the QUEUES set, in no particular order.
func (c *Client) ListQueues(ctx context.Context) ([]string, error) {
	qs, err := c.rdb.SMembers(ctx, c.queuesKey()).Result()
	if err != nil {
		return nil, fmt.Errorf("rsmq: list queues: %w", err)
	}
	return qs, nil
}

// GetQueueAttributes returns qname's attributes; ErrQueueNotFound when it
// has none. One round trip.
func (c *Client) GetQueueAttributes(ctx context.Context, qname string) (*QueueAttributes, error) {
	if err := ValidateQueueName(qname); err != nil {
		return nil, err
	}
	res, err := attrsScript.Run(ctx, c.rdb, []string{c.hashKey(qname), c.zsetKey(qname)}).Slice()
	if err != nil {
		return nil, fmt.Errorf("rsmq: queue attributes %q: %w", qname, err)
	}
	return parseAttrs(qname, res)
}

// SetQueueAttributes changes the given attributes of qname and returns all
// of them; ErrNoAttributeSupplied when ch is empty. One round trip.
func (c *Client) SetQueueAttributes(ctx context.Context, qname string, ch AttributeChanges) (*QueueAttributes, error) {
	if err := ValidateQueueName(qname); err != nil {
		return nil, err
	}
	if ch.VT == nil && ch.Delay == nil && ch.MaxSize == nil {
		return nil, ErrNoAttributeSupplied
	}
	args := []any{"", "", ""}
	if ch.VT != nil {
		if err := validateSeconds("vt", *ch.VT, false); err != nil {
			return nil, err
		}
		args[0] = *ch.VT
	}
	if ch.Delay != nil {
		if err := validateSeconds("delay", *ch.Delay, false); err != nil {
			return nil, err
		}
		args[1] = *ch.Delay
	}
	if ch.MaxSize != nil {
		if err := validateMaxSize(*ch.MaxSize); err != nil {
			return nil, err
		}
		args[2] = *ch.MaxSize
	}
	res, err := setAttrsScript.Run(ctx, c.rdb, []string{c.hashKey(qname), c.zsetKey(qname)}, args...).Slice()
	if err != nil {
		return nil, fmt.Errorf("rsmq: set queue attributes %q: %w", qname, err)
	}
	return parseAttrs(qname, res)
}

func parseAttrs(qname string, res []any) (*QueueAttributes, error) {
	if len(res) == 1 && toInt64(res[0]) == stNotFound {
		return nil, fmt.Errorf("%w: %q", ErrQueueNotFound, qname)
	}
	if len(res) != 10 {
		return nil, fmt.Errorf("rsmq: queue attributes %q: unexpected reply %v", qname, res)
	}
	return &QueueAttributes{
		VT:         int(toInt64(res[1])),
		Delay:      int(toInt64(res[2])),
		MaxSize:    int(toInt64(res[3])),
		TotalRecv:  toInt64(res[4]),
		TotalSent:  toInt64(res[5]),
		Created:    toInt64(res[6]),
		Modified:   toInt64(res[7]),
		Msgs:       toInt64(res[8]),
		HiddenMsgs: toInt64(res[9]),
	}, nil
}

// toInt64 reads a script reply element that is an integer or a decimal
// string (possibly a float, as Redis writes scores); anything else is 0.
func toInt64(v any) int64 {
	switch x := v.(type) {
	case int64:
		return x
	case string:
		if n, err := strconv.ParseInt(x, 10, 64); err == nil {
			return n
		}
		if f, err := strconv.ParseFloat(x, 64); err == nil {
			return int64(f)
		}
	}
	return 0
}

// Notifications is what Redis's notify-keyspace-events publishes of sorted
// sets, the events that can wake consumers for every sender.
type Notifications struct {
	Flags string // the setting's value
	// KeyEvent: E and (z or A): every ZADD is announced on one channel,
	// "__keyevent@<db>__:zadd", with the key as the message (KeyeventChannel).
	KeyEvent bool
	// KeySpace: K and (z or A): every ZADD is announced on the key's own
	// channel (KeyspaceChannel), with "zadd" as the message.
	KeySpace bool
}

// KeyspaceNotifications reads Redis's notify-keyspace-events. A Redis that
// refuses CONFIG (a managed service) is an error; the caller then treats
// notifications as off.
func KeyspaceNotifications(ctx context.Context, rdb redis.UniversalClient) (Notifications, error) {
	res, err := rdb.ConfigGet(ctx, "notify-keyspace-events").Result()
	if err != nil {
		return Notifications{}, fmt.Errorf("rsmq: CONFIG GET notify-keyspace-events: %w", err)
	}
	v := res["notify-keyspace-events"]
	zsets := strings.ContainsAny(v, "zA")
	return Notifications{Flags: v, KeyEvent: zsets && strings.Contains(v, "E"), KeySpace: zsets && strings.Contains(v, "K")}, nil
}
