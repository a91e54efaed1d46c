// Package config parses and validates the gateway's settings from flags with
// WSMQ_* environment fallbacks.
package config

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// Config is the gateway's whole configuration, validated once at start-up.
type Config struct {
	Listen   string // WSMQ_GATEWAY_LISTEN
	AuthAddr string // WSMQ_AUTH_ADDR
	RedisURL string // WSMQ_REDIS_URL
	NS       string // WSMQ_RSMQ_NS
	Dev      bool   // WSMQ_DEV
	LogLevel slog.Level

	VisibilityTimeout int           // seconds a delivered, unacked message stays hidden
	Prefetch          int           // most unacked messages per subscription
	MaxReceiveCount   int           // receives before a message goes to <queue>-dlq
	ConnBuffer        int           // most frames queued for one connection's writer
	SweepInterval     time.Duration // how often each served queue is checked without a notification
	HotSweepInterval  time.Duration // the same for queues fed by non-realtime publishers
	Workers           int           // goroutines pulling from Redis

	ReverifyInterval time.Duration
	PingInterval     time.Duration
	WriteTimeout     time.Duration
	ReadLimit        int64
	AllowedOrigins   []string

	MaxConnsPerUser int
	MaxSubsPerConn  int
	ConnRatePerIP   float64 // new websocket connections per second per client IP
	LoginRatePerIP  float64 // POST /v1/authenticate per second per client IP
	AllowEviction   bool    // start even when Redis may evict keys
	ShutdownTimeout time.Duration
	AuthTimeout     time.Duration
	Demo            bool   // serve /demo (always on in dev mode)
	PprofListen     string // WSMQ_PPROF_LISTEN: net/http/pprof address, "" = off
}

// Parse reads args (without the program name) and the environment through
// getenv. Flags win over environment variables.
func Parse(args []string, getenv func(string) string) (Config, error) {
	var c Config
	fs := flag.NewFlagSet("gateway", flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	var errs []error
	env := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	str := func(p *string, name, env_, def, usage string) {
		fs.StringVar(p, name, env(env_, def), usage+" ("+env_+")")
	}
	integer := func(p *int, name, env_ string, def int, usage string) {
		v := env(env_, strconv.Itoa(def))
		n, err := strconv.Atoi(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %q is not an integer", env_, v))
		}
		fs.IntVar(p, name, n, usage+" ("+env_+")")
	}
	dur := func(p *time.Duration, name, env_ string, def time.Duration, usage string) {
		v := env(env_, def.String())
		d, err := time.ParseDuration(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %q is not a duration (e.g. 30s)", env_, v))
		}
		fs.DurationVar(p, name, d, usage+" ("+env_+")")
	}
	boolean := func(p *bool, name, env_ string, usage string) {
		v := env(env_, "0")
		b, err := strconv.ParseBool(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %q is not a boolean (use 1 or 0)", env_, v))
		}
		fs.BoolVar(p, name, b, usage+" ("+env_+")")
	}
	float := func(p *float64, name, env_ string, def float64, usage string) {
		v := env(env_, strconv.FormatFloat(def, 'g', -1, 64))
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %q is not a number", env_, v))
		}
		fs.Float64Var(p, name, f, usage+" ("+env_+")")
	}

	var origins, logLevel string
	str(&c.Listen, "listen", "WSMQ_GATEWAY_LISTEN", "127.0.0.1:3000", "HTTP/websocket listen address")
	str(&c.AuthAddr, "auth-addr", "WSMQ_AUTH_ADDR", "127.0.0.1:9091", "auth service gRPC address")
	str(&c.RedisURL, "redis-url", "WSMQ_REDIS_URL", "redis://127.0.0.1:6379/0", "Redis URL")
	str(&c.NS, "rsmq-ns", "WSMQ_RSMQ_NS", "rsmq", "RSMQ namespace")
	boolean(&c.Dev, "dev", "WSMQ_DEV", "dev mode: dev secrets, demo page")
	str(&logLevel, "log-level", "WSMQ_LOG_LEVEL", "info", "log level: debug, info, warn, error")
	integer(&c.VisibilityTimeout, "visibility-timeout", "WSMQ_VISIBILITY_TIMEOUT", 30, "seconds an unacked delivered message stays hidden")
	integer(&c.Prefetch, "prefetch", "WSMQ_PREFETCH", 64, "most unacked messages in flight per subscription")
	integer(&c.MaxReceiveCount, "max-receive-count", "WSMQ_MAX_RECEIVE_COUNT", 10, "receives before a message moves to <queue>-dlq")
	integer(&c.ConnBuffer, "conn-buffer", "WSMQ_CONN_BUFFER", 256, "most frames queued for one connection")
	dur(&c.SweepInterval, "sweep-interval", "WSMQ_SWEEP_INTERVAL", 5*time.Second, "check interval per served queue without notifications")
	dur(&c.HotSweepInterval, "hot-sweep-interval", "WSMQ_HOT_SWEEP_INTERVAL", time.Second, "check interval for queues fed without realtime notifications")
	integer(&c.Workers, "workers", "WSMQ_GATEWAY_WORKERS", 32, "goroutines pulling messages from Redis")
	dur(&c.ReverifyInterval, "reverify-interval", "WSMQ_REVERIFY_INTERVAL", time.Minute, "re-check live connections' credentials")
	dur(&c.PingInterval, "ping-interval", "WSMQ_PING_INTERVAL", 25*time.Second, "websocket ping interval")
	dur(&c.WriteTimeout, "write-timeout", "WSMQ_WRITE_TIMEOUT", 10*time.Second, "websocket write deadline")
	readLimit := 0
	integer(&readLimit, "read-limit", "WSMQ_READ_LIMIT", 4096, "largest client frame in bytes")
	str(&origins, "allowed-origins", "WSMQ_ALLOWED_ORIGINS", "", "comma-separated allowed browser origins (empty: same origin only)")
	integer(&c.MaxConnsPerUser, "max-conns-per-user", "WSMQ_MAX_CONNS_PER_USER", 32, "most websockets per user")
	integer(&c.MaxSubsPerConn, "max-subs-per-conn", "WSMQ_MAX_SUBS_PER_CONN", 32, "most subscriptions per websocket")
	float(&c.ConnRatePerIP, "conn-rate", "WSMQ_CONN_RATE", 50, "new websockets per second per client IP")
	float(&c.LoginRatePerIP, "login-rate", "WSMQ_LOGIN_RATE", 5, "logins per second per client IP")
	boolean(&c.AllowEviction, "allow-eviction", "WSMQ_ALLOW_EVICTION", "start even if Redis may evict keys (loses messages)")
	dur(&c.ShutdownTimeout, "shutdown-timeout", "WSMQ_SHUTDOWN_TIMEOUT", 10*time.Second, "graceful shutdown deadline")
	dur(&c.AuthTimeout, "auth-timeout", "WSMQ_AUTH_TIMEOUT", 3*time.Second, "deadline of calls to the auth service")
	boolean(&c.Demo, "demo", "WSMQ_DEMO", "serve the /demo page (always on in dev mode)")
	str(&c.PprofListen, "pprof-listen", "WSMQ_PPROF_LISTEN", "", "address for net/http/pprof (empty: off; keep it on loopback)")

	if err := fs.Parse(args); err != nil {
		return c, fmt.Errorf("config: %w", err)
	}
	if fs.NArg() > 0 {
		errs = append(errs, fmt.Errorf("unexpected arguments: %q", fs.Args()))
	}
	c.ReadLimit = int64(readLimit)
	if err := c.LogLevel.UnmarshalText([]byte(logLevel)); err != nil {
		errs = append(errs, fmt.Errorf("WSMQ_LOG_LEVEL: %q is not debug, info, warn or error", logLevel))
	}
	for _, o := range strings.Split(origins, ",") {
		if o = strings.TrimSpace(o); o != "" {
			c.AllowedOrigins = append(c.AllowedOrigins, o)
		}
	}
	if c.Dev {
		c.Demo = true
	}
	errs = append(errs, c.validate()...)
	if err := errors.Join(errs...); err != nil {
		return c, fmt.Errorf("config: %w", err)
	}
	return c, nil
}

