package rsmq

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Message is one received message.
type Message struct {
	ID      string
	Message string
	RC      int64 // receive count, including this receive
	FR      int64 // first receive time, unix ms
	Sent    int64 // send time, unix ms, from the id's time prefix
}

// Receipt identifies one delivery of a message: its id and the receive
// count of that delivery. It stops matching once the message is received again.
type Receipt struct {
	ID string
	RC int64
}

// Receipt returns the receipt of this delivery.
func (m *Message) Receipt() Receipt { return Receipt{ID: m.ID, RC: m.RC} }

// SendItem is one message of SendBatch.
type SendItem struct {
	Queue, Message string
	Delay          int // seconds; QueueDefault = the queue's delay
	// TTL is the message's time to live in seconds from its send, 0 to
	// MaxTTL; 0 means none. Once it ran out the message is never received
	// (see ReceiveMessages).
	TTL int
}

// SendResult is the outcome of one SendItem: its id, or Err (a validation
// error, ErrQueueNotFound, ErrMessageTooLong, or for durable sends
// ErrNotReplicated; then ID is set too, and the message is stored on the
// master but not confirmed by replicas).
type SendResult struct {
	ID  string
	Err error
}

// SendMessage stores message in qname, visible after delay seconds
// (QueueDefault: the queue's delay), and returns its 32-char id.
//
// One round trip (plus one TIME call on the Client's first send). The id is
// chosen before the first attempt and the script stores an id only once, so
// a send that go-redis retries after a lost reply is stored exactly once.
//
// With Options.MinReplicas it runs as a SendBatch of one item: the script
// and WAIT in one pipeline.
func (c *Client) SendMessage(ctx context.Context, qname, message string, delay int) (string, error) {
	return c.SendItem(ctx, SendItem{Queue: qname, Message: message, Delay: delay})
}

// SendItem is SendMessage with every option of a SendItem, e.g. a TTL.
func (c *Client) SendItem(ctx context.Context, it SendItem) (string, error) {
	qname, message, delay := it.Queue, it.Message, it.Delay
	if c.minReplicas > 0 {
		res, err := c.SendBatch(ctx, []SendItem{it})
		if err != nil {
			return "", err
		}
		return res[0].ID, res[0].Err
	}
	n, err := validateSend(qname, message, delay, it.TTL)
	if err != nil {
		return "", err
	}
	prefixes, err := c.nextPrefixes(ctx, 1)
	if err != nil {
		return "", err
	}
	id := makeID(prefixes[0])
	sent := time.Now()
	res, err := sendScript.Run(ctx, c.rdb, []string{c.hashKey(qname), c.zsetKey(qname)},
		c.sendArgs(qname, id, message, delay, n, it.TTL)...).Slice()
	if err != nil {
		return "", fmt.Errorf("rsmq: send to %q: %w", qname, err)
	}
	if err := c.sendStatus(qname, res, sent, time.Now()); err != nil {
		return "", err
	}
	return id, nil
}

func validateSend(qname, message string, delay, ttl int) (int, error) {
	if err := ValidateQueueName(qname); err != nil {
		return 0, err
	}
	if err := validateSeconds("delay", delay, true); err != nil {
		return 0, err
	}
	if ttl < 0 || ttl > MaxTTL {
		return 0, outOfRange("ttl", 0, MaxTTL)
	}
	return validateMessage(message)
}

func (c *Client) sendArgs(qname, id, message string, delay, length, ttl int) []any {
	rt, durable := "0", "0"
	if c.realtime {
		rt = "1"
	}
	if c.minReplicas > 0 {
		durable = "1"
	}
	return []any{id, message, delay, length, rt, c.RealtimeChannel(qname), durable, ttl, c.statusTTL, c.receiptsCap}
}

