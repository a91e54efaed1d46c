package main

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

func TestHTTPProbeIsHealthyOnlyOn2xx(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/readyz":
			w.WriteHeader(http.StatusOK)
		case "/notready":
			w.WriteHeader(http.StatusServiceUnavailable)
		case "/slow":
			<-r.Context().Done()
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)

	tests := []struct {
		name   string
		args   []string
		want   int
		stderr string
	}{
		{"ready", []string{srv.URL + "/readyz"}, exitHealthy, ""},
		{"503", []string{srv.URL + "/notready"}, exitUnhealthy, "503"},
		{"404", []string{srv.URL + "/nope"}, exitUnhealthy, "404"},
		{"timeout", []string{"-timeout", "200ms", srv.URL + "/slow"}, exitUnhealthy, "deadline"},
		{"connection refused", []string{"http://" + closedAddr(t) + "/readyz"}, exitUnhealthy, "refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr strings.Builder
			if got := run(context.Background(), tt.args, &stderr); got != tt.want {
				t.Fatalf("exit %d, want %d (stderr %q)", got, tt.want, stderr.String())
			}
			if !strings.Contains(stderr.String(), tt.stderr) {
				t.Fatalf("stderr %q does not mention %q", stderr.String(), tt.stderr)
			}
		})
	}
}

func TestGRPCProbeIsHealthyOnlyWhenServing(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := health.NewServer()
	hs.SetServingStatus("wsmq.auth.v1.AuthService", healthpb.HealthCheckResponse_SERVING)
	hs.SetServingStatus("down", healthpb.HealthCheckResponse_NOT_SERVING)
	gs := grpc.NewServer()
	healthpb.RegisterHealthServer(gs, hs)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = gs.Serve(lis)
	}()
	t.Cleanup(func() { gs.Stop(); <-done })
	addr := lis.Addr().String()

	tests := []struct {
		name   string
		args   []string
		want   int
		stderr string
	}{
		{"server serving", []string{"grpc", addr}, exitHealthy, ""},
		{"service serving", []string{"grpc", addr, "wsmq.auth.v1.AuthService"}, exitHealthy, ""},
		{"service not serving", []string{"grpc", addr, "down"}, exitUnhealthy, "NOT_SERVING"},
		{"unknown service", []string{"grpc", addr, "nope"}, exitUnhealthy, "NotFound"},
		{"nothing listening", []string{"-timeout", "500ms", "grpc", closedAddr(t)}, exitUnhealthy, "grpc health check"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr strings.Builder
			if got := run(context.Background(), tt.args, &stderr); got != tt.want {
				t.Fatalf("exit %d, want %d (stderr %q)", got, tt.want, stderr.String())
			}
			if !strings.Contains(stderr.String(), tt.stderr) {
				t.Fatalf("stderr %q does not mention %q", stderr.String(), tt.stderr)
			}
		})
	}

	// Health flipping to NOT_SERVING (a draining server) turns the probe red.
	hs.Shutdown()
	var stderr strings.Builder
	if got := run(context.Background(), []string{"grpc", addr}, &stderr); got != exitUnhealthy {
		t.Fatalf("after shutdown: exit %d, want %d", got, exitUnhealthy)
	}
}

func TestProbeRejectsBadUsage(t *testing.T) {
	for _, args := range [][]string{
		nil,
		{"ftp://x"},
		{"grpc"},
		{"grpc", "a", "b", "c"},
		{"-timeout", "0s", "http://127.0.0.1:1/"},
		{"-nope"},
	} {
		var stderr strings.Builder
		if got := run(context.Background(), args, &stderr); got != exitUsage {
			t.Errorf("%q: exit %d, want %d", args, got, exitUsage)
		}
		if stderr.Len() == 0 {
			t.Errorf("%q: no usage message", args)
		}
	}
}

// closedAddr is a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	if err := lis.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}
