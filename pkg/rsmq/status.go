package rsmq

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Delivery status (wsmq's extension; Node rsmq neither writes nor reads it).
//
// A queue has status on when its hash holds "wsmq:status" = seconds (set by
// a send of a Client with Options.StatusTTL). Then every final state of a
// message is written, in the same script that ends it, to the string key
// "<ns>:wsmq:status:<queue>:<id>" with EX those seconds: "delivered" or
// "acknowledged" (the receipt delete of an auto or manual delivery),
// "dead_lettered:<reason>", "expired". Queued and in-flight are read from
// the queue itself, so a message costs nothing until it ends. With status
// off the receive pays one more field in an HMGET it makes anyway and each
// receipt delete one HMGET (status and receipts stream) per queue.
//
// A queue name cannot hold ':', so "<ns>:wsmq:status:..." never collides
// with a queue's keys. The scripts build the key from a prefix passed in
// ARGV: fine on a single Redis or Sentinel set, not on Redis Cluster (not
// supported by the key layout anyway).

// Status is a message's delivery state.
type Status string

// The states of GetStatus.
const (
	StatusQueued       Status = "queued"
	StatusInFlight     Status = "in_flight"
	StatusDelivered    Status = "delivered"
	StatusAcknowledged Status = "acknowledged"
	StatusDeadLettered Status = "dead_lettered"
	StatusExpired      Status = "expired"
	StatusUnknown      Status = "unknown"
)

// MessageStatus is the answer of GetStatus.
type MessageStatus struct {
	Status Status
	// RC is the receive count of a queued or in-flight message (0 if never
	// received).
	RC int64
	// Reason says why a message was dead-lettered.
	Reason string
}

// statusPrefix is the status key of qname's messages without the id.
func (c *Client) statusPrefix(qname string) string { return c.prefix + "wsmq:status:" + qname + ":" }

// statusSeconds rounds a status TTL up to whole seconds (0 stays off).
func statusSeconds(d time.Duration) int {
	if d <= 0 {
		return 0
	}
	return int((d + time.Second - 1) / time.Second)
}

// GetStatus returns the delivery status of message id of qname: queued or
// in flight while the message is in its queue (whether or not status is
// on), else the final state recorded while the queue had status on and the
// record has not expired, else unknown. One round trip.
func (c *Client) GetStatus(ctx context.Context, qname, id string) (*MessageStatus, error) {
	if err := ValidateQueueName(qname); err != nil {
		return nil, err
	}
	if err := ValidateID(id); err != nil {
		return nil, err
	}
	res, err := statusScript.Run(ctx, c.rdb, []string{c.hashKey(qname), c.zsetKey(qname), c.statusPrefix(qname) + id}, id).Slice()
	if err != nil {
		return nil, fmt.Errorf("rsmq: status of %s in %q: %w", id, qname, err)
	}
	if len(res) != 2 {
		return nil, fmt.Errorf("rsmq: status of %s in %q: unexpected reply %v", id, qname, res)
	}
	word, _ := res[0].(string)
	st := &MessageStatus{RC: toInt64(res[1])}
	w, reason, _ := strings.Cut(word, ":")
	switch Status(w) {
	case StatusQueued, StatusInFlight, StatusDelivered, StatusAcknowledged, StatusDeadLettered, StatusExpired:
		st.Status, st.Reason = Status(w), reason
	default:
		st.Status = StatusUnknown
	}
	return st, nil
}

// statusScript: KEYS hash, zset, status key; ARGV id. Returns {word, rc}.
var statusScript = redis.NewScript(luaNow + `
local score = redis.pcall('ZSCORE', KEYS[2], ARGV[1])
if type(score) == 'string' then
	local rc = tonumber(redis.pcall('HGET', KEYS[1], ARGV[1] .. ':rc') or '0') or 0
	if rc > 0 and tonumber(score) > ts then return {'in_flight', rc} end
	return {'queued', rc}
end
local st = redis.pcall('GET', KEYS[3])
if type(st) == 'string' then return {st, 0} end
return {'unknown', 0}
`)
