// Package config parses the auth service's configuration from flags with
// WSMQ_* environment fallbacks, once, and validates it.
package config

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/wsmq/wsmq/pkg/config"
	"github.com/wsmq/wsmq/services/auth/internal/authn"
	"github.com/wsmq/wsmq/services/auth/internal/passwords"
	"github.com/wsmq/wsmq/services/auth/internal/store"
	"github.com/wsmq/wsmq/services/auth/internal/throttle"
	"github.com/wsmq/wsmq/services/auth/internal/tokens"
)

// Dev-mode credentials. They are public: anyone can forge tokens signed
// with them. They are accepted only with WSMQ_DEV=1.
const (
	DevJWTSecret  = "wsmq-DEV-ONLY-insecure-jwt-secret-never-use-in-production"
	DevJWTKeyID   = "dev"
	DevAdminToken = "dev-admin-token"
	// DevGatewayToken is the dev-mode credential of WatchRevocations (the
	// gateway's default in dev mode too).
	DevGatewayToken = "dev-gateway-token"
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
	// GatewayToken is the credential gateways present to
	// WatchRevocations (WSMQ_AUTH_GATEWAY_TOKEN).
	GatewayToken string
	Dev          bool
	LogLevel     slog.Level

	// TLSCert and TLSKey enable TLS on the gRPC listener; TLSClientCA
	// then requires client certificates it signed (mTLS).
	TLSCert, TLSKey, TLSClientCA string

	// SessionCacheTTL is how long a JWT check trusts a user read.
	SessionCacheTTL time.Duration
	// LoginRate is Authenticate calls per second per client address (a
	// gateway's client_address, else the caller's).
	LoginRate float64
	// LoginBackoff and LoginMaxBackoff shape the per-name back-off.
	LoginBackoff, LoginMaxBackoff time.Duration
}

// Defaults of the auth service's own settings.
const (
	DefaultMongoURI      = "mongodb://127.0.0.1:27017"
	DefaultMongoDB       = "wsmq"
	DefaultListen        = "127.0.0.1:9091"
	DefaultMetricsListen = "127.0.0.1:9191"
	minBcryptCost        = 4
	maxBcryptCost        = 31
)

// Settings is the auth binary's configuration as pkg/config reads it.
type Settings struct {
	set *config.Set
	cfg *Config
}

