// Command wsmq-run starts wsmq's whole stack on loopback for development
// (`make run`): redis-server, the MongoDB-wire dev server, auth, publisher
// and the gateway, in dev mode. It waits until every process is ready by
// health checks, prints how to connect, and on Ctrl-C (SIGINT) or SIGTERM
// stops everything in reverse order, leaving no process behind. A second
// signal kills what is left at once.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	err := run(context.Background(), os.Args[1:], os.Getenv, os.Stdout, os.Stderr, sigs)
	switch {
	case errors.Is(err, flag.ErrHelp):
		os.Exit(0)
	case err != nil:
		fmt.Fprintln(os.Stderr, "wsmq-run:", err)
		os.Exit(1)
	}
}
