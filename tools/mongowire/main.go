// Command wsmq-mongowire is the MongoDB-wire-protocol server for local runs and
// tests: FerretDB with its SQLite backend, embedded. It listens on loopback,
// prints its mongodb:// URI on stdout once it accepts connections, and stops
// on SIGINT or SIGTERM. It is a development tool; production uses MongoDB.
//
// It lives in a module of its own, outside go.work, so FerretDB's dependency
// graph never reaches the services. Build it with GOWORK=off.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "wsmq-mongowire:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("wsmq-mongowire", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:0", "TCP address to listen on (port 0 picks a free port)")
	dataDir := fs.String("data", "", "directory for the SQLite files (required)")
	logLevel := fs.String("log-level", "warn", "log level: debug, info, warn, error")
	ping := fs.String("ping", "", "instead of serving: send {ping: 1} to the server at this host:port and exit 0 when it answers ok (a healthcheck)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *ping != "" {
		return pingServer(ctx, *ping)
	}
	if *dataDir == "" {
		return fmt.Errorf("-data is required")
	}
	dir, err := filepath.Abs(*dataDir)
	if err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("-log-level: %w", err)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: *listen},
		Logger:    logger,
		Handler:   "sqlite",
		SQLiteURL: "file:" + dir + "/",
	})
	if err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	// MongoDBURI waits until the listener is bound, so the URI printed here
	// names the real port and clients can connect as soon as they read it.
	fmt.Println(f.MongoDBURI())
	return <-done
}