// NewSettings declares every setting on a fresh Config.
func NewSettings() *Settings {
	c := &Config{}
	s := config.NewSet("auth", "WSMQ_AUTH_")
	// The gateway's, in a shared environment.
	s.Others("WSMQ_AUTH_ADDR", "WSMQ_AUTH_TIMEOUT", "WSMQ_AUTH_TLS", "WSMQ_AUTH_TLS_CA",
		"WSMQ_AUTH_TLS_CLIENT_CERT", "WSMQ_AUTH_TLS_CLIENT_KEY", "WSMQ_AUTH_TLS_SERVER_NAME")
	s.String(&c.MongoURI, "mongo-uri", "WSMQ_MONGO_URI", DefaultMongoURI, "MongoDB connection string", func(v string) error {
		if !strings.HasPrefix(v, "mongodb://") && !strings.HasPrefix(v, "mongodb+srv://") {
			return errors.New("must start with mongodb:// or mongodb+srv://")
		}
		return nil
	})
	s.String(&c.MongoDB, "mongo-db", "WSMQ_MONGO_DB", DefaultMongoDB, "MongoDB database", func(v string) error {
		if v == "" || strings.ContainsAny(v, "/\\. \"$") {
			return errors.New("invalid database name")
		}
		return nil
	})
	s.Duration(&c.MongoTimeout, "mongo-timeout", "WSMQ_MONGO_TIMEOUT", store.DefaultTimeout, time.Millisecond, time.Hour, "deadline of every MongoDB operation")
	s.String(&c.JWTSecret, "jwt-secret", "WSMQ_JWT_SECRET", "", "HS256 secret, at least 32 bytes (prefer the environment or a keys file to a flag)")
	s.String(&c.JWTKeysFile, "jwt-keys-file", "WSMQ_JWT_KEYS_FILE", "", `file of "kid secret" lines; the last key signs, all verify`)
	s.Duration(&c.JWTTTL, "jwt-ttl", "WSMQ_JWT_TTL", tokens.DefaultTTL, time.Second, 24*time.Hour, "JWT lifetime")
	s.String(&c.JWTIssuer, "jwt-issuer", "WSMQ_JWT_ISSUER", tokens.DefaultIssuer, "JWT iss claim", config.NotEmpty)
	s.Duration(&c.AccessTokenTTL, "access-token-ttl", "WSMQ_ACCESS_TOKEN_TTL", DefaultAccessTokenTTL, 0, 10*365*24*time.Hour, "absolute lifetime of an access token (0: none)")
	s.Int(&c.BcryptCost, "bcrypt-cost", "WSMQ_BCRYPT_COST", passwords.DefaultCost, minBcryptCost, maxBcryptCost, "bcrypt cost of new password hashes")
	s.String(&c.Listen, "listen", "WSMQ_AUTH_LISTEN", DefaultListen, "gRPC listen address", config.HostPort)
	s.String(&c.MetricsListen, "metrics-listen", "WSMQ_AUTH_METRICS_LISTEN", DefaultMetricsListen, `HTTP admin address (/metrics /healthz /readyz); "" disables`, config.OptionalHostPort)
	s.String(&c.AdminToken, "admin-token", "WSMQ_AUTH_ADMIN_TOKEN", "", "admin credential, at least 16 characters (prefer the environment)")
	s.String(&c.GatewayToken, "gateway-token", "WSMQ_AUTH_GATEWAY_TOKEN", "", "credential of WatchRevocations for gateways, at least 16 characters (the admin token works too)")
	s.String(&c.TLSCert, "tls-cert", "WSMQ_AUTH_TLS_CERT", "", "PEM certificate file of the gRPC listener (enables TLS with -tls-key)")
	s.String(&c.TLSKey, "tls-key", "WSMQ_AUTH_TLS_KEY", "", "PEM private key file of the gRPC listener")
	s.String(&c.TLSClientCA, "tls-client-ca", "WSMQ_AUTH_TLS_CLIENT_CA", "", "PEM CA bundle; requires client certificates it signed (mTLS)")
	s.Duration(&c.SessionCacheTTL, "session-cache-ttl", "WSMQ_AUTH_SESSION_CACHE_TTL", authn.DefaultSessionCacheTTL, time.Millisecond, time.Minute,
		"how long a JWT check trusts its user read (the window in which another auth replica's revocation is not yet seen by this one's JWT checks)")
	s.Float(&c.LoginRate, "login-rate", "WSMQ_AUTH_LOGIN_RATE", throttle.DefaultRatePerIP, 0.001, 1e9, "Authenticate calls per second per client address (the one a gateway names with its credential, else the caller's), burst twice that")
	s.Duration(&c.LoginBackoff, "login-backoff", "WSMQ_AUTH_LOGIN_BACKOFF", throttle.DefaultBackoff, time.Millisecond, time.Hour,
		"wait imposed on a user name after 3 failed logins in a row, doubling per further failure")
	s.Duration(&c.LoginMaxBackoff, "login-max-backoff", "WSMQ_AUTH_LOGIN_MAX_BACKOFF", throttle.DefaultMaxBackoff, time.Millisecond, 24*time.Hour, "longest per-name wait")
	s.Check(func() error {
		if (c.TLSCert == "") != (c.TLSKey == "") {
			return errors.New("WSMQ_AUTH_TLS_CERT and WSMQ_AUTH_TLS_KEY must be set together")
		}
		if c.TLSClientCA != "" && c.TLSCert == "" {
			return errors.New("WSMQ_AUTH_TLS_CLIENT_CA needs WSMQ_AUTH_TLS_CERT and WSMQ_AUTH_TLS_KEY")
		}
		return nil
	})
	s.Dev(&c.Dev, "dev secrets allowed, demo/demo user")
	s.LogLevel(&c.LogLevel)
	return &Settings{set: s, cfg: c}
}

// Parse reads the configuration (pkg/config's rules) and returns the
// arguments left after the flags: the command. Every malformed value is
// reported at once. Parse does not check secrets; Validate does, for the
// commands that need them.
func (s *Settings) Parse(args []string, env config.Env) (Config, []string, error) {
	rest, err := s.set.Parse(args, env)
	return *s.cfg, rest, err
}

