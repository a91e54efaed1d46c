package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	authv1 "github.com/wsmq/wsmq/gen/wsmq/auth/v1"
	pkgconfig "github.com/wsmq/wsmq/pkg/config"
	"github.com/wsmq/wsmq/pkg/testenv"
	"github.com/wsmq/wsmq/services/auth/internal/cli"
	"github.com/wsmq/wsmq/services/auth/internal/config"
)

// runInProcess runs the auth command line in-process, as main does, with the
// service's logs to logs.
func runInProcess(ctx context.Context, vars map[string]string, logs io.Writer, args ...string) error {
	return runInProcessStdin(ctx, vars, logs, "", args...)
}

func runInProcessStdin(ctx context.Context, vars map[string]string, logs io.Writer, stdin string, args ...string) error {
	env := cli.Env{Env: pkgconfig.MapEnv(vars), Stdin: strings.NewReader(stdin), Stdout: io.Discard, Stderr: logs}
	return cli.Run(ctx, args, env, func(ctx context.Context, cfg config.Config, log *slog.Logger) error {
		return run(ctx, cfg, log, hooks{healthInterval: 50 * time.Millisecond})
	})
}

// logAddr waits for the JSON log line with msg and returns its addr.
func logAddr(t *testing.T, logs *testenv.SyncBuffer, msg string) string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		for _, line := range strings.Split(logs.String(), "\n") {
			var rec struct{ Msg, Addr string }
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == msg {
				return rec.Addr
			}
		}
		time.Sleep(10 * time.Millisecond) // polling interval
	}
	t.Fatalf("no %q log line; logs:\n%s", msg, logs.String())
	return ""
}

func TestServeRefusesToStartWithoutSecretsOutsideDevMode(t *testing.T) {
	err := runInProcess(context.Background(), map[string]string{}, io.Discard, "serve")
	if err == nil || !strings.Contains(err.Error(), "WSMQ_JWT_SECRET") {
		t.Fatalf("serve without secrets: %v", err)
	}
	err = runInProcess(context.Background(), map[string]string{"WSMQ_JWT_SECRET": strings.Repeat("s", 32)}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "WSMQ_AUTH_ADMIN_TOKEN") {
		t.Fatalf("serve without admin token: %v", err)
	}
}

func TestServeInDevModeServesCLIUsersAndTheDemoUser(t *testing.T) {
	m := testenv.StartMongo(t)
	vars := map[string]string{
		"WSMQ_MONGO_URI": m.URI(), "WSMQ_BCRYPT_COST": "4", "WSMQ_DEV": "1",
		"WSMQ_AUTH_LISTEN": "127.0.0.1:0", "WSMQ_AUTH_METRICS_LISTEN": "127.0.0.1:0",
	}
	if err := runInProcessStdin(context.Background(), vars, io.Discard, "correct horse\n", "user", "add", "alice"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logs := &testenv.SyncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- runInProcess(ctx, vars, logs, "serve")
	}()
	addr := logAddr(t, logs, "grpc listening")
	maddr := logAddr(t, logs, "admin listening")

	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	c := authv1.NewAuthServiceClient(conn)
	for user, pw := range map[string]string{"alice": "correct horse", "demo": "demo"} {
		r, err := c.Authenticate(ctx, &authv1.AuthenticateRequest{UserName: user, Password: pw})
		if err != nil || r.Token == "" {
			t.Fatalf("Authenticate(%s) = %v, %v", user, r, err)
		}
	}
	h, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: "wsmq.auth.v1.AuthService"})
	if err != nil || h.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health = %v, %v", h, err)
	}
	for path, want := range map[string]string{"/metrics": `wsmq_auth_authenticate_total{result="ok"} 2`, "/healthz": `{"status":"ok"}`, "/readyz": `"mongodb":"up"`} {
		resp, err := http.Get("http://" + maddr + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), want) {
			t.Errorf("GET %s: %d, body lacks %q", path, resp.StatusCode, want)
		}
	}
	if strings.Contains(logs.String(), "correct horse") {
		t.Fatal("a password reached the logs")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve returned %v after cancel", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("serve did not stop after cancel")
	}
}
