// Package redisconn turns a WSMQ_REDIS_URL into a go-redis client: the one
// parser of Redis URLs that every wsmq program uses, and the client timeouts
// tuned for it.
package redisconn

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Schemes lists the URL forms ParseURL accepts, for usage texts.
const Schemes = "redis://[user:password@]host:port[/db], rediss:// (TLS), unix:///path, " +
	"or redis+sentinel://[user:password@]host:port[,host:port...][/db]?master_name=NAME" +
	"[&sentinel_username=U&sentinel_password=P] (rediss+sentinel:// for TLS)"

// Target is a parsed WSMQ_REDIS_URL: exactly one of Single (one server) and
// Failover (a master found through Redis Sentinel) is set.
type Target struct {
	Single   *redis.Options
	Failover *redis.FailoverOptions
}

// Addr names the server for logs: its address, or "sentinel:<master name>".
func (t *Target) Addr() string {
	if t.Failover != nil {
		return "sentinel:" + t.Failover.MasterName
	}
	return t.Single.Addr
}

// ParseURL parses a Redis URL: redis://, rediss://, unix://, or
// redis+sentinel:// / rediss+sentinel:// for a Sentinel-managed master.
// Errors name what is wrong and never echo a password.
func ParseURL(raw string) (*Target, error) {
	u, err := url.Parse(raw)
	if err != nil {
		if scheme, _, ok := strings.Cut(raw, "://"); ok && strings.HasSuffix(scheme, "+sentinel") {
			return parseSentinel(raw) // several hosts need not form a valid URL host
		}
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
	case "redis+sentinel", "rediss+sentinel":
		return parseSentinel(raw)
	default:
		return nil, fmt.Errorf("scheme %q is not redis, rediss, unix, redis+sentinel or rediss+sentinel", u.Scheme)
	}
	opts, err := redis.ParseURL(raw)
	if err != nil {
		return nil, fmt.Errorf("invalid Redis URL (want %s): %s", Schemes, redact(err, u))
	}
	return &Target{Single: opts}, nil
}

