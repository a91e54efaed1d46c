// Package config parses the auth service's configuration from flags with
// WSMQ_* environment fallbacks, once, and validates it.
package config

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/wsmq/wsmq/services/auth/internal/passwords"
	"github.com/wsmq/wsmq/services/auth/internal/store"
	"github.com/wsmq/wsmq/services/auth/internal/tokens"
)

// Dev-mode credentials. They are public: anyone can forge tokens signed
// with them. They are accepted only with WSMQ_DEV=1.
const (
	DevJWTSecret  = "wsmq-DEV-ONLY-insecure-jwt-secret-never-use-in-production"
	DevJWTKeyID   = "dev"
	DevAdminToken = "dev-admin-token"
)

// MinAdminTokenLen is the shortest admin token accepted outside dev mode.
const MinAdminTokenLen = 16

// DefaultAccessTokenTTL is the default absolute lifetime of an access token.
const DefaultAccessTokenTTL = 90 * 24 * time.Hour

// Config is the auth service's configuration.
type Config struct {
	MongoURI     string
	MongoDB      string
	MongoTimeout time.Duration

	// JWTSecret is a single signing key (WSMQ_JWT_SECRET).
	JWTSecret string
	// JWTKeysFile names a file of "kid secret" lines, the last signs.
	JWTKeysFile string
	JWTTTL      time.Duration
	JWTIssuer   string
	// JWTKeys is the key set resolved from JWTSecret, JWTKeysFile or the
	// dev secret by Validate.
	JWTKeys []tokens.Key

	AccessTokenTTL time.Duration
	BcryptCost     int

	Listen        string
	MetricsListen string
	AdminToken    string
	Dev           bool
	LogLevel      slog.Level
}

// Default returns the defaults.
func Default() Config {
	return Config{
		MongoURI:       "mongodb://127.0.0.1:27017",
		MongoDB:        "wsmq",
		MongoTimeout:   store.DefaultTimeout,
		JWTTTL:         tokens.DefaultTTL,
		JWTIssuer:      tokens.DefaultIssuer,
		AccessTokenTTL: DefaultAccessTokenTTL,
		BcryptCost:     passwords.DefaultCost,
		Listen:         "127.0.0.1:9091",
		MetricsListen:  "127.0.0.1:9191",
		LogLevel:       slog.LevelInfo,
	}
}

// setting is one flag with its environment variable.
type setting struct {
	flag, env, usage string
	set              func(string) error
}

func settings(c *Config) []setting {
	str := func(p *string) func(string) error { return func(v string) error { *p = v; return nil } }
	dur := func(p *time.Duration, min time.Duration) func(string) error {
		return func(v string) error {
			d, err := time.ParseDuration(v)
			if err != nil {
				return fmt.Errorf("not a duration (like 15m, 3s): %q", v)
			}
			if d < min {
				return fmt.Errorf("must be at least %s", min)
			}
			*p = d
			return nil
		}
	}
	return []setting{
		{"mongo-uri", "WSMQ_MONGO_URI", "MongoDB connection string", str(&c.MongoURI)},
		{"mongo-db", "WSMQ_MONGO_DB", "MongoDB database", str(&c.MongoDB)},
		{"mongo-timeout", "WSMQ_MONGO_TIMEOUT", "deadline of every MongoDB operation", dur(&c.MongoTimeout, time.Millisecond)},
		{"jwt-secret", "WSMQ_JWT_SECRET", "HS256 secret, at least 32 bytes (prefer the environment or a keys file to a flag)", str(&c.JWTSecret)},
		{"jwt-keys-file", "WSMQ_JWT_KEYS_FILE", `file of "kid secret" lines; the last key signs, all verify`, str(&c.JWTKeysFile)},
		{"jwt-ttl", "WSMQ_JWT_TTL", "JWT lifetime", dur(&c.JWTTTL, time.Second)},
		{"jwt-issuer", "WSMQ_JWT_ISSUER", "JWT iss claim", str(&c.JWTIssuer)},
		{"access-token-ttl", "WSMQ_ACCESS_TOKEN_TTL", "absolute lifetime of an access token (0: none)", dur(&c.AccessTokenTTL, 0)},
		{"bcrypt-cost", "WSMQ_BCRYPT_COST", "bcrypt cost of new password hashes", func(v string) error {
			n, err := strconv.Atoi(v)
			if err != nil {
				return fmt.Errorf("not an integer: %q", v)
			}
			c.BcryptCost = n
			return nil
		}},
		{"listen", "WSMQ_AUTH_LISTEN", "gRPC listen address", str(&c.Listen)},
		{"metrics-listen", "WSMQ_AUTH_METRICS_LISTEN", `HTTP /metrics, /healthz, /readyz address ("" disables)`, str(&c.MetricsListen)},
		{"admin-token", "WSMQ_AUTH_ADMIN_TOKEN", "admin credential, at least 16 characters (prefer the environment)", str(&c.AdminToken)},
		{"dev", "WSMQ_DEV", "dev mode: dev secrets allowed, demo/demo user (1/true/0/false)", func(v string) error {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return fmt.Errorf("not a boolean: %q", v)
			}
			c.Dev = b
			return nil
		}},
		{"log-level", "WSMQ_LOG_LEVEL", "debug, info, warn or error", func(v string) error {
			return c.LogLevel.UnmarshalText([]byte(v))
		}},
	}
}

