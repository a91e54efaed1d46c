// Package config holds the publisher's settings, parsed once from flags with
// WSMQ_* environment fallbacks and validated before anything starts.
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode"

	"github.com/wsmq/wsmq/pkg/bearer"
	"github.com/wsmq/wsmq/pkg/config"
	"github.com/wsmq/wsmq/pkg/rsmq"
	"github.com/wsmq/wsmq/services/publisher/internal/coalesce"
)

// Limits of the publisher's own settings.
const (
	minKeyLength   = 16
	maxGRPCMsgSize = 1 << 30
)

// Config is the publisher's whole configuration.
type Config struct {
	RedisURL        string           // redis:// or rediss:// URL
	Namespace       string           // RSMQ key namespace
	Listen          string           // gRPC listen address
	AdminListen     string           // HTTP /metrics /healthz /readyz; "" disables
	GRPCMaxMsgBytes int              // max gRPC message size, both directions
	MaxBatch        int              // most items per SendBatch
	Queue           rsmq.QueueConfig // attributes of queues created on first send (WSMQ_QUEUE_*)
	QueueTTL        int              // seconds; ttl of a message sent without one (WSMQ_QUEUE_TTL), 0 = none
	// Receipts turns delivery status on for the queues this publisher sends
	// to (GetStatus reports how their messages ended, kept for StatusTTL).
	Receipts  bool
	StatusTTL time.Duration
	// ReceiptsStream turns the delivery receipts stream on for the queues
	// this publisher sends to, and serves WatchDeliveries (gRPC and SSE).
	ReceiptsStream bool
	ReceiptsCap    int           // the stream's length cap (XADD MAXLEN ~), entries
	MaxWatchers    int           // most WatchDeliveries streams served at once
	CallTimeout    time.Duration // deadline of the Redis work of one RPC
	// Coalescing of concurrent unary sends into one Redis round trip
	// (coalesce.Options): most items per flush (1 turns coalescing off),
	// flushes in flight at once, and the added wait for more items.
	CoalesceMax      int
	CoalesceInFlight int
	CoalesceLinger   time.Duration
	ShutdownTimeout  time.Duration // how long in-flight calls may finish on SIGTERM
	HealthInterval   time.Duration // how often Redis is pinged for the health service
	// MemoryHighWater is the used_memory/maxmemory fraction above which
	// sends are refused with RESOURCE_EXHAUSTED; 0 or 1 disables.
	MemoryHighWater float64
	MemoryInterval  time.Duration // how often Redis memory is sampled
	// MinReplicas > 0 makes sends durable: acknowledged only after WAIT
	// confirmed that many replicas (else UNAVAILABLE); 0 is off.
	MinReplicas    int
	ReplicaTimeout time.Duration // how long a durable send's WAIT may take
	Dev            bool          // dev mode: keys not required
	LogLevel       slog.Level

	// KeyDigests are the SHA-256 digests of the accepted caller keys; the keys
	// themselves are not kept.
	KeyDigests []bearer.Digest
	// AdminKeyDigests are the digests of the admin keys
	// (WSMQ_PUBLISHER_ADMIN_KEYS), which alone may call QueueAdminService.
	AdminKeyDigests []bearer.Digest

	// HTTPListen is the HTTP/JSON API's address; "" (the default) disables it.
	HTTPListen string
	// HTTPMaxBody is the HTTP API's request body limit in bytes.
	HTTPMaxBody int

	TLSCert     string // PEM certificate file; with TLSKey enables TLS
	TLSKey      string // PEM private key file
	TLSClientCA string // PEM CA bundle; when set, clients must present a certificate it signed
}

// AdminEnabled reports whether QueueAdminService is served: with admin
// keys, or open in dev mode.
func (c Config) AdminEnabled() bool { return len(c.AdminKeyDigests) > 0 || c.Dev }

// TLSEnabled reports whether the gRPC listener serves TLS.
func (c Config) TLSEnabled() bool { return c.TLSCert != "" }