// parseSentinel parses redis+sentinel://[user:password@]host:port[,host:port...][/db]?master_name=NAME
// with the optional query parameters sentinel_username and sentinel_password.
// user and password authenticate to the master and replicas.
func parseSentinel(raw string) (*Target, error) {
	scheme, rest, _ := strings.Cut(raw, "://")
	rest, query, _ := strings.Cut(rest, "?")
	authority, path, _ := strings.Cut(rest, "/")
	o := &redis.FailoverOptions{}
	if scheme == "rediss+sentinel" {
		o.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if i := strings.LastIndexByte(authority, '@'); i >= 0 {
		user, pass, hasPass := strings.Cut(authority[:i], ":")
		authority = authority[i+1:]
		var err error
		if o.Username, err = url.PathUnescape(user); err != nil {
			return nil, errors.New("sentinel URL: user name is not URL-escaped correctly")
		}
		if hasPass {
			if o.Password, err = url.PathUnescape(pass); err != nil {
				return nil, errors.New("sentinel URL: password is not URL-escaped correctly (details hidden)")
			}
		}
	}
	if authority == "" {
		return nil, errors.New("sentinel URL: no sentinel host:port")
	}
	for _, hp := range strings.Split(authority, ",") {
		// A malformed entry is shown unless it may hold a secret.
		shown := strconv.Quote(hp)
		if strings.ContainsAny(hp, "@=") || strings.Contains(hp, "password") {
			shown = "a sentinel address (not shown: it may hold a password)"
		}
		host, port, err := net.SplitHostPort(hp)
		if err != nil || host == "" {
			return nil, fmt.Errorf("sentinel URL: %s is not host:port", shown)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("sentinel URL: %s: port must be 1..65535", shown)
		}
		o.SentinelAddrs = append(o.SentinelAddrs, net.JoinHostPort(host, port))
	}
	if path = strings.TrimSuffix(path, "/"); path != "" {
		db, err := strconv.Atoi(path)
		if err != nil || db < 0 {
			return nil, fmt.Errorf("sentinel URL: database %q is not a number >= 0", path)
		}
		o.DB = db
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		return nil, errors.New("sentinel URL: query is not URL-encoded correctly (details hidden)")
	}
	for name, v := range q {
		if len(v) != 1 {
			return nil, fmt.Errorf("sentinel URL: parameter %s given %d times", name, len(v))
		}
		switch name {
		case "master_name":
			o.MasterName = v[0]
		case "sentinel_username":
			o.SentinelUsername = v[0]
		case "sentinel_password":
			o.SentinelPassword = v[0]
		default:
			return nil, fmt.Errorf("sentinel URL: unknown parameter %q (want master_name, sentinel_username, sentinel_password)", name)
		}
	}
	if o.MasterName == "" {
		return nil, errors.New("sentinel URL: master_name is required")
	}
	return &Target{Failover: o}, nil
}

// Redact returns raw with any password replaced by "xxxxx", for logs and
// errors; text with an '@' that is not a URL's user part is hidden whole.
func Redact(raw string) string {
	u, err := url.Parse(raw)
	switch {
	case err == nil && strings.Contains(u.Opaque+u.Path+u.Fragment, "@"):
		// An "@" outside a parsed user part ("scheme:user:pw@...",
		// "/:pw@..."): the text before it may still be a password.
		return "(hidden: not a URL with a user part, but it may hold a password)"
	case err != nil || u.User == nil && !u.Query().Has("sentinel_password"):
		if strings.Contains(raw, "@") || strings.Contains(raw, "password") {
			return "(hidden: not a URL with a user part, but it may hold a password)"
		}
		return raw
	}
	if q := u.Query(); q.Has("sentinel_password") {
		q.Set("sentinel_password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	// The whole user part: a lone "user" in redis://secret@host is taken
	// as the password by some clients.
	if u.User != nil {
		u.User = url.User("xxxxx")
	}
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
	Master       *MasterWatch  // when set, learns the address of every connection the client opens
}

// DefaultDialTimeout and DefaultIOTimeout are Tuning's defaults.
const (
	DefaultDialTimeout = 2 * time.Second
	DefaultIOTimeout   = 3 * time.Second
)

// New makes a client for the URL with t applied: a plain client, or for a
// Sentinel URL a failover client (redis.NewFailoverClient) that asks the
// sentinels for the master on every new connection, so it follows a
// failover.
func New(raw string, t Tuning) (*redis.Client, error) {
	target, err := ParseURL(raw)
	if err != nil {
		return nil, fmt.Errorf("WSMQ_REDIS_URL: %w", err)
	}
	return target.Client(t), nil
}

// Client makes the client for the target with t applied.
func (tg *Target) Client(t Tuning) *redis.Client {
	var rdb *redis.Client
	if tg.Failover != nil {
		o := *tg.Failover
		ApplyFailover(&o, t)
		rdb = redis.NewFailoverClient(&o)
	} else {
		o := *tg.Single
		Apply(&o, t)
		rdb = redis.NewClient(&o)
	}
	if t.Master != nil {
		rdb.AddHook(masterHook{t.Master})
	}
	return rdb
}

// tuned is t with the default timeouts filled in.
func (t Tuning) tuned() Tuning {
	if t.DialTimeout == 0 {
		t.DialTimeout = DefaultDialTimeout
	}
	if t.IOTimeout == 0 {
		t.IOTimeout = DefaultIOTimeout
	}
	return t
}

// Apply sets t on opts.
func Apply(opts *redis.Options, t Tuning) {
	t.apply(knobs{&opts.PoolSize, &opts.DialTimeout, &opts.ReadTimeout, &opts.WriteTimeout, &opts.MaxRetries,
		&opts.DialerRetries, &opts.DialerRetryTimeout, &opts.PoolTimeout, &opts.ContextTimeoutEnabled})
}

// ApplyFailover sets t on the options of a Sentinel failover client.
func ApplyFailover(opts *redis.FailoverOptions, t Tuning) {
	t.apply(knobs{&opts.PoolSize, &opts.DialTimeout, &opts.ReadTimeout, &opts.WriteTimeout, &opts.MaxRetries,
		&opts.DialerRetries, &opts.DialerRetryTimeout, &opts.PoolTimeout, &opts.ContextTimeoutEnabled})
}

// knobs are the fields Tuning sets, in redis.Options and
// redis.FailoverOptions alike.
type knobs struct {
	poolSize                       *int
	dial, read, write              *time.Duration
	maxRetries, dialerRetries      *int
	dialerRetryTimeout, poolTimout *time.Duration
	ctxDeadlines                   *bool
}

func (t Tuning) apply(k knobs) {
	t = t.tuned()
	if t.PoolSize > 0 {
		*k.poolSize = t.PoolSize
	}
	*k.dial = t.DialTimeout
	*k.read = t.IOTimeout
	*k.write = t.IOTimeout
	if t.MaxRetries != 0 {
		*k.maxRetries = t.MaxRetries
	}
	if t.FailFast {
		*k.dialerRetries = 2
		*k.dialerRetryTimeout = 50 * time.Millisecond
		*k.poolTimout = t.DialTimeout + t.IOTimeout
	}
	*k.ctxDeadlines = t.CtxDeadlines
}

// MasterWatch learns the address of the Redis master from the connections
// a client opens: a failover client dials the master the sentinels name, so
// a new address is a failover this program has followed. The zero value is
// ready; it is safe for concurrent use.
type MasterWatch struct {
	// OnChange, when set, is called (outside the lock) with the new address
	// whenever a connection goes to another address than the one before; old
	// is "" on the first connection.
	OnChange func(old, addr string)

	mu        sync.Mutex
	addr      string
	failovers int
}

// Addr is the address of the last connection opened, "" before the first.
func (w *MasterWatch) Addr() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.addr
}

// Failovers counts address changes after the first connection.
func (w *MasterWatch) Failovers() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.failovers
}

func (w *MasterWatch) saw(addr string) {
	w.mu.Lock()
	old := w.addr
	if old == addr {
		w.mu.Unlock()
		return
	}
	w.addr = addr
	if old != "" {
		w.failovers++
	}
	w.mu.Unlock()
	if w.OnChange != nil {
		w.OnChange(old, addr)
	}
}

// masterHook feeds a MasterWatch the remote address of every connection
// the client opens. A failover client's dialer asks the sentinels for the
// master, so that address is the master's; its sentinel connections belong
// to other clients and are not seen here.
type masterHook struct{ w *MasterWatch }

func (h masterHook) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		cn, err := next(ctx, network, addr)
		if err == nil {
			h.w.saw(cn.RemoteAddr().String())
		}
		return cn, err
	}
}

