// Command healthprobe checks one wsmq service's health for container
// healthchecks: the distroless images have no shell or curl, so compose runs
// this static binary instead.
//
//	healthprobe http://127.0.0.1:3000/readyz   # healthy on HTTP 2xx
//	healthprobe grpc 127.0.0.1:9091 [service]  # healthy on gRPC health SERVING
//
// It exits 0 when healthy, 1 when not (with the reason on stderr), 2 on a
// usage error.
package main

import (
	"context"
	"os"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stderr))
}