// Environment variables under this prefix must be known to the publisher.
const envPrefix = "WSMQ_PUBLISHER_"

// Defaults of the publisher's own settings.
const (
	DefaultListen          = "127.0.0.1:9092"
	DefaultAdminListen     = "127.0.0.1:9192"
	DefaultGRPCMaxMsgBytes = 4 << 20
	DefaultCallTimeout     = 2 * time.Second
	DefaultShutdownTimeout = 10 * time.Second
	DefaultHealthInterval  = time.Second
	DefaultMemoryHighWater = 0.90
	DefaultMemoryInterval  = 500 * time.Millisecond
	DefaultReplicaTimeout  = 100 * time.Millisecond
	DefaultHTTPMaxBody     = 4 << 20
	DefaultStatusTTL       = 24 * time.Hour
	DefaultReceiptsCap     = 1_000_000
	DefaultMaxWatchers     = 32
	maxMinReplicas         = 16
)

// settings declares every setting of the publisher on c.
func settings(c *Config) *config.Set {
	s := config.NewSet("publisher", envPrefix)
	// The clients' (wsmqctl, the publisher client), in a shared environment.
	s.Others("WSMQ_PUBLISHER_ADDR", "WSMQ_PUBLISHER_KEY", "WSMQ_PUBLISHER_ADMIN_KEY")
	s.RedisURL(&c.RedisURL)
	s.Namespace(&c.Namespace)
	s.String(&c.Listen, "listen", "WSMQ_PUBLISHER_LISTEN", DefaultListen, "gRPC listen address", config.HostPort)
	s.String(&c.AdminListen, "admin-listen", "WSMQ_PUBLISHER_ADMIN_LISTEN", DefaultAdminListen,
		`HTTP admin address (/metrics /healthz /readyz); "" disables`, config.OptionalHostPort)
	s.Int(&c.GRPCMaxMsgBytes, "grpc-max-msg-bytes", "WSMQ_GRPC_MAX_MSG_BYTES", DefaultGRPCMaxMsgBytes, 1024, maxGRPCMsgSize, "max gRPC message size in bytes")
	s.Int(&c.MaxBatch, "max-batch", "WSMQ_PUBLISHER_MAX_BATCH", rsmq.MaxBatch, 1, rsmq.MaxBatch, "most items per SendBatch")
	s.QueueDefaults(&c.Queue)
	s.Int(&c.QueueTTL, "queue-ttl", "WSMQ_QUEUE_TTL", 0, 0, rsmq.MaxTTL,
		"ttl (s) of a message sent without ttl_seconds; an expired message is never delivered; 0 = messages do not expire")
	s.Bool(&c.Receipts, "receipts", "WSMQ_PUBLISHER_RECEIPTS", false,
		"delivery receipts: the queues sent to record how each message ended (delivered, acknowledged, dead-lettered, expired) for GetStatus")
	s.Duration(&c.StatusTTL, "status-ttl", "WSMQ_STATUS_TTL", DefaultStatusTTL, time.Second, 30*24*time.Hour,
		"how long a message's final delivery status is kept (with WSMQ_PUBLISHER_RECEIPTS)")
	s.Bool(&c.ReceiptsStream, "receipts-stream", "WSMQ_PUBLISHER_RECEIPTS_STREAM", false,
		"delivery receipts stream: the queues sent to append every change of a message's state to a Redis stream; serves WatchDeliveries and GET /v1/deliveries (SSE)")
	s.Int(&c.ReceiptsCap, "receipts-stream-cap", "WSMQ_RECEIPTS_STREAM_CAP", DefaultReceiptsCap, 1000, 1_000_000_000,
		"length cap of the receipts stream (entries, trimmed approximately): how far back a watcher can resume")
	s.Int(&c.MaxWatchers, "max-watchers", "WSMQ_PUBLISHER_MAX_WATCHERS", DefaultMaxWatchers, 1, 10_000,
		"most WatchDeliveries streams (gRPC and SSE) served at once; each holds one Redis connection of its own pool")
	s.Duration(&c.CallTimeout, "call-timeout", "WSMQ_PUBLISHER_CALL_TIMEOUT", DefaultCallTimeout, 10*time.Millisecond, time.Minute, "deadline of the Redis work of one RPC")
	s.Int(&c.CoalesceMax, "coalesce-max", "WSMQ_PUBLISHER_COALESCE_MAX", coalesce.DefaultMaxBatch, 1, rsmq.MaxBatch,
		"most concurrent Sends gathered into one Redis round trip; 1 sends each alone")
	s.Int(&c.CoalesceInFlight, "coalesce-inflight", "WSMQ_PUBLISHER_COALESCE_INFLIGHT", coalesce.DefaultMaxInFlight, 1, 64,
		"most coalesced flushes waiting for Redis at once (Sends arriving meanwhile join the next flush)")
	s.Duration(&c.CoalesceLinger, "coalesce-linger", "WSMQ_PUBLISHER_COALESCE_LINGER", 0, 0, coalesce.MaxLinger,
		"how long a flush waits for more Sends once it has one (0: never; a lone Send is not delayed)")
	s.ShutdownTimeout(&c.ShutdownTimeout, "WSMQ_PUBLISHER_SHUTDOWN_TIMEOUT", DefaultShutdownTimeout)
	s.Duration(&c.HealthInterval, "health-interval", "WSMQ_PUBLISHER_HEALTH_INTERVAL", DefaultHealthInterval, 10*time.Millisecond, time.Minute, "Redis ping interval of the health service")
	s.Float(&c.MemoryHighWater, "memory-high-water", "WSMQ_PUBLISHER_MEMORY_HIGH_WATER", DefaultMemoryHighWater, 0, 1,
		"refuse sends (RESOURCE_EXHAUSTED) while Redis used_memory/maxmemory is at or above this; 0 or 1 disables")
	s.Duration(&c.MemoryInterval, "memory-interval", "WSMQ_PUBLISHER_MEMORY_INTERVAL", DefaultMemoryInterval, 10*time.Millisecond, time.Minute,
		"how often Redis memory is sampled (INFO memory) for the high-water mark")
	s.Int(&c.MinReplicas, "min-replicas", "WSMQ_PUBLISHER_MIN_REPLICAS", 0, 0, maxMinReplicas,
		"durable acknowledgement: a send succeeds only once WAIT confirmed this many replicas (else UNAVAILABLE, retry); 0 is off")
	s.Duration(&c.ReplicaTimeout, "replica-timeout", "WSMQ_PUBLISHER_REPLICA_TIMEOUT", DefaultReplicaTimeout, time.Millisecond, 10*time.Second,
		"how long a durable send waits for its replicas (WAIT timeout)")
	s.Dev(&c.Dev, "caller keys not required")
	s.LogLevel(&c.LogLevel)
	// WSMQ_DEV is applied before the keys (declaration order), which need it.
	s.Secret("WSMQ_PUBLISHER_KEYS", "comma-separated caller keys (env only)", func(v string) error {
		var err error
		c.KeyDigests, err = parseKeys(v, c.Dev)
		return err
	})
	s.Secret("WSMQ_PUBLISHER_ADMIN_KEYS", "comma-separated admin keys for QueueAdminService (env only); without them the admin service is off outside dev mode", func(v string) error {
		var err error
		c.AdminKeyDigests, err = parseKeys(v, c.Dev)
		return err
	})
	s.String(&c.HTTPListen, "http-listen", "WSMQ_PUBLISHER_HTTP_LISTEN", "",
		`HTTP/JSON API address (POST /v1/queues/{queue}/messages, /v1/messages:batch, /v1/admin/...); "" disables`, config.OptionalHostPort)
	s.Int(&c.HTTPMaxBody, "http-max-body-bytes", "WSMQ_PUBLISHER_HTTP_MAX_BODY_BYTES", DefaultHTTPMaxBody, 1024, maxGRPCMsgSize,
		"largest HTTP API request body in bytes (larger: 413)")
	s.String(&c.TLSCert, "tls-cert", "WSMQ_TLS_CERT", "", "PEM certificate file (enables TLS with -tls-key)")
	s.String(&c.TLSKey, "tls-key", "WSMQ_TLS_KEY", "", "PEM private key file")
	s.String(&c.TLSClientCA, "tls-client-ca", "WSMQ_TLS_CLIENT_CA", "", "PEM CA bundle; requires client certificates (mTLS)")
	s.Check(c.check)
	return s
}

