package rsmq

import (
	"context"
	"crypto/rand"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Defaults and limits of the RSMQ API.
const (
	// DefaultVT is the default visibility timeout of a new queue, seconds.
	DefaultVT = 30
	// DefaultDelay is the default delay of a new queue, seconds.
	DefaultDelay = 0
	// DefaultMaxSize is the default maximum message length of a new queue, UTF-16 code units.
	DefaultMaxSize = 65536
	// MaxSizeUnlimited as a queue's MaxSize disables the length check.
	MaxSizeUnlimited = -1
	// QueueDefault as a vt or delay argument means "use the queue's attribute".
	QueueDefault = -1
	// MaxBatch is the most items per SendBatch and messages per ReceiveMessages.
	MaxBatch = 1000
	// MaxTTL is the longest message TTL, seconds (the bound of a delay).
	MaxTTL = 9_999_999
)

// Options configures a Client. The zero value is Node rsmq's default.
type Options struct {
	Namespace string // key prefix namespace; "" means "rsmq"
	Realtime  bool   // PUBLISH the ZCARD on ns:rt:<qname> after every send
	// ReceiveClient, when set, runs the receive and pop scripts instead of
	// the Client's rdb. It should not retry commands (go-redis MaxRetries
	// -1): a receive retried after a read timeout runs twice on the server
	// and the first run's messages are hidden without anyone getting them.
	// The caller then retries through its normal pull, and the lost
	// messages reappear after their visibility timeout. Same server as rdb.
	ReceiveClient redis.UniversalClient

	// MinReplicas > 0 makes sends durable: SendMessage and SendBatch run
	// WAIT MinReplicas ReplicaTimeout in the same pipeline as the writes
	// (so on the same connection, right after them) and report each stored
	// message as failed with ErrNotReplicated unless that many replicas
	// confirmed it. A caller retries with the same call: ids are fixed
	// before the first attempt, so a retry stores nothing twice, and the
	// retry's WAIT covers the first write (see sendScript).
	MinReplicas int
	// ReplicaTimeout bounds the WAIT of durable sends; 0 means
	// DefaultReplicaTimeout.
	ReplicaTimeout time.Duration
	// OnReplicaTimeout, when set, is called when a durable send's WAIT
	// returned fewer than MinReplicas confirmations (acked of them).
	OnReplicaTimeout func(acked int)
	// StatusTTL > 0 turns delivery status on for every queue sent to: the
	// send marks the queue (its "wsmq:status" field = StatusTTL in seconds)
	// and from then on receive and delete keep each message's final state
	// for that long (see GetStatus). 0 leaves queues as they are.
	StatusTTL time.Duration
	// ReceiptsCap > 0 turns the delivery receipts stream on for every
	// queue sent to: the send marks the queue (its "wsmq:receipts" field =
	// ReceiptsCap) and from then on receive and delete append each change
	// of a message's state to the namespace's stream "<ns>:wsmq:receipts",
	// trimmed to about ReceiptsCap entries (see ReadDeliveries). 0 leaves
	// queues as they are.
	ReceiptsCap int64
}

// DefaultReplicaTimeout is Options.ReplicaTimeout's default.
const DefaultReplicaTimeout = 100 * time.Millisecond

// Client runs RSMQ operations on a Redis server. It is safe for concurrent use.
type Client struct {
	rdb      redis.UniversalClient
	recv     redis.UniversalClient // receive and pop scripts: Options.ReceiveClient or rdb
	ns       string
	prefix   string
	realtime bool
	clock    idClock

	minReplicas      int
	replicaTimeout   time.Duration
	onReplicaTimeout func(acked int)
	statusTTL        int   // seconds, 0 = off
	receiptsCap      int64 // receipts stream length cap, 0 = off
}

// New returns a Client on rdb. It does not contact Redis. The key layout
// needs two keys of one queue in one script, so rdb must not be a Redis
// Cluster client (a Sentinel failover client or a plain client is fine).
func New(rdb redis.UniversalClient, opts Options) *Client {
	ns := opts.Namespace
	if ns == "" {
		ns = DefaultNamespace
	}
	recv := opts.ReceiveClient
	if recv == nil {
		recv = rdb
	}
	rt := opts.ReplicaTimeout
	if rt <= 0 {
		rt = DefaultReplicaTimeout
	}
	rt = max(rt, time.Millisecond) // WAIT's unit; WAIT n 0 would block forever
	return &Client{rdb: rdb, recv: recv, ns: ns, prefix: ns + ":", realtime: opts.Realtime,
		minReplicas: opts.MinReplicas, replicaTimeout: rt, onReplicaTimeout: opts.OnReplicaTimeout,
		statusTTL: statusSeconds(opts.StatusTTL), receiptsCap: max(opts.ReceiptsCap, 0)}
}

// Namespace returns the key namespace, "rsmq" unless Options said otherwise.
func (c *Client) Namespace() string { return c.ns }

// idClock estimates Redis TIME in microseconds from the local monotonic
// clock, so a send can build its id before its one round trip. The offset
// is measured by one TIME call on first use and re-measured from the TIME
// that every send script returns. Prefixes handed out never repeat or
// decrease within one Client.
type idClock struct {
	mu     sync.Mutex
	synced bool
	base   time.Time // local reading (monotonic) matching baseUS
	baseUS int64     // Redis time at base, µs
	last   int64     // last prefix handed out, µs
}

// observe records that Redis time was us at some instant between sent and got.
func (k *idClock) observe(us int64, sent, got time.Time) {
	mid := sent.Add(got.Sub(sent) / 2)
	k.mu.Lock()
	k.base, k.baseUS, k.synced = mid, us, true
	k.mu.Unlock()
}

// next returns the time prefixes for n ids, strictly increasing.
func (c *Client) nextPrefixes(ctx context.Context, n int) ([]int64, error) {
	c.clock.mu.Lock()
	synced := c.clock.synced
	c.clock.mu.Unlock()
	if !synced {
		sent := time.Now()
		t, err := c.rdb.Time(ctx).Result()
		if err != nil {
			return nil, fmt.Errorf("rsmq: redis time: %w", err)
		}
		c.clock.observe(t.UnixMicro(), sent, time.Now())
	}
	k := &c.clock
	k.mu.Lock()
	defer k.mu.Unlock()
	now := k.baseUS + time.Since(k.base).Microseconds()
	out := make([]int64, n)
	for i := range out {
		if now <= k.last {
			now = k.last + 1
		}
		k.last = now
		out[i] = now
	}
	return out, nil
}

const idAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// makeID returns the 32-char id: prefix in lowercase base 36 (10 chars
// before 2085) and 22 random chars of [A-Za-z0-9] from crypto/rand.
func makeID(prefix int64) string {
	b := make([]byte, 0, idLen)
	p := strconv.FormatInt(prefix, 36)
	for i := len(p); i < idTimeLen; i++ {
		b = append(b, '0')
	}
	b = append(b, p...)
	var buf [48]byte
	for len(b) < idLen {
		_, _ = rand.Read(buf[:]) // never fails (crypto/rand since Go 1.24)
		for _, x := range buf {
			if x < 248 && len(b) < idLen { // 248 = 4*62: no modulo bias
				b = append(b, idAlphabet[x%62])
			}
		}
	}
	return string(b)
}

// sentFromID returns the send time in unix ms encoded in the id's prefix.
func sentFromID(id string) int64 {
	if len(id) < idTimeLen {
		return 0
	}
	us, err := strconv.ParseInt(id[:idTimeLen], 36, 64)
	if err != nil {
		return 0
	}
	return us / 1000
}
