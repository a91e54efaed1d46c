package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	authv1 "github.com/wsmq/wsmq/gen/wsmq/auth/v1"
	"github.com/wsmq/wsmq/tools/internal/supervisor"
)

// Defaults of wsmqctl's global flags: printed commands add a flag only when
// the stack runs elsewhere.
const (
	ctlDefaultGateway   = "http://127.0.0.1:3000"
	ctlDefaultPublisher = "127.0.0.1:9092"
	ctlDefaultAuth      = "127.0.0.1:9091"
	demoUser            = "demo"
)

// lockedWriter serialises whole writes from the supervisor's log and from
// wsmq-run itself onto one output.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (l *lockedWriter) printf(format string, args ...any) {
	_, _ = fmt.Fprintf(l, format+"\n", args...)
}

// run starts the stack, prints what to do next, and waits for a signal
// (stop cleanly, return nil) or a crashed process (stop, return the error).
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer, sigs <-chan os.Signal) error {
	cfg, err := parseConfig(args, getenv)
	if errors.Is(err, flag.ErrHelp) {
		_, _ = fmt.Fprint(stderr, err.Error())
		return err
	}
	if err != nil {
		return err
	}
	out := &lockedWriter{w: stdout}
	cfg.stack.Log = out
	persist := "off"
	if cfg.stack.Persist {
		persist = "on"
	}
	data := cfg.stack.DataDir
	if data == "" {
		data = "a temp dir, removed on exit"
	}
	ha := ""
	if n := cfg.stack.RedisReplicas; n > 0 {
		ha += fmt.Sprintf(", %d redis replica(s)", n)
	}
	if n := cfg.stack.Sentinels; n > 0 {
		ha += fmt.Sprintf(", %d sentinel(s)", n)
	}
	out.printf("wsmq-run: starting redis%s, mongo, auth, publisher, gateway (data: %s; Redis persistence %s)", ha, data, persist)

	begin := time.Now()
	startCtx, cancelStart := context.WithCancel(ctx)
	defer cancelStart()
	type started struct {
		stack *supervisor.Stack
		err   error
	}
	res := make(chan started, 1)
	go func() {
		s, err := supervisor.Start(startCtx, cfg.stack)
		res <- started{s, err}
	}()
	var r started
	select {
	case r = <-res:
	case sig := <-sigs:
		out.printf("wsmq-run: %s during start-up: stopping what started", sig)
		cancelStart()
		r = <-res
		if r.err == nil {
			_ = r.stack.Stop(ctx)
		}
		return fmt.Errorf("interrupted by %s before the stack was ready", sig)
	}
	if r.err != nil {
		return fmt.Errorf("start failed: %w", r.err)
	}
	stack := r.stack
	ready := time.Since(begin)

	_, _ = io.WriteString(out, nextSteps(ctx, stack, cfg, ready))

	var cause error
	select {
	case sig := <-sigs:
		out.printf("wsmq-run: %s: stopping gateway, publisher, auth, mongo, redis (signal again to kill at once)", sig)
	case err := <-stack.Exits():
		cause = err
		out.printf("wsmq-run: %v: stopping the stack", err)
	}
	stopCtx, cancelStop := context.WithCancel(ctx)
	defer cancelStop()
	done := make(chan error, 1)
	go func() { done <- stack.Stop(stopCtx) }()
	var stopErr error
	for waiting := true; waiting; {
		select {
		case stopErr = <-done:
			waiting = false
		case sig := <-sigs:
			out.printf("wsmq-run: %s again: killing what is left", sig)
			cancelStop()
		}
	}
	switch {
	case cause != nil:
		return fmt.Errorf("%w (stack stopped)", cause)
	case stopErr != nil:
		return fmt.Errorf("stop: %w", stopErr)
	}
	out.printf("wsmq-run: stopped; no process left")
	return nil
}