// parseKeys reads a comma-separated key list into digests.
func parseKeys(v string, dev bool) ([]bearer.Digest, error) {
	if v == "" {
		return nil, nil
	}
	var out []bearer.Digest
	for i, k := range strings.Split(v, ",") {
		k = strings.TrimSpace(k)
		if k == "" {
			return nil, fmt.Errorf("key %d is empty", i+1)
		}
		if strings.IndexFunc(k, unicode.IsSpace) >= 0 || !isPrintableASCII(k) {
			return nil, fmt.Errorf("key %d must be printable ASCII without spaces", i+1)
		}
		if !dev && len(k) < minKeyLength {
			return nil, fmt.Errorf("key %d is shorter than %d characters (allowed only with WSMQ_DEV=1)", i+1, minKeyLength)
		}
		out = append(out, bearer.Sum(k))
	}
	return out, nil
}

// Parse reads the configuration (package pkg/config's rules: a flag, else
// its environment variable, else the default) and reports every problem at
// once. flag.ErrHelp is returned alone for -h.
func Parse(args []string, env config.Env) (Config, error) {
	var c Config
	rest, err := settings(&c).Parse(args, env)
	if err != nil {
		return Config{}, err
	}
	if err := config.NoArgs(rest); err != nil {
		return Config{}, err
	}
	return c, nil
}