// sendStatus maps the send script's reply to an error and feeds the Redis
// time it carries to the id clock.
func (c *Client) sendStatus(qname string, res []any, sent, got time.Time) error {
	if len(res) != 3 {
		return fmt.Errorf("rsmq: send to %q: unexpected reply %v", qname, res)
	}
	if s, us := toInt64(res[1]), toInt64(res[2]); s > 0 {
		c.clock.observe(s*1_000_000+us, sent, got)
	}
	switch toInt64(res[0]) {
	case stNotFound:
		return fmt.Errorf("%w: %q", ErrQueueNotFound, qname)
	case stTooLong:
		return fmt.Errorf("%w: queue %q", ErrMessageTooLong, qname)
	case stSendCorrupt:
		return fmt.Errorf("%w: queue %q: keys of the wrong type or attributes that are not numbers", ErrCorrupt, qname)
	}
	return nil
}

// SendBatch sends all items in one pipelined round trip (two if Redis must
// first load the script) and returns one result per item, in order. The
// returned error is only for a failure of the whole batch (Redis
// unreachable, more than MaxBatch items); then some items may have been
// stored. A pipeline that go-redis retries stores each item once, as with
// SendMessage.
//
// The items run as one sendManyScript call per sendChunk items: each
// queue's attributes are read, its totalsent increased and its realtime
// notification published once per call, not per item.
func (c *Client) SendBatch(ctx context.Context, items []SendItem) ([]SendResult, error) {
	if len(items) > MaxBatch {
		return nil, outOfRange("items", 0, MaxBatch)
	}
	results := make([]SendResult, len(items))
	lengths := make([]int, len(items))
	valid := 0
	for i, it := range items {
		n, err := validateSend(it.Queue, it.Message, it.Delay, it.TTL)
		results[i].Err, lengths[i] = err, n
		if err == nil {
			valid++
		}
	}
	if valid == 0 {
		return results, nil
	}
	prefixes, err := c.nextPrefixes(ctx, valid)
	if err != nil {
		return nil, err
	}
	todo := make([]int, 0, valid)
	for i := range items {
		if results[i].Err == nil {
			results[i].ID = makeID(prefixes[len(todo)])
			todo = append(todo, i)
		}
	}
	var chunks [][]int
	for len(todo) > 0 {
		n := min(len(todo), sendChunk)
		chunks, todo = append(chunks, todo[:n]), todo[n:]
	}
	for attempt := 0; len(chunks) > 0; attempt++ {
		sent := time.Now()
		var wait *redis.Cmd
		cmds, err := c.rdb.Pipelined(ctx, func(pipe redis.Pipeliner) error {
			for _, chunk := range chunks {
				keys, args := c.sendManyArgs(items, results, lengths, chunk)
				sendManyScript.EvalSha(ctx, pipe, keys, args...)
			}
			if c.minReplicas > 0 {
				// Same pipeline, so same connection: WAIT counts the
				// replicas that hold every write above.
				wait = pipe.Do(ctx, "wait", c.minReplicas, c.replicaTimeout.Milliseconds())
			}
			return nil
		})
		got := time.Now()
		if err != nil && !isRedisError(err) {
			return nil, fmt.Errorf("rsmq: send batch: %w", err)
		}
		replicated := c.replicated(wait)
		var again [][]int
		for k, cmd := range cmds[:len(chunks)] {
			chunk := chunks[k]
			res, err := cmd.(*redis.Cmd).Slice()
			switch {
			case err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") && attempt == 0:
				again = append(again, chunk)
				continue
			case err == nil && len(res) != 2+len(chunk):
				err = fmt.Errorf("unexpected reply of %d values for %d items", len(res), len(chunk))
			}
			if err != nil {
				for _, i := range chunk {
					results[i] = SendResult{Err: fmt.Errorf("rsmq: send to %q: %w", items[i].Queue, err)}
				}
				continue
			}
			for n, i := range chunk {
				if err := c.sendStatus(items[i].Queue, []any{res[2+n], res[0], res[1]}, sent, got); err != nil {
					results[i] = SendResult{Err: err}
				} else if replicated != nil {
					results[i].Err = fmt.Errorf("rsmq: send to %q: %w", items[i].Queue, replicated)
				}
			}
		}
		if len(again) > 0 {
			if err := sendManyScript.Load(ctx, c.rdb).Err(); err != nil {
				return nil, fmt.Errorf("rsmq: send batch: load script: %w", err)
			}
		}
		chunks = again
	}
	return results, nil
}

