package main

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wsmq/wsmq/pkg/rsmq"
	"github.com/wsmq/wsmq/services/gateway/client"
	"github.com/wsmq/wsmq/services/gateway/internal/gatewaytest"
	"github.com/wsmq/wsmq/services/gateway/protocol"
)

const waitLong = gatewaytest.Wait

// stack is gatewaytest's real stack, with the test's shorthands.
type stack struct {
	*gatewaytest.Stack
	t *testing.T
}

type gateway = gatewaytest.Gateway

func newStack(t *testing.T, gatewayEnv ...string) *stack {
	t.Helper()
	return &stack{Stack: gatewaytest.Start(t, gatewayEnv...), t: t}
}

func (s *stack) startGateway(env ...string) *gateway { return s.StartGateway(env...) }

// user creates a user and logs it in through the gateway's HTTP endpoint.
func (s *stack) user(gw *gateway, name string) client.Session {
	s.t.Helper()
	pw := s.CreateUser(name)
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	sess, err := client.Login(ctx, gw.URL(), name, pw)
	if err != nil {
		s.t.Fatalf("login %s: %v", name, err)
	}
	return sess
}

func (s *stack) send(q, msg string) string { return s.Send(q, msg) }

func (s *stack) attrs(q string) *rsmq.QueueAttributes { return s.Attrs(q) }

// mintJWT signs a token the auth service accepts, with the given expiry.
func mintJWT(t *testing.T, userID string, exp time.Time) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": "users/" + userID, "iat": exp.Add(-time.Hour).Unix(), "exp": exp.Unix(), "iss": "wsmq-auth",
	})
	tok.Header["kid"] = gatewaytest.KID
	s, err := tok.SignedString([]byte(gatewaytest.Secret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// conn is a test's client connection: the gateway client, failing the
// test on unexpected answers.
type conn struct {
	t *testing.T
	c *client.Conn
}

func ctxWait() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), waitLong)
}

// dial connects with the session's tokens in headers.
func dial(t *testing.T, gw *gateway, sess client.Session, ack protocol.AckMode) *conn {
	t.Helper()
	return dialOpts(t, gw, client.Options{Token: sess.Token, AccessToken: sess.AccessToken, AckMode: ack})
}

func dialOpts(t *testing.T, gw *gateway, opts client.Options) *conn {
	t.Helper()
	ctx, cancel := ctxWait()
	defer cancel()
	c, err := client.Dial(ctx, gw.URL(), opts)
	if err != nil {
		t.Fatalf("dial %s: %v", gw.Addr, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return &conn{t: t, c: c}
}

// tryDial dials and returns the refusal, closing a connection that succeeded.
func tryDial(gw *gateway, opts client.Options) error {
	ctx, cancel := ctxWait()
	defer cancel()
	c, err := client.Dial(ctx, gw.URL(), opts)
	if err == nil {
		_ = c.Close()
	}
	return err
}

// send writes a raw command.
func (c *conn) send(cmd string) {
	c.t.Helper()
	ctx, cancel := ctxWait()
	defer cancel()
	if err := c.c.WriteCommand(ctx, cmd); err != nil {
		c.t.Fatalf("send %.80q: %v", cmd, err)
	}
}

func (c *conn) ack(id string) {
	c.t.Helper()
	ctx, cancel := ctxWait()
	defer cancel()
	if err := c.c.Ack(ctx, id); err != nil {
		c.t.Fatalf("ack %s: %v", id, err)
	}
}

// next returns the next frame or error event.
func (c *conn) next() (protocol.Frame, error) {
	c.t.Helper()
	ctx, cancel := ctxWait()
	defer cancel()
	f, err := c.c.Next(ctx)
	var ev *client.EventError
	if err != nil && !errors.As(err, &ev) {
		c.t.Fatalf("no frame: %v", err)
	}
	return f, err
}

// eventErr expects the next frame to be an error event.
func (c *conn) eventErr() *client.EventError {
	c.t.Helper()
	f, err := c.next()
	var ev *client.EventError
	if !errors.As(err, &ev) {
		c.t.Fatalf("got %#v, want an error event", f)
	}
	return ev
}

// subscribe subscribes to q and expects the confirmation.
func (c *conn) subscribe(q string) {
	c.t.Helper()
	ctx, cancel := ctxWait()
	defer cancel()
	if err := c.c.Subscribe(ctx, q); err != nil {
		c.t.Fatalf("subscribe %s: %v", q, err)
	}
}

// messages reads n message frames (failing on any other frame).
func (c *conn) messages(n int) []*protocol.Message {
	c.t.Helper()
	out := make([]*protocol.Message, 0, n)
	for len(out) < n {
		f, err := c.next()
		m, ok := f.(*protocol.Message)
		if !ok {
			c.t.Fatalf("expected a message, got %#v %v", f, err)
		}
		out = append(out, m)
	}
	return out
}

// quiet asserts no frame arrives within d.
func (c *conn) quiet(d time.Duration) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if f, err := c.c.Next(ctx); !errors.Is(err, context.DeadlineExceeded) {
		c.t.Fatalf("unexpected frame %#v (%v)", f, err)
	}
}

// closeErr waits for the socket to end, discarding frames, and returns why.
func (c *conn) closeErr() error {
	c.t.Helper()
	ctx, cancel := ctxWait()
	defer cancel()
	for {
		_, err := c.c.Next(ctx)
		var ev *client.EventError
		switch {
		case errors.Is(err, context.DeadlineExceeded):
			c.t.Fatalf("connection not closed within %s", waitLong)
		case err != nil && !errors.As(err, &ev):
			return err
		}
	}
}

// closeCode is the gateway's close code in err, or -1.
func closeCode(err error) int {
	var ce *client.CloseError
	if errors.As(err, &ce) {
		return ce.Code
	}
	return -1
}

func itoa(i int) string { return strconv.Itoa(i) }
