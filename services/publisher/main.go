// Command publisher is the wsmq publisher service: a gRPC server that puts
// messages on RSMQ queues in Redis for the gateway to deliver.
//
// Configuration comes from flags with WSMQ_* environment fallbacks; run
// `publisher -h` for the list, or see README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/redis/go-redis/v9"

	"github.com/wsmq/wsmq/services/publisher/internal/config"
	"github.com/wsmq/wsmq/services/publisher/internal/service"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.LookupEnv, os.Environ()); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, config.Usage())
			return
		}
		slog.New(slog.NewJSONHandler(os.Stderr, nil)).Error("publisher stopped", "err", err)
		os.Exit(1)
	}
}

// run parses the configuration, builds the logger and runs the service until
// ctx ends.
func run(ctx context.Context, args []string, lookupEnv func(string) (string, bool), environ []string) error {
	cfg, err := config.Parse(args, lookupEnv, environ)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: cfg.LogLevel})).With("service", "publisher")
	// go-redis logs through a process-wide logger (pool dial failures while
	// Redis is down); route it into the JSON log.
	redis.SetLogger(redisLog{log.With("component", "go-redis")})
	if cfg.Dev && len(cfg.KeyDigests) == 0 {
		log.Warn("dev mode: caller keys are not checked")
	}
	return service.Run(ctx, cfg, log, service.Options{})
}

// redisLog adapts slog to go-redis's logger interface. Its messages repeat
// what the readiness pinger reports, so they are debug level.
type redisLog struct{ log *slog.Logger }

func (l redisLog) Printf(ctx context.Context, format string, v ...any) {
	l.log.DebugContext(ctx, fmt.Sprintf(format, v...))
}