// sendChunk is the most items of one sendManyScript call: it bounds how
// long one call holds Redis (about a millisecond on a small machine).
const sendChunk = 128

// sendManyArgs builds the KEYS and ARGV of one sendManyScript call for the
// items chunk (indexes into items; results hold their ids).
func (c *Client) sendManyArgs(items []SendItem, results []SendResult, lengths []int, chunk []int) ([]string, []any) {
	rt, durable := "0", "0"
	if c.realtime {
		rt = "1"
	}
	if c.minReplicas > 0 {
		durable = "1"
	}
	index := make(map[string]int, len(chunk))
	var keys []string
	var channels []any
	for _, i := range chunk {
		q := items[i].Queue
		if _, ok := index[q]; !ok {
			index[q] = len(index) + 1
			keys = append(keys, c.hashKey(q), c.zsetKey(q))
			channels = append(channels, c.RealtimeChannel(q))
		}
	}
	args := make([]any, 0, 4+len(channels)+6*len(chunk))
	args = append(args, rt, durable, c.statusTTL, c.receiptsCap)
	args = append(args, channels...)
	for _, i := range chunk {
		it := items[i]
		args = append(args, index[it.Queue], results[i].ID, it.Message, it.Delay, lengths[i], it.TTL)
	}
	return keys, args
}

// replicated checks a durable send's WAIT: nil when it confirmed
// MinReplicas replicas (or the send is not durable), else why not.
func (c *Client) replicated(wait *redis.Cmd) error {
	if wait == nil {
		return nil
	}
	n, err := wait.Int64()
	if err != nil {
		return fmt.Errorf("%w: WAIT: %w", ErrNotReplicated, err)
	}
	if int(n) >= c.minReplicas {
		return nil
	}
	if c.onReplicaTimeout != nil {
		c.onReplicaTimeout(int(n))
	}
	return fmt.Errorf("%w: %d of %d replicas within %s", ErrNotReplicated, n, c.minReplicas, c.replicaTimeout)
}

// isRedisError reports whether err is an error reply of the server (one
// command failed) rather than a failure of the connection.
func isRedisError(err error) bool {
	var re redis.Error
	return errors.As(err, &re) && !errors.Is(err, redis.Nil)
}

// ReceiveMessage receives the first visible message of qname and hides it
// for vt seconds (QueueDefault: the queue's vt). It returns (nil, nil) when
// no message is visible, and also when the first visible message had
// expired: that one is then deleted (no dead-letter queue here), and a
// second call returns the next. One round trip.
func (c *Client) ReceiveMessage(ctx context.Context, qname string, vt int) (*Message, error) {
	res, err := c.ReceiveMessages(ctx, qname, ReceiveOptions{VT: vt, Max: 1})
	if err != nil || len(res.Messages) == 0 {
		return nil, err
	}
	return &res.Messages[0], nil
}

// ReceiveOptions configures ReceiveMessages.
type ReceiveOptions struct {
	VT              int    // seconds; QueueDefault = queue's vt
	Max             int    // 1..MaxBatch messages; 0 means 1
	MaxReceiveCount int    // > 0: a message whose rc would exceed this is moved to DeadLetterQueue instead of returned
	DeadLetterQueue string // required when MaxReceiveCount > 0; created (source queue's attributes) when missing; also where expired messages go
}

