// Package config holds the publisher's settings, parsed once from flags with
// WSMQ_* environment fallbacks and validated before anything starts.
package config

import (
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Limits of RSMQ queue attributes (shared/RSMQ.md).
const (
	maxVTOrDelay   = 9_999_999
	minMaxSize     = 1024
	maxMaxSize     = 65536
	unlimitedSize  = -1
	minKeyLength   = 16
	maxGRPCMsgSize = 1 << 30
	maxBatch       = 1000 // rsmq.MaxBatch: one pipelined call per batch
)

// QueueDefaults are the attributes of queues the publisher creates on first send.
type QueueDefaults struct {
	VT      int // visibility timeout, seconds
	Delay   int // default delay, seconds
	MaxSize int // max message length in UTF-16 units, or -1 for unlimited
}

// Config is the publisher's whole configuration.
type Config struct {
	RedisURL        string        // redis:// or rediss:// URL
	Namespace       string        // RSMQ key namespace
	Listen          string        // gRPC listen address
	AdminListen     string        // HTTP /metrics /healthz /readyz; "" disables
	GRPCMaxMsgBytes int           // max gRPC message size, both directions
	MaxBatch        int           // most items per SendBatch
	Queue           QueueDefaults // attributes of queues created on first send
	CallTimeout     time.Duration // deadline of the Redis work of one RPC
	ShutdownTimeout time.Duration // how long in-flight calls may finish on SIGTERM
	HealthInterval  time.Duration // how often Redis is pinged for the health service
	Dev             bool          // dev mode: keys not required
	LogLevel        slog.Level

	// KeyDigests are the SHA-256 digests of the accepted caller keys; the keys
	// themselves are not kept.
	KeyDigests [][sha256.Size]byte

	TLSCert     string // PEM certificate file; with TLSKey enables TLS
	TLSKey      string // PEM private key file
	TLSClientCA string // PEM CA bundle; when set, clients must present a certificate it signed
}

// TLSEnabled reports whether the gRPC listener serves TLS.
func (c Config) TLSEnabled() bool { return c.TLSCert != "" }

// setting is one configuration entry: a flag, its environment variable and
// its default, parsed into the Config by apply.
type setting struct {
	flag, env, def, usage string
	secret                bool // never echoed in errors; env only
	apply                 func(c *Config, v string) error
}

// Environment variables this service reads. Other services' WSMQ_* variables
// may be present in a shared environment and are left alone, except names
// under the publisher's own prefix, which must be known.
const envPrefix = "WSMQ_PUBLISHER_"

func settings() []setting {
	return []setting{
		{flag: "redis-url", env: "WSMQ_REDIS_URL", def: "redis://127.0.0.1:6379/0", usage: "Redis URL",
			apply: func(c *Config, v string) error {
				u, err := url.Parse(v)
				if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss" && u.Scheme != "unix") {
					return errors.New("must be a redis://, rediss:// or unix:// URL")
				}
				c.RedisURL = v
				return nil
			}},
		{flag: "rsmq-ns", env: "WSMQ_RSMQ_NS", def: "rsmq", usage: "RSMQ key namespace",
			apply: func(c *Config, v string) error {
				if v == "" || strings.ContainsAny(v, ": \t\r\n") {
					return errors.New("must be non-empty without ':' or spaces")
				}
				c.Namespace = v
				return nil
			}},
		{flag: "listen", env: "WSMQ_PUBLISHER_LISTEN", def: "127.0.0.1:9092", usage: "gRPC listen address",
			apply: func(c *Config, v string) error { return hostPort(&c.Listen, v, false) }},
		{flag: "admin-listen", env: "WSMQ_PUBLISHER_ADMIN_LISTEN", def: "127.0.0.1:9192",
			usage: `HTTP admin address (/metrics /healthz /readyz); "" disables`,
			apply: func(c *Config, v string) error { return hostPort(&c.AdminListen, v, true) }},
		{flag: "grpc-max-msg-bytes", env: "WSMQ_GRPC_MAX_MSG_BYTES", def: strconv.Itoa(4 << 20), usage: "max gRPC message size in bytes",
			apply: func(c *Config, v string) error { return intIn(&c.GRPCMaxMsgBytes, v, 1024, maxGRPCMsgSize) }},
		{flag: "max-batch", env: "WSMQ_PUBLISHER_MAX_BATCH", def: "1000", usage: "most items per SendBatch",
			apply: func(c *Config, v string) error { return intIn(&c.MaxBatch, v, 1, maxBatch) }},
		{flag: "queue-vt", env: "WSMQ_QUEUE_VT", def: "30", usage: "visibility timeout (s) of queues created on send",
			apply: func(c *Config, v string) error { return intIn(&c.Queue.VT, v, 0, maxVTOrDelay) }},
		{flag: "queue-delay", env: "WSMQ_QUEUE_DELAY", def: "0", usage: "default delay (s) of queues created on send",
			apply: func(c *Config, v string) error { return intIn(&c.Queue.Delay, v, 0, maxVTOrDelay) }},
		{flag: "queue-maxsize", env: "WSMQ_QUEUE_MAXSIZE", def: "65536", usage: "maxsize of queues created on send (1024..65536 or -1)",
			apply: func(c *Config, v string) error {
				n, err := strconv.Atoi(v)
				if err != nil || (n != unlimitedSize && (n < minMaxSize || n > maxMaxSize)) {
					return fmt.Errorf("must be an integer between %d and %d, or -1", minMaxSize, maxMaxSize)
				}
				c.Queue.MaxSize = n
				return nil
			}},
		{flag: "call-timeout", env: "WSMQ_PUBLISHER_CALL_TIMEOUT", def: "2s", usage: "deadline of the Redis work of one RPC",
			apply: func(c *Config, v string) error {
				return durationIn(&c.CallTimeout, v, 10*time.Millisecond, time.Minute)
			}},
		{flag: "shutdown-timeout", env: "WSMQ_PUBLISHER_SHUTDOWN_TIMEOUT", def: "10s", usage: "grace period for in-flight calls on SIGTERM",
			apply: func(c *Config, v string) error { return durationIn(&c.ShutdownTimeout, v, 0, 10*time.Minute) }},
		{flag: "health-interval", env: "WSMQ_PUBLISHER_HEALTH_INTERVAL", def: "1s", usage: "Redis ping interval of the health service",
			apply: func(c *Config, v string) error {
				return durationIn(&c.HealthInterval, v, 10*time.Millisecond, time.Minute)
			}},
		{flag: "dev", env: "WSMQ_DEV", def: "0", usage: "dev mode: caller keys not required",
			apply: func(c *Config, v string) error { return boolean(&c.Dev, v) }},
		{flag: "log-level", env: "WSMQ_LOG_LEVEL", def: "info", usage: "debug, info, warn or error",
			apply: func(c *Config, v string) error {
				if err := c.LogLevel.UnmarshalText([]byte(v)); err != nil {
					return errors.New("must be debug, info, warn or error")
				}
				return nil
			}},
		{env: "WSMQ_PUBLISHER_KEYS", secret: true, usage: "comma-separated caller keys (env only)",
			apply: func(c *Config, v string) error {
				c.KeyDigests = nil
				if v == "" {
					return nil
				}
				for i, k := range strings.Split(v, ",") {
					k = strings.TrimSpace(k)
					if k == "" {
						return fmt.Errorf("key %d is empty", i+1)
					}
					if strings.IndexFunc(k, unicode.IsSpace) >= 0 || !isPrintableASCII(k) {
						return fmt.Errorf("key %d must be printable ASCII without spaces", i+1)
					}
					// WSMQ_DEV is applied before this setting (order of settings()).
					if !c.Dev && len(k) < minKeyLength {
						return fmt.Errorf("key %d is shorter than %d characters (allowed only with WSMQ_DEV=1)", i+1, minKeyLength)
					}
					c.KeyDigests = append(c.KeyDigests, sha256.Sum256([]byte(k)))
				}
				return nil
			}},
		{flag: "tls-cert", env: "WSMQ_TLS_CERT", usage: "PEM certificate file (enables TLS with -tls-key)",
			apply: func(c *Config, v string) error { c.TLSCert = v; return nil }},
		{flag: "tls-key", env: "WSMQ_TLS_KEY", usage: "PEM private key file",
			apply: func(c *Config, v string) error { c.TLSKey = v; return nil }},
		{flag: "tls-client-ca", env: "WSMQ_TLS_CLIENT_CA", usage: "PEM CA bundle; requires client certificates (mTLS)",
			apply: func(c *Config, v string) error { c.TLSClientCA = v; return nil }},
	}
}

