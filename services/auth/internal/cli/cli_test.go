package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	authv1 "github.com/wsmq/wsmq/gen/wsmq/auth/v1"
	"github.com/wsmq/wsmq/pkg/testenv"
)

type result struct {
	out string
	err error
}

func run(t *testing.T, vars map[string]string, stdin string, args ...string) result {
	t.Helper()
	var out bytes.Buffer
	err := Run(context.Background(), args, Env{
		Getenv: func(k string) string { return vars[k] },
		Stdin:  strings.NewReader(stdin),
		Stdout: &out,
		Stderr: io.Discard,
	})
	return result{out.String(), err}
}

func TestUserCommandsAdministerUsersWithoutAServer(t *testing.T) {
	m := testenv.StartMongo(t)
	vars := map[string]string{"WSMQ_MONGO_URI": m.URI(), "WSMQ_BCRYPT_COST": "4"}

	if r := run(t, vars, "correct horse\n", "user", "add", "alice"); r.err != nil || !strings.Contains(r.out, "created user alice") {
		t.Fatalf("add: %q, %v", r.out, r.err)
	}
	steps := []struct {
		name    string
		stdin   string
		args    []string
		wantOut string
		wantErr string
	}{
		{"duplicate", "another password\n", []string{"user", "add", "alice"}, "", `user "alice" already exists`},
		{"short password", "short\n", []string{"user", "add", "bob"}, "", "password: must be at least 8"},
		{"no password", "", []string{"user", "add", "bob"}, "", "no password on stdin"},
		{"password in argv refused", "", []string{"user", "add", "bob", "secretpassword"}, "", "want 1 argument"},
		{"bad name", "correct horse\n", []string{"user", "add", "b/b"}, "", "user_name:"},
		{"list", "", []string{"user", "ls"}, "alice", ""},
		{"passwd", "new password!\n", []string{"user", "passwd", "alice"}, "password of alice changed", ""},
		{"passwd unknown", "new password!\n", []string{"user", "passwd", "nobody"}, "", `user "nobody" not found`},
		{"revoke", "", []string{"user", "revoke", "alice"}, "0 session(s) of alice revoked", ""},
		{"rm", "", []string{"user", "rm", "alice"}, "deleted user alice", ""},
		{"rm again", "", []string{"user", "rm", "alice"}, "", `user "alice" not found`},
		{"unknown subcommand", "", []string{"user", "frobnicate"}, "", "unknown subcommand"},
		{"unknown command", "", []string{"frobnicate"}, "", "unknown command"},
		{"help", "", []string{"help"}, "auth [flags] user add NAME", ""},
	}
	for _, s := range steps {
		r := run(t, vars, s.stdin, s.args...)
		if s.wantErr != "" {
			if r.err == nil || !strings.Contains(r.err.Error(), s.wantErr) {
				t.Errorf("%s: error %v, want %q", s.name, r.err, s.wantErr)
			}
			continue
		}
		if r.err != nil || !strings.Contains(r.out, s.wantOut) {
			t.Errorf("%s: %q, %v; want output with %q", s.name, r.out, r.err, s.wantOut)
		}
	}
	if r := run(t, vars, "", "user", "ls"); r.err != nil || strings.Contains(r.out, "alice") {
		t.Fatalf("ls after rm: %q, %v", r.out, r.err)
	}
}

func TestUserCommandFailsClearlyWhenMongoIsUnreachable(t *testing.T) {
	port := testenv.FreePort(t) // nothing listens there
	vars := map[string]string{"WSMQ_MONGO_URI": "mongodb://127.0.0.1:" + strconv.Itoa(port), "WSMQ_MONGO_TIMEOUT": "500ms"}
	t0 := time.Now()
	r := run(t, vars, "", "user", "ls")
	if r.err == nil || !strings.Contains(r.err.Error(), "MongoDB unreachable") {
		t.Fatalf("error %v, want MongoDB unreachable", r.err)
	}
	if d := time.Since(t0); d > 5*time.Second {
		t.Fatalf("took %v with a 500ms deadline", d)
	}
}

func TestServeRefusesToStartWithoutSecretsOutsideDevMode(t *testing.T) {
	r := run(t, map[string]string{}, "", "serve")
	if r.err == nil || !strings.Contains(r.err.Error(), "WSMQ_JWT_SECRET") {
		t.Fatalf("serve without secrets: %v", r.err)
	}
	r = run(t, map[string]string{"WSMQ_JWT_SECRET": strings.Repeat("s", 32)}, "")
	if r.err == nil || !strings.Contains(r.err.Error(), "WSMQ_AUTH_ADMIN_TOKEN") {
		t.Fatalf("serve without admin token: %v", r.err)
	}
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

func TestServeInDevModeServesCLIUsersAndTheDemoUser(t *testing.T) {
	m := testenv.StartMongo(t)
	vars := map[string]string{
		"WSMQ_MONGO_URI": m.URI(), "WSMQ_BCRYPT_COST": "4", "WSMQ_DEV": "1",
		"WSMQ_AUTH_LISTEN": "127.0.0.1:0", "WSMQ_AUTH_METRICS_LISTEN": "127.0.0.1:0",
	}
	if r := run(t, vars, "correct horse\n", "user", "add", "alice"); r.err != nil {
		t.Fatal(r.err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logs := &testenv.SyncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, []string{"serve"}, Env{Getenv: func(k string) string { return vars[k] }, Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: logs})
	}()
	addr := logAddr(t, logs, "listening")
	maddr := logAddr(t, logs, "metrics listening")

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
	for path, want := range map[string]string{"/metrics": `wsmq_auth_authenticate_total{result="ok"} 2`, "/healthz": "ok", "/readyz": "ok"} {
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
