package rsmq

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// Message expiry (wsmq's extension; Node rsmq neither writes nor reads it).
//
// A message sent with a TTL has one more field in its queue's hash,
// "<id>:exp" = its send time + TTL in unix ms (Redis time). Node rsmq reads
// such a message as any other: its receive, pop and attributes never look at
// the field, and its ids, bodies, rc and fr are unchanged. What a Node
// consumer sees: it receives the message even after it expired (only wsmq's
// receive checks the expiry), and its deleteMessage removes id, id:rc and
// id:fr only, so "<id>:exp" stays behind as an orphan field (about 50-100
// bytes). wsmq's receive removes such orphans when it finds the queue empty
// (one bounded HSCAN step per receive, only while the hash holds more than
// a queue's own fields); a queue that never empties keeps them until
// SweepExpiryOrphans (bounded steps, for an operator or a job) runs. Every wsmq delete path (DeleteMessage,
// the receipt deletes, pop, the dead-letter moves) removes the field with the
// message's others.

// ExpiredAction says what receive does with a queue's expired messages,
// stored in the queue hash's "wsmq:expired" field.
type ExpiredAction string

const (
	// ExpiredToDLQ moves an expired message to the receive's dead-letter
	// queue (the default when the field is absent); without a usable
	// dead-letter queue it is deleted.
	ExpiredToDLQ ExpiredAction = "dlq"
	// ExpiredDelete deletes an expired message.
	ExpiredDelete ExpiredAction = "delete"
)

// SetExpiredAction stores what receive does with qname's expired messages.
// ErrQueueNotFound when qname does not exist.
func (c *Client) SetExpiredAction(ctx context.Context, qname string, a ExpiredAction) error {
	if err := ValidateQueueName(qname); err != nil {
		return err
	}
	if a != ExpiredToDLQ && a != ExpiredDelete {
		return badFormat("expiredAction")
	}
	n, err := setExpiredScript.Run(ctx, c.rdb, []string{c.hashKey(qname)}, string(a)).Int()
	if err != nil {
		return fmt.Errorf("rsmq: set expired action of %q: %w", qname, err)
	}
	if n == stNotFound {
		return fmt.Errorf("%w: %q", ErrQueueNotFound, qname)
	}
	return nil
}

// setExpiredScript: KEYS hash; ARGV action. Queue must exist.
var setExpiredScript = redis.NewScript(luaQueue("-1") + `
redis.call('HSET', KEYS[1], '` + expiredField + `', ARGV[1])
return 1
`)

// SweepExpiryOrphans removes from qname's hash up to about count "<id>:exp"
// fields whose message is gone (deleted by a Node consumer), one HSCAN step
// from cursor; it returns the next cursor (0: the scan is complete) and how
// many it removed. Each call is bounded by count, so a sweep of a large
// queue never blocks Redis for long.
func (c *Client) SweepExpiryOrphans(ctx context.Context, qname string, cursor uint64, count int) (next uint64, removed int, err error) {
	if err := ValidateQueueName(qname); err != nil {
		return 0, 0, err
	}
	if count < 1 {
		count = 100
	}
	res, err := sweepExpiryScript.Run(ctx, c.rdb, []string{c.hashKey(qname)}, cursor, count).Slice()
	if err != nil {
		return 0, 0, fmt.Errorf("rsmq: sweep expiry orphans of %q: %w", qname, err)
	}
	if len(res) != 2 {
		return 0, 0, fmt.Errorf("rsmq: sweep expiry orphans of %q: unexpected reply %v", qname, res)
	}
	s, _ := res[0].(string)
	if _, err := fmt.Sscan(s, &next); err != nil {
		return 0, 0, fmt.Errorf("rsmq: sweep expiry orphans of %q: cursor %q: %w", qname, s, err)
	}
	return next, int(toInt64(res[1])), nil
}

// sweepExpiryScript: KEYS hash; ARGV cursor, count. One HSCAN step over
// "*:exp" fields; deletes those whose id has no body. Returns {cursor, n}.
var sweepExpiryScript = redis.NewScript(luaAllowOOM + `
if redis.call('TYPE', KEYS[1]).ok ~= 'hash' then return {'0', 0} end
local r = redis.call('HSCAN', KEYS[1], ARGV[1], 'MATCH', '*` + expirySuffix + `', 'COUNT', tonumber(ARGV[2]))
local n = 0
for i = 1, #r[2], 2 do
	local f = r[2][i]
	local id = string.sub(f, 1, #f - ` + fmt.Sprint(len(expirySuffix)) + `)
	if redis.call('HEXISTS', KEYS[1], id) == 0 then
		redis.call('HDEL', KEYS[1], f)
		n = n + 1
	end
end
return {r[1], n}
`)
