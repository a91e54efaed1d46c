package serve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	"google.golang.org/grpc/status"
)

// Server serves on a listener until Shutdown.
type Server interface {
	// Serve serves on ln; it returns nil once Shutdown stopped it.
	Serve(ln net.Listener) error
	// Shutdown stops gracefully within ctx, then forcibly.
	Shutdown(ctx context.Context) error
}

// Group owns a service's servers and background loops: it starts them in
// Run and, when the context ends or a server fails, stops the servers in the
// order they were added (public first, admin last) within one deadline,
// then the loops.
type Group struct {
	log     *slog.Logger
	members []member
	loops   []func(context.Context)
}

type member struct {
	name string
	ln   net.Listener
	srv  Server
}

// NewGroup returns an empty group logging to log.
func NewGroup(log *slog.Logger) *Group { return &Group{log: log} }

// Listen opens addr for srv and returns the address bound (port 0 picks a
// free one). env names the setting in the error, so a busy port says which
// variable to change.
func (g *Group) Listen(name, env, addr string, srv Server) (net.Addr, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s: listen on %s (set %s to change it): %w", name, addr, env, err)
	}
	g.members = append(g.members, member{name: name, ln: ln, srv: srv})
	return ln.Addr(), nil
}

// Go adds a loop that runs until the group stops (probes, sweeps).
func (g *Group) Go(loop func(ctx context.Context)) { g.loops = append(g.loops, loop) }

// Close closes the listeners of a group that will not Run (a wiring error
// after some Listen calls).
func (g *Group) Close() {
	for _, m := range g.members {
		_ = m.ln.Close()
	}
}

// Run serves until ctx ends or a server fails, then stops everything and
// returns the first server error. Loops get a context of their own that
// ends after the servers stopped, so probes keep readiness honest while
// the servers drain.
func (g *Group) Run(ctx context.Context, timeout time.Duration) error {
	loopCtx, stopLoops := context.WithCancel(context.WithoutCancel(ctx))
	defer stopLoops()
	var loops sync.WaitGroup
	for _, l := range g.loops {
		loops.Go(func() { l(loopCtx) })
	}

	// A server that returns before the group stops it has failed, even
	// without an error (closed under our feet).
	failed := make(chan error, len(g.members))
	var stopping atomic.Bool
	var servers sync.WaitGroup
	for _, m := range g.members {
		servers.Go(func() {
			g.log.Info(m.name+" listening", "addr", m.ln.Addr().String())
			err := m.srv.Serve(m.ln)
			switch {
			case err != nil:
				failed <- fmt.Errorf("%s: %w", m.name, err)
			case !stopping.Load():
				failed <- fmt.Errorf("%s stopped unexpectedly", m.name)
			}
		})
	}
	var first error
	select {
	case <-ctx.Done():
	case first = <-failed:
		g.log.Error("server failed; stopping", "err", first)
	}
	stopping.Store(true)

	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	for _, m := range g.members {
		if err := m.srv.Shutdown(sctx); err != nil {
			g.log.Warn(m.name+" stop incomplete", "err", err)
		}
	}
	servers.Wait()
	stopLoops()
	loops.Wait()
	if first == nil {
		select {
		case first = <-failed:
		default:
		}
	}
	return first
}

// HTTP is an http.Server as a Server: Shutdown falls back to Close at the
// deadline.
type HTTP struct{ *http.Server }

// NewHTTP returns h behind an http.Server with wsmq's timeouts.
func NewHTTP(h http.Handler, log *slog.Logger) HTTP {
	return HTTP{&http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}}
}

// Serve implements Server.
func (h HTTP) Serve(ln net.Listener) error {
	if err := h.Server.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Shutdown implements Server.
func (h HTTP) Shutdown(ctx context.Context) error {
	err := h.Server.Shutdown(ctx)
	if err != nil {
		_ = h.Close()
	}
	return err
}

// GRPC is a grpc.Server with its health service as a Server: Shutdown
// turns health NOT_SERVING, stops gracefully, and cuts the remaining calls
// at the deadline.
type GRPC struct {
	Server *grpc.Server
	Health *health.Server
}

// Serve implements Server.
func (g GRPC) Serve(ln net.Listener) error {
	if err := g.Server.Serve(ln); !errors.Is(err, grpc.ErrServerStopped) {
		return err
	}
	return nil
}

// Shutdown implements Server.
func (g GRPC) Shutdown(ctx context.Context) error {
	if g.Health != nil {
		g.Health.Shutdown()
	}
	done := make(chan struct{})
	go func() { g.Server.GracefulStop(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		g.Server.Stop()
		<-done
		return fmt.Errorf("grace period over, remaining calls cut: %w", ctx.Err())
	}
}

// RecoverUnary turns a handler panic into Internal instead of a crashed
// process.
func RecoverUnary(log *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
		defer func() {
			if r := recover(); r != nil {
				log.Error("handler panic", "method", info.FullMethod, "panic", fmt.Sprint(r))
				err = status.Error(codes.Internal, "internal error")
			}
		}()
		return handler(ctx, req)
	}
}

// Logger is the JSON logger every service writes to stderr.
func Logger(level slog.Level, service string) *slog.Logger {
	return slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level})).With("service", service)
}