// Parse reads the configuration: a flag when given, else its environment
// variable when set, else the default. lookupEnv is os.LookupEnv in
// production; environ (os.Environ()) is scanned for unknown WSMQ_PUBLISHER_*
// names and near-miss spellings of known WSMQ_* names. Every problem is named
// in the returned error.
func Parse(args []string, lookupEnv func(string) (string, bool), environ []string) (Config, error) {
	all := settings()
	fs := flag.NewFlagSet("publisher", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	flagVals := map[string]*string{}
	for _, s := range all {
		if s.flag == "" {
			continue
		}
		flagVals[s.flag] = fs.String(s.flag, s.def, fmt.Sprintf("%s (env %s)", s.usage, s.env))
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return Config{}, err
		}
		return Config{}, fmt.Errorf("config: %w", err)
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("config: unexpected arguments %q", fs.Args())
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })

	var errs []error
	errs = append(errs, unknownEnv(all, environ)...)
	var c Config
	badKeys := false
	for _, s := range all {
		v, from := s.def, "default"
		if s.flag != "" && given[s.flag] {
			v, from = *flagVals[s.flag], "flag -"+s.flag
		} else if ev, ok := lookupEnv(s.env); ok {
			v, from = ev, s.env
		}
		if err := s.apply(&c, v); err != nil {
			badKeys = badKeys || s.env == "WSMQ_PUBLISHER_KEYS"
			if s.secret {
				errs = append(errs, fmt.Errorf("config: %s: %w", from, err))
			} else {
				errs = append(errs, fmt.Errorf("config: %s=%q: %w", from, v, err))
			}
		}
	}
	if len(c.KeyDigests) == 0 && !c.Dev {
		if !badKeys { // a malformed key was reported already
			errs = append(errs, errors.New("config: WSMQ_PUBLISHER_KEYS is required outside dev mode (set WSMQ_DEV=1 for a keyless dev publisher)"))
		}
	}
	errs = append(errs, c.check()...)
	if len(errs) > 0 {
		return Config{}, errors.Join(errs...)
	}
	return c, nil
}

