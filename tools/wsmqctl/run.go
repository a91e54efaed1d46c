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

// Defaults of the global flags that have no exported owner (the local
// stack of `make run`; the services' own defaults are in their internal
// packages). Redis URL and namespace take pkg/config's and pkg/rsmq's.
const (
	defaultGateway   = "http://127.0.0.1:3000"
	defaultPublisher = "127.0.0.1:9092"
	defaultAuth      = "127.0.0.1:9091"
	devAdminToken    = "dev-admin-token"
)

// cli is one invocation: the process's streams and environment, and the
// global settings.
type cli struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	getenv func(string) string
	g      globals
	// set reads the globals (pkg/config): environment, flags before the
	// command, then those after it.
	set *pkgconfig.Set
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

// run runs one wsmqctl invocation and returns its exit code. environ (may
// be nil) lists the environment for the detection of misspelt WSMQ_*
// variables.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string, environ []string) int {
	c := &cli{stdin: stdin, stdout: stdout, stderr: stderr, getenv: getenv}
	c.set = c.g.settings()
	// An empty variable counts as unset: the default applies.
	env := pkgconfig.GetenvEnv(getenv, environ)
	fs := flag.NewFlagSet("wsmqctl", flag.ContinueOnError)
	c.defineGlobals(fs)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		// Help shows the settings in effect; malformed ones are reported
		// by any command, not by help.
		_, _ = c.set.Parse(nil, env)
		c.printMainUsage(stdout, fs)
		return exitOK
	case err != nil:
		return c.fail("", &usageError{msg: err.Error()})
	}
	rest := fs.Args()
	if _, err := c.set.Parse(givenGlobals(fs), env); err != nil && !asksForHelp(rest) {
		return c.fail("", &usageError{msg: err.Error()})
	}
	if len(rest) == 0 {
		c.printMainUsage(stderr, fs)
		return exitUsage
	}
	name := rest[0]
	if name == "help" {
		if len(rest) > 1 {
			return run(ctx, []string{rest[1], "--help"}, stdin, stdout, stderr, getenv, environ)
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

// asksForHelp reports whether the command line after the global flags is
// a request for help ("help ...", or a -h/--help among a command's
// arguments): help is printed even when a setting is malformed, which any
// command then reports.
func asksForHelp(rest []string) bool {
	if len(rest) > 0 && rest[0] == "help" {
		return true
	}
	for _, a := range rest {
		switch a {
		case "-h", "-help", "--help", "--h":
			return true
		case "--":
			return false
		}
	}
	return false
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

// settings declares the global settings on a pkg/config Set bound to g:
// one boolean syntax, the Redis URL parser and namespace rule of the
// services, misspelt WSMQ_* variables refused. The command line is read by
// defineGlobals' flags (before or after the command name, with the help
// wsmqctl prints) and handed to the Set by givenGlobals.
func (g *globals) settings() *pkgconfig.Set {
	s := pkgconfig.NewSet("wsmqctl", "")
	// Read by the commands themselves (c.getenv).
	s.Others("WSMQ_USER", "WSMQ_PASSWORD", "WSMQ_TOKEN", "WSMQ_ACCESS_TOKEN")
	// The publisher's own, one edit from wsmqctl's WSMQ_PUBLISHER_KEY and
	// _ADMIN_KEY: set in the publisher's container and in .env.
	s.Others("WSMQ_PUBLISHER_KEYS", "WSMQ_PUBLISHER_ADMIN_KEYS")
	s.String(&g.gateway, "gateway", "WSMQ_GATEWAY_URL", defaultGateway, "gateway base URL")
	s.String(&g.publisher, "publisher", "WSMQ_PUBLISHER_ADDR", defaultPublisher, "publisher gRPC host:port")
	s.String(&g.publisherKey, "publisher-key", "WSMQ_PUBLISHER_KEY", "", "publisher bearer key")
	// Environment only: 'queues' goes through the publisher when it is set.
	s.String(&g.publisherAdminKey, "", "WSMQ_PUBLISHER_ADMIN_KEY", "", "publisher admin key")
	s.String(&g.auth, "auth", "WSMQ_AUTH_ADDR", defaultAuth, "auth gRPC host:port")
	s.String(&g.adminToken, "admin-token", "WSMQ_AUTH_ADMIN_TOKEN", devAdminToken, "auth admin token")
	s.RedisURLFlag(&g.redisURL, "redis")
	s.NamespaceFlag(&g.ns, "ns")
	s.Bool(&g.grpcTLS, "grpc-tls", "WSMQ_GRPC_TLS", false, "TLS to the publisher and auth")
	return s
}

// globalNames are the flags defineGlobals adds; subcommand help leaves
// them out.
var globalNames = map[string]bool{
	"gateway": true, "publisher": true, "publisher-key": true, "auth": true,
	"admin-token": true, "redis": true, "ns": true, "grpc-tls": true,
}

// globalFlag is a global flag on a command-line flag set: it keeps the
// text given for the Set to check and apply (givenGlobals), and shows the
// setting in effect in help.
type globalFlag struct {
	text    string
	isBool  bool
	current func() string
}

func (f *globalFlag) String() string {
	if f == nil || f.current == nil {
		return ""
	}
	return f.current()
}

func (f *globalFlag) Set(v string) error { f.text = v; return nil }

func (f *globalFlag) IsBoolFlag() bool { return f.isBool }

// defineGlobals adds the global flags to fs, so they may be given before
// or after the command name; their help shows the settings in effect.
func (c *cli) defineGlobals(fs *flag.FlagSet) {
	g := &c.g
	str := func(p *string) func() string { return func() string { return *p } }
	for _, d := range []struct {
		name, usage string
		current     func() string
		isBool      bool
	}{
		{"gateway", "gateway base `URL` (env WSMQ_GATEWAY_URL)", str(&g.gateway), false},
		{"publisher", "publisher gRPC `host:port` (env WSMQ_PUBLISHER_ADDR)", str(&g.publisher), false},
		{"publisher-key", "publisher bearer `key`; prefer env WSMQ_PUBLISHER_KEY (argv is visible to other users); not needed in dev mode", str(&g.publisherKey), false},
		{"auth", "auth gRPC `host:port` (env WSMQ_AUTH_ADDR)", str(&g.auth), false},
		{"admin-token", "auth admin `token`; prefer env WSMQ_AUTH_ADMIN_TOKEN. The default \"dev-admin-token\" is the DEV-MODE default only", str(&g.adminToken), false},
		{"redis", "Redis `URL` for 'queues' (env WSMQ_REDIS_URL)", str(&g.redisURL), false},
		{"ns", "RSMQ key `namespace` (env WSMQ_RSMQ_NS)", str(&g.ns), false},
		{"grpc-tls", "use TLS (system roots) to the publisher and auth (env WSMQ_GRPC_TLS=1)", onOrEmpty(&g.grpcTLS), true},
	} {
		fs.Var(&globalFlag{isBool: d.isBool, current: d.current}, d.name, d.usage)
	}
}

// onOrEmpty shows a boolean as help does for a flag.Bool: "" for false,
// so no "(default false)".
func onOrEmpty(p *bool) func() string {
	return func() string {
		if *p {
			return "true"
		}
		return ""
	}
}

// givenGlobals returns the global flags given on fs as arguments for the
// Set ("-ns=value"), which checks and applies them.
func givenGlobals(fs *flag.FlagSet) []string {
	var args []string
	fs.Visit(func(f *flag.Flag) {
		if g, ok := f.Value.(*globalFlag); ok {
			args = append(args, "-"+f.Name+"="+g.text)
		}
	})
	return args
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
	set  *pkgconfig.Set // applies the global flags given after the command
	help func()
}

// newFlagSet returns a subcommand's flag set: the global flags (bound to
// c.g) plus whatever the caller adds. help is printed by --help above the
// command's own flags.
func (c *cli) newFlagSet(name, help string) *flagSet {
	fs := flag.NewFlagSet("wsmqctl "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {} // parse reports errors; help is printed on request only
	c.defineGlobals(fs)
	return &flagSet{FlagSet: fs, set: c.set, help: func() {
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
	pos, err := fs.parseAll(args)
	if err != nil {
		return nil, err
	}
	if g := givenGlobals(fs.FlagSet); len(g) > 0 {
		if _, err := fs.set.ParseFlags(g); err != nil {
			return nil, &usageError{msg: err.Error()}
		}
	}
	return pos, nil
}

func (fs *flagSet) parseAll(args []string) ([]string, error) {
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
		switch g, ok := v.(*globalFlag); {
		case secretFlags[f.Name]:
			v = hiddenValue{v} // the default may come from the environment
		case ok && !g.isBool:
			tmp.String(f.Name, g.String(), f.Usage) // quoted, as for flag.String
			continue
		}
		tmp.Var(v, f.Name, f.Usage)
	}
	var b strings.Builder
	tmp.SetOutput(&b)
	tmp.PrintDefaults()
	return b.String()
}
