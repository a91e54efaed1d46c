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
	"sync"
	"sync/atomic"

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

It runs on the Go SDK (services/gateway/client): when the connection drops
it reconnects with backoff and resubscribes; redelivered messages already
printed are not printed again.

Exits 0 after --count messages, on --timeout or Ctrl-C without --count;
1 when the gateway refuses the credentials (HTTP 401, or a 4001 close on
revocation), the first connection fails, a subscription is refused, or
--count is not reached in time.`

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
	base, err := c.g.gatewayURL("")
	if err != nil {
		return err
	}
	l := &listener{c: c, creds: creds, count: *count, queues: queues, host: u.Host}
	if len(l.queues) == 0 && creds.userID != "" {
		l.queues = []string{creds.userID}
	}
	err = l.run(ctx, base.String(), u.String(), protocol.AckMode(*ack))
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil && errors.Is(err, ctx.Err()):
		if *count > 0 {
			why := "interrupted"
			if errors.Is(context.Cause(ctx), context.DeadlineExceeded) {
				why = "--timeout " + timeout.String() + " reached"
			}
			return fmt.Errorf("stopped after %d of %d messages: %s", l.got.Load(), *count, why)
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

// listener runs the gateway client (client.New): it reconnects and
// resubscribes when the connection drops, and prints what it receives.
type listener struct {
	c      *cli
	creds  listenCreds
	count  int
	queues []string
	host   string
	got    atomic.Int64

	// outMu makes one writer of stdout at a time, and guards lastToken,
	// creds.token and queues (the provider and the events run on the
	// client's goroutines).
	outMu      sync.Mutex
	lastToken  string          // the last token event printed
	onOwnQueue func(id string) // subscribes the user's own queue, once known
}

func (l *listener) run(parent context.Context, base, wsURL string, mode protocol.AckMode) error {
	ctx, stop := context.WithCancelCause(parent)
	defer stop(nil)
	full := make(chan struct{}) // closed once --count messages are printed
	var fullOnce sync.Once
	var connected atomic.Bool
	cl := client.New(client.Options{
		URL: wsURL, AckMode: mode,
		Dialer: &websocket.Dialer{Proxy: http.ProxyFromEnvironment, HandshakeTimeout: httpTimeout},
		// Connect with a single-use ticket (POST /v1/ticket, credentials
		// in headers), as a browser does: no credential in the websocket
		// URL. An expired JWT comes back refreshed.
		Credentials: func(ctx context.Context) (client.Credentials, error) {
			tctx, cancel := context.WithTimeout(ctx, httpTimeout)
			defer cancel()
			l.outMu.Lock()
			token := l.creds.token
			l.outMu.Unlock()
			ans, err := client.TicketWithToken(tctx, base, token, l.creds.accessToken)
			if err != nil {
				return client.Credentials{}, err
			}
			if ans.Token != "" {
				l.refreshed(&protocol.Token{Token: ans.Token, ExpiresAt: ans.TokenExpiresAt})
			}
			return client.Credentials{URL: wsURL, Ticket: ans.Ticket}, nil
		},
		OnState: func(st client.State, err error) {
			switch {
			case st == client.StateConnected:
				connected.Store(true)
			case st == client.StateDisconnected && !connected.Load():
				stop(dialError(l.host, err)) // never connected: a CLI does not wait
			case st == client.StateDisconnected:
				_, _ = fmt.Fprintf(l.c.stderr, "wsmqctl: listen: %v; reconnecting\n", err)
			}
		},
		OnEvent: func(f protocol.Frame) {
			switch f := f.(type) {
			case *protocol.Token:
				l.refreshed(f)
				return
			case *protocol.ErrorEvent:
				l.print(f)
				l.outMu.Lock()
				ours := f.Queue != "" && slices.Contains(l.queues, f.Queue)
				l.outMu.Unlock()
				if ours {
					stop(fmt.Errorf("subscribe %s refused: %s", f.Queue, f.Code))
				}
				return
			case *protocol.Pong:
				return
			}
			l.print(f)
		},
	})
	handler := func(_ context.Context, m *protocol.Message) error {
		if l.count > 0 && l.got.Load() >= int64(l.count) {
			return errors.New("--count reached") // not acked: it stays queued
		}
		l.print(m)
		if n := l.got.Add(1); l.count > 0 && n >= int64(l.count) {
			fullOnce.Do(func() { close(full) })
		}
		return nil
	}
	subscribe := func(queues []string) error {
		for _, q := range queues {
			if err := cl.Subscribe(q, handler); err != nil {
				return err
			}
		}
		return nil
	}
	if err := subscribe(l.queues); err != nil {
		return err
	}
	l.onOwnQueue = func(id string) { _ = subscribe([]string{id}) }
	res := make(chan error, 1)
	go func() { res <- cl.Run(ctx) }()
	var err error
	select {
	case err = <-res:
	case <-full:
		stop(nil) // Run acks what the handler returned nil for, then closes
		if err := <-res; !errors.Is(err, context.Canceled) {
			return err
		}
		return nil
	}
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) && parent.Err() == nil {
		return cause
	}
	if errors.Is(err, client.ErrUnauthorized) {
		var se *client.StatusError
		if errors.As(err, &se) {
			return dialError(l.host, err)
		}
		return fmt.Errorf("the gateway closed the connection: %w: run 'wsmqctl login' again", err)
	}
	return err
}

// print writes f as one JSON line, as the gateway sent it.
func (l *listener) print(f protocol.Frame) {
	l.outMu.Lock()
	defer l.outMu.Unlock()
	l.printLocked(f)
}

func (l *listener) printLocked(f protocol.Frame) {
	line := append(f.AppendJSON(nil), '\n')
	_, _ = l.c.stdout.Write(line)
}

// refreshed prints and stores a fresh JWT (once per token: the ticket's
// answer and the socket's first frame both carry it) and, when the queues
// were not known (only an access token was given), subscribes to the
// user's own queue.
func (l *listener) refreshed(t *protocol.Token) {
	l.outMu.Lock()
	if t.Token == "" || t.Token == l.lastToken {
		l.outMu.Unlock()
		return
	}
	l.lastToken = t.Token
	l.printLocked(t)
	l.creds.token = t.Token
	own := ""
	if len(l.queues) == 0 {
		if own = jwtUserID(t.Token); own != "" {
			l.queues = []string{own}
		}
	}
	if l.creds.session != nil {
		l.creds.session.Token, l.creds.session.ExpiresAt = t.Token, t.ExpiresAt
		if err := tokenfile.Save(l.creds.path, *l.creds.session); err != nil {
			_, _ = fmt.Fprintf(l.c.stderr, "wsmqctl: listen: store the refreshed token: %v\n", err)
		}
	}
	l.outMu.Unlock()
	if own != "" && l.onOwnQueue != nil {
		l.onOwnQueue(own)
	}
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