// ReceiveResult is the outcome of ReceiveMessages.
type ReceiveResult struct {
	Messages     []Message // in visibility order (send order except redeliveries)
	DeadLettered []string  // ids moved to the dead-letter queue by this call
	// NextVisible is the score (unix ms) of the queue's earliest remaining
	// message after this call, 0 if the queue is empty. A value <= Now means
	// more messages are visible now (Max was reached).
	NextVisible int64
	// Now is Redis TIME (unix ms) when the call ran: the clock of every
	// score, so a caller can time its next look without trusting its own.
	// A received message is hidden until Now + vt*1000.
	Now int64
	// Rejected lists malformed messages this call took out of the way
	// instead of returning them (see Rejected).
	Rejected []Rejected
	// Expired lists messages this call found past their expiry and dropped
	// instead of returning them (see Expired).
	Expired []Expired
}

// Expired is a message a receive dropped because its ttl ran out: moved to
// the dead-letter queue (Moved), or deleted (the queue says ExpiredDelete,
// or no dead-letter queue was usable).
type Expired struct {
	ID    string
	Moved bool
}

// Rejected is a message a receive would not return because it is not in
// the RSMQ format: its id is not 32 chars of [a-zA-Z0-9:], or its rc or fr
// field is not a number. With a dead-letter queue (MaxReceiveCount > 0) it
// moved there (Moved), body only; without one it stays, hidden for the
// visibility timeout (at least 30 s) so it does not block the queue. A
// message due for dead-lettering whose dead-letter queue has keys of the
// wrong type is reported here too, not moved.
type Rejected struct {
	ID     string
	Reason string
	Moved  bool
}

// ReceiveMessages takes up to Max visible messages atomically in ONE script
// call (one round trip). Each is received as ReceiveMessage does; with
// MaxReceiveCount > 0 a message whose receive count would exceed it moves
// (same id and body) to DeadLetterQueue instead. Dead-lettered messages do
// not count in the source queue's totalrecv; they count in the dead-letter
// queue's totalsent. ErrQueueNotFound when qname does not exist.
func (c *Client) ReceiveMessages(ctx context.Context, qname string, opts ReceiveOptions) (*ReceiveResult, error) {
	if err := ValidateQueueName(qname); err != nil {
		return nil, err
	}
	if err := validateSeconds("vt", opts.VT, true); err != nil {
		return nil, err
	}
	limit := opts.Max
	if limit == 0 {
		limit = 1
	}
	if limit < 1 || limit > MaxBatch {
		return nil, outOfRange("max", 1, MaxBatch)
	}
	if opts.MaxReceiveCount < 0 {
		return nil, outOfRange("maxReceiveCount", 0, 1<<31-1)
	}
	keys := []string{c.hashKey(qname), c.zsetKey(qname)}
	if opts.MaxReceiveCount > 0 && opts.DeadLetterQueue == "" {
		return nil, missing("deadLetterQueue")
	}
	if opts.DeadLetterQueue != "" { // also where expired messages go
		if ValidateQueueName(opts.DeadLetterQueue) != nil || opts.DeadLetterQueue == qname {
			return nil, badFormat("deadLetterQueue")
		}
		keys = append(keys, c.hashKey(opts.DeadLetterQueue), c.zsetKey(opts.DeadLetterQueue), c.queuesKey())
	}
	res, err := receiveScript.Run(ctx, c.recv, keys, opts.VT, limit, opts.MaxReceiveCount, opts.DeadLetterQueue, c.statusPrefix(qname)).Slice()
	if err != nil {
		return nil, fmt.Errorf("rsmq: receive from %q: %w", qname, err)
	}
	return parseReceiveReply(qname, res)
}

