package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	pkgconfig "github.com/wsmq/wsmq/pkg/config"
	"github.com/wsmq/wsmq/pkg/rsmq"
)

// result is one finished wsmqctl invocation.
type result struct {
	code           int
	stdout, stderr string
}

// env is a fake process environment: tests never see the real WSMQ_*.
type env map[string]string

func (e env) with(kv ...string) env {
	out := env{}
	for k, v := range e {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

func (e env) getenv(k string) string { return e[k] }

// environ lists e as KEY=VALUE, as os.Environ does.
func (e env) environ() []string {
	out := make([]string, 0, len(e))
	for k, v := range e {
		out = append(out, k+"="+v)
	}
	return out
}

// ctl runs wsmqctl in-process with stdin and returns what it did.
func ctl(t *testing.T, e env, stdin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out, errb bytes.Buffer
	code := run(ctx, args, strings.NewReader(stdin), &out, &errb, e.getenv, e.environ())
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

// must fails the test unless r exited with want.
func (r result) must(t *testing.T, want int, args ...string) result {
	t.Helper()
	if r.code != want {
		t.Fatalf("wsmqctl %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, want, r.stdout, r.stderr)
	}
	return r
}

func TestUsageErrorsExitTwoAndNameTheProblem(t *testing.T) {
	e := env{"XDG_CONFIG_HOME": t.TempDir()}
	cases := []struct {
		args   []string
		errHas string
	}{
		{nil, "Usage:"},
		{[]string{"bogus"}, `unknown command "bogus"`},
		{[]string{"--bogus"}, "flag provided but not defined"},
		{[]string{"send"}, "want QUEUE MESSAGE"},
		{[]string{"send", "q"}, "want QUEUE MESSAGE"},
		{[]string{"send", "q", "m", "extra"}, "want QUEUE MESSAGE"},
		{[]string{"send", "--file", "f", "q"}, "no arguments with --file"},
		{[]string{"send", "--delay", "soon", "q", "m"}, "invalid value"},
		{[]string{"login"}, "--user NAME is required"},
		{[]string{"login", "--user", "u", "extra"}, "want no arguments"},
		{[]string{"listen", "--ack", "sometimes"}, `--ack "sometimes"`},
		{[]string{"listen", "--count", "-1"}, "must not be negative"},
		{[]string{"listen", "q"}, "--queue"},
		{[]string{"users"}, "want a subcommand"},
		{[]string{"users", "add"}, "users add NAME"},
		{[]string{"users", "rm", "a", "b"}, "users rm NAME"},
		{[]string{"users", "ls", "x"}, "no arguments"},
		{[]string{"users", "frobnicate", "x"}, "unknown users subcommand"},
		{[]string{"queues"}, "want a subcommand"},
		{[]string{"queues", "drop"}, "unknown queues subcommand"},
		{[]string{"--redis", "mysql://x", "queues", "ls"}, "-redis"},
		{[]string{"queues", "ls", "--redis", "mysql://x"}, "-redis"},
		{[]string{"--gateway", "ftp://x", "listen"}, "--gateway"},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, "_"), func(t *testing.T) {
			r := ctl(t, e, "", c.args...).must(t, exitUsage, c.args...)
			if !strings.Contains(r.stderr, c.errHas) {
				t.Fatalf("stderr %q does not contain %q", r.stderr, c.errHas)
			}
			if c.args != nil && !strings.HasPrefix(r.stderr, "wsmqctl: ") {
				t.Fatalf("stderr %q does not start with \"wsmqctl: \"", r.stderr)
			}
		})
	}
}

func TestGlobalSettingsFollowTheServicesRulesNamingTheVariable(t *testing.T) {
	e := env{"XDG_CONFIG_HOME": t.TempDir()}
	cases := []struct {
		name   string
		env    env
		args   []string
		errHas []string
	}{
		{"malformed boolean", e.with("WSMQ_GRPC_TLS", "maybe"), []string{"queues", "ls"}, []string{"WSMQ_GRPC_TLS", "must be a boolean"}},
		{"malformed boolean flag", e, []string{"--grpc-tls=maybe", "queues", "ls"}, []string{"-grpc-tls", "must be a boolean"}},
		{"bad namespace", e.with("WSMQ_RSMQ_NS", "a:b"), []string{"queues", "ls"}, []string{"WSMQ_RSMQ_NS", "':'"}},
		{"bad namespace flag after the command", e, []string{"queues", "ls", "--ns", "a:b"}, []string{"-ns", "':'"}},
		{"misspelt variable", e.with("WSMQ_RSMQ_N", "x"), []string{"queues", "ls"}, []string{"WSMQ_RSMQ_N", "did you mean WSMQ_RSMQ_NS"}},
		{"every problem at once", e.with("WSMQ_GRPC_TLS", "maybe", "WSMQ_RSMQ_NS", "a:b", "WSMQ_REDIS_URL", "mysql://x"),
			[]string{"queues", "ls"}, []string{"WSMQ_GRPC_TLS", "WSMQ_RSMQ_NS", "WSMQ_REDIS_URL"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := ctl(t, tc.env, "", tc.args...).must(t, exitUsage, tc.args...)
			for _, h := range tc.errHas {
				if !strings.Contains(r.stderr, h) {
					t.Errorf("stderr %q does not contain %q", r.stderr, h)
				}
			}
		})
	}
}

func TestGlobalDefaultsAreTheOwnersAndBooleansUseOneSyntax(t *testing.T) {
	parse := func(e env, args ...string) globals {
		t.Helper()
		c := &cli{getenv: e.getenv}
		c.set = c.g.settings()
		fs := flag.NewFlagSet("wsmqctl", flag.ContinueOnError)
		c.defineGlobals(fs)
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		if _, err := c.set.Parse(givenGlobals(fs), pkgconfig.GetenvEnv(e.getenv, e.environ())); err != nil {
			t.Fatalf("%v %v: %v", e, args, err)
		}
		return c.g
	}
	g := parse(env{})
	if g.ns != rsmq.DefaultNamespace || g.redisURL != pkgconfig.DefaultRedisURL || g.grpcTLS || g.adminToken != devAdminToken {
		t.Fatalf("defaults %+v, want rsmq's namespace, pkg/config's Redis URL, no TLS", g)
	}
	// An empty variable is unset, as before.
	if g := parse(env{"WSMQ_RSMQ_NS": "", "WSMQ_GATEWAY_URL": ""}); g.ns != rsmq.DefaultNamespace || g.gateway != defaultGateway {
		t.Fatalf("empty variables: %+v, want the defaults", g)
	}
	for _, v := range []string{"1", "true", "yes", "on", "ON"} {
		if g := parse(env{"WSMQ_GRPC_TLS": v}); !g.grpcTLS {
			t.Errorf("WSMQ_GRPC_TLS=%s: TLS off", v)
		}
	}
	if g := parse(env{"WSMQ_GRPC_TLS": "yes"}, "--grpc-tls=off"); g.grpcTLS {
		t.Error("--grpc-tls=off does not win over the environment")
	}
	if g := parse(env{}, "--grpc-tls"); !g.grpcTLS {
		t.Error("bare --grpc-tls: TLS off")
	}
	if g := parse(env{"WSMQ_RSMQ_NS": "envns"}, "--ns", "flagns"); g.ns != "flagns" {
		t.Errorf("--ns: %q, want the flag's", g.ns)
	}
	// The publisher's own variables, one edit from wsmqctl's, are not
	// typos of them (the publisher's container sets them).
	if g := parse(env{"WSMQ_PUBLISHER_KEYS": "k1,k2", "WSMQ_PUBLISHER_ADMIN_KEYS": "", "WSMQ_PUBLISHER_KEY": "k1"}); g.publisherKey != "k1" {
		t.Errorf("publisher key %q, want WSMQ_PUBLISHER_KEY's", g.publisherKey)
	}
}

func TestHelpIsShownWhenASettingIsMalformed(t *testing.T) {
	e := env{"WSMQ_GRPC_TLS": "maybe"}
	for _, args := range [][]string{{"--help"}, {"help"}, {"help", "queues"}, {"queues", "--help"}, {"send", "-h"}} {
		ctl(t, e, "", args...).must(t, exitOK, args...)
	}
	r := ctl(t, e, "", "queues", "ls").must(t, exitUsage, "queues", "ls")
	if !strings.Contains(r.stderr, "WSMQ_GRPC_TLS") {
		t.Fatalf("stderr %q does not name WSMQ_GRPC_TLS", r.stderr)
	}
}

func TestHelpExitsZeroAndDescribesEachCommand(t *testing.T) {
	e := env{"WSMQ_AUTH_ADMIN_TOKEN": "secret-admin-token-from-env", "WSMQ_PUBLISHER_KEY": "secret-publisher-key"}
	cases := []struct {
		args []string
		has  []string
	}{
		{[]string{"--help"}, []string{"login", "listen", "send", "users", "queues", "dev-admin-token", "WSMQ_GATEWAY_URL"}},
		{[]string{"help"}, []string{"listen", "send"}},
		{[]string{"help", "send"}, []string{"--file", "SendBatch"}},
		{[]string{"login", "--help"}, []string{"WSMQ_PASSWORD", "-print", "-user"}},
		{[]string{"listen", "-h"}, []string{"-count", "-timeout", "-ack", "-queue", "401"}},
		{[]string{"send", "--help"}, []string{"QUEUE<TAB>MESSAGE", "-delay"}},
		{[]string{"users", "--help"}, []string{"passwd", "revoke", "WSMQ_AUTH_ADMIN_TOKEN"}},
		{[]string{"queues", "--help"}, []string{"stats", "totalsent", "hidden"}},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, "_"), func(t *testing.T) {
			r := ctl(t, e, "", c.args...).must(t, exitOK, c.args...)
			for _, h := range c.has {
				if !strings.Contains(r.stdout, h) {
					t.Errorf("help lacks %q:\n%s", h, r.stdout)
				}
			}
			for _, secret := range []string{e["WSMQ_AUTH_ADMIN_TOKEN"], e["WSMQ_PUBLISHER_KEY"]} {
				if strings.Contains(r.stdout+r.stderr, secret) {
					t.Errorf("help shows a secret from the environment:\n%s", r.stdout)
				}
			}
		})
	}
}

