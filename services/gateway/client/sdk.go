package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wsmq/wsmq/services/gateway/protocol"
)

// Defaults of the reconnecting Client's Options.
const (
	// DefaultMinBackoff is Options.MinBackoff's default: the first
	// reconnect's delay bound.
	DefaultMinBackoff = 500 * time.Millisecond
	// DefaultMaxBackoff is Options.MaxBackoff's default: the delay bound
	// the exponential backoff stops growing at.
	DefaultMaxBackoff = 20 * time.Second
	// DefaultRestartSpread is Options.RestartSpread's default: the window a
	// reconnect after 1001/1012/1013 is spread over.
	DefaultRestartSpread = 5 * time.Second
	// DefaultDedupeSize is Options.DedupeSize's default: handled ids
	// remembered per queue.
	DefaultDedupeSize = 4096
)

// stableAfter is how long a connection must have lived for the backoff to
// start again from MinBackoff.
const stableAfter = 5 * time.Second

// connectTimeout bounds one dial (TCP, TLS, upgrade), as the JS SDK's
// connectTimeout does: a black-holed network must not hold an attempt for
// the dialer's own 45 s.
const connectTimeout = 10 * time.Second

// helloWait bounds the wait for the hello frame; a gateway that sends none
// (an older one) gets the defaults.
const helloWait = 5 * time.Second

// Credentials are what one connect attempt uses.
type Credentials struct {
	// URL is the gateway to connect to (http(s):// or ws(s)://); "" means
	// Options.URL.
	URL string
	// Token, AccessToken and Ticket are as in Options.
	Token, AccessToken, Ticket string
}

// CredentialsFunc provides the credentials of a connect attempt; the
// Client calls it before every attempt. An error that matches
// ErrUnauthorized or ErrForbidden stops the Client for good; other errors
// are retried with backoff.
type CredentialsFunc func(ctx context.Context) (Credentials, error)

// Handler handles one message. In manual ack mode returning nil acks the
// message (on the connection that delivered it: if that connection is
// gone the ack is dropped and the message comes back, to be deduplicated);
// an error leaves it to be redelivered after the visibility timeout. ctx is
// cancelled when the delivering connection closes.
type Handler func(ctx context.Context, m *protocol.Message) error

// State is a Client's connection state.
type State int

// Client states.
const (
	StateDisconnected State = iota // waiting to reconnect
	StateConnecting                // credentials, dial, hello
	StateConnected                 // hello received; subscriptions follow
	StateClosed                    // Run returned
)

// String names the state.
func (s State) String() string {
	switch s {
	case StateDisconnected:
		return "disconnected"
	case StateConnecting:
		return "connecting"
	case StateConnected:
		return "connected"
	case StateClosed:
		return "closed"
	}
	return "unknown"
}

// Stats are a Client's counters since New.
type Stats struct {
	Connects    uint64 // connections that got to StateConnected
	Handled     uint64 // handler calls that returned nil
	Failed      uint64 // handler calls that returned an error (or panicked)
	Duplicates  uint64 // redeliveries of handled ids, not handed to the handler
	DroppedAcks uint64 // acks not sent because their connection had closed
	UnknownAcks uint64 // acks the gateway did not know (unknown_id)
}

// Client is the reconnecting wsmq client: New, Subscribe, Run.
type Client struct {
	opts Options
	log  *slog.Logger

	running atomic.Bool

	mu    sync.Mutex
	subs  map[string]*subscription
	cur   *session // the live connection, nil between connections
	state State
	token string // the latest JWT (static credentials only)

	connects, handled, failed, dups, dropped, unknown atomic.Uint64
}

type subscription struct {
	queue   string
	handler Handler
	seen    *idSet // handled ids; used by one handler goroutine at a time
}