// check validates rules that involve several settings.
func (c *Config) check() error {
	var errs []error
	if len(c.KeyDigests) == 0 && !c.Dev {
		errs = append(errs, errors.New("WSMQ_PUBLISHER_KEYS is required outside dev mode (set WSMQ_DEV=1 for a keyless dev publisher)"))
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		errs = append(errs, errors.New("WSMQ_TLS_CERT and WSMQ_TLS_KEY must be set together"))
	}
	if c.TLSClientCA != "" && c.TLSCert == "" {
		errs = append(errs, errors.New("WSMQ_TLS_CLIENT_CA needs WSMQ_TLS_CERT and WSMQ_TLS_KEY"))
	}
	if c.MinReplicas > 0 && c.ReplicaTimeout >= c.CallTimeout {
		errs = append(errs, fmt.Errorf("WSMQ_PUBLISHER_REPLICA_TIMEOUT (%s) must be shorter than WSMQ_PUBLISHER_CALL_TIMEOUT (%s)", c.ReplicaTimeout, c.CallTimeout))
	}
	for _, a := range c.AdminKeyDigests {
		for _, k := range c.KeyDigests {
			if a == k {
				errs = append(errs, errors.New("WSMQ_PUBLISHER_ADMIN_KEYS must not repeat a key of WSMQ_PUBLISHER_KEYS"))
				break
			}
		}
	}
	if c.HTTPListen != "" && (c.HTTPListen == c.Listen || c.HTTPListen == c.AdminListen) && !strings.HasSuffix(c.HTTPListen, ":0") {
		errs = append(errs, fmt.Errorf("WSMQ_PUBLISHER_HTTP_LISTEN %q is already used by another listener", c.HTTPListen))
	}
	if c.AdminListen != "" && c.AdminListen == c.Listen && !strings.HasSuffix(c.Listen, ":0") {
		errs = append(errs, fmt.Errorf("WSMQ_PUBLISHER_ADMIN_LISTEN and WSMQ_PUBLISHER_LISTEN are both %q", c.Listen))
	}
	return errors.Join(errs...)
}

// Usage describes every flag and variable, for -h.
func Usage() string { return settings(&Config{}).Usage() }

func isPrintableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