// nextSteps is the block printed once the stack is ready: machine-readable
// "wsmq-run: ready" and "wsmq-run: pids" lines, then what to do next.
func nextSteps(ctx context.Context, s *supervisor.Stack, cfg config, ready time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, "wsmq-run: ready in %.2fs\n", ready.Seconds())
	b.WriteString("wsmq-run: pids")
	pids := s.PIDs()
	for _, n := range s.Names() {
		fmt.Fprintf(&b, " %s=%d", n, pids[n])
	}
	b.WriteString("\n\n")

	ctl := ctlCommand(s, cfg.stack.BinDir)
	line := func(label, format string, args ...any) {
		fmt.Fprintf(&b, "  %-11s %s\n", label, fmt.Sprintf(format, args...))
	}
	mode := "dev mode"
	if !cfg.stack.Dev {
		mode = "production mode"
	}
	fmt.Fprintf(&b, "  wsmq is running (%s, data in %s).\n\n", mode, s.DataDir())
	if cfg.stack.Dev {
		userID := demoUserID(ctx, s)
		queue := userID
		if queue == "" {
			queue = "<demo user id: printed by wsmqctl login>"
		}
		line("Demo user", "%s / %s   (user id %s, which is also its queue)", demoUser, demoUser, orUnknown(userID))
		line("Demo page", "%s/demo", s.GatewayURL(0))
		line("Listen", "WSMQ_PASSWORD=%s %s login --user %s && %s listen", demoUser, ctl, demoUser, ctl)
		line("Send", "%s send %s 'hello from wsmq'   (in a second terminal)", ctl, queue)
	} else {
		line("Users", "%s users add NAME (admin token: set it with -env WSMQ_AUTH_ADMIN_TOKEN=...)", ctl)
	}
	for i := range s.Gateways() {
		line(fmt.Sprintf("Gateway %d", i), "%s   (websocket %s/ws, login POST %s/v1/authenticate; admin http://%s/readyz)",
			s.GatewayURL(i), strings.Replace(s.GatewayURL(i), "http://", "ws://", 1), s.GatewayURL(i), s.GatewayAdminAddr(i))
	}
	line("gRPC", "publisher %s, auth %s", s.PublisherAddr(), s.AuthAddr())
	line("HTTP API", "%s", curlExample(s))
	line("Redis", "%s   MongoDB %s", s.RedisURL(), s.MongoURI())
	b.WriteString("\n  Ctrl-C stops everything.\n\n")
	return b.String()
}

// curlExample is a curl command that publishes through the HTTP/JSON API.
func curlExample(s *supervisor.Stack) string {
	auth := ""
	if k := s.PublisherKey(); k != "" {
		auth = "-H 'Authorization: Bearer " + k + "' "
	}
	return "curl -sS " + auth + "-H 'Content-Type: application/json' -d '{\"message\":\"hello\"}' http://" +
		s.PublisherHTTPAddr() + "/v1/queues/QUEUE/messages"
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// ctlCommand is how to call wsmqctl from the current directory, with the
// global flags that point it at this stack when it is not on the defaults.
func ctlCommand(s *supervisor.Stack, binDir string) string {
	path := "wsmqctl"
	if binDir == "" {
		if exe, err := os.Executable(); err == nil {
			binDir = filepath.Dir(exe)
		}
	}
	if binDir != "" {
		path = filepath.Join(binDir, "wsmqctl")
		if wd, err := os.Getwd(); err == nil {
			if rel, err := filepath.Rel(wd, path); err == nil && !strings.HasPrefix(rel, "..") {
				path = rel
			}
		}
	}
	if s.GatewayURL(0) != ctlDefaultGateway {
		path += " --gateway " + s.GatewayURL(0)
	}
	if s.PublisherAddr() != ctlDefaultPublisher {
		path += " --publisher " + s.PublisherAddr()
	}
	if s.AuthAddr() != ctlDefaultAuth {
		path += " --auth " + s.AuthAddr()
	}
	return path
}

// demoUserID looks the demo user's id up with the admin ListUsers call
// (no token is issued); "" when it cannot.
func demoUserID(ctx context.Context, s *supervisor.Stack) string {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	cc, err := grpc.NewClient(s.AuthAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return ""
	}
	defer func() { _ = cc.Close() }()
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+s.AdminToken())
	res, err := authv1.NewAuthServiceClient(cc).ListUsers(ctx, &authv1.ListUsersRequest{})
	if err != nil {
		return ""
	}
	for _, u := range res.GetUsers() {
		if u.GetUserName() == demoUser {
			return u.GetUserId()
		}
	}
	return ""
}
