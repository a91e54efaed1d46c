package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

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

// parseConfig reads args (without the program name) and the environment.
// Malformed values fail, naming the flag or variable.
func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	c := config{stack: supervisor.Config{Persist: true, Dev: true, Gateways: 1, ReadyTimeout: supervisor.DefaultReadyTimeout}}
	s := &c.stack
	fs := flag.NewFlagSet("wsmq-run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		_, _ = fmt.Fprint(fs.Output(), `usage: wsmq-run [flags]

Starts wsmq's whole stack on loopback, in dev mode by default: redis-server,
the MongoDB-wire dev server, auth, publisher and the gateway. It waits until
every process is ready, prints how to connect, and stops everything on
Ctrl-C (SIGINT) or SIGTERM (twice: kill at once). Every flag has a WSMQ_RUN_*
environment fallback.

flags:
`)
		fs.PrintDefaults()
	}

	var errs []error
	envStr := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	envBool := func(name string, def bool) bool {
		v := getenv(name)
		if v == "" {
			return def
		}
		b, err := strconv.ParseBool(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %q is not a boolean (1/0/true/false)", name, v))
		}
		return b
	}
	envInt := func(name string, def int) int {
		v := getenv(name)
		if v == "" {
			return def
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %q is not an integer", name, v))
		}
		return n
	}

	fs.StringVar(&s.DataDir, "data", envStr("WSMQ_RUN_DATA", ""), `data directory for Redis and MongoDB, kept between runs ("": a temp dir removed on exit) (WSMQ_RUN_DATA)`)
	fs.StringVar(&s.BinDir, "bin", envStr("WSMQ_RUN_BIN", ""), `directory of wsmq-auth, wsmq-publisher, wsmq-gateway, wsmq-mongowire ("": next to wsmq-run, else <repo>/bin) (WSMQ_RUN_BIN)`)
	fs.StringVar(&s.RedisServer, "redis-server", envStr("WSMQ_RUN_REDIS_SERVER", ""), `redis-server binary ("": from PATH) (WSMQ_RUN_REDIS_SERVER)`)
	fs.BoolVar(&s.Persist, "persist", envBool("WSMQ_RUN_PERSIST", true), "Redis persistence in the data dir: AOF everysec + snapshot on exit (WSMQ_RUN_PERSIST)")
	fs.BoolVar(&s.Dev, "dev", envBool("WSMQ_RUN_DEV", true), "dev mode: demo/demo user, dev secrets, keyless publisher, /demo page (WSMQ_RUN_DEV)")
	fs.IntVar(&s.Gateways, "gateways", envInt("WSMQ_RUN_GATEWAYS", 1), "number of gateway replicas; replica 1.. get free ports (WSMQ_RUN_GATEWAYS)")
	readyTimeout := envStr("WSMQ_RUN_READY_TIMEOUT", supervisor.DefaultReadyTimeout.String())
	d, err := time.ParseDuration(readyTimeout)
	if err != nil {
		errs = append(errs, fmt.Errorf("WSMQ_RUN_READY_TIMEOUT: %q is not a duration (e.g. 30s)", readyTimeout))
	}
	fs.DurationVar(&s.ReadyTimeout, "ready-timeout", d, "how long each start phase may take to become ready (WSMQ_RUN_READY_TIMEOUT)")
	var env envList
	fs.Var(&env, "env", "extra KEY=VALUE setting for every service, repeatable (e.g. -env WSMQ_LOG_LEVEL=debug)")
	for _, p := range s.Ports.Settings() {
		fs.IntVar(p.Port, p.Flag, envInt(p.Env, p.Default), fmt.Sprintf("%s port (%s)", p.Service, p.Env))
	}
	if len(errs) > 0 {
		return c, errors.Join(errs...)
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q (see -h)", fs.Args())
	}
	if s.Gateways < 1 {
		return c, fmt.Errorf("-gateways: %d, want at least 1", s.Gateways)
	}
	if s.ReadyTimeout <= 0 {
		return c, fmt.Errorf("-ready-timeout: %s, want more than 0", s.ReadyTimeout)
	}
	s.Env = env
	return c, nil
}
