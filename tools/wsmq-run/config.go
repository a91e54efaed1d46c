package main

import (
	"errors"
	"fmt"
	"strings"
	"time"

	pkgconfig "github.com/wsmq/wsmq/pkg/config"
	"github.com/wsmq/wsmq/tools/internal/supervisor"
)

// config is wsmq-run's whole configuration: flags with WSMQ_RUN_*
// environment fallbacks (a flag wins).
type config struct {
	stack supervisor.Config
}

// envList collects repeated -env KEY=VALUE flags.
type envList []string

func (e *envList) String() string { return strings.Join(*e, ",") }

func (e *envList) Set(v string) error {
	k, _, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("want KEY=VALUE, got %q", v)
	}
	*e = append(*e, v)
	return nil
}

// usageHead is printed above the settings for -h.
const usageHead = `usage: wsmq-run [flags]

Starts wsmq's whole stack on loopback, in dev mode by default: redis-server,
the MongoDB-wire dev server, auth, publisher and the gateway. It waits until
every process is ready, prints how to connect, and stops everything on
Ctrl-C (SIGINT) or SIGTERM (twice: kill at once). Every flag has a WSMQ_RUN_*
environment fallback.

`

// parseConfig reads args (without the program name) and the environment
// (pkg/config's rules). Every malformed value is named in the error.
func parseConfig(args []string, getenv func(string) string) (config, error) {
	c := config{}
	st := &c.stack
	var env envList
	s := pkgconfig.NewSet("wsmq-run", "WSMQ_RUN_")
	s.String(&st.DataDir, "data", "WSMQ_RUN_DATA", "", `data directory for Redis and MongoDB, kept between runs ("": a temp dir removed on exit)`)
	s.String(&st.BinDir, "bin", "WSMQ_RUN_BIN", "", `directory of wsmq-auth, wsmq-publisher, wsmq-gateway, wsmq-mongowire ("": next to wsmq-run, else <repo>/bin)`)
	s.String(&st.RedisServer, "redis-server", "WSMQ_RUN_REDIS_SERVER", "", `redis-server binary ("": from PATH)`)
	s.Bool(&st.Persist, "persist", "WSMQ_RUN_PERSIST", true, "Redis persistence in the data dir: AOF everysec + snapshot on exit")
	s.Bool(&st.Dev, "dev", "WSMQ_RUN_DEV", true, "dev mode: demo/demo user, dev secrets, keyless publisher, /demo page")
	s.Int(&st.Gateways, "gateways", "WSMQ_RUN_GATEWAYS", 1, 1, 64, "number of gateway replicas; replica 1.. get free ports")
	s.Int(&st.RedisReplicas, "redis-replicas", "WSMQ_RUN_REDIS_REPLICAS", 0, 0, 8, "Redis replicas of the master (free ports, data in redis-replica-N/)")
	s.Int(&st.Sentinels, "sentinels", "WSMQ_RUN_SENTINELS", 0, 0, 9, "Redis Sentinels monitoring the master (free ports); services then get a redis+sentinel:// URL")
	s.Duration(&st.ReadyTimeout, "ready-timeout", "WSMQ_RUN_READY_TIMEOUT", supervisor.DefaultReadyTimeout, time.Millisecond, time.Hour, "how long each start phase may take to become ready")
	s.Var(&env, "env", "extra KEY=VALUE setting for every service, repeatable (e.g. -env WSMQ_LOG_LEVEL=debug)")
	for _, p := range st.Ports.Settings() {
		s.Int(p.Port, p.Flag, p.Env, p.Default, 1, 65535, p.Service+" port")
	}
	rest, err := s.Parse(args, pkgconfig.GetenvEnv(getenv, nil))
	if err != nil {
		var h *pkgconfig.HelpError
		if errors.As(err, &h) {
			h.Usage = usageHead + h.Usage
		}
		return c, err
	}
	if err := pkgconfig.NoArgs(rest); err != nil {
		return c, err
	}
	st.Env = env
	return c, nil
}
