// Package config parses and validates the gateway's settings from flags with
// WSMQ_* environment fallbacks (pkg/config's rules).
package config

import (
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/wsmq/wsmq/pkg/config"
	"github.com/wsmq/wsmq/pkg/rsmq"
	"github.com/wsmq/wsmq/services/gateway/internal/clientaddr"
	"github.com/wsmq/wsmq/services/gateway/internal/delivery"
	"github.com/wsmq/wsmq/services/gateway/internal/quota"
	"github.com/wsmq/wsmq/services/gateway/internal/server"
	"github.com/wsmq/wsmq/services/gateway/internal/sessions"
	"github.com/wsmq/wsmq/services/gateway/internal/throttle"
	"github.com/wsmq/wsmq/services/gateway/internal/ticket"
	"github.com/wsmq/wsmq/services/gateway/internal/wsconn"
)

// Wake modes of WSMQ_GATEWAY_WAKE.
const (
	WakeAuto     = "auto"
	WakeKeyevent = "keyevent"
	WakeKeyspace = "keyspace"
	WakeRealtime = "realtime"
)

// WakeModes are the values WSMQ_GATEWAY_WAKE accepts.
var WakeModes = []string{WakeAuto, WakeKeyevent, WakeKeyspace, WakeRealtime}

// Defaults of the gateway's own settings; those of the delivery engine, a
// connection, the HTTP edge's limits (server, throttle) and the queue cap
// are exported by those packages.
const (
	DefaultListen          = "127.0.0.1:3000"
	DefaultAdminListen     = "127.0.0.1:9193"
	DefaultAuthAddr        = "127.0.0.1:9091"
	DefaultShutdownTimeout = 10 * time.Second
	DefaultShutdownSpread  = 3 * time.Second
	DefaultAuthTimeout     = 3 * time.Second
	// DevAuthGatewayToken is the auth service's dev-mode revocation-stream
	// credential, used in dev mode when none is set.
	DevAuthGatewayToken    = "dev-gateway-token"
	DefaultHTTPReadTimeout = 30 * time.Second
	DefaultHTTPIdleTimeout = 2 * time.Minute
	maxCount               = 1 << 20
	day                    = 24 * time.Hour
)

// Config is the gateway's whole configuration, validated once at start-up.
type Config struct {
	Listen      string // WSMQ_GATEWAY_LISTEN: public HTTP/websocket address
	AdminListen string // WSMQ_GATEWAY_ADMIN_LISTEN: /readyz /metrics /healthz; "" = off
	AuthAddr    string // WSMQ_AUTH_ADDR
	RedisURL    string // WSMQ_REDIS_URL
	NS          string // WSMQ_RSMQ_NS
	Dev         bool   // WSMQ_DEV
	LogLevel    slog.Level
	Queue       rsmq.QueueConfig // attributes of queues created on subscribe (WSMQ_QUEUE_*)

	VisibilityTimeout int           // seconds a delivered, unacked message stays hidden
	Prefetch          int           // most unacked messages per subscription
	MaxReceiveCount   int           // receives before a message goes to <queue>-dlq
	ConnBuffer        int           // most frames queued for one connection's writer
	SweepInterval     time.Duration // how often each served queue is checked without a notification
	HotSweepInterval  time.Duration // the same for queues fed by non-realtime publishers
	// Wake is WSMQ_GATEWAY_WAKE: what wakes served queues (WakeModes).
	Wake    string
	Workers int // goroutines pulling from Redis

	ReverifyInterval time.Duration
	PingInterval     time.Duration
	WriteTimeout     time.Duration
	ReadLimit        int64
	AllowedOrigins   []string

	MaxConnsPerUser    int
	MaxSubsPerConn     int
	MaxQueuesPerUser   int                 // WSMQ_MAX_QUEUES_PER_USER: <userId>-<suffix> queues subscriptions may create
	CommandRate        float64             // WSMQ_COMMAND_RATE: client commands per second per connection (burst 2x)
	ServedMarkInterval time.Duration       // WSMQ_SERVED_MARK_INTERVAL: how often served queues are marked for prune
	ConnRatePerIP      float64             // new websocket connections (and tickets) per second per client IP
	LoginRatePerIP     float64             // POST /v1/authenticate per second per client IP
	TrustedProxies     clientaddr.Resolver // WSMQ_TRUSTED_PROXIES: whose X-Forwarded-For is believed
	LoginFreeFails     int                 // WSMQ_LOGIN_FREE_FAILURES: failed logins of one name before back-off
	LoginFreeFailsIP   int                 // WSMQ_LOGIN_FREE_FAILURES_PER_IP: the same per client address
	LoginBackoffMax    time.Duration       // WSMQ_LOGIN_BACKOFF_MAX: the longest back-off
	TicketTTL          time.Duration       // WSMQ_TICKET_TTL: a connect ticket's life
	AllowQueryCreds    bool                // WSMQ_ALLOW_QUERY_CREDENTIALS: token/accessToken in the URL outside dev mode
	HTTPReadTimeout    time.Duration       // WSMQ_HTTP_READ_TIMEOUT: a request's headers and body (not a websocket's life)
	HTTPIdleTimeout    time.Duration       // WSMQ_HTTP_IDLE_TIMEOUT: an idle keep-alive HTTP connection
	AllowEviction      bool                // start even when Redis may evict keys
	ShutdownTimeout    time.Duration
	ShutdownSpread     time.Duration // WSMQ_SHUTDOWN_SPREAD: window the 1001 closes are spread over
	AuthTimeout        time.Duration
	// AuthTLS secures the connection to auth (WSMQ_AUTH_TLS); AuthTLSCA
	// verifies its certificate (empty: system roots); AuthTLSClientCert
	// and AuthTLSClientKey are presented for mTLS.
	AuthTLS                             bool
	AuthTLSCA                           string
	AuthTLSClientCert, AuthTLSClientKey string
	// AuthGatewayToken is the credential of auth's WatchRevocations
	// (WSMQ_AUTH_GATEWAY_TOKEN, shared with the auth service).
	AuthGatewayToken string
	// RevocationRetention is how long a pushed revocation is remembered
	// without a socket telling its JWT's expiry.
	RevocationRetention time.Duration
	Demo                bool   // serve /demo (always on in dev mode)
	PprofListen         string // WSMQ_PPROF_LISTEN: net/http/pprof address, "" = off
}