// parseReceiveReply decodes one queue's receiveOne reply.
func parseReceiveReply(qname string, res []any) (*ReceiveResult, error) {
	if len(res) == 1 && toInt64(res[0]) == stNotFound {
		return nil, fmt.Errorf("%w: %q", ErrQueueNotFound, qname)
	}
	if len(res) == 2 && toInt64(res[0]) == stCorrupt {
		reason, _ := res[1].(string)
		return nil, fmt.Errorf("%w: queue %q: %s", ErrCorrupt, qname, reason)
	}
	if len(res) != 7 {
		return nil, fmt.Errorf("rsmq: receive from %q: unexpected reply %v", qname, res)
	}
	out := &ReceiveResult{NextVisible: toInt64(res[1]), Now: toInt64(res[4])}
	exp, _ := res[6].([]any)
	for i := 0; i+1 < len(exp); i += 2 {
		id, _ := exp[i].(string)
		out.Expired = append(out.Expired, Expired{ID: id, Moved: toInt64(exp[i+1]) == 1})
	}
	rej, _ := res[5].([]any)
	for i := 0; i+2 < len(rej); i += 3 {
		id, _ := rej[i].(string)
		reason, _ := rej[i+1].(string)
		out.Rejected = append(out.Rejected, Rejected{ID: id, Reason: reason, Moved: toInt64(rej[i+2]) == 1})
	}
	flat, _ := res[2].([]any)
	for i := 0; i+3 < len(flat); i += 4 {
		out.Messages = append(out.Messages, newMessage(flat[i], flat[i+1], flat[i+2], flat[i+3]))
	}
	dead, _ := res[3].([]any)
	for _, d := range dead {
		s, _ := d.(string)
		out.DeadLettered = append(out.DeadLettered, s)
	}
	return out, nil
}

func newMessage(id, body, rc, fr any) Message {
	m := Message{RC: toInt64(rc), FR: toInt64(fr)}
	m.ID, _ = id.(string)
	m.Message, _ = body.(string)
	m.Sent = sentFromID(m.ID)
	return m
}

// PopMessage receives the first visible message of qname and deletes it in
// one step; (nil, nil) when none is visible. One round trip. Like Node's
// popMessage it does not check a message's expiry.
func (c *Client) PopMessage(ctx context.Context, qname string) (*Message, error) {
	if err := ValidateQueueName(qname); err != nil {
		return nil, err
	}
	res, err := popScript.Run(ctx, c.recv, []string{c.hashKey(qname), c.zsetKey(qname)}).Slice()
	if err != nil {
		return nil, fmt.Errorf("rsmq: pop from %q: %w", qname, err)
	}
	switch {
	case len(res) == 1 && toInt64(res[0]) == stNotFound:
		return nil, fmt.Errorf("%w: %q", ErrQueueNotFound, qname)
	case len(res) == 1:
		return nil, nil
	case len(res) != 5:
		return nil, fmt.Errorf("rsmq: pop from %q: unexpected reply %v", qname, res)
	}
	m := newMessage(res[1], res[2], res[3], res[4])
	return &m, nil
}

// DeleteMessage deletes message id from qname, reporting whether it
// existed. As in Node, the queue itself is not checked. One round trip.
func (c *Client) DeleteMessage(ctx context.Context, qname, id string) (bool, error) {
	if err := ValidateQueueName(qname); err != nil {
		return false, err
	}
	if err := ValidateID(id); err != nil {
		return false, err
	}
	pipe := c.rdb.TxPipeline()
	zrem := pipe.ZRem(ctx, c.zsetKey(qname), id)
	hdel := pipe.HDel(ctx, c.hashKey(qname), id, id+":rc", id+":fr", id+expirySuffix)
	if _, err := pipe.Exec(ctx); err != nil {
		return false, fmt.Errorf("rsmq: delete %s from %q: %w", id, qname, err)
	}
	return zrem.Val() == 1 && hdel.Val() > 0, nil
}

