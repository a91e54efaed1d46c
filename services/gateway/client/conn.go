package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wsmq/wsmq/services/gateway/protocol"
)

// Options configure Dial. Zero values mean the defaults in brackets.
type Options struct {
	// Token (JWT) and AccessToken are the credentials; one is enough (an
	// access token alone gets a fresh JWT as the first frame).
	Token, AccessToken string
	// Ticket is a connect ticket from Ticket, sent as ?ticket=; it stands
	// for its credentials, so Token and AccessToken are not sent (Token
	// is still the Conn's first Token()).
	Ticket string
	// UseSubprotocol sends Token and AccessToken in Sec-WebSocket-Protocol
	// (wsmq.v1 plus wsmq.token.<jwt> / wsmq.access-token.<token>), as a
	// browser can, instead of the x-token / x-access-token headers.
	UseSubprotocol bool
	// UseQuery sends the credentials as query parameters instead of the
	// headers. Gateways refuse them outside dev mode (URLs are logged):
	// use Ticket.
	UseQuery bool
	// AckMode is protocol.AckAuto [""] or protocol.AckManual.
	AckMode protocol.AckMode
	// Header is added to the handshake request (e.g. Origin).
	Header http.Header
	// Dialer dials the websocket [a copy of websocket.DefaultDialer].
	Dialer *websocket.Dialer
	// Buffer is how many frames wait for Next before the reader stops
	// reading the socket [256].
	Buffer int
	// WriteTimeout bounds a command's write when its ctx has no deadline [10s].
	WriteTimeout time.Duration

	// The fields below are the reconnecting Client's (New); Dial ignores
	// them.

	// URL is the gateway (http(s):// or ws(s)://) when Credentials gives
	// none.
	URL string
	// Credentials is called before every connect attempt; nil: Token and
	// AccessToken (and the fresher JWTs the gateway sends).
	Credentials CredentialsFunc
	// MinBackoff and MaxBackoff bound the full-jitter exponential
	// reconnect delay [500ms, 20s]; after a rate-limit close (4029) or a
	// 429 the Client waits MaxBackoff plus up to MaxBackoff more.
	MinBackoff, MaxBackoff time.Duration
	// RestartSpread is the window a reconnect after 1001/1012/1013 is
	// spread over [5s].
	RestartSpread time.Duration
	// PingInterval is how long the read loop waits for a frame before it
	// sends /ping; three silent intervals end the connection [the hello
	// frame's pingInterval].
	PingInterval time.Duration
	// DedupeSize is how many handled ids per queue are remembered to
	// drop redeliveries [4096].
	DedupeSize int
	// Logger logs reconnects and refusals [discard].
	Logger *slog.Logger
	// OnState, when set, is called on every state change with the error
	// that caused it (nil when none). It must not block.
	OnState func(State, error)
	// OnToken, when set, is called with each fresh JWT the gateway sends
	// (keep it for the next connect). It must not block.
	OnToken func(token string, expiresAt int64)
	// OnEvent, when set, is called with the event frames a Client sees:
	// *protocol.Token, *protocol.Subscribed once a subscription is
	// confirmed, *protocol.ErrorEvent for refusals (a subscription's
	// included), *protocol.Pong, *protocol.UnknownEvent. It is called from
	// the Client's goroutines and must not block.
	OnEvent func(protocol.Frame)
}

// ErrClosed is returned by a Conn's methods after Close.
var ErrClosed = errors.New("gateway client: connection closed")

// CloseError is why the socket ended when the gateway closed it: one of
// the protocol.Close* codes (e.g. 1001 shutting down, 4001 token revoked,
// 4008 slow consumer, 4029 command flood), or 1009 (frame too large).
// Action says what a client does about it.
type CloseError struct {
	Code   int
	Reason string
}