func TestGlobalFlagsWorkBeforeAndAfterTheCommand(t *testing.T) {
	for _, args := range [][]string{
		{"--gateway", "http://127.0.0.1:1", "listen"},
		{"listen", "--gateway", "http://127.0.0.1:1"},
	} {
		r := ctl(t, env{"WSMQ_TOKEN": "t"}, "", args...).must(t, exitFail, args...)
		if !strings.Contains(r.stderr, "127.0.0.1:1") {
			t.Fatalf("%v: stderr %q does not name the flag's gateway", args, r.stderr)
		}
	}
}

func TestListenWithoutTokensSaysHowToLogIn(t *testing.T) {
	r := ctl(t, env{"XDG_CONFIG_HOME": t.TempDir()}, "", "listen").must(t, exitFail, "listen")
	if !strings.Contains(r.stderr, "not logged in") || !strings.Contains(r.stderr, "wsmqctl login") {
		t.Fatalf("stderr %q", r.stderr)
	}
}

func TestLoginReadsThePasswordFromEnvThenStdin(t *testing.T) {
	c := &cli{stdin: strings.NewReader("from-stdin\r\nsecond line\n"), getenv: env{}.getenv}
	if p, err := c.password("", false); err != nil || p != "from-stdin" {
		t.Fatalf("stdin password = %q, %v; want the first line without CR", p, err)
	}
	c.getenv = env{"WSMQ_PASSWORD": "from-env"}.getenv
	if p, err := c.password("", false); err != nil || p != "from-env" {
		t.Fatalf("env password = %q, %v", p, err)
	}
	c = &cli{stdin: strings.NewReader(""), getenv: env{}.getenv}
	if _, err := c.password("", false); err == nil || !strings.Contains(err.Error(), "WSMQ_PASSWORD") {
		t.Fatalf("empty stdin: %v, want an error naming WSMQ_PASSWORD", err)
	}
}

func TestJWTUserIDReadsTheSubClaim(t *testing.T) {
	enc := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	cases := map[string]string{
		enc(`{"alg":"HS256"}`) + "." + enc(`{"sub":"users/abc123"}`) + ".sig": "abc123",
		enc(`{}`) + "." + enc(`{"sub":"robots/abc"}`) + ".sig":                "",
		"not-a-jwt": "",
		"a.!!!.c":   "",
	}
	for tok, want := range cases {
		if got := jwtUserID(tok); got != want {
			t.Errorf("jwtUserID(%q) = %q, want %q", tok, got, want)
		}
	}
}

func TestSendFileThatDoesNotExistFails(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope.txt")
	r := ctl(t, env{}, "", "send", "--file", missing).must(t, exitFail)
	if !strings.Contains(r.stderr, "nope.txt") {
		t.Fatalf("stderr %q", r.stderr)
	}
	if _, err := os.Stat(missing); err == nil {
		t.Fatal("send created the file")
	}
}