// ChangeMessageVisibility makes message id of qname visible vt seconds from
// now, reporting whether the message exists; ErrQueueNotFound when the
// queue does not. One round trip.
func (c *Client) ChangeMessageVisibility(ctx context.Context, qname, id string, vt int) (bool, error) {
	if err := ValidateQueueName(qname); err != nil {
		return false, err
	}
	if err := ValidateID(id); err != nil {
		return false, err
	}
	if err := validateSeconds("vt", vt, false); err != nil {
		return false, err
	}
	n, err := changeVisScript.Run(ctx, c.rdb, []string{c.hashKey(qname), c.zsetKey(qname)}, id, vt).Int64()
	if err != nil {
		return false, fmt.Errorf("rsmq: change visibility of %s in %q: %w", id, qname, err)
	}
	if n == stNotFound {
		return false, fmt.Errorf("%w: %q", ErrQueueNotFound, qname)
	}
	return n == 1, nil
}

// ChangeVisibilityByReceipts makes each message of qname whose receipt still
// matches (the message is in that delivery: stored rc == r.RC) visible vt
// seconds from now, and returns how many it changed. One round trip.
func (c *Client) ChangeVisibilityByReceipts(ctx context.Context, qname string, rs []Receipt, vt int) (int, error) {
	if err := validateSeconds("vt", vt, false); err != nil {
		return 0, err
	}
	args, err := receiptArgs(qname, rs)
	if err != nil || len(rs) == 0 {
		return 0, err
	}
	args = append([]any{vt}, args...)
	n, err := changeVisByReceiptScript.Run(ctx, c.rdb, []string{c.hashKey(qname), c.zsetKey(qname)}, args...).Int()
	if err != nil {
		return 0, fmt.Errorf("rsmq: change visibility by receipt in %q: %w", qname, err)
	}
	return n, nil
}

// ReturnByReceipts hands back deliveries that were never processed (their
// consumer went away): each message still hidden in the delivery of its
// receipt becomes visible now, scored at its send time so it keeps its
// place ahead of later messages, and that receive is undone (rc - 1, so rc
// and fr disappear when it was the first), so a message returned any
// number of times never moves toward the dead-letter queue. Messages whose
// receipt no longer matches, or whose visibility already ran out, are left
// alone: a stale receipt cannot touch a later delivery, and a retried call
// returns nothing twice. The stored fields stay what Node rsmq reads (an
// absent rc is 0). It returns how many it returned and Redis TIME (unix
// ms). One round trip.
func (c *Client) ReturnByReceipts(ctx context.Context, qname string, rs []Receipt) (returned int, now int64, err error) {
	args, err := receiptArgs(qname, rs)
	if err != nil || len(rs) == 0 {
		return 0, 0, err
	}
	res, err := returnScript.Run(ctx, c.rdb, []string{c.hashKey(qname), c.zsetKey(qname)}, args...).Slice()
	if err != nil {
		return 0, 0, fmt.Errorf("rsmq: return by receipt in %q: %w", qname, err)
	}
	if len(res) != 2 {
		return 0, 0, fmt.Errorf("rsmq: return by receipt in %q: unexpected reply %v", qname, res)
	}
	if toInt64(res[0]) == stCorrupt {
		reason, _ := res[1].(string)
		return 0, 0, fmt.Errorf("%w: queue %q: %s", ErrCorrupt, qname, reason)
	}
	return int(toInt64(res[0])), toInt64(res[1]), nil
}

func receiptArgs(qname string, rs []Receipt) ([]any, error) {
	if err := ValidateQueueName(qname); err != nil {
		return nil, err
	}
	args := make([]any, 0, 2*len(rs))
	for _, r := range rs {
		if err := ValidateID(r.ID); err != nil {
			return nil, err
		}
		if r.RC < 1 { // a receipt comes from a receive: rc >= 1
			return nil, outOfRange("rc", 1, math.MaxInt)
		}
		args = append(args, r.ID, strconv.FormatInt(r.RC, 10))
	}
	return args, nil
}

