package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/gorilla/websocket"

	"github.com/wsmq/wsmq/services/gateway/client"
	"github.com/wsmq/wsmq/services/gateway/protocol"
	"github.com/wsmq/wsmq/tools/wsmqctl/internal/tokenfile"
)

const listenHelp = `Usage: wsmqctl listen [--queue Q ...] [--ack auto|manual] [--count N] [--timeout D]

Connects a websocket to the gateway, subscribes to the queues (default: your
own, named by your user id) and prints every frame as one JSON line:
messages {"queue","id","message","rc","sent"} and events {"event",...}.

Credentials: WSMQ_TOKEN / WSMQ_ACCESS_TOKEN when set, else the tokens stored
by 'wsmqctl login'. A fresh token the gateway sends ({"event":"token"}) is
stored back.

In --ack manual mode each message is acked (/ack/<id>) after it is printed;
in auto mode the gateway deletes a message once it has written it, so
messages in flight when wsmqctl stops are lost: use manual for at-least-once.

Exits 0 after --count messages, on --timeout or Ctrl-C without --count;
1 when the gateway refuses the credentials (HTTP 401), the connection fails
or drops, a subscription is refused, or --count is not reached in time.`

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }

func (l *stringList) Set(v string) error {
	for _, q := range strings.Split(v, ",") {
		if q = strings.TrimSpace(q); q != "" {
			*l = append(*l, q)
		}
	}
	return nil
}

// listenCreds are what listen connects with; session is set when they came
// from the tokens file (then refreshed tokens are stored back).
type listenCreds struct {
	token, accessToken, userID string
	session                    *tokenfile.Session
	path                       string
}

func (c *cli) listen(ctx context.Context, args []string) error {
	fs := c.newFlagSet("listen", listenHelp)
	var queues stringList
	fs.Var(&queues, "queue", "`queue` to subscribe to; repeat or comma-separate (default: your user id)")
	ack := fs.String("ack", "auto", "ack `mode`: auto (the gateway deletes on write) or manual (ack after printing)")
	count := fs.Int("count", 0, "exit 0 after `N` messages (0: no limit)")
	timeout := fs.Duration("timeout", 0, "stop after `D` (0: never); with --count, not reaching N in D exits 1")
	pos, err := fs.parse(args)
	if err != nil {
		return err
	}
	if err := fs.nargs(pos, 0, "no arguments (queues go in --queue)"); err != nil {
		return err
	}
	if *ack != "auto" && *ack != "manual" {
		return usagef("--ack %q: want auto or manual", *ack)
	}
	if *count < 0 || *timeout < 0 {
		return usagef("--count and --timeout must not be negative")
	}
	u, err := c.g.gatewayURL("/ws")
	if err != nil {
		return err
	}
	creds, err := c.listenCredentials()
	if err != nil {
		return err
	}

	if *timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *timeout)
		defer cancel()
	}
	// Connect with a single-use ticket (POST /v1/ticket, credentials in
	// headers), as a browser does: no credential in the websocket URL.
	base, err := c.g.gatewayURL("")
	if err != nil {
		return err
	}
	tctx, tcancel := context.WithTimeout(ctx, httpTimeout)
	tk, _, err := client.Ticket(tctx, base.String(), creds.token, creds.accessToken)
	tcancel()
	if err != nil {
		return dialError(u.Host, err)
	}
	conn, err := client.Dial(ctx, u.String(), client.Options{
		Ticket: tk, Token: creds.token, AckMode: protocol.AckMode(*ack),
		Dialer: &websocket.Dialer{Proxy: http.ProxyFromEnvironment, HandshakeTimeout: httpTimeout},
	})
	if err != nil {
		return dialError(u.Host, err)
	}
	defer func() { _ = conn.Close() }()

	l := &listener{c: c, conn: conn, creds: creds, manual: *ack == "manual", count: *count, queues: queues}
	if len(l.queues) == 0 && creds.userID != "" {
		l.queues = []string{creds.userID}
	}
	err = l.run(ctx)
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil && errors.Is(err, ctx.Err()):
		if *count > 0 {
			why := "interrupted"
			if errors.Is(context.Cause(ctx), context.DeadlineExceeded) {
				why = "--timeout " + timeout.String() + " reached"
			}
			return fmt.Errorf("stopped after %d of %d messages: %s", l.got, *count, why)
		}
		return nil // --timeout or Ctrl-C without --count: a normal end
	default:
		return err
	}
}

// listenCredentials picks env tokens over the stored session.
func (c *cli) listenCredentials() (listenCreds, error) {
	tok, acc := c.getenv("WSMQ_TOKEN"), c.getenv("WSMQ_ACCESS_TOKEN")
	if tok != "" || acc != "" {
		return listenCreds{token: tok, accessToken: acc, userID: jwtUserID(tok)}, nil
	}
	path, err := tokenfile.Path(c.getenv)
	if err != nil {
		return listenCreds{}, err
	}
	s, err := tokenfile.Load(path)
	if errors.Is(err, tokenfile.ErrNotLoggedIn) {
		return listenCreds{}, fmt.Errorf("%w: run 'wsmqctl login' or set WSMQ_TOKEN / WSMQ_ACCESS_TOKEN", err)
	}
	if err != nil {
		return listenCreds{}, err
	}
	if s.Gateway != "" && s.Gateway != c.g.gateway {
		_, _ = fmt.Fprintf(c.stderr, "wsmqctl: listen: note: the stored tokens are from %s, connecting to %s\n", s.Gateway, c.g.gateway)
	}
	return listenCreds{token: s.Token, accessToken: s.AccessToken, userID: s.UserID, session: &s, path: path}, nil
}