// Is makes a 4001 close match ErrUnauthorized and a 4003 close ErrForbidden.
func (e *CloseError) Is(target error) bool {
	switch e.Code {
	case protocol.CloseUnauthorized:
		return target == ErrUnauthorized
	case protocol.CloseForbidden:
		return target == ErrForbidden
	}
	return false
}

// Action is the client's action on the code (protocol.ActionFor).
func (e *CloseError) Action() protocol.CloseAction { return protocol.ActionFor(e.Code) }

func (e *CloseError) Error() string {
	return fmt.Sprintf("gateway closed the connection (%d %s)", e.Code, e.Reason)
}

// EventError is an error event: the gateway refused a command and the
// connection stays up. Subscribe and Unsubscribe return it for their
// queue; Next returns the others (e.g. CodeUnknownID after an Ack).
type EventError struct {
	Code    string // protocol.Code*
	Message string
	Queue   string // the queue the command named, if any
	ID      string // the message id, for protocol.CodeUnknownID
}

func (e *EventError) Error() string {
	ev := protocol.ErrorEvent{Code: e.Code, Message: e.Message, Queue: e.Queue, ID: e.ID}
	return ev.Error()
}

// Conn is a websocket to a gateway. Its methods are safe for concurrent use;
// Next is meant for one reading goroutine.
type Conn struct {
	ws           *websocket.Conn
	writeTimeout time.Duration

	frames    chan protocol.Frame
	readDone  chan struct{} // closed when the reader goroutine returned
	closing   chan struct{} // closed by Close
	closeOnce sync.Once
	readErr   error // why the reader stopped; read after readDone

	manual  bool       // manual ack mode: no confirm pings to wait for
	writeMu sync.Mutex // gorilla/websocket allows one writer

	mu      sync.Mutex
	pending map[string][]pendingOp // by queue, in command order
	token   string                 // the latest JWT
	hello   *protocol.Hello        // the connection's first frame, once read
	helloC  chan struct{}          // closed when hello is set

	// unconfirmed: message frames were read since the gateway's last ping.
	// In auto mode the gateway deletes a message only once the pong to the
	// ping it wrote after the frame comes back, so Close waits for that
	// ping (pinged) before it says goodbye.
	unconfirmed atomic.Bool
	pinged      chan struct{} // buffered 1: a ping arrived
}

type pendingOp struct {
	verb string
	done chan error // buffered 1
}

// Dial opens a websocket to the gateway at rawURL: http(s):// or ws(s)://,
// with path / or /ws (an empty path becomes /ws). A refusal before the
// upgrade is a *StatusError (errors.Is ErrUnauthorized for bad credentials).
func Dial(ctx context.Context, rawURL string, opts Options) (*Conn, error) {
	u, err := websocketURL(rawURL)
	if err != nil {
		return nil, err
	}
	q := u.Query()
	h := http.Header{}
	for k, vs := range opts.Header {
		h[k] = append([]string(nil), vs...)
	}
	var subprotocols []string
	if opts.Ticket != "" {
		q.Set(protocol.QueryTicket, opts.Ticket)
	}
	switch {
	case opts.Ticket != "":
		// The ticket stands for the credentials: none are sent.
	case opts.UseSubprotocol:
		subprotocols = protocol.Subprotocols(opts.Token, opts.AccessToken)
	case opts.UseQuery:
		if opts.Token != "" {
			q.Set(protocol.QueryToken, opts.Token)
		}
		if opts.AccessToken != "" {
			q.Set(protocol.QueryAccessToken, opts.AccessToken)
		}
	default:
		if opts.Token != "" {
			h.Set(protocol.HeaderToken, opts.Token)
		}
		if opts.AccessToken != "" {
			h.Set(protocol.HeaderAccessToken, opts.AccessToken)
		}
	}
	if opts.AckMode != "" {
		q.Set(protocol.QueryAck, string(opts.AckMode))
	}
	u.RawQuery = q.Encode()
	d := opts.Dialer
	if d == nil {
		d = websocket.DefaultDialer
	}
	dd := *d
	if subprotocols != nil {
		dd.Subprotocols = subprotocols
	}
	ws, res, err := dd.DialContext(ctx, u.String(), h)
	if err != nil {
		if res != nil && res.StatusCode != http.StatusSwitchingProtocols {
			defer func() { _ = res.Body.Close() }()
			return nil, fmt.Errorf("dial %s: %w", u.Host, statusError(res))
		}
		return nil, fmt.Errorf("dial %s: %w", u.Host, err)
	}
	if opts.Buffer <= 0 {
		opts.Buffer = 256
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = 10 * time.Second
	}
	c := &Conn{
		ws: ws, writeTimeout: opts.WriteTimeout, manual: opts.AckMode == protocol.AckManual,
		frames:   make(chan protocol.Frame, opts.Buffer),
		readDone: make(chan struct{}),
		closing:  make(chan struct{}),
		pending:  make(map[string][]pendingOp),
		token:    opts.Token,
		pinged:   make(chan struct{}, 1),
		helloC:   make(chan struct{}),
	}
	ws.SetPingHandler(c.onPing)
	go c.readLoop()
	return c, nil
}

func websocketURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("gateway url %q: %w", raw, err)
	}
	switch u.Scheme {
	case "http", "ws":
		u.Scheme = "ws"
	case "https", "wss":
		u.Scheme = "wss"
	default:
		return nil, fmt.Errorf("gateway url %q: scheme must be http, https, ws or wss", raw)
	}
	if u.Path == "" {
		u.Path = protocol.WebsocketPath
	}
	return u, nil
}

// Subprotocol is the subprotocol the gateway chose: protocol.Subprotocol
// when the client offered it (UseSubprotocol), else "".
func (c *Conn) Subprotocol() string { return c.ws.Subprotocol() }

// Token is the latest JWT: the one dialed with, or a fresh one the gateway
// sent since (a reconnect should use it).
func (c *Conn) Token() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.token
}

// Hello waits for the gateway's hello frame (the connection's first: ack
// mode, prefetch, visibility timeout, recommended ping interval) and
// returns it; Next never returns it. An error means the socket ended first
// (a gateway too old to send one) or ctx did.
func (c *Conn) Hello(ctx context.Context) (*protocol.Hello, error) {
	select {
	case <-c.helloC:
	case <-c.readDone:
		select {
		case <-c.helloC:
		default:
			return nil, fmt.Errorf("hello: %w", c.readErr)
		}
	case <-ctx.Done():
		return nil, fmt.Errorf("hello: %w", ctx.Err())
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hello, nil
}

// Ping sends the application-level /ping; the gateway answers with a
// *protocol.Pong frame, returned by Next.
func (c *Conn) Ping(ctx context.Context) error { return c.WriteCommand(ctx, protocol.Ping) }

// Subscribe subscribes to queue and waits for the gateway's confirmation,
// which precedes the queue's first message. A refusal is an *EventError
// (protocol.CodeForbidden, CodeBadRequest, CodeLimit, CodeUnavailable).
// Frames that arrive meanwhile wait for Next.
func (c *Conn) Subscribe(ctx context.Context, queue string) error {
	return c.command(ctx, protocol.VerbSubscribe, queue, protocol.Subscribe(queue))
}

// Unsubscribe ends the subscription to queue and waits for the
// confirmation; in-flight messages of the queue go back to it.
func (c *Conn) Unsubscribe(ctx context.Context, queue string) error {
	return c.command(ctx, protocol.VerbUnsubscribe, queue, protocol.Unsubscribe(queue))
}

func (c *Conn) command(ctx context.Context, verb, queue, cmd string) error {
	if queue == "" {
		return fmt.Errorf("%s: empty queue name", verb)
	}
	op := pendingOp{verb: verb, done: make(chan error, 1)}
	c.mu.Lock()
	c.pending[queue] = append(c.pending[queue], op)
	c.mu.Unlock()
	if err := c.WriteCommand(ctx, cmd); err != nil {
		c.dropPending(queue, op)
		return err
	}
	select {
	case err := <-op.done:
		return err
	case <-c.readDone:
		select {
		case err := <-op.done:
			return err
		default:
		}
		return fmt.Errorf("%s %s: %w", verb, queue, c.readErr)
	case <-ctx.Done():
		c.dropPending(queue, op)
		return fmt.Errorf("%s %s: %w", verb, queue, ctx.Err())
	}
}

func (c *Conn) dropPending(queue string, op pendingOp) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ops := c.pending[queue]
	for i := range ops {
		if ops[i].done == op.done {
			c.pending[queue] = append(ops[:i:i], ops[i+1:]...)
			break
		}
	}
	if len(c.pending[queue]) == 0 {
		delete(c.pending, queue)
	}
}