func (h masterHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }

func (h masterHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
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

// MasterAddr returns the address of the server the target writes to: the
// single server's, or the master the first answering sentinel names.
func (tg *Target) MasterAddr(ctx context.Context) (string, error) {
	if tg.Failover == nil {
		return tg.Single.Addr, nil
	}
	var errs []error
	for _, addr := range tg.Failover.SentinelAddrs {
		sc := redis.NewSentinelClient(&redis.Options{Addr: addr, Username: tg.Failover.SentinelUsername,
			Password: tg.Failover.SentinelPassword, TLSConfig: tg.Failover.TLSConfig, DisableIdentity: true})
		hp, err := sc.GetMasterAddrByName(ctx, tg.Failover.MasterName).Result()
		_ = sc.Close()
		if err == nil && len(hp) == 2 {
			return net.JoinHostPort(hp[0], hp[1]), nil
		}
		errs = append(errs, fmt.Errorf("sentinel %s: %w", addr, err))
	}
	return "", fmt.Errorf("no sentinel named master %q: %w", tg.Failover.MasterName, errors.Join(errs...))
}

// NoscriptHook returns a go-redis hook that calls f once per NOSCRIPT reply
// (single commands and pipelined ones): each is a script that Redis did not
// have cached and that is sent again (go-redis's Script.Run falls back to
// EVAL; rsmq's pipelines load it and retry). A new master after a failover
// starts with an empty script cache, so these count its first calls.
func NoscriptHook(f func()) redis.Hook { return noscriptHook{f} }

type noscriptHook struct{ f func() }

func (h noscriptHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h noscriptHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
			h.f()
		}
		return err
	}
}