// Parse reads the configuration: defaults, then the environment (through
// getenv), then flags in args. It returns the arguments left after the flags.
// Malformed values fail, naming the flag or variable. Parse does not check
// secrets; Validate does, for the commands that need them.
func Parse(args []string, getenv func(string) string, output io.Writer) (Config, []string, error) {
	c := Default()
	for _, s := range settings(&c) {
		if v := getenv(s.env); v != "" {
			if err := s.set(v); err != nil {
				return Config{}, nil, fmt.Errorf("%s: %w", s.env, err)
			}
		}
	}
	return ParseFlags(c, args, output)
}

// ParseFlags parses flags in args on top of c: Parse uses it, and so does
// `auth serve -flags` for flags after the command word.
func ParseFlags(c Config, args []string, output io.Writer) (Config, []string, error) {
	fs := flag.NewFlagSet("auth", flag.ContinueOnError)
	fs.SetOutput(output)
	for _, s := range settings(&c) {
		fs.Func(s.flag, s.usage+" (env "+s.env+")", s.set)
	}
	fs.Usage = func() {
		_, _ = fmt.Fprintf(fs.Output(), "usage: auth [flags] [serve [flags] | user add|passwd|revoke|rm NAME | user ls | help]\n\nflags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return Config{}, nil, err
	}
	if err := c.validateCommon(); err != nil {
		return Config{}, nil, err
	}
	return c, fs.Args(), nil
}

func (c *Config) validateCommon() error {
	if !strings.HasPrefix(c.MongoURI, "mongodb://") && !strings.HasPrefix(c.MongoURI, "mongodb+srv://") {
		return errors.New("WSMQ_MONGO_URI: must start with mongodb:// or mongodb+srv://")
	}
	if c.MongoDB == "" || strings.ContainsAny(c.MongoDB, "/\\. \"$") {
		return fmt.Errorf("WSMQ_MONGO_DB: invalid database name %q", c.MongoDB)
	}
	if c.BcryptCost < 4 || c.BcryptCost > 31 {
		return fmt.Errorf("WSMQ_BCRYPT_COST: %d outside 4..31", c.BcryptCost)
	}
	if c.JWTIssuer == "" {
		return errors.New("WSMQ_JWT_ISSUER: empty")
	}
	return nil
}

// Validate checks what serving needs (listen addresses, JWT keys, admin
// token) and resolves JWTKeys. Outside dev mode a missing or short secret or
// admin token is an error; in dev mode the built-in dev values fill in.
// It returns warnings to log.
func (c *Config) Validate() (warnings []string, err error) {
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return nil, fmt.Errorf("WSMQ_AUTH_LISTEN: %w", err)
	}
	if c.MetricsListen != "" {
		if _, _, err := net.SplitHostPort(c.MetricsListen); err != nil {
			return nil, fmt.Errorf("WSMQ_AUTH_METRICS_LISTEN: %w", err)
		}
	}
	if !c.Dev && c.BcryptCost < 10 {
		return nil, fmt.Errorf("WSMQ_BCRYPT_COST: %d is too weak outside dev mode (at least 10)", c.BcryptCost)
	}
	switch {
	case c.JWTSecret != "" && c.JWTKeysFile != "":
		return nil, errors.New("WSMQ_JWT_SECRET and WSMQ_JWT_KEYS_FILE are both set: use one")
	case c.JWTKeysFile != "":
		keys, err := ReadKeysFile(c.JWTKeysFile)
		if err != nil {
			return nil, fmt.Errorf("WSMQ_JWT_KEYS_FILE: %w", err)
		}
		for _, k := range keys {
			if !c.Dev && len(k.Secret) < tokens.MinSecretLen {
				return nil, fmt.Errorf("WSMQ_JWT_KEYS_FILE: key %q: secret shorter than %d bytes", k.ID, tokens.MinSecretLen)
			}
		}
		c.JWTKeys = keys
	case c.JWTSecret != "":
		if !c.Dev && len(c.JWTSecret) < tokens.MinSecretLen {
			return nil, fmt.Errorf("WSMQ_JWT_SECRET: shorter than %d bytes", tokens.MinSecretLen)
		}
		c.JWTKeys = []tokens.Key{{ID: tokens.KeyID([]byte(c.JWTSecret)), Secret: []byte(c.JWTSecret)}}
	case c.Dev:
		c.JWTKeys = []tokens.Key{{ID: DevJWTKeyID, Secret: []byte(DevJWTSecret)}}
		warnings = append(warnings, "DEV MODE: JWTs are signed with the public built-in dev secret; set WSMQ_JWT_SECRET outside development")
	default:
		return nil, errors.New("WSMQ_JWT_SECRET (or WSMQ_JWT_KEYS_FILE) is required outside dev mode (WSMQ_DEV=1)")
	}
	switch {
	case c.AdminToken != "":
		if !c.Dev && len(c.AdminToken) < MinAdminTokenLen {
			return nil, fmt.Errorf("WSMQ_AUTH_ADMIN_TOKEN: shorter than %d characters", MinAdminTokenLen)
		}
	case c.Dev:
		c.AdminToken = DevAdminToken
		warnings = append(warnings, "DEV MODE: the admin token is the public built-in "+strconv.Quote(DevAdminToken)+"; set WSMQ_AUTH_ADMIN_TOKEN outside development")
	default:
		return nil, errors.New("WSMQ_AUTH_ADMIN_TOKEN is required outside dev mode (WSMQ_DEV=1)")
	}
	return warnings, nil
}

// ReadKeysFile reads JWT keys: one "kid secret" per line, blank lines and
// lines starting with # ignored; the last key signs.
func ReadKeysFile(path string) ([]tokens.Key, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseKeys(b)
}

// ParseKeys parses the keys-file format (see ReadKeysFile).
func ParseKeys(b []byte) ([]tokens.Key, error) {
	var keys []tokens.Key
	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 2 {
			return nil, fmt.Errorf("line %d: want \"kid secret\"", n)
		}
		if !tokens.ValidKeyID(f[0]) {
			return nil, fmt.Errorf("line %d: invalid kid %q (1-64 of [A-Za-z0-9._-])", n, f[0])
		}
		if seen[f[0]] {
			return nil, fmt.Errorf("line %d: duplicate kid %q", n, f[0])
		}
		seen[f[0]] = true
		keys = append(keys, tokens.Key{ID: f[0], Secret: []byte(f[1])})
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		return nil, errors.New("no keys")
	}
	return keys, nil
}