// Parse reads args (without the program name) and the environment; every
// problem is reported at once.
func Parse(args []string, env config.Env) (Config, error) {
	var c Config
	var origins, proxies string
	readLimit := 0
	s := config.NewSet("gateway", "WSMQ_GATEWAY_")
	s.String(&c.Listen, "listen", "WSMQ_GATEWAY_LISTEN", DefaultListen, "public HTTP/websocket listen address", config.HostPort)
	s.String(&c.AdminListen, "admin-listen", "WSMQ_GATEWAY_ADMIN_LISTEN", DefaultAdminListen,
		`admin HTTP address (/readyz /metrics /healthz; keep it private); "" disables`, config.OptionalHostPort)
	s.String(&c.AuthAddr, "auth-addr", "WSMQ_AUTH_ADDR", DefaultAuthAddr, "auth service gRPC address", config.HostPort)
	s.RedisURL(&c.RedisURL)
	s.Namespace(&c.NS)
	s.Dev(&c.Dev, "dev secrets, demo page")
	s.LogLevel(&c.LogLevel)
	s.QueueDefaults(&c.Queue)
	s.Int(&c.VisibilityTimeout, "visibility-timeout", "WSMQ_VISIBILITY_TIMEOUT", delivery.DefaultVisibilityTimeout, 1, rsmq.MaxVTOrDelay, "seconds an unacked delivered message stays hidden")
	s.Int(&c.Prefetch, "prefetch", "WSMQ_PREFETCH", delivery.DefaultPrefetch, 1, 1000, "most unacked messages in flight per subscription")
	s.Int(&c.MaxReceiveCount, "max-receive-count", "WSMQ_MAX_RECEIVE_COUNT", delivery.DefaultMaxReceiveCount, 1, maxCount, "receives before a message moves to <queue>-dlq")
	s.Int(&c.ConnBuffer, "conn-buffer", "WSMQ_CONN_BUFFER", wsconn.DefaultConnBuffer, 1, maxCount, "most frames queued for one connection")
	s.Duration(&c.SweepInterval, "sweep-interval", "WSMQ_SWEEP_INTERVAL", delivery.DefaultSweepInterval, 10*time.Millisecond, time.Hour, "check interval per served queue without notifications")
	s.String(&c.Wake, "wake", "WSMQ_GATEWAY_WAKE", WakeAuto,
		"what wakes served queues: auto (keyevent when Redis's notify-keyspace-events has E and z, else keyspace with K and z, else realtime), keyevent, keyspace, realtime (the realtime channel; senders without it wait for the sweep)",
		func(v string) error {
			if !slices.Contains(WakeModes, v) {
				return fmt.Errorf("must be one of %s", strings.Join(WakeModes, ", "))
			}
			return nil
		})
	s.Duration(&c.HotSweepInterval, "hot-sweep-interval", "WSMQ_HOT_SWEEP_INTERVAL", delivery.DefaultHotSweepInterval, 10*time.Millisecond, time.Hour, "check interval for queues fed without realtime notifications")
	s.Int(&c.Workers, "workers", "WSMQ_GATEWAY_WORKERS", delivery.DefaultWorkers, 1, 4096, "goroutines pulling messages from Redis")
	s.Duration(&c.ReverifyInterval, "reverify-interval", "WSMQ_REVERIFY_INTERVAL", sessions.DefaultReverifyInterval, time.Millisecond, day, "re-check live connections' credentials")
	s.Duration(&c.PingInterval, "ping-interval", "WSMQ_PING_INTERVAL", wsconn.DefaultPingInterval, time.Millisecond, time.Hour, "websocket ping interval")
	s.Duration(&c.WriteTimeout, "write-timeout", "WSMQ_WRITE_TIMEOUT", wsconn.DefaultWriteTimeout, time.Millisecond, time.Hour, "websocket write deadline, and the longest wait for the pong that confirms written frames")
	s.Int(&readLimit, "read-limit", "WSMQ_READ_LIMIT", wsconn.DefaultReadLimit, 512, 1<<20, "largest client frame in bytes")
	s.String(&origins, "allowed-origins", "WSMQ_ALLOWED_ORIGINS", "", "comma-separated allowed browser origins (empty: same origin only)")
	s.Int(&c.MaxConnsPerUser, "max-conns-per-user", "WSMQ_MAX_CONNS_PER_USER", sessions.DefaultMaxConnsPerUser, 1, maxCount, "most websockets per user")
	s.Int(&c.MaxSubsPerConn, "max-subs-per-conn", "WSMQ_MAX_SUBS_PER_CONN", wsconn.DefaultMaxSubs, 1, maxCount, "most subscriptions per websocket")
	s.Int(&c.MaxQueuesPerUser, "max-queues-per-user", "WSMQ_MAX_QUEUES_PER_USER", quota.DefaultMaxQueuesPerUser, 1, maxCount,
		"most <userId>-<suffix> queues a user's subscriptions may create (existing queues count; the user's own queue does not)")
	s.Float(&c.CommandRate, "command-rate", "WSMQ_COMMAND_RATE", wsconn.DefaultCommandRate, 0.001, 1e6,
		"client commands per second per websocket, bursts of twice that (acks of in-flight messages are free); sustained floods are closed with 4029")
	s.Duration(&c.ServedMarkInterval, "served-mark-interval", "WSMQ_SERVED_MARK_INTERVAL", quota.DefaultMarkInterval, 10*time.Millisecond, time.Hour,
		"how often the queues this gateway serves are marked served (wsmqctl queues prune keeps queues marked within its --idle)")
	s.Float(&c.ConnRatePerIP, "conn-rate", "WSMQ_CONN_RATE", server.DefaultConnRate, 0.001, 1e9, "new websockets per second per client IP")
	s.Float(&c.LoginRatePerIP, "login-rate", "WSMQ_LOGIN_RATE", server.DefaultLoginRate, 0.001, 1e9, "logins per second per client IP")
	s.String(&proxies, "trusted-proxies", "WSMQ_TRUSTED_PROXIES", "",
		"comma-separated CIDRs/IPs of proxies whose X-Forwarded-For is believed (empty: none; the client is the TCP peer)", checkProxies)
	s.Int(&c.LoginFreeFails, "login-free-failures", "WSMQ_LOGIN_FREE_FAILURES", throttle.DefaultFree, 1, maxCount,
		"failed logins in a row of one user name after which it backs off (1s, doubling with each further failure up to WSMQ_LOGIN_BACKOFF_MAX)")
	s.Int(&c.LoginFreeFailsIP, "login-free-failures-per-ip", "WSMQ_LOGIN_FREE_FAILURES_PER_IP", server.DefaultLoginFreeFailsIP, 1, maxCount,
		"failed logins in a row from one client address after which it backs off")
	s.Duration(&c.LoginBackoffMax, "login-backoff-max", "WSMQ_LOGIN_BACKOFF_MAX", throttle.DefaultMax, time.Second, time.Hour, "longest login back-off")
	s.Duration(&c.TicketTTL, "ticket-ttl", "WSMQ_TICKET_TTL", ticket.DefaultTTL, 100*time.Millisecond, 10*time.Minute, "life of a connect ticket (POST /v1/ticket)")
	s.Bool(&c.AllowQueryCreds, "allow-query-credentials", "WSMQ_ALLOW_QUERY_CREDENTIALS", false,
		"accept token/accessToken query parameters outside dev mode (they end up in logs; use tickets)")
	s.Duration(&c.HTTPReadTimeout, "http-read-timeout", "WSMQ_HTTP_READ_TIMEOUT", DefaultHTTPReadTimeout, 100*time.Millisecond, time.Hour,
		"deadline to read a request (headers and body); websockets are not bound by it")
	s.Duration(&c.HTTPIdleTimeout, "http-idle-timeout", "WSMQ_HTTP_IDLE_TIMEOUT", DefaultHTTPIdleTimeout, 100*time.Millisecond, day, "idle keep-alive HTTP connections are closed after this")
	s.Bool(&c.AllowEviction, "allow-eviction", "WSMQ_ALLOW_EVICTION", false, "start even if Redis may evict keys (loses messages)")
	s.ShutdownTimeout(&c.ShutdownTimeout, "WSMQ_SHUTDOWN_TIMEOUT", DefaultShutdownTimeout)
	s.Duration(&c.ShutdownSpread, "shutdown-spread", "WSMQ_SHUTDOWN_SPREAD", DefaultShutdownSpread, 0, time.Hour,
		"graceful shutdown spreads its 1001 closes over this window (at most half of WSMQ_SHUTDOWN_TIMEOUT), so clients do not all reconnect at once")
	s.Duration(&c.AuthTimeout, "auth-timeout", "WSMQ_AUTH_TIMEOUT", DefaultAuthTimeout, time.Millisecond, time.Minute, "deadline of calls to the auth service")
	s.Bool(&c.AuthTLS, "auth-tls", "WSMQ_AUTH_TLS", false, "connect to the auth service over TLS")
	s.String(&c.AuthTLSCA, "auth-tls-ca", "WSMQ_AUTH_TLS_CA", "", "PEM CA bundle verifying the auth service (empty: system roots; implies WSMQ_AUTH_TLS)")
	s.String(&c.AuthTLSClientCert, "auth-tls-client-cert", "WSMQ_AUTH_TLS_CLIENT_CERT", "", "PEM client certificate for the auth service (mTLS; implies WSMQ_AUTH_TLS)")
	s.String(&c.AuthTLSClientKey, "auth-tls-client-key", "WSMQ_AUTH_TLS_CLIENT_KEY", "", "PEM private key of WSMQ_AUTH_TLS_CLIENT_CERT")
	s.String(&c.AuthGatewayToken, "auth-gateway-token", "WSMQ_AUTH_GATEWAY_TOKEN", "", "credential for the auth service's revocation stream and per-client login limit (dev mode: the dev token)")
	s.Duration(&c.RevocationRetention, "revocation-retention", "WSMQ_REVOCATION_RETENTION", sessions.DefaultRevocationRetention, time.Second, 48*time.Hour,
		"how long a revoked session is refused at reconnect when no socket here tells its JWT's expiry (at least the auth service's WSMQ_JWT_TTL)")
	s.Check(func() error {
		if (c.AuthTLSClientCert == "") != (c.AuthTLSClientKey == "") {
			return fmt.Errorf("WSMQ_AUTH_TLS_CLIENT_CERT and WSMQ_AUTH_TLS_CLIENT_KEY must be set together")
		}
		return nil
	})
	s.Bool(&c.Demo, "demo", "WSMQ_DEMO", false, "serve the /demo page (always on in dev mode)")
	s.String(&c.PprofListen, "pprof-listen", "WSMQ_PPROF_LISTEN", "", "address for net/http/pprof (empty: off; keep it on loopback)", config.OptionalHostPort)
	s.Check(func() error {
		if c.AdminListen != "" && c.AdminListen == c.Listen && c.Listen[len(c.Listen)-2:] != ":0" {
			return fmt.Errorf("WSMQ_GATEWAY_ADMIN_LISTEN and WSMQ_GATEWAY_LISTEN are both %q: the admin listener must stay private", c.Listen)
		}
		return nil
	})
	rest, err := s.Parse(args, env)
	if err == nil {
		err = config.NoArgs(rest)
	}
	if err != nil {
		return Config{}, err
	}
	c.ReadLimit = int64(readLimit)
	c.AllowedOrigins = config.List(origins)
	c.TrustedProxies, _ = clientaddr.Parse(proxies) // checked by checkProxies
	if c.Dev {
		c.Demo = true
		if c.AuthGatewayToken == "" {
			c.AuthGatewayToken = DevAuthGatewayToken
		}
	}
	if c.AuthTLSCA != "" || c.AuthTLSClientCert != "" {
		c.AuthTLS = true
	}
	return c, nil
}

func checkProxies(v string) error {
	_, err := clientaddr.Parse(v)
	return err
}