// New makes a Client; Run connects it. Options' Dial fields apply to every
// connection; AckMode defaults to protocol.AckManual here. Without
// Credentials the Client connects to URL with Token and AccessToken (and
// the fresher JWTs the gateway hands over).
func New(opts Options) *Client {
	if opts.AckMode == "" {
		opts.AckMode = protocol.AckManual
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = DefaultMinBackoff
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = DefaultMaxBackoff
	}
	opts.MaxBackoff = max(opts.MaxBackoff, opts.MinBackoff)
	if opts.RestartSpread <= 0 {
		opts.RestartSpread = DefaultRestartSpread
	}
	if opts.DedupeSize <= 0 {
		opts.DedupeSize = DefaultDedupeSize
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Client{opts: opts, log: log, subs: make(map[string]*subscription), token: opts.Token}
}

// Subscribe registers handler for queue: subscribed on every connection,
// now too when connected. Messages of a queue reach its handler one at a
// time, in delivery order, on a goroutine of their own (never the read
// loop). Subscribing a queue again replaces its handler from its next
// message on.
func (c *Client) Subscribe(queue string, handler Handler) error {
	if queue == "" || handler == nil {
		return errors.New("subscribe: a queue name and a handler are required")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	sub := &subscription{queue: queue, handler: handler, seen: newIDSet(c.opts.DedupeSize)}
	if old := c.subs[queue]; old != nil {
		sub.seen = old.seen
	}
	c.subs[queue] = sub
	if c.cur != nil {
		c.cur.start(sub)
	}
	return nil
}

// State is the Client's connection state.
func (c *Client) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

// Stats returns the Client's counters.
func (c *Client) Stats() Stats {
	return Stats{Connects: c.connects.Load(), Handled: c.handled.Load(), Failed: c.failed.Load(),
		Duplicates: c.dups.Load(), DroppedAcks: c.dropped.Load(), UnknownAcks: c.unknown.Load()}
}

func (c *Client) event(f protocol.Frame) {
	if c.opts.OnEvent != nil {
		c.opts.OnEvent(f)
	}
}

func (c *Client) setState(s State, err error) {
	c.mu.Lock()
	c.state = s
	c.mu.Unlock()
	if c.opts.OnState != nil {
		c.opts.OnState(s, err)
	}
}

// ErrRunning is returned by Run while another Run of the Client runs.
var ErrRunning = errors.New("gateway client: already running")

// Run connects, subscribes every registered queue, and reconnects and
// resubscribes whenever the connection ends, until ctx ends (it returns
// ctx's error) or a terminal error: credentials refused by the provider or
// the gateway (errors.Is ErrUnauthorized), or a 4001/4003 close (a
// *CloseError that errors.Is ErrUnauthorized / ErrForbidden). Before it
// returns, every handler has returned.
func (c *Client) Run(ctx context.Context) error {
	if !c.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer c.running.Store(false)
	err := c.run(ctx)
	c.setState(StateClosed, err)
	return err
}

func (c *Client) run(ctx context.Context) error {
	attempt := 0
	var wait time.Duration
	var why error
	for {
		if wait > 0 {
			c.setState(StateDisconnected, why)
			c.log.Debug("reconnecting", "in", wait, "after", why)
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			case <-t.C:
			}
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		c.setState(StateConnecting, nil)
		conn, err := c.dial(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if errors.Is(err, ErrUnauthorized) || errors.Is(err, ErrForbidden) {
				return err
			}
			var se *StatusError
			if errors.As(err, &se) && se.StatusCode == 429 {
				wait = c.later()
			} else {
				wait = c.backoff(attempt)
				attempt++
			}
			why = err
			continue
		}
		began := time.Now()
		err = c.serve(ctx, conn)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Since(began) >= stableAfter {
			attempt = 0
		}
		why = err
		switch decide(err) {
		case protocol.ActionStop:
			return err
		case protocol.ActionRetrySpread:
			wait = c.spread()
		case protocol.ActionRetryLater:
			wait = c.later()
		default:
			wait = c.backoff(attempt)
			attempt++
		}
	}
}

// decide is the action on the error a connection ended with: its close
// code's (protocol.ActionFor), else retry with backoff.
func decide(err error) protocol.CloseAction {
	var ce *CloseError
	if errors.As(err, &ce) {
		return ce.Action()
	}
	return protocol.ActionRetry
}

// backoff is the full-jitter exponential delay of reconnect attempt n
// (0-based): uniform in [0, min(MaxBackoff, MinBackoff·2ⁿ)).
func (c *Client) backoff(n int) time.Duration {
	ceiling := c.opts.MaxBackoff
	if n < 30 {
		ceiling = min(ceiling, c.opts.MinBackoff<<n)
	}
	return jitter(ceiling)
}

// spread is the delay after a restart close: uniform over RestartSpread.
func (c *Client) spread() time.Duration { return jitter(c.opts.RestartSpread) }

// later is the delay after a rate-limit close or 429: MaxBackoff plus a
// jitter of up to MaxBackoff.
func (c *Client) later() time.Duration { return c.opts.MaxBackoff + jitter(c.opts.MaxBackoff) }

func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return rand.N(d) + 1 // never 0: a wait always yields
}

// dial gets the attempt's credentials and opens the websocket.
func (c *Client) dial(ctx context.Context) (*Conn, error) {
	cr := Credentials{URL: c.opts.URL, AccessToken: c.opts.AccessToken}
	c.mu.Lock()
	cr.Token = c.token
	c.mu.Unlock()
	if c.opts.Credentials != nil {
		got, err := c.opts.Credentials(ctx)
		if err != nil {
			return nil, fmt.Errorf("credentials: %w", err)
		}
		cr = got
		if cr.URL == "" {
			cr.URL = c.opts.URL
		}
	}
	o := c.opts
	o.Token, o.AccessToken, o.Ticket = cr.Token, cr.AccessToken, cr.Ticket
	dctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	return Dial(dctx, cr.URL, o)
}

// serve runs one connection until it ends and returns why.
func (c *Client) serve(ctx context.Context, conn *Conn) error {
	hctx, cancel := context.WithTimeout(ctx, helloWait)
	hello, err := conn.Hello(hctx)
	cancel()
	if err != nil && ctx.Err() == nil && hctx.Err() == nil {
		_ = conn.Close()
		return err
	}
	if hello == nil {
		hello = &protocol.Hello{AckMode: c.opts.AckMode, Prefetch: 64, PingInterval: 25000}
	}
	sctx, scancel := context.WithCancel(ctx)
	s := &session{c: c, conn: conn, ctx: sctx, manual: c.opts.AckMode == protocol.AckManual,
		queues: make(map[string]chan *protocol.Message), buffer: max(1, hello.Prefetch)}
	c.mu.Lock()
	c.cur = s
	for _, sub := range c.subs {
		s.start(sub)
	}
	c.mu.Unlock()
	c.connects.Add(1)
	c.setState(StateConnected, nil)

	end := s.readLoop(ctx, c.pingInterval(hello))
	if errors.Is(end, errWatchdog) {
		conn.abort() // presumed dead: no closing handshake to wait out
	}

	c.mu.Lock()
	c.cur = nil
	c.mu.Unlock()
	scancel() // the handlers' ctx: their connection is closing
	s.wg.Wait()
	_ = conn.Close()
	return end
}

func (c *Client) pingInterval(h *protocol.Hello) time.Duration {
	if c.opts.PingInterval > 0 {
		return c.opts.PingInterval
	}
	if h.PingInterval > 0 {
		return time.Duration(h.PingInterval) * time.Millisecond
	}
	return 25 * time.Second
}

// errWatchdog ends a connection on which nothing arrived for three ping
// intervals, two /ping commands included.
var errWatchdog = errors.New("gateway client: no frame within the watchdog bound; connection presumed dead")

// session is one connection of a Client.
type session struct {
	c      *Client
	conn   *Conn
	ctx    context.Context // cancelled when the connection closes
	manual bool
	buffer int
	wg     sync.WaitGroup // the subscription goroutines

	mu     sync.Mutex
	queues map[string]chan *protocol.Message
}

// start subscribes sub on the session's connection and starts its handler
// goroutine. Called with c.mu held.
func (s *session) start(sub *subscription) {
	s.mu.Lock()
	ch := s.queues[sub.queue]
	fresh := ch == nil
	if fresh {
		ch = make(chan *protocol.Message, s.buffer)
		s.queues[sub.queue] = ch
	}
	s.mu.Unlock()
	if !fresh {
		return
	}
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		s.subscribe(sub.queue)
	}()
	go func() {
		defer s.wg.Done()
		for {
			select {
			case <-s.ctx.Done():
				return
			case m := <-ch:
				if s.ctx.Err() != nil {
					return // closing: m goes back with the connection
				}
				s.handle(m)
			}
		}
	}()
}