// Ack acknowledges message id (manual ack mode): the gateway deletes it.
// It does not wait: an unknown id comes back from Next as an *EventError
// with protocol.CodeUnknownID.
func (c *Conn) Ack(ctx context.Context, id string) error {
	return c.WriteCommand(ctx, protocol.Ack(id))
}

// WriteCommand sends one raw text command. Prefer Subscribe, Unsubscribe
// and Ack; this is for commands they do not cover (and for tests of the
// gateway's answers to bad ones).
func (c *Conn) WriteCommand(ctx context.Context, cmd string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case <-c.closing:
		return ErrClosed
	default:
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(c.writeTimeout)
	}
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	_ = c.ws.SetWriteDeadline(deadline)
	if err := c.ws.WriteMessage(websocket.TextMessage, []byte(cmd)); err != nil {
		return fmt.Errorf("write %.40q: %w", cmd, err)
	}
	return nil
}

// Next returns the next frame: *protocol.Message, *protocol.Token (also
// kept for Token), *protocol.Subscribed or *protocol.Unsubscribed when no
// Subscribe or Unsubscribe call waited for it, *protocol.UnknownEvent. An
// error event is returned as an *EventError, and the connection stays up.
// When the socket has ended, after the buffered frames, it returns a
// *CloseError when the gateway closed it, ErrClosed after Close, or the
// read error.
func (c *Conn) Next(ctx context.Context) (protocol.Frame, error) {
	select {
	case f := <-c.frames:
		return frameResult(f)
	default:
	}
	select {
	case f := <-c.frames:
		return frameResult(f)
	case <-c.readDone:
		select {
		case f := <-c.frames:
			return frameResult(f)
		default:
		}
		return nil, c.readErr
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func frameResult(f protocol.Frame) (protocol.Frame, error) {
	if e, ok := f.(*protocol.ErrorEvent); ok {
		return nil, &EventError{Code: e.Code, Message: e.Message, Queue: e.Queue, ID: e.ID}
	}
	return f, nil
}

// Done is closed when the socket has ended and no more frames will arrive.
func (c *Conn) Done() <-chan struct{} { return c.readDone }

// closeWait bounds the wait for the gateway's answer to our close frame.
const closeWait = 2 * time.Second

// confirmWait bounds how long Close waits for the ping that confirms the
// last message frames read (the gateway writes it right after them).
const confirmWait = time.Second

// onPing answers a gateway ping with its payload, as websocket stacks do,
// and notes that every message frame read before it is now confirmed.
func (c *Conn) onPing(payload string) error {
	err := c.ws.WriteControl(websocket.PongMessage, []byte(payload), time.Now().Add(c.writeTimeout))
	if err == nil {
		c.unconfirmed.Store(false)
		select {
		case c.pinged <- struct{}{}:
		default:
		}
	}
	if errors.Is(err, websocket.ErrCloseSent) {
		return nil
	}
	return err
}

// abort closes the socket at once, without the closing handshake: for a
// connection presumed dead (the Client's watchdog), whose close frame
// would only wait out closeWait.
func (c *Conn) abort() {
	c.closeOnce.Do(func() {
		close(c.closing)
		_ = c.ws.Close()
	})
	<-c.readDone
}

// Close waits (at most 1s; auto mode only) until the message frames
// already read are confirmed to the gateway (their pong sent), sends a normal
// close frame, waits (at most 2s) for the gateway's answer, so that every
// command written before was read by the gateway, then closes the socket
// and waits for the reader goroutine. Frames the gateway had not written
// yet, or whose ping had not come, return to their queues.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() {
		if !c.manual && c.unconfirmed.Load() {
			t := time.NewTimer(confirmWait)
			for c.unconfirmed.Load() {
				select {
				case <-c.pinged:
					continue
				case <-t.C:
				case <-c.readDone:
				}
				break
			}
			t.Stop()
		}
		close(c.closing)
		msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")
		if c.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(closeWait)) == nil {
			t := time.NewTimer(closeWait)
			select {
			case <-c.readDone:
			case <-t.C:
			}
			t.Stop()
		}
		_ = c.ws.Close()
	})
	<-c.readDone
	return nil
}