// ParseFlags applies flags given after the command word (`auth serve
// -listen ...`) on top of Parse.
func (s *Settings) ParseFlags(args []string) (Config, []string, error) {
	rest, err := s.set.ParseFlags(args)
	return *s.cfg, rest, err
}

// Usage describes every flag and variable.
func (s *Settings) Usage() string { return s.set.Usage() }

// Validate checks what serving needs (listen addresses, JWT keys, admin
// token) and resolves JWTKeys. Outside dev mode a missing or short secret or
// admin token is an error; in dev mode the built-in dev values fill in.
// Like Parse, it reports every problem at once, each naming its variable.
// It returns warnings to log.
func (c *Config) Validate() (warnings []string, err error) {
	var errs []error
	if !c.Dev && c.BcryptCost < 10 {
		errs = append(errs, fmt.Errorf("WSMQ_BCRYPT_COST: %d is too weak outside dev mode (at least 10)", c.BcryptCost))
	}
	switch {
	case c.JWTSecret != "" && c.JWTKeysFile != "":
		errs = append(errs, errors.New("WSMQ_JWT_SECRET and WSMQ_JWT_KEYS_FILE are both set: use one"))
	case c.JWTKeysFile != "":
		keys, err := ReadKeysFile(c.JWTKeysFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("WSMQ_JWT_KEYS_FILE: %w", err))
			break
		}
		for _, k := range keys {
			if !c.Dev && len(k.Secret) < tokens.MinSecretLen {
				errs = append(errs, fmt.Errorf("WSMQ_JWT_KEYS_FILE: key %q: secret shorter than %d bytes", k.ID, tokens.MinSecretLen))
			}
		}
		c.JWTKeys = keys
	case c.JWTSecret != "":
		if !c.Dev && len(c.JWTSecret) < tokens.MinSecretLen {
			errs = append(errs, fmt.Errorf("WSMQ_JWT_SECRET: shorter than %d bytes", tokens.MinSecretLen))
			break
		}
		c.JWTKeys = []tokens.Key{{ID: tokens.KeyID([]byte(c.JWTSecret)), Secret: []byte(c.JWTSecret)}}
	case c.Dev:
		c.JWTKeys = []tokens.Key{{ID: DevJWTKeyID, Secret: []byte(DevJWTSecret)}}
		warnings = append(warnings, "DEV MODE: JWTs are signed with the public built-in dev secret; set WSMQ_JWT_SECRET outside development")
	default:
		errs = append(errs, errors.New("WSMQ_JWT_SECRET (or WSMQ_JWT_KEYS_FILE) is required outside dev mode (WSMQ_DEV=1)"))
	}
	switch {
	case c.AdminToken != "":
		if !c.Dev && len(c.AdminToken) < MinAdminTokenLen {
			errs = append(errs, fmt.Errorf("WSMQ_AUTH_ADMIN_TOKEN: shorter than %d characters", MinAdminTokenLen))
		}
	case c.Dev:
		c.AdminToken = DevAdminToken
		warnings = append(warnings, "DEV MODE: the admin token is the public built-in "+strconv.Quote(DevAdminToken)+"; set WSMQ_AUTH_ADMIN_TOKEN outside development")
	default:
		errs = append(errs, errors.New("WSMQ_AUTH_ADMIN_TOKEN is required outside dev mode (WSMQ_DEV=1)"))
	}
	switch {
	case c.GatewayToken != "":
		if !c.Dev && len(c.GatewayToken) < MinAdminTokenLen {
			errs = append(errs, fmt.Errorf("WSMQ_AUTH_GATEWAY_TOKEN: shorter than %d characters", MinAdminTokenLen))
		}
		if c.GatewayToken == c.AdminToken {
			errs = append(errs, errors.New("WSMQ_AUTH_GATEWAY_TOKEN equals WSMQ_AUTH_ADMIN_TOKEN: give gateways their own credential"))
		}
	case c.Dev:
		c.GatewayToken = DevGatewayToken
	default:
		warnings = append(warnings, "WSMQ_AUTH_GATEWAY_TOKEN is not set: gateways cannot follow revocations (WatchRevocations) unless they hold the admin token")
	}
	if err := config.Join(errs); err != nil {
		return nil, err
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

// Parse is NewSettings().Parse, for callers that need no flags after a
// command word.
func Parse(args []string, env config.Env) (Config, []string, error) {
	return NewSettings().Parse(args, env)
}
