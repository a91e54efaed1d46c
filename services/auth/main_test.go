package main

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	authv1 "github.com/wsmq/wsmq/gen/wsmq/auth/v1"
	"github.com/wsmq/wsmq/pkg/testenv"
)

// runCLI runs the built binary once with stdin and returns its exit code,
// stdout and stderr.
func runCLI(t *testing.T, bin string, env []string, stdin string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	testenv.CheckNoDataRace(t, "auth "+strings.Join(args, " "), errb.String())
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, out.String(), errb.String()
	case errors.As(err, &ee):
		return ee.ExitCode(), out.String(), errb.String()
	default:
		t.Fatalf("run %v: %v", args, err)
		return 0, "", ""
	}
}

func TestBinaryServesUsersAddedByItsCLIAndStopsOnSIGTERM(t *testing.T) {
	bin := testenv.Build(t, "github.com/wsmq/wsmq/services/auth")
	m := testenv.StartMongo(t)
	grpcAddr := "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))
	httpAddr := "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))
	env := []string{
		"WSMQ_MONGO_URI=" + m.URI(), "WSMQ_BCRYPT_COST=4", "WSMQ_DEV=1",
		"WSMQ_AUTH_LISTEN=" + grpcAddr, "WSMQ_AUTH_METRICS_LISTEN=" + httpAddr,
	}
	if code, out, errs := runCLI(t, bin, env, "correct horse\n", "user", "add", "alice"); code != 0 || !strings.Contains(out, "created user alice") {
		t.Fatalf("user add: exit %d, %q, %q", code, out, errs)
	}
	if code, _, errs := runCLI(t, bin, env, "", "user", "rm", "nobody"); code != 1 || !strings.Contains(errs, `user "nobody" not found`) {
		t.Fatalf("user rm nobody: exit %d, stderr %q", code, errs)
	}

	p := testenv.StartProcess(t, "auth", bin, env)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	p.WaitHTTP(ctx, "http://"+httpAddr+"/readyz")
	if !strings.Contains(p.Output(), `"msg":"grpc listening","service":"auth","addr":"`+grpcAddr+`"`) {
		t.Fatalf("no listening line for %s in:\n%s", grpcAddr, p.Output())
	}
	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	r, err := authv1.NewAuthServiceClient(conn).Authenticate(ctx, &authv1.AuthenticateRequest{UserName: "alice", Password: "correct horse"})
	if err != nil || r.AccessToken == "" {
		t.Fatalf("Authenticate = %v, %v", r, err)
	}
	if err := p.Terminate(10 * time.Second); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, p.Output())
	}
	for _, secret := range []string{"correct horse", r.AccessToken, r.Token} {
		if strings.Contains(p.Output(), secret) {
			t.Fatal("a secret reached the logs")
		}
	}
}

func TestBinaryRefusesToStartWithoutSecrets(t *testing.T) {
	bin := testenv.Build(t, "github.com/wsmq/wsmq/services/auth")
	code, _, errs := runCLI(t, bin, []string{"WSMQ_AUTH_ADMIN_TOKEN=0123456789abcdef"}, "")
	if code != 1 || !strings.Contains(errs, "WSMQ_JWT_SECRET") {
		t.Fatalf("exit %d, stderr %q; want 1 naming WSMQ_JWT_SECRET", code, errs)
	}
	code, _, errs = runCLI(t, bin, []string{"WSMQ_JWT_TTL=soon"}, "")
	if code != 1 || !strings.Contains(errs, "WSMQ_JWT_TTL") {
		t.Fatalf("exit %d, stderr %q; want 1 naming WSMQ_JWT_TTL", code, errs)
	}
}
