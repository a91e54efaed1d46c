package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"sort"
	"strings"

	pkgconfig "github.com/wsmq/wsmq/pkg/config"
)

// Exit codes.
const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
)

// Defaults of the global flags (the local stack of `make run`).
const (
	defaultGateway    = "http://127.0.0.1:3000"
	defaultPublisher  = "127.0.0.1:9092"
	defaultAuth       = "127.0.0.1:9091"
	defaultRedis      = "redis://127.0.0.1:6379/0"
	devAdminToken     = "dev-admin-token"
	defaultRSMQPrefix = "rsmq"
)

// cli is one invocation: the process's streams and environment, and the
// global settings.
type cli struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	getenv func(string) string
	g      globals
}

// globals are the settings every command may use; each has a WSMQ_* env
// fallback.
type globals struct {
	gateway      string
	publisher    string
	publisherKey string
	// publisherAdminKey (env WSMQ_PUBLISHER_ADMIN_KEY), when set, makes
	// 'queues ls' and 'queues stats' use the publisher's QueueAdminService
	// instead of reading Redis.
	publisherAdminKey string
	auth              string
	adminToken        string
	redisURL          string
	ns                string
	grpcTLS           bool
}

// usageError is a malformed command line: exit code 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// command is one subcommand.
type command struct {
	name    string
	summary string
	run     func(c *cli, ctx context.Context, args []string) error
}

func commands() []command {
	return []command{
		{"login", "log in through the gateway; store (or --print) the tokens", (*cli).login},
		{"listen", "connect a websocket, subscribe, print each frame as a JSON line", (*cli).listen},
		{"send", "send a message (or a file of them) through the publisher", (*cli).send},
		{"users", "administer users: add | passwd | revoke | rm | ls (auth admin RPCs)", (*cli).users},
		{"queues", "RSMQ queues: ls | stats | prune (read from Redis)", (*cli).queues},
	}
}

const mainUsage = `wsmqctl is the command-line client of wsmq.

Usage:
  wsmqctl [global flags] COMMAND [flags] [args]

Commands:
%s
Global flags (also accepted after COMMAND):
%s
Secrets are read from the environment or stdin, never needed in argv:
WSMQ_PASSWORD, WSMQ_PUBLISHER_KEY, WSMQ_AUTH_ADMIN_TOKEN, WSMQ_TOKEN, WSMQ_ACCESS_TOKEN.

Exit codes: 0 ok, 1 failure, 2 usage error.
Run 'wsmqctl COMMAND --help' for a command's flags.
`

// run runs one wsmqctl invocation and returns its exit code.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	c := &cli{stdin: stdin, stdout: stdout, stderr: stderr, getenv: getenv}
	c.g = defaultGlobals(getenv)
	fs := flag.NewFlagSet("wsmqctl", flag.ContinueOnError)
	c.g.define(fs)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		c.printMainUsage(stdout, fs)
		return exitOK
	case err != nil:
		return c.fail("", &usageError{msg: err.Error()})
	}
	rest := fs.Args()
	if len(rest) == 0 {
		c.printMainUsage(stderr, fs)
		return exitUsage
	}
	name := rest[0]
	if name == "help" {
		if len(rest) > 1 {
			return run(ctx, []string{rest[1], "--help"}, stdin, stdout, stderr, getenv)
		}
		c.printMainUsage(stdout, fs)
		return exitOK
	}
	for _, cmd := range commands() {
		if cmd.name == name {
			if err := cmd.run(c, ctx, rest[1:]); err != nil {
				return c.fail(name, err)
			}
			return exitOK
		}
	}
	return c.fail("", usagef("unknown command %q (run 'wsmqctl --help')", name))
}

// fail prints err as "wsmqctl: [cmd: ]err" and returns its exit code.
// errHelpShown is a --help that was answered: exit 0.
func (c *cli) fail(cmd string, err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	prefix := "wsmqctl: "
	if cmd != "" {
		prefix += cmd + ": "
	}
	_, _ = fmt.Fprintln(c.stderr, prefix+err.Error())
	var ue *usageError
	if errors.As(err, &ue) {
		return exitUsage
	}
	return exitFail
}

func (c *cli) printMainUsage(w io.Writer, fs *flag.FlagSet) {
	var cmds strings.Builder
	for _, cmd := range commands() {
		_, _ = fmt.Fprintf(&cmds, "  %-8s %s\n", cmd.name, cmd.summary)
	}
	_, _ = fmt.Fprintf(w, mainUsage, cmds.String(), flagDefaults(fs, nil))
}

func defaultGlobals(getenv func(string) string) globals {
	or := func(key, def string) string {
		if v := getenv(key); v != "" {
			return v
		}
		return def
	}
	return globals{
		gateway:           or("WSMQ_GATEWAY_URL", defaultGateway),
		publisher:         or("WSMQ_PUBLISHER_ADDR", defaultPublisher),
		publisherKey:      getenv("WSMQ_PUBLISHER_KEY"),
		publisherAdminKey: getenv("WSMQ_PUBLISHER_ADMIN_KEY"),
		auth:              or("WSMQ_AUTH_ADDR", defaultAuth),
		adminToken:        or("WSMQ_AUTH_ADMIN_TOKEN", devAdminToken),
		redisURL:          or("WSMQ_REDIS_URL", defaultRedis),
		ns:                or("WSMQ_RSMQ_NS", defaultRSMQPrefix),
		grpcTLS:           envBool(getenv, "WSMQ_GRPC_TLS"),
	}
}

