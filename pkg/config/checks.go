package config

import (
	"errors"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/wsmq/wsmq/pkg/redisconn"
	"github.com/wsmq/wsmq/pkg/rsmq"
)

// HostPort checks a listen or dial address, host:port with a port 0..65535.
func HostPort(v string) error {
	_, port, err := net.SplitHostPort(v)
	if err != nil {
		return errors.New("must be host:port")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return errors.New("port must be 0..65535")
	}
	return nil
}

// OptionalHostPort is HostPort, or "" for "off".
func OptionalHostPort(v string) error {
	if v == "" {
		return nil
	}
	return HostPort(v)
}

// NotEmpty refuses "".
func NotEmpty(v string) error {
	if strings.TrimSpace(v) == "" {
		return errors.New("must not be empty")
	}
	return nil
}

// List splits a comma-separated value, dropping blanks.
func List(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// Common settings: declared here once, so every program that reads them
// spells, defaults and checks them the same way.

// DefaultRedisURL is the local Redis of `make run`.
const DefaultRedisURL = "redis://127.0.0.1:6379/0"

// RedisURL declares WSMQ_REDIS_URL (-redis-url), checked by the parser the
// client is built with (redisconn.ParseURL).
func (s *Set) RedisURL(p *string) { s.RedisURLFlag(p, "redis-url") }

// RedisURLFlag is RedisURL with another flag name, for a program whose
// documented flag predates the services' (wsmqctl's -redis).
func (s *Set) RedisURLFlag(p *string, flag string) {
	s.String(p, flag, "WSMQ_REDIS_URL", DefaultRedisURL, "Redis URL: "+redisconn.Schemes,
		func(v string) error { _, err := redisconn.ParseURL(v); return err })
	s.entries[len(s.entries)-1].redact = redisconn.Redact
}

// Namespace declares WSMQ_RSMQ_NS (-rsmq-ns), the RSMQ key namespace.
func (s *Set) Namespace(p *string) { s.NamespaceFlag(p, "rsmq-ns") }

// NamespaceFlag is Namespace with another flag name (wsmqctl's -ns).
func (s *Set) NamespaceFlag(p *string, flag string) {
	s.String(p, flag, "WSMQ_RSMQ_NS", rsmq.DefaultNamespace, "RSMQ key namespace", rsmq.ValidateNamespace)
}

// Dev declares WSMQ_DEV (-dev).
func (s *Set) Dev(p *bool, usage string) {
	s.Bool(p, "dev", "WSMQ_DEV", false, "dev mode: "+usage)
}

// LogLevel declares WSMQ_LOG_LEVEL (-log-level).
func (s *Set) LogLevel(p *slog.Level) {
	s.Func("log-level", "WSMQ_LOG_LEVEL", "info", "log level: debug, info, warn or error", func(v string) error {
		if err := p.UnmarshalText([]byte(strings.TrimSpace(v))); err != nil {
			return errors.New("must be debug, info, warn or error")
		}
		return nil
	})
}

// QueueDefaults declares WSMQ_QUEUE_VT, WSMQ_QUEUE_DELAY and
// WSMQ_QUEUE_MAXSIZE: the attributes of queues wsmq creates (on send, on
// subscribe, from the demo page), Node rsmq's defaults unless set.
func (s *Set) QueueDefaults(p *rsmq.QueueConfig) {
	d := rsmq.DefaultQueueConfig()
	s.Int(&p.VT, "queue-vt", "WSMQ_QUEUE_VT", d.VT, 0, rsmq.MaxVTOrDelay, "visibility timeout (s) of queues wsmq creates")
	s.Int(&p.Delay, "queue-delay", "WSMQ_QUEUE_DELAY", d.Delay, 0, rsmq.MaxVTOrDelay, "default delay (s) of queues wsmq creates")
	s.Func("queue-maxsize", "WSMQ_QUEUE_MAXSIZE", strconv.Itoa(d.MaxSize), "maxsize of queues wsmq creates (1024..65536, or -1: unlimited)",
		func(v string) error {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil || (n != rsmq.MaxSizeUnlimited && (n < rsmq.MinMaxSize || n > rsmq.MaxMaxSize)) {
				return errors.New("must be an integer between 1024 and 65536, or -1")
			}
			p.MaxSize = n
			return nil
		})
}

// ShutdownTimeout declares a service's graceful-stop deadline.
func (s *Set) ShutdownTimeout(p *time.Duration, env string, def time.Duration) {
	s.Duration(p, "shutdown-timeout", env, def, 0, 10*time.Minute, "graceful shutdown deadline")
}