// NextVisible returns, per queue, the unix ms score of its first message
// (0 when the zset is empty), in one pipeline. A consumer's sweep uses it:
// a score <= now means a message is visible now.
func (c *Client) NextVisible(ctx context.Context, qnames []string) ([]int64, error) {
	out, _, err := c.NextVisibleNow(ctx, qnames)
	return out, err
}

// NextVisibleNow is NextVisible that also returns Redis TIME (unix ms) from
// the same pipeline, the clock the scores must be compared with. A queue
// whose zset key has the wrong type reports 0 (nothing to wake for) rather
// than failing the others.
func (c *Client) NextVisibleNow(ctx context.Context, qnames []string) (scores []int64, now int64, err error) {
	for _, q := range qnames {
		if err := ValidateQueueName(q); err != nil {
			return nil, 0, err
		}
	}
	out := make([]int64, len(qnames))
	if len(qnames) == 0 {
		return out, 0, nil
	}
	var tm *redis.TimeCmd
	cmds, err := c.rdb.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		tm = pipe.Time(ctx)
		for _, q := range qnames {
			pipe.ZRangeWithScores(ctx, c.zsetKey(q), 0, 0)
		}
		return nil
	})
	if err != nil && !isRedisError(err) {
		return nil, 0, fmt.Errorf("rsmq: next visible: %w", err)
	}
	if tm.Err() != nil {
		return nil, 0, fmt.Errorf("rsmq: next visible: time: %w", tm.Err())
	}
	for i, cmd := range cmds[1:] {
		if zs := cmd.(*redis.ZSliceCmd).Val(); len(zs) > 0 {
			out[i] = int64(zs[0].Score)
		}
	}
	return out, tm.Val().UnixMilli(), nil
}

// QueueRequest is one queue's part of ReceiveFromQueues.
type QueueRequest struct {
	Queue           string
	Max             int    // 1..MaxBatch messages; 0 means 1
	DeadLetterQueue string // required when the call's maxReceiveCount > 0
}

// ReceiveFromQueues is ReceiveMessages for several queues in ONE script call
// (one round trip), all with visibility timeout vt (QueueDefault = each
// queue's) and the same maxReceiveCount. results[i] or errs[i] answers
// reqs[i] (errs[i] is ErrQueueNotFound-wrapped for a missing queue); the
// returned error is for a failure of the whole call.
func (c *Client) ReceiveFromQueues(ctx context.Context, vt, maxReceiveCount int, reqs []QueueRequest) ([]*ReceiveResult, []error, error) {
	if err := validateSeconds("vt", vt, true); err != nil {
		return nil, nil, err
	}
	if maxReceiveCount < 0 {
		return nil, nil, outOfRange("maxReceiveCount", 0, 1<<31-1)
	}
	keys := make([]string, 1, 1+4*len(reqs))
	keys[0] = c.queuesKey()
	args := make([]any, 2, 2+2*len(reqs))
	args[0], args[1] = vt, maxReceiveCount
	for _, r := range reqs {
		if err := ValidateQueueName(r.Queue); err != nil {
			return nil, nil, err
		}
		limit := r.Max
		if limit == 0 {
			limit = 1
		}
		if limit < 1 || limit > MaxBatch {
			return nil, nil, outOfRange("max", 1, MaxBatch)
		}
		dlq := r.DeadLetterQueue
		if maxReceiveCount > 0 && (ValidateQueueName(dlq) != nil || dlq == r.Queue) {
			return nil, nil, badFormat("deadLetterQueue")
		}
		if dlq == "" {
			dlq = r.Queue // never written: only used when maxReceiveCount > 0
		}
		keys = append(keys, c.hashKey(r.Queue), c.zsetKey(r.Queue), c.hashKey(dlq), c.zsetKey(dlq))
		args = append(args, limit, dlq, c.statusPrefix(r.Queue))
	}
	if len(reqs) == 0 {
		return nil, nil, nil
	}
	res, err := receiveMultiScript.Run(ctx, c.recv, keys, args...).Slice()
	if err != nil {
		return nil, nil, fmt.Errorf("rsmq: receive from %d queues: %w", len(reqs), err)
	}
	if len(res) != len(reqs) {
		return nil, nil, fmt.Errorf("rsmq: receive from %d queues: %d replies", len(reqs), len(res))
	}
	results := make([]*ReceiveResult, len(reqs))
	errs := make([]error, len(reqs))
	for i, r := range res {
		one, _ := r.([]any)
		results[i], errs[i] = parseReceiveReply(reqs[i].Queue, one)
	}
	return results, errs, nil
}