func (c *Conn) readLoop() {
	defer close(c.readDone)
	for {
		_, data, err := c.ws.ReadMessage()
		if err != nil {
			c.readErr = c.endReason(err)
			c.failPending()
			return
		}
		f, err := protocol.DecodeFrame(data)
		if err != nil {
			// A frame we cannot read is a broken gateway or a proxy in
			// the way: stop rather than guess.
			c.readErr = err
			_ = c.ws.Close()
			c.failPending()
			return
		}
		if c.route(f) {
			continue
		}
		if _, ok := f.(*protocol.Message); ok {
			c.unconfirmed.Store(true)
		}
		select {
		case c.frames <- f:
		case <-c.closing:
			// Closing: read on, dropping frames, until the gateway
			// answers the close frame.
		}
	}
}

func (c *Conn) endReason(err error) error {
	select {
	case <-c.closing:
		return ErrClosed
	default:
	}
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		return &CloseError{Code: ce.Code, Reason: ce.Text}
	}
	return fmt.Errorf("gateway connection lost: %w", err)
}

// route resolves a waiting Subscribe or Unsubscribe with f, and keeps a
// fresh token; it reports whether f was consumed.
func (c *Conn) route(f protocol.Frame) bool {
	var queue, verb string
	var result error
	switch f := f.(type) {
	case *protocol.Hello:
		c.mu.Lock()
		first := c.hello == nil
		if first {
			c.hello = f
		}
		c.mu.Unlock()
		if first {
			close(c.helloC)
		}
		return true
	case *protocol.Token:
		c.mu.Lock()
		c.token = f.Token
		c.mu.Unlock()
		return false
	case *protocol.Subscribed:
		queue, verb = f.Queue, protocol.VerbSubscribe
	case *protocol.Unsubscribed:
		queue, verb = f.Queue, protocol.VerbUnsubscribe
	case *protocol.ErrorEvent:
		if f.Queue == "" {
			return false
		}
		queue = f.Queue
		result = &EventError{Code: f.Code, Message: f.Message, Queue: f.Queue, ID: f.ID}
	default:
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	ops := c.pending[queue]
	// The gateway answers a connection's commands in order: the oldest
	// pending command on the queue is the one answered.
	if len(ops) == 0 || (verb != "" && ops[0].verb != verb) {
		return false
	}
	ops[0].done <- result
	if c.pending[queue] = ops[1:]; len(c.pending[queue]) == 0 {
		delete(c.pending, queue)
	}
	return true
}

func (c *Conn) failPending() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for q, ops := range c.pending {
		for _, op := range ops {
			op.done <- fmt.Errorf("%s %s: %w", op.verb, q, c.readErr)
		}
		delete(c.pending, q)
	}
}