// subscribe sends the subscription, retrying an unavailable queue store
// with backoff while the connection lives.
func (s *session) subscribe(queue string) {
	for n := 0; ; n++ {
		err := s.conn.Subscribe(s.ctx, queue)
		var ee *EventError
		switch {
		case err == nil:
			s.c.event(&protocol.Subscribed{Queue: queue})
			return
		case errors.As(err, &ee) && ee.Code == protocol.CodeUnavailable, errors.As(err, &ee) && ee.Code == protocol.CodeRate:
			s.c.log.Warn("subscribe refused for now; retrying", "queue", queue, "err", err)
		case errors.As(err, &ee):
			s.c.log.Error("subscribe refused", "queue", queue, "err", err)
			s.c.event(&protocol.ErrorEvent{Code: ee.Code, Queue: ee.Queue, ID: ee.ID, Message: ee.Message})
			return
		default:
			return // the connection ended
		}
		t := time.NewTimer(s.c.backoff(n))
		select {
		case <-s.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// readLoop hands frames to the subscriptions until the connection ends,
// sending /ping when idle; it returns why the connection ended.
func (s *session) readLoop(ctx context.Context, ping time.Duration) error {
	idle := 0
	for {
		nctx, cancel := context.WithTimeout(ctx, ping)
		f, err := s.conn.Next(nctx)
		cancel()
		if err != nil {
			var ee *EventError
			switch {
			case ctx.Err() != nil:
				return ctx.Err()
			case errors.Is(err, context.DeadlineExceeded):
				if idle++; idle >= 3 {
					return errWatchdog
				}
				_ = s.conn.Ping(ctx)
				continue
			case errors.As(err, &ee):
				if ee.Code == protocol.CodeUnknownID {
					s.c.unknown.Add(1)
				}
				s.c.log.Warn("gateway refused a command", "err", err)
				s.c.event(&protocol.ErrorEvent{Code: ee.Code, Queue: ee.Queue, ID: ee.ID, Message: ee.Message})
				continue
			}
			return err
		}
		idle = 0
		switch f := f.(type) {
		case *protocol.Message:
			s.dispatch(ctx, f)
		case *protocol.Token:
			s.c.mu.Lock()
			s.c.token = f.Token
			s.c.mu.Unlock()
			if s.c.opts.OnToken != nil {
				s.c.opts.OnToken(f.Token, f.ExpiresAt)
			}
			s.c.event(f)
		default:
			s.c.event(f)
		}
	}
}

// dispatch queues m for its subscription's goroutine; a full queue stops
// the read loop (and so, through the Conn's buffer, the gateway).
func (s *session) dispatch(ctx context.Context, m *protocol.Message) {
	s.mu.Lock()
	ch := s.queues[m.Queue]
	s.mu.Unlock()
	if ch == nil {
		return // not ours (any more): it goes back when the connection ends
	}
	select {
	case ch <- m:
	case <-s.conn.Done():
	case <-ctx.Done():
	}
}

// handle runs the handler on m, deduplicating handled ids, and acks.
func (s *session) handle(m *protocol.Message) {
	s.c.mu.Lock()
	sub := s.c.subs[m.Queue]
	s.c.mu.Unlock()
	if sub == nil {
		return
	}
	if sub.seen.has(m.ID) {
		s.c.dups.Add(1)
		s.ack(m.ID)
		return
	}
	if err := call(s.ctx, sub.handler, m); err != nil {
		s.c.failed.Add(1)
		s.c.log.Warn("handler failed; the message will be redelivered", "queue", m.Queue, "id", m.ID, "err", err)
		return
	}
	sub.seen.add(m.ID)
	s.c.handled.Add(1)
	s.ack(m.ID)
}

// ack acks id on this session's connection only (manual mode); once the
// socket has ended the ack is dropped: the message comes back. (When Run's
// ctx ends, the socket is still open while the handlers finish: their acks
// go out before the close.)
func (s *session) ack(id string) {
	if !s.manual {
		return
	}
	select {
	case <-s.conn.Done():
		s.c.dropped.Add(1)
		return
	default:
	}
	if err := s.conn.Ack(context.WithoutCancel(s.ctx), id); err != nil {
		s.c.dropped.Add(1)
	}
}

func call(ctx context.Context, h Handler, m *protocol.Message) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("handler panicked: %v", r)
		}
	}()
	return h(ctx, m)
}

// idSet is a bounded set of ids, forgetting the oldest first.
type idSet struct {
	max   int
	ids   map[string]struct{}
	order []string // ring of ids in insertion order
	next  int
}

func newIDSet(n int) *idSet { return &idSet{max: n, ids: make(map[string]struct{}, min(n, 1024))} }

func (s *idSet) has(id string) bool {
	_, ok := s.ids[id]
	return ok
}

func (s *idSet) add(id string) {
	if s.has(id) {
		return
	}
	if len(s.order) < s.max {
		s.order = append(s.order, id)
	} else {
		delete(s.ids, s.order[s.next])
		s.order[s.next] = id
		s.next = (s.next + 1) % s.max
	}
	s.ids[id] = struct{}{}
}