func (h noscriptHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		for _, c := range cmds {
			if e := c.Err(); e != nil && redis.HasErrorPrefix(e, "NOSCRIPT") {
				h.f()
			}
		}
		return err
	}
}

// DurabilityWarnings checks, on the master rdb talks to, the settings that
// durable acknowledgement with minReplicas replicas relies on, and returns
// one sentence per problem (none when all is well):
//   - min-replicas-to-write 0: a master cut off from its replicas keeps
//     taking writes from every client (Node rsmq, non-durable senders),
//     which the failover that follows discards;
//   - neither AOF nor RDB snapshots: a master that restarts before the
//     sentinels notice comes back empty and its replicas copy the emptiness;
//   - fewer connected replicas than minReplicas: every durable send fails.
func DurabilityWarnings(ctx context.Context, rdb redis.Cmdable, minReplicas int) []string {
	var out []string
	get := func(name string) (string, bool) {
		v, err := rdb.ConfigGet(ctx, name).Result()
		if err != nil {
			out = append(out, fmt.Sprintf("cannot read %s from the Redis master (CONFIG GET: %v); check it by hand", name, err))
			return "", false
		}
		s, ok := v[name]
		return s, ok
	}
	if v, ok := get("min-replicas-to-write"); ok && v == "0" {
		out = append(out, "Redis min-replicas-to-write is 0: a master cut off from its replicas keeps accepting writes "+
			"(Node rsmq, non-durable sends) that the failover then loses; set it to 1 (see deploy/HA.md)")
	}
	aof, okA := get("appendonly")
	save, okS := get("save")
	if okA && okS && aof == "no" && strings.TrimSpace(save) == "" {
		out = append(out, "the Redis master has no persistence (appendonly no, no save points): if it restarts "+
			"before a failover it comes back empty and its replicas resync to empty; turn on appendonly")
	}
	info, err := rdb.Info(ctx, "replication").Result()
	if err != nil {
		return append(out, fmt.Sprintf("cannot read INFO replication: %v", err))
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "connected_slaves:"); ok {
			if n, err := strconv.Atoi(v); err == nil && n < minReplicas {
				out = append(out, fmt.Sprintf("the Redis master has %d connected replicas, fewer than the %d durable sends wait for: they will fail with UNAVAILABLE", n, minReplicas))
			}
		}
	}
	return out
}

// SentinelConfig is a sentinel's configuration file for a local stack or a
// test: listening on 127.0.0.1:port, watching master (its name) at
// 127.0.0.1:masterPort with the quorum, failing over after downAfter.
// Sentinel rewrites the file, so it must be writable.
func SentinelConfig(port int, dir, master string, masterPort, quorum int, downAfter, failoverTimeout time.Duration) string {
	return fmt.Sprintf(`port %d
bind 127.0.0.1
protected-mode no
daemonize no
dir %s
loglevel notice
sentinel monitor %s 127.0.0.1 %d %d
sentinel down-after-milliseconds %s %d
sentinel failover-timeout %s %d
sentinel parallel-syncs %s 1
`, port, dir, master, masterPort, quorum, master, downAfter.Milliseconds(), master, failoverTimeout.Milliseconds(), master)
}
