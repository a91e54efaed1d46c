package rsmq

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"
)

// ErrDeadLetterQueueNotFound is returned by Redrive when the dead-letter
// queue does not exist.
var ErrDeadLetterQueueNotFound = errors.New("rsmq: dead-letter queue not found")

// QueuePage is one page of ScanQueues.
type QueuePage struct {
	Names  []string // queue names of this page, in no particular order
	Cursor uint64   // 0 when the scan is complete
}

// ScanQueues returns one page of the QUEUES set's names starting with
// prefix: one SSCAN with MATCH and COUNT count from cursor (0 starts). A
// page may hold fewer or more than count names, even none with a non-zero
// cursor; a name may appear twice across pages when the set is rehashed
// meanwhile (SSCAN's guarantee). Never a full SMEMBERS.
func (c *Client) ScanQueues(ctx context.Context, prefix string, cursor uint64, count int64) (QueuePage, error) {
	match := escapeGlob(prefix) + "*"
	names, next, err := c.rdb.SScan(ctx, c.queuesKey(), cursor, match, count).Result()
	if err != nil {
		return QueuePage{}, fmt.Errorf("rsmq: scan queues: %w", err)
	}
	return QueuePage{Names: names, Cursor: next}, nil
}

// escapeGlob escapes the glob metacharacters of Redis MATCH in s.
func escapeGlob(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '*', '?', '[', ']', '\\':
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// PurgeBatch removes up to n of qname's messages, keeping the queue and its
// attributes, and returns how many it removed and how many are left. One
// bounded script: call it until left is 0. ErrQueueNotFound when missing.
func (c *Client) PurgeBatch(ctx context.Context, qname string, n int) (removed, left int64, err error) {
	if err := ValidateQueueName(qname); err != nil {
		return 0, 0, err
	}
	res, err := purgeScript.Run(ctx, c.rdb, []string{c.hashKey(qname), c.zsetKey(qname)}, n).Int64Slice()
	if err != nil {
		return 0, 0, fmt.Errorf("rsmq: purge %q: %w", qname, err)
	}
	if len(res) == 1 {
		return 0, 0, fmt.Errorf("%w: %q", ErrQueueNotFound, qname)
	}
	return res[0], res[1], nil
}

// RedriveBatch moves up to n messages from dlq back to qname, visible at
// once with a fresh receive count, keeping their ids, and returns how many
// it moved and how many are left in dlq. Each call is one script, so no
// message is lost or in both queues. ErrQueueNotFound or
// ErrDeadLetterQueueNotFound when one is missing.
func (c *Client) RedriveBatch(ctx context.Context, dlq, qname string, n int) (moved, left int64, err error) {
	if err := ValidateQueueName(qname); err != nil {
		return 0, 0, err
	}
	if err := ValidateQueueName(dlq); err != nil {
		return 0, 0, err
	}
	rt := ""
	if c.realtime {
		rt = c.RealtimeChannel(qname)
	}
	res, err := redriveScript.Run(ctx, c.rdb,
		[]string{c.hashKey(dlq), c.zsetKey(dlq), c.hashKey(qname), c.zsetKey(qname)}, n, rt).Int64Slice()
	if err != nil {
		return 0, 0, fmt.Errorf("rsmq: redrive %q to %q: %w", dlq, qname, err)
	}
	if len(res) == 1 {
		if res[0] == -3 {
			return 0, 0, fmt.Errorf("%w: %q", ErrDeadLetterQueueNotFound, dlq)
		}
		return 0, 0, fmt.Errorf("%w: %q", ErrQueueNotFound, qname)
	}
	return res[0], res[1], nil
}

// OldestSent returns the send time (unix ms) of the message at the head of
// qname (lowest visible-at score), or 0 when the queue is empty.
func (c *Client) OldestSent(ctx context.Context, qname string) (int64, error) {
	if err := ValidateQueueName(qname); err != nil {
		return 0, err
	}
	id, err := oldestScript.Run(ctx, c.rdb, []string{c.zsetKey(qname)}).Text()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("rsmq: oldest of %q: %w", qname, err)
	}
	if ValidateID(id) != nil {
		return 0, nil
	}
	return sentFromID(id), nil
}
