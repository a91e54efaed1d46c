// Command wsmqctl is wsmq's command-line client: it logs in through the
// gateway, listens on a websocket, sends messages through the publisher,
// administers users through the auth service and shows RSMQ queue
// statistics. Run `wsmqctl --help` for the commands.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv, os.Environ())
	stop()
	os.Exit(code)
}
