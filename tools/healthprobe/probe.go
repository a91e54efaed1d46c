package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// Exit codes of run.
const (
	exitHealthy   = 0
	exitUnhealthy = 1
	exitUsage     = 2
)

const usage = `usage:
  healthprobe [-timeout 3s] http://HOST:PORT/PATH      healthy on HTTP 2xx
  healthprobe [-timeout 3s] grpc HOST:PORT [SERVICE]   healthy on gRPC health SERVING
`

// run parses args, probes once and returns the exit code.
func run(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("healthprobe", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { _, _ = fmt.Fprint(stderr, usage) }
	timeout := fs.Duration("timeout", 3*time.Second, "deadline of the probe")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if *timeout <= 0 {
		_, _ = fmt.Fprintln(stderr, "healthprobe: -timeout must be positive")
		return exitUsage
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()

	var err error
	switch a := fs.Args(); {
	case len(a) == 1 && (strings.HasPrefix(a[0], "http://") || strings.HasPrefix(a[0], "https://")):
		err = probeHTTP(ctx, a[0])
	case (len(a) == 2 || len(a) == 3) && a[0] == "grpc":
		service := ""
		if len(a) == 3 {
			service = a[2]
		}
		err = probeGRPC(ctx, a[1], service)
	default:
		fs.Usage()
		return exitUsage
	}
	if err != nil {
		_, _ = fmt.Fprintf(stderr, "healthprobe: unhealthy: %v\n", err)
		return exitUnhealthy
	}
	return exitHealthy
}

// probeHTTP is healthy when GET url answers 2xx.
func probeHTTP(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("request %s: %w", url, err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	defer func() { _ = res.Body.Close() }()
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	if res.StatusCode < 200 || res.StatusCode > 299 {
		return fmt.Errorf("GET %s: %s", url, res.Status)
	}
	return nil
}

// probeGRPC is healthy when the gRPC health service at addr reports SERVING
// for service ("" = the whole server).
func probeGRPC(ctx context.Context, addr, service string) error {
	if addr == "" {
		return errors.New("grpc: empty address")
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("grpc %s: %w", addr, err)
	}
	defer func() { _ = conn.Close() }()
	res, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: service})
	if err != nil {
		return fmt.Errorf("grpc health check %s: %w", addr, err)
	}
	if s := res.GetStatus(); s != healthpb.HealthCheckResponse_SERVING {
		return fmt.Errorf("grpc %s: status %s", addr, s)
	}
	return nil
}
