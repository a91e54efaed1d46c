// Package cli is the auth binary's command line: `serve` runs the gRPC
// service, `user ...` administers users directly in MongoDB (no running
// server needed).
package cli

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/term"

	"github.com/wsmq/wsmq/pkg/config"

	"github.com/wsmq/wsmq/services/auth/internal/authn"
	authconfig "github.com/wsmq/wsmq/services/auth/internal/config"
	"github.com/wsmq/wsmq/services/auth/internal/passwords"
	"github.com/wsmq/wsmq/services/auth/internal/store"
)

// Env is what a command may use of the process.
type Env struct {
	Env    config.Env
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
}

// ServeFunc runs the service until ctx ends (main.go's wiring).
type ServeFunc func(ctx context.Context, cfg authconfig.Config, log *slog.Logger) error

const usage = `usage:
  auth [flags] [serve [flags]]      run the gRPC service (the default)
  auth [flags] user add NAME        create a user; the password is read from stdin
                                    (or prompted for on a terminal), never from argv
  auth [flags] user passwd NAME     set a user's password; revokes all its sessions
  auth [flags] user revoke NAME     revoke all sessions of a user
  auth [flags] user rm NAME         delete a user and all its sessions
  auth [flags] user ls              list users with their session counts
  auth help                         this text
Run 'auth -h' for the flags; each has a WSMQ_* environment variable.`

// Run runs the command in args; serve runs the service for `serve` (the
// default command).
func Run(ctx context.Context, args []string, env Env, serve ServeFunc) error {
	settings := authconfig.NewSettings()
	cfg, rest, err := settings.Parse(args, env.Env)
	if errors.Is(err, flag.ErrHelp) {
		_, _ = fmt.Fprintln(env.Stderr, usage+"\n\n"+settings.Usage())
		return err
	}
	if err != nil {
		return err
	}
	if len(rest) == 0 || rest[0] == "serve" {
		if len(rest) > 0 {
			cfg, rest, err = settings.ParseFlags(rest[1:])
			if err != nil {
				return err
			}
			if len(rest) > 0 {
				return fmt.Errorf("serve: unexpected argument %q", rest[0])
			}
		}
		return serve(ctx, cfg, NewLogger(env.Stderr, cfg.LogLevel))
	}
	switch rest[0] {
	case "help":
		_, err := fmt.Fprintln(env.Stdout, usage)
		return err
	case "user":
	default:
		return fmt.Errorf("unknown command %q (run 'auth help')", rest[0])
	}
	return runUser(ctx, cfg, rest[1:], env)
}

func runUser(ctx context.Context, cfg authconfig.Config, args []string, env Env) error {
	if len(args) == 0 {
		return errors.New("user: missing subcommand (run 'auth help')")
	}
	sub, args := args[0], args[1:]
	want := 1
	if sub == "ls" {
		want = 0
	}
	switch sub {
	case "add", "passwd", "revoke", "rm", "ls":
	default:
		return fmt.Errorf("user: unknown subcommand %q (run 'auth help')", sub)
	}
	if len(args) != want {
		return fmt.Errorf("user %s: want %d argument(s), got %d (passwords are read from stdin, never from arguments; run 'auth help')", sub, want, len(args))
	}
	var name string
	if want == 1 {
		name = args[0]
		if err := authn.ValidateUserName(name); err != nil {
			return err
		}
	}

	st, err := store.Open(store.Options{URI: cfg.MongoURI, Database: cfg.MongoDB, Timeout: cfg.MongoTimeout})
	if err != nil {
		return err
	}
	defer func() { _ = st.Close(context.WithoutCancel(ctx)) }()
	if err := st.EnsureIndexes(ctx); err != nil {
		return describe(err, name)
	}
	hasher, err := passwords.NewHasher(cfg.BcryptCost)
	if err != nil {
		return err
	}
	svc := authn.New(st, nil, hasher, authn.Options{AccessTokenTTL: cfg.AccessTokenTTL})

	switch sub {
	case "add":
		pw, err := readPassword(env, "Password for "+name+": ")
		if err != nil {
			return err
		}
		id, err := svc.CreateUser(ctx, name, pw)
		if err != nil {
			return describe(err, name)
		}
		return say(env, "created user %s (id %s)", name, id)
	case "passwd":
		pw, err := readPassword(env, "New password for "+name+": ")
		if err != nil {
			return err
		}
		n, err := svc.SetPassword(ctx, name, pw)
		if err != nil {
			return describe(err, name)
		}
		return say(env, "password of %s changed; %d session(s) revoked", name, n)
	case "revoke":
		n, err := svc.RevokeUser(ctx, name)
		if err != nil {
			return describe(err, name)
		}
		return say(env, "%d session(s) of %s revoked", n, name)
	case "rm":
		n, err := svc.DeleteUser(ctx, name)
		if err != nil {
			return describe(err, name)
		}
		return say(env, "deleted user %s; %d session(s) revoked", name, n)
	case "ls":
		users, err := svc.ListUsers(ctx)
		if err != nil {
			return describe(err, "")
		}
		tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
		// tabwriter buffers; Flush reports any write error.
		_, _ = fmt.Fprintln(tw, "NAME\tID\tCREATED\tSESSIONS")
		for _, u := range users {
			_, _ = fmt.Fprintf(tw, "%s\t%s\t%s\t%d\n", u.Name, u.ID, u.Created.UTC().Format(time.RFC3339), u.Sessions)
		}
		return tw.Flush()
	}
	return nil
}

// say prints one line of command output.
func say(env Env, format string, args ...any) error {
	_, err := fmt.Fprintf(env.Stdout, format+"\n", args...)
	return err
}

// describe turns a store error into a message for the operator.
func describe(err error, name string) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("user %q not found", name)
	case errors.Is(err, store.ErrDuplicate):
		return fmt.Errorf("user %q already exists", name)
	case errors.Is(err, store.ErrUnavailable):
		return fmt.Errorf("MongoDB unreachable (check WSMQ_MONGO_URI): %w", err)
	}
	return err
}

// readPassword reads a password: with a prompt (twice, not echoed) when
// stdin is a terminal, else the first line of stdin.
func readPassword(env Env, prompt string) (string, error) {
	if f, ok := env.Stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		_, _ = fmt.Fprint(env.Stderr, prompt)
		a, err := term.ReadPassword(int(f.Fd()))
		_, _ = fmt.Fprintln(env.Stderr)
		if err != nil {
			return "", fmt.Errorf("read password: %w", err)
		}
		_, _ = fmt.Fprint(env.Stderr, "Repeat: ")
		b, err := term.ReadPassword(int(f.Fd()))
		_, _ = fmt.Fprintln(env.Stderr)
		if err != nil {
			return "", fmt.Errorf("read password: %w", err)
		}
		if string(a) != string(b) {
			return "", errors.New("passwords do not match")
		}
		return string(a), nil
	}
	line, err := bufio.NewReader(env.Stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read password from stdin: %w", err)
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("no password on stdin")
	}
	return line, nil
}

// NewLogger returns the service's JSON logger.
func NewLogger(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level})).With("service", "auth")
}
