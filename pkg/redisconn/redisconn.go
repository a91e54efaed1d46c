// Package redisconn turns a WSMQ_REDIS_URL into a go-redis client: the one
// parser of Redis URLs that every wsmq program uses, and the client timeouts
// tuned for it.
package redisconn

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Schemes lists the URL forms ParseURL accepts, for usage texts.
const Schemes = "redis://[user:password@]host:port[/db], rediss:// (TLS) or unix:///path"

// ParseURL parses a Redis URL: redis://, rediss:// or unix://. Errors name
// what is wrong and never echo a password.
func ParseURL(raw string) (*redis.Options, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, errors.New("not a URL (want " + Schemes + ")")
	}
	switch u.Scheme {
	case "redis", "rediss":
		if u.Host == "" {
			return nil, errors.New("no host:port (want " + Schemes + ")")
		}
	case "unix":
		if u.Path == "" {
			return nil, errors.New("no socket path (want unix:///path)")
		}
	default:
		return nil, fmt.Errorf("scheme %q is not redis, rediss or unix", u.Scheme)
	}
	opts, err := redis.ParseURL(raw)
	if err != nil {
		return nil, fmt.Errorf("invalid Redis URL (want %s): %s", Schemes, redact(err, u))
	}
	return opts, nil
}

// Redact returns raw with any password replaced by "xxxxx", for logs and
// errors; text with an '@' that is not a URL's user part is hidden whole.
func Redact(raw string) string {
	u, err := url.Parse(raw)
	switch {
	case err != nil || u.User == nil:
		if strings.Contains(raw, "@") {
			return "(hidden: not a URL with a user part, but it may hold a password)"
		}
		return raw
	}
	// The whole user part: a lone "user" in redis://secret@host is taken
	// as the password by some clients.
	u.User = url.User("xxxxx")
	return u.String()
}

// redact drops the URL's password from a go-redis parse error.
func redact(err error, u *url.URL) string {
	msg := err.Error()
	if p, ok := u.User.Password(); ok && p != "" {
		return "(details hidden: the URL holds a password)"
	}
	return msg
}

// Tuning is how a program uses its client; zero fields keep the defaults.
type Tuning struct {
	PoolSize     int           // connections; 0: go-redis's default (10 per CPU)
	DialTimeout  time.Duration // default 2s
	IOTimeout    time.Duration // read and write deadline, default 3s
	MaxRetries   int           // retries of a failed command; -1: none; 0: go-redis's default (3)
	FailFast     bool          // short dial retries and pool wait, for request paths
	CtxDeadlines bool          // honour context deadlines on every call
}

// DefaultDialTimeout and DefaultIOTimeout are Tuning's defaults.
const (
	DefaultDialTimeout = 2 * time.Second
	DefaultIOTimeout   = 3 * time.Second
)

// New makes a client for the URL with t applied.
func New(raw string, t Tuning) (*redis.Client, error) {
	opts, err := ParseURL(raw)
	if err != nil {
		return nil, fmt.Errorf("WSMQ_REDIS_URL: %w", err)
	}
	Apply(opts, t)
	return redis.NewClient(opts), nil
}

// Apply sets t on opts.
func Apply(opts *redis.Options, t Tuning) {
	if t.DialTimeout == 0 {
		t.DialTimeout = DefaultDialTimeout
	}
	if t.IOTimeout == 0 {
		t.IOTimeout = DefaultIOTimeout
	}
	if t.PoolSize > 0 {
		opts.PoolSize = t.PoolSize
	}
	opts.DialTimeout = t.DialTimeout
	opts.ReadTimeout = t.IOTimeout
	opts.WriteTimeout = t.IOTimeout
	if t.MaxRetries != 0 {
		opts.MaxRetries = t.MaxRetries
	}
	if t.FailFast {
		opts.DialerRetries = 2
		opts.DialerRetryTimeout = 50 * time.Millisecond
		opts.PoolTimeout = t.DialTimeout + t.IOTimeout
	}
	opts.ContextTimeoutEnabled = t.CtxDeadlines
}

// MemoryUsage reads used_memory and maxmemory (bytes) from Redis's INFO
// memory, one round trip. max is 0 when Redis has no memory limit.
func MemoryUsage(ctx context.Context, rdb redis.Cmdable) (used, max int64, err error) {
	info, err := rdb.Info(ctx, "memory").Result()
	if err != nil {
		return 0, 0, fmt.Errorf("redis INFO memory: %w", err)
	}
	var haveUsed, haveMax bool
	for _, line := range strings.Split(info, "\n") {
		name, value, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok {
			continue
		}
		switch name {
		case "used_memory":
			used, err = strconv.ParseInt(value, 10, 64)
			haveUsed = err == nil
		case "maxmemory":
			max, err = strconv.ParseInt(value, 10, 64)
			haveMax = err == nil
		}
	}
	if !haveUsed || !haveMax {
		return 0, 0, errors.New("redis INFO memory: no used_memory or maxmemory field")
	}
	return used, max, nil
}

// MemoryRatio is used/max, the fill level MemoryUsage reports; 0 when max
// is 0 (no limit).
func MemoryRatio(used, max int64) float64 {
	if max <= 0 {
		return 0
	}
	return float64(used) / float64(max)
}