func (c *Config) validate() []error {
	var errs []error
	check := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	u, err := url.Parse(c.RedisURL)
	check(err == nil && (u.Scheme == "redis" || u.Scheme == "rediss"), "WSMQ_REDIS_URL: %q is not a redis:// or rediss:// URL", c.RedisURL)
	check(c.Listen != "", "WSMQ_GATEWAY_LISTEN: empty")
	check(c.AuthAddr != "", "WSMQ_AUTH_ADDR: empty")
	check(c.NS != "" && !strings.ContainsAny(c.NS, ": "), "WSMQ_RSMQ_NS: %q must be non-empty without ':' or spaces", c.NS)
	check(c.VisibilityTimeout >= 1 && c.VisibilityTimeout <= 9999999, "WSMQ_VISIBILITY_TIMEOUT: %d must be between 1 and 9999999", c.VisibilityTimeout)
	check(c.Prefetch >= 1 && c.Prefetch <= 1000, "WSMQ_PREFETCH: %d must be between 1 and 1000", c.Prefetch)
	check(c.MaxReceiveCount >= 1, "WSMQ_MAX_RECEIVE_COUNT: %d must be at least 1", c.MaxReceiveCount)
	check(c.ConnBuffer >= 1, "WSMQ_CONN_BUFFER: %d must be at least 1", c.ConnBuffer)
	check(c.SweepInterval >= 10*time.Millisecond, "WSMQ_SWEEP_INTERVAL: %s must be at least 10ms", c.SweepInterval)
	check(c.HotSweepInterval >= 10*time.Millisecond, "WSMQ_HOT_SWEEP_INTERVAL: %s must be at least 10ms", c.HotSweepInterval)
	check(c.Workers >= 1, "WSMQ_GATEWAY_WORKERS: %d must be at least 1", c.Workers)
	check(c.ReverifyInterval > 0, "WSMQ_REVERIFY_INTERVAL: must be positive")
	check(c.PingInterval > 0, "WSMQ_PING_INTERVAL: must be positive")
	check(c.WriteTimeout > 0, "WSMQ_WRITE_TIMEOUT: must be positive")
	check(c.ReadLimit >= 512, "WSMQ_READ_LIMIT: %d must be at least 512", c.ReadLimit)
	check(c.MaxConnsPerUser >= 1, "WSMQ_MAX_CONNS_PER_USER: must be at least 1")
	check(c.MaxSubsPerConn >= 1, "WSMQ_MAX_SUBS_PER_CONN: must be at least 1")
	check(c.ConnRatePerIP > 0, "WSMQ_CONN_RATE: must be positive")
	check(c.LoginRatePerIP > 0, "WSMQ_LOGIN_RATE: must be positive")
	check(c.ShutdownTimeout > 0, "WSMQ_SHUTDOWN_TIMEOUT: must be positive")
	check(c.AuthTimeout > 0, "WSMQ_AUTH_TIMEOUT: must be positive")
	return errs
}
