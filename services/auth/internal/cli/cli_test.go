package cli

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wsmq/wsmq/pkg/config"
	"github.com/wsmq/wsmq/pkg/testenv"
	authconfig "github.com/wsmq/wsmq/services/auth/internal/config"
)

// errServeCalled is what the tests' serve function returns: the user
// commands must never start the service.
var errServeCalled = errors.New("serve called")

type result struct {
	out string
	err error
}

func run(t *testing.T, vars map[string]string, stdin string, args ...string) result {
	t.Helper()
	var out bytes.Buffer
	err := Run(context.Background(), args, Env{
		Env:    config.MapEnv(vars),
		Stdin:  strings.NewReader(stdin),
		Stdout: &out,
		Stderr: io.Discard,
	}, func(context.Context, authconfig.Config, *slog.Logger) error {
		return errServeCalled
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