// dialError explains a failed websocket handshake.
func dialError(host string, err error) error {
	var se *client.StatusError
	switch {
	case errors.Is(err, client.ErrUnauthorized) && errors.As(err, &se):
		return fmt.Errorf("the gateway refused the credentials (HTTP 401: %s): run 'wsmqctl login' again", se.Message)
	case errors.As(err, &se):
		return fmt.Errorf("the gateway refused the websocket (HTTP %d: %s)", se.StatusCode, se.Message)
	}
	return fmt.Errorf("cannot connect to the gateway at %s: %w", host, err)
}

// listener runs one connection and prints what it receives.
type listener struct {
	c      *cli
	conn   *client.Conn
	creds  listenCreds
	manual bool
	count  int
	queues []string
	got    int
}

func (l *listener) run(ctx context.Context) error {
	if err := l.subscribe(ctx); err != nil {
		return err
	}
	for {
		f, err := l.conn.Next(ctx)
		var ev *client.EventError
		switch {
		case errors.As(err, &ev):
			e := protocol.ErrorEvent{Code: ev.Code, Queue: ev.Queue, ID: ev.ID, Message: ev.Message}
			if err := l.print(&e); err != nil {
				return err
			}
			if ev.Queue != "" && slices.Contains(l.queues, ev.Queue) {
				return fmt.Errorf("subscribe %s refused: %s", ev.Queue, ev.Code)
			}
			continue
		case err != nil:
			if ctx.Err() != nil {
				return ctx.Err()
			}
			var ce *client.CloseError
			if errors.As(err, &ce) {
				return fmt.Errorf("the gateway closed the connection (%d %s)", ce.Code, ce.Reason)
			}
			return fmt.Errorf("connection lost: %w", err)
		}
		done, err := l.handle(ctx, f)
		if err != nil || done {
			return err // the deferred Close waits for the gateway to read our acks
		}
	}
}

// subscribe sends the subscribe commands without waiting: the
// confirmations and refusals come through Next, so every frame is printed
// in the order the gateway sent it.
func (l *listener) subscribe(ctx context.Context) error {
	for _, q := range l.queues {
		if err := l.conn.WriteCommand(ctx, protocol.Subscribe(q)); err != nil {
			return fmt.Errorf("subscribe %s: %w", q, err)
		}
	}
	return nil
}

// print writes f as one JSON line, as the gateway sent it.
func (l *listener) print(f protocol.Frame) error {
	line := append(f.AppendJSON(nil), '\n')
	if _, err := l.c.stdout.Write(line); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}

// handle prints one frame and acts on it; done means --count is reached.
func (l *listener) handle(ctx context.Context, f protocol.Frame) (done bool, err error) {
	if err := l.print(f); err != nil {
		return false, err
	}
	switch f := f.(type) {
	case *protocol.Token:
		return false, l.refreshed(ctx, f.Token, f.ExpiresAt)
	case *protocol.Message:
		if l.manual {
			if err := l.conn.Ack(ctx, f.ID); err != nil {
				return false, fmt.Errorf("ack %s: %w", f.ID, err)
			}
		}
		l.got++
		return l.count > 0 && l.got >= l.count, nil
	}
	return false, nil
}

// refreshed stores a fresh JWT and, when the queues were not known (only an
// access token was given), subscribes to the user's own queue.
func (l *listener) refreshed(ctx context.Context, token string, expiresAt int64) error {
	if token == "" {
		return nil
	}
	if len(l.queues) == 0 {
		if id := jwtUserID(token); id != "" {
			l.queues = []string{id}
			if err := l.subscribe(ctx); err != nil {
				return err
			}
		}
	}
	if l.creds.session == nil {
		return nil
	}
	l.creds.session.Token, l.creds.session.ExpiresAt = token, expiresAt
	if err := tokenfile.Save(l.creds.path, *l.creds.session); err != nil {
		_, _ = fmt.Fprintf(l.c.stderr, "wsmqctl: listen: store the refreshed token: %v\n", err)
	}
	return nil
}

// jwtUserID reads the user id from a JWT's sub claim ("users/<id>")
// without verifying it: it only chooses the default queue.
func jwtUserID(token string) string {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return ""
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return ""
	}
	var claims struct {
		Sub string `json:"sub"`
	}
	if json.Unmarshal(payload, &claims) != nil {
		return ""
	}
	id, ok := strings.CutPrefix(claims.Sub, "users/")
	if !ok {
		return ""
	}
	return id
}
