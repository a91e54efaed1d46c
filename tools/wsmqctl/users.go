package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	authv1 "github.com/wsmq/wsmq/gen/wsmq/auth/v1"
)

const usersHelp = `Usage: wsmqctl users add NAME       create a user; prints its id (= its queue)
       wsmqctl users passwd NAME    set a user's password; revokes its sessions
       wsmqctl users revoke NAME    revoke every session (access token) of a user
       wsmqctl users rm NAME        delete a user and its sessions
       wsmqctl users ls [--json]    list users with their session counts

Calls the auth service's admin RPCs with 'authorization: Bearer <admin
token>'. The admin token comes from WSMQ_AUTH_ADMIN_TOKEN (or --admin-token;
without either, the dev-mode default "dev-admin-token" is used, which a
production auth service refuses).

Passwords (add, passwd) are never taken from argv: WSMQ_PASSWORD when set,
else the first line of stdin when it is not a terminal, else prompted for
twice.

  echo 's3cret-pass' | wsmqctl users add alice`

func (c *cli) users(ctx context.Context, args []string) error {
	fs := c.newFlagSet("users", usersHelp)
	asJSON := fs.Bool("json", false, "ls: print one JSON object per user")
	pos, err := fs.parse(args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return usagef("want a subcommand: add | passwd | revoke | rm | ls (run 'wsmqctl users --help')")
	}
	sub, pos := pos[0], pos[1:]
	name := ""
	switch sub {
	case "add", "passwd", "revoke", "rm":
		if err := fs.nargs(pos, 1, "users "+sub+" NAME"); err != nil {
			return err
		}
		name = pos[0]
	case "ls":
		if err := fs.nargs(pos, 0, "no arguments after users ls"); err != nil {
			return err
		}
	default:
		return usagef("unknown users subcommand %q: want add | passwd | revoke | rm | ls", sub)
	}
	password := ""
	if sub == "add" || sub == "passwd" {
		if password, err = c.password("New password for "+name+": ", true); err != nil {
			return err
		}
	}

	api, closeConn, err := c.authClient()
	if err != nil {
		return err
	}
	defer closeConn()
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+c.g.adminToken)

	switch sub {
	case "add":
		resp, err := api.CreateUser(ctx, &authv1.CreateUserRequest{UserName: name, Password: password})
		if err != nil {
			return c.adminError(name, err)
		}
		_, _ = fmt.Fprintln(c.stdout, resp.GetUserId())
	case "passwd":
		resp, err := api.SetPassword(ctx, &authv1.SetPasswordRequest{UserName: name, Password: password})
		if err != nil {
			return c.adminError(name, err)
		}
		_, _ = fmt.Fprintf(c.stdout, "password of %s changed; %d session(s) revoked\n", name, resp.GetRevoked())
	case "revoke":
		resp, err := api.Revoke(ctx, &authv1.RevokeRequest{UserName: name})
		if err != nil {
			return c.adminError(name, err)
		}
		_, _ = fmt.Fprintf(c.stdout, "%d session(s) of %s revoked\n", resp.GetRevoked(), name)
	case "rm":
		if _, err := api.DeleteUser(ctx, &authv1.DeleteUserRequest{UserName: name}); err != nil {
			return c.adminError(name, err)
		}
		_, _ = fmt.Fprintf(c.stdout, "user %s deleted\n", name)
	case "ls":
		resp, err := api.ListUsers(ctx, &authv1.ListUsersRequest{})
		if err != nil {
			return c.adminError("", err)
		}
		return c.printUsers(resp.GetUsers(), *asJSON)
	}
	return nil
}

func (c *cli) printUsers(users []*authv1.User, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(c.stdout)
		for _, u := range users {
			err := enc.Encode(map[string]any{
				"userId": u.GetUserId(), "userName": u.GetUserName(),
				"createdAt": u.GetCreatedAt(), "sessions": u.GetSessions(),
			})
			if err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	_, _ = fmt.Fprintln(tw, "NAME\tUSER ID\tCREATED\tSESSIONS")
	for _, u := range users {
		created := time.UnixMilli(u.GetCreatedAt()).UTC().Format(time.RFC3339)
		_, _ = fmt.Fprintf(tw, "%s\t%s\t%s\t%d\n", u.GetUserName(), u.GetUserId(), created, u.GetSessions())
	}
	return tw.Flush()
}

// authClient dials the auth service (lazily: errors show on the first call).
func (c *cli) authClient() (authv1.AuthServiceClient, func(), error) {
	tc := insecure.NewCredentials()
	if c.g.grpcTLS {
		tc = credentials.NewTLS(&tls.Config{MinVersion: tls.VersionTLS12})
	}
	cc, err := grpc.NewClient(c.g.auth, grpc.WithTransportCredentials(tc))
	if err != nil {
		return nil, nil, fmt.Errorf("auth %s: %w", c.g.auth, err)
	}
	return authv1.NewAuthServiceClient(cc), func() { _ = cc.Close() }, nil
}

// adminError explains an admin RPC's failure.
func (c *cli) adminError(name string, err error) error {
	switch status.Code(err) {
	case codes.PermissionDenied, codes.Unauthenticated:
		return errors.New("the auth service refused the admin token: set WSMQ_AUTH_ADMIN_TOKEN to the service's admin token")
	case codes.AlreadyExists:
		return fmt.Errorf("user %q already exists", name)
	case codes.NotFound:
		return fmt.Errorf("no user named %q", name)
	}
	return fmt.Errorf("auth %s: %s", c.g.auth, grpcError(err))
}
