// Command wsmq-bench measures wsmq end to end: it starts the whole stack
// through the supervisor (or targets a running one), runs named scenarios
// (fanout, ack, burst, idle, batch) with websocket clients and gRPC
// publishers, and writes bench/results/<date>-<mode>.json, a Markdown
// summary and a chart.
//
//	wsmq-bench -quick -bin bin -out bench/results     # make bench
//	wsmq-bench -full -bin bin -out bench/results      # make bench-full
//	wsmq-bench -target -gateway http://127.0.0.1:3000 -publisher 127.0.0.1:9092 -redis 127.0.0.1:6379 -scenarios fanout
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		slog.Error("wsmq-bench failed", "err", err)
		os.Exit(1)
	}
}

func saveTo(name string, w io.WriterTo) error {
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	if _, err := w.WriteTo(f); err != nil {
		_ = f.Close()
		return fmt.Errorf("write %s: %w", name, err)
	}
	return f.Close()
}