// envBool reads a boolean in wsmq's one syntax (pkg/config); a malformed
// value counts as false here and is refused by the services themselves.
func envBool(getenv func(string) string, key string) bool {
	b, err := pkgconfig.ParseBool(getenv(key))
	return err == nil && b
}

// globalNames are the flags define adds; subcommand help leaves them out.
var globalNames = map[string]bool{
	"gateway": true, "publisher": true, "publisher-key": true, "auth": true,
	"admin-token": true, "redis": true, "ns": true, "grpc-tls": true,
}

// define adds the global flags to fs with g's current values as defaults,
// so they may be given before or after the command name.
func (g *globals) define(fs *flag.FlagSet) {
	fs.StringVar(&g.gateway, "gateway", g.gateway, "gateway base `URL` (env WSMQ_GATEWAY_URL)")
	fs.StringVar(&g.publisher, "publisher", g.publisher, "publisher gRPC `host:port` (env WSMQ_PUBLISHER_ADDR)")
	fs.StringVar(&g.publisherKey, "publisher-key", g.publisherKey, "publisher bearer `key`; prefer env WSMQ_PUBLISHER_KEY (argv is visible to other users); not needed in dev mode")
	fs.StringVar(&g.auth, "auth", g.auth, "auth gRPC `host:port` (env WSMQ_AUTH_ADDR)")
	fs.StringVar(&g.adminToken, "admin-token", g.adminToken, "auth admin `token`; prefer env WSMQ_AUTH_ADMIN_TOKEN. The default \"dev-admin-token\" is the DEV-MODE default only")
	fs.StringVar(&g.redisURL, "redis", g.redisURL, "Redis `URL` for 'queues' (env WSMQ_REDIS_URL)")
	fs.StringVar(&g.ns, "ns", g.ns, "RSMQ key `namespace` (env WSMQ_RSMQ_NS)")
	fs.BoolVar(&g.grpcTLS, "grpc-tls", g.grpcTLS, "use TLS (system roots) to the publisher and auth (env WSMQ_GRPC_TLS=1)")
}

// gatewayURL returns the gateway URL with path appended, checking the
// setting first.
func (g *globals) gatewayURL(path string) (*url.URL, error) {
	u, err := url.Parse(g.gateway)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, usagef("--gateway / WSMQ_GATEWAY_URL %q: want http://host:port or https://host:port", g.gateway)
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + path
	u.RawQuery, u.Fragment = "", ""
	return u, nil
}

// flagSet is a subcommand's flags and its --help text.
type flagSet struct {
	*flag.FlagSet
	help func()
}

// newFlagSet returns a subcommand's flag set: the global flags (bound to
// c.g) plus whatever the caller adds. help is printed by --help above the
// command's own flags.
func (c *cli) newFlagSet(name, help string) *flagSet {
	fs := flag.NewFlagSet("wsmqctl "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {} // parse reports errors; help is printed on request only
	c.g.define(fs)
	return &flagSet{FlagSet: fs, help: func() {
		_, _ = fmt.Fprintf(c.stdout, "%s\n", strings.TrimSpace(help))
		if d := flagDefaults(fs, globalNames); d != "" {
			_, _ = fmt.Fprintf(c.stdout, "\nFlags:\n%s", d)
		}
		_, _ = fmt.Fprintf(c.stdout, "\nGlobal flags (--gateway, --publisher, --auth, --redis, ...): see 'wsmqctl --help'.\n")
	}}
}

// parse parses args with flags and positional arguments in any order ("--"
// ends the flags). --help prints the help and returns flag.ErrHelp.
func (fs *flagSet) parse(args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fs.help()
				return nil, err
			}
			return nil, usagef("%v (run '%s --help')", err, fs.Name())
		}
		rest := fs.Args()
		consumed := len(args) - len(rest)
		if consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// nargs checks the number of positional arguments.
func (fs *flagSet) nargs(pos []string, want int, what string) error {
	if len(pos) != want {
		return usagef("want %s, got %d argument(s) (run '%s --help')", what, len(pos), fs.Name())
	}
	return nil
}

// secretFlags never show their value in help.
var secretFlags = map[string]bool{"publisher-key": true, "admin-token": true}

// hiddenValue is a flag.Value whose current value help does not print.
type hiddenValue struct{ flag.Value }

func (hiddenValue) String() string { return "" }

// flagDefaults renders fs's flags like flag.PrintDefaults, leaving out skip.
func flagDefaults(fs *flag.FlagSet, skip map[string]bool) string {
	var fl []*flag.Flag
	fs.VisitAll(func(f *flag.Flag) {
		if !skip[f.Name] {
			fl = append(fl, f)
		}
	})
	sort.Slice(fl, func(i, j int) bool { return fl[i].Name < fl[j].Name })
	tmp := flag.NewFlagSet("", flag.ContinueOnError)
	for _, f := range fl {
		v := f.Value
		if secretFlags[f.Name] {
			v = hiddenValue{v} // the default may come from the environment
		}
		tmp.Var(v, f.Name, f.Usage)
	}
	var b strings.Builder
	tmp.SetOutput(&b)
	tmp.PrintDefaults()
	return b.String()
}