// check validates rules that involve several settings.
func (c Config) check() []error {
	var errs []error
	if (c.TLSCert == "") != (c.TLSKey == "") {
		errs = append(errs, errors.New("config: WSMQ_TLS_CERT and WSMQ_TLS_KEY must be set together"))
	}
	if c.TLSClientCA != "" && c.TLSCert == "" {
		errs = append(errs, errors.New("config: WSMQ_TLS_CLIENT_CA needs WSMQ_TLS_CERT and WSMQ_TLS_KEY"))
	}
	if c.AdminListen != "" && c.AdminListen == c.Listen && !strings.HasSuffix(c.Listen, ":0") {
		errs = append(errs, fmt.Errorf("config: WSMQ_PUBLISHER_ADMIN_LISTEN and WSMQ_PUBLISHER_LISTEN are both %q", c.Listen))
	}
	return errs
}

// unknownEnv reports WSMQ_PUBLISHER_* variables this service does not know,
// and other WSMQ_* variables one edit away from a known name (likely typos).
func unknownEnv(all []setting, environ []string) []error {
	known := map[string]bool{}
	var names []string
	for _, s := range all {
		known[s.env] = true
		names = append(names, s.env)
	}
	var errs []error
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, "WSMQ_") || known[name] {
			continue
		}
		near := ""
		for _, n := range names {
			if editDistance(name, n) <= 1 {
				near = n
				break
			}
		}
		switch {
		case near != "":
			errs = append(errs, fmt.Errorf("config: unknown variable %s (did you mean %s?)", name, near))
		case strings.HasPrefix(name, envPrefix):
			errs = append(errs, fmt.Errorf("config: unknown variable %s (known: %s)", name, strings.Join(prefixed(names), ", ")))
		}
	}
	return errs
}

func prefixed(names []string) []string {
	var out []string
	for _, n := range names {
		if strings.HasPrefix(n, envPrefix) {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

// Usage describes every flag and variable, for -h.
func Usage() string {
	var b strings.Builder
	b.WriteString("Usage of publisher:\n")
	for _, s := range settings() {
		name := "(env only)"
		if s.flag != "" {
			name = "-" + s.flag
		}
		fmt.Fprintf(&b, "  %-22s %-32s %s", name, s.env, s.usage)
		if s.def != "" {
			fmt.Fprintf(&b, " (default %q)", s.def)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

func hostPort(dst *string, v string, emptyOK bool) error {
	if v == "" && emptyOK {
		*dst = ""
		return nil
	}
	if _, port, err := net.SplitHostPort(v); err != nil {
		return errors.New("must be host:port")
	} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return errors.New("port must be 0..65535")
	}
	*dst = v
	return nil
}

func intIn(dst *int, v string, lo, hi int) error {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < lo || n > hi {
		return fmt.Errorf("must be an integer between %d and %d", lo, hi)
	}
	*dst = n
	return nil
}

func durationIn(dst *time.Duration, v string, lo, hi time.Duration) error {
	d, err := time.ParseDuration(strings.TrimSpace(v))
	if err != nil || d < lo || d > hi {
		return fmt.Errorf("must be a duration between %s and %s (e.g. 2s)", lo, hi)
	}
	*dst = d
	return nil
}

func boolean(dst *bool, v string) error {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "1", "true", "yes", "on":
		*dst = true
	case "0", "false", "no", "off", "":
		*dst = false
	default:
		return errors.New("must be 1 or 0 (true/false)")
	}
	return nil
}

func isPrintableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// editDistance is the optimal-string-alignment distance of two short ASCII
// names: insertions, deletions, substitutions and swaps of neighbours.
func editDistance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}