// QueueReceipts are receipts of one queue, for DeleteByReceiptsMulti.
type QueueReceipts struct {
	Queue    string
	Receipts []Receipt
	// Acked says the deliveries were acknowledged by the client (manual
	// mode) rather than confirmed by the gateway (auto): the delivery
	// status recorded, when the queue has status on.
	Acked bool
}

// SkippedReceipt is a receipt DeleteByReceiptsMulti could not act on: an
// invalid queue name, id or rc (a validation error), or a queue whose keys
// have the wrong type (ErrCorrupt).
type SkippedReceipt struct {
	Queue   string
	Receipt Receipt
	Err     error
}

// DeleteByReceiptsMulti is DeleteByReceipts for several queues in ONE script
// call. It returns how many messages were deleted. A bad item is skipped
// alone and reported in skipped, so one foreign receipt or broken queue
// never fails the deletes of the others; err is only for a failure of the
// whole call (Redis unreachable), when nothing is known to be deleted.
func (c *Client) DeleteByReceiptsMulti(ctx context.Context, batches []QueueReceipts) (deleted int, skipped []SkippedReceipt, err error) {
	keys := make([]string, 0, 2*len(batches))
	sent := make([]QueueReceipts, 0, len(batches)) // the batches in keys, with valid receipts only
	var args []any
	for _, b := range batches {
		good := make([]Receipt, 0, len(b.Receipts))
		for _, r := range b.Receipts {
			if _, err := receiptArgs(b.Queue, []Receipt{r}); err != nil {
				skipped = append(skipped, SkippedReceipt{Queue: b.Queue, Receipt: r, Err: err})
				continue
			}
			good = append(good, r)
		}
		if len(good) == 0 {
			continue
		}
		ra, _ := receiptArgs(b.Queue, good) // validated above
		keys = append(keys, c.hashKey(b.Queue), c.zsetKey(b.Queue))
		word := StatusDelivered
		if b.Acked {
			word = StatusAcknowledged
		}
		args = append(args, len(good), string(word), c.statusPrefix(b.Queue))
		args = append(args, ra...)
		sent = append(sent, QueueReceipts{Queue: b.Queue, Receipts: good})
	}
	if len(keys) == 0 {
		return 0, skipped, nil
	}
	res, err := deleteMultiScript.Run(ctx, c.rdb, keys, args...).Slice()
	if err != nil {
		return 0, skipped, fmt.Errorf("rsmq: delete by receipt in %d queues: %w", len(sent), err)
	}
	if len(res) != 2 {
		return 0, skipped, fmt.Errorf("rsmq: delete by receipt in %d queues: unexpected reply %v", len(sent), res)
	}
	bad, _ := res[1].([]any)
	for i := 0; i+1 < len(bad); i += 2 {
		k := int(toInt64(bad[i]))
		reason, _ := bad[i+1].(string)
		if k < 0 || k >= len(sent) {
			continue
		}
		qerr := fmt.Errorf("%w: queue %q: %s", ErrCorrupt, sent[k].Queue, reason)
		for _, r := range sent[k].Receipts {
			skipped = append(skipped, SkippedReceipt{Queue: sent[k].Queue, Receipt: r, Err: qerr})
		}
	}
	return int(toInt64(res[0])), skipped, nil
}
