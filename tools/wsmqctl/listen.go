package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gorilla/websocket"

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

// closeWait bounds the wait for the gateway's answer to our close frame.
const closeWait = 2 * time.Second

// frame is the union of the gateway's frames, as far as listen reads them.
type frame struct {
	Event     string `json:"event"`
	Queue     string `json:"queue"`
	ID        string `json:"id"`
	Token     string `json:"token"`
	ExpiresAt int64  `json:"expiresAt"`
	Error     string `json:"error"`
	Message   any    `json:"message"`
}

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
	if u.Scheme == "https" {
		u.Scheme = "wss"
	} else {
		u.Scheme = "ws"
	}
	u.RawQuery = "ack=" + *ack

	if *timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *timeout)
		defer cancel()
	}
	h := http.Header{}
	if creds.token != "" {
		h.Set("x-token", creds.token)
	}
	if creds.accessToken != "" {
		h.Set("x-access-token", creds.accessToken)
	}
	dialer := websocket.Dialer{Proxy: http.ProxyFromEnvironment, HandshakeTimeout: httpTimeout}
	conn, resp, err := dialer.DialContext(ctx, u.String(), h)
	if err != nil {
		return dialError(u.Host, resp, err)
	}
	defer func() { _ = conn.Close() }()
	if resp != nil && resp.Body != nil {
		_ = resp.Body.Close()
	}

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
func dialError(host string, resp *http.Response, err error) error {
	if resp == nil {
		return fmt.Errorf("cannot connect to the gateway at %s: %w", host, err)
	}
	defer func() { _ = resp.Body.Close() }()
	var ans struct {
		Message string `json:"message"`
	}
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if json.Unmarshal(raw, &ans) != nil || ans.Message == "" {
		ans.Message = strings.TrimSpace(string(raw))
	}
	if resp.StatusCode == http.StatusUnauthorized {
		return fmt.Errorf("the gateway refused the credentials (HTTP 401: %s): run 'wsmqctl login' again", ans.Message)
	}
	return fmt.Errorf("the gateway refused the websocket (HTTP %d: %s)", resp.StatusCode, ans.Message)
}

// listener runs one connection: it alone reads and writes data frames.
type listener struct {
	c      *cli
	conn   *websocket.Conn
	creds  listenCreds
	manual bool
	count  int
	queues []string
	got    int
}

func (l *listener) run(ctx context.Context) error {
	// Ctrl-C, --timeout: say goodbye, then the read below ends with the
	// gateway's close answer or the read deadline.
	stop := context.AfterFunc(ctx, func() { l.closeGently() })
	defer stop()
	if len(l.queues) > 0 {
		if err := l.subscribe(); err != nil {
			return err
		}
	}
	for {
		_, data, err := l.conn.ReadMessage()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				return fmt.Errorf("the gateway closed the connection (%d %s)", ce.Code, ce.Text)
			}
			return fmt.Errorf("connection lost: %w", err)
		}
		done, err := l.handle(data)
		if err != nil || done {
			l.closeGently()
			l.drain()
			return err
		}
	}
}

func (l *listener) subscribe() error {
	for _, q := range l.queues {
		if err := l.conn.WriteMessage(websocket.TextMessage, []byte("/subscribe/"+q)); err != nil {
			return fmt.Errorf("subscribe %s: %w", q, err)
		}
	}
	return nil
}

// handle prints one frame and acts on it; done means --count is reached.
func (l *listener) handle(data []byte) (done bool, err error) {
	var line bytes.Buffer
	if json.Compact(&line, data) != nil {
		line.Reset()
		b, _ := json.Marshal(map[string]string{"event": "unparsed", "raw": string(data)})
		line.Write(b)
	}
	line.WriteByte('\n')
	if _, err := l.c.stdout.Write(line.Bytes()); err != nil {
		return false, fmt.Errorf("write output: %w", err)
	}
	var f frame
	if json.Unmarshal(data, &f) != nil {
		return false, nil
	}
	switch {
	case f.Event == "token":
		l.refreshed(f.Token, f.ExpiresAt)
	case f.Event == "error":
		if f.Queue != "" && slices.Contains(l.queues, f.Queue) {
			return false, fmt.Errorf("subscribe %s refused: %s", f.Queue, f.Error)
		}
	case f.Event == "" && f.ID != "":
		if l.manual {
			if err := l.conn.WriteMessage(websocket.TextMessage, []byte("/ack/"+f.ID)); err != nil {
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
func (l *listener) refreshed(token string, expiresAt int64) {
	if token == "" {
		return
	}
	if len(l.queues) == 0 {
		if id := jwtUserID(token); id != "" {
			l.queues = []string{id}
			if err := l.subscribe(); err != nil {
				_, _ = fmt.Fprintf(l.c.stderr, "wsmqctl: listen: %v\n", err)
			}
		}
	}
	if l.creds.session == nil {
		return
	}
	l.creds.session.Token, l.creds.session.ExpiresAt = token, expiresAt
	if err := tokenfile.Save(l.creds.path, *l.creds.session); err != nil {
		_, _ = fmt.Fprintf(l.c.stderr, "wsmqctl: listen: store the refreshed token: %v\n", err)
	}
}

// closeGently sends a close frame; safe concurrently with the reader.
func (l *listener) closeGently() {
	msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye")
	_ = l.conn.WriteControl(websocket.CloseMessage, msg, time.Now().Add(closeWait))
	_ = l.conn.SetReadDeadline(time.Now().Add(closeWait))
}

// drain reads until the gateway answers the close frame (so our acks were
// read before it closed), discarding anything else.
func (l *listener) drain() {
	for {
		if _, _, err := l.conn.ReadMessage(); err != nil {
			return
		}
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
