// Package wsconn serves one client websocket: a reader goroutine that parses
// the text commands, a writer goroutine that alone writes to the socket, and
// a bounded outbound buffer between the delivery engine and the writer.
//
// In auto ack mode a message is deleted only once the client's websocket
// stack confirmed it: after each batch of message frames the writer sends a
// ping whose payload is the batch's sequence number, and the client's pong,
// which a websocket stack sends only after reading every frame before the
// ping, confirms every batch up to that number. Frames not confirmed when
// the connection ends (write error, pong timeout, client gone or closing,
// server close) go back to their queue at once.
package wsconn

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/time/rate"

	"github.com/wsmq/wsmq/pkg/rsmq"
	"github.com/wsmq/wsmq/pkg/userid"
	"github.com/wsmq/wsmq/pkg/userqueue"
	"github.com/wsmq/wsmq/services/gateway/internal/delivery"
	"github.com/wsmq/wsmq/services/gateway/protocol"
)

// Defaults of Options, exported so the gateway's configuration can show and
// use the same values.
const (
	// DefaultConnBuffer is Options.ConnBuffer's default.
	DefaultConnBuffer = 256
	// DefaultMaxSubs is Options.MaxSubs's default.
	DefaultMaxSubs = 32
	// DefaultWriteTimeout is Options.WriteTimeout's default.
	DefaultWriteTimeout = 10 * time.Second
	// DefaultPingInterval is Options.PingInterval's default.
	DefaultPingInterval = 25 * time.Second
	// DefaultReadLimit is Options.ReadLimit's default, bytes.
	DefaultReadLimit = 4096
	// DefaultCallTimeout is Options.CallTimeout's default.
	DefaultCallTimeout = 5 * time.Second
	// DefaultCommandRate is Options.CommandRate's default, commands/s.
	DefaultCommandRate = 50
)

// Queues admits the queues a subscription would create and learns which
// queues the connection serves (the gateway's quota package). Admit's
// refusal wraps userqueue.ErrLimit.
type Queues interface {
	Admit(ctx context.Context, user, queue string) error
	Limit() int // the per-user cap, for the refusal's message
	Serve(queue string)
	Unserve(queue string)
}

// Options are a connection's limits and timings. Zero values mean the
// defaults in brackets (the Default* constants).
type Options struct {
	Manual       bool          // manual ack mode
	ConnBuffer   int           // most message frames waiting for the writer [256]
	MaxSubs      int           // most subscriptions [32]
	WriteTimeout time.Duration // deadline of one batch of writes, and of a confirm ping's pong [10s]
	PingInterval time.Duration // ping period; the read deadline is twice this [25s]
	ReadLimit    int64         // largest client frame [4096]
	CallTimeout  time.Duration // deadline of a subscribe's Redis work [5s]
	// CommandRate is the commands per second a client may send, with
	// bursts of twice that; acks of in-flight messages are free (their
	// number is bounded by the deliveries) [50].
	CommandRate float64
	// Queues, when not nil, caps the queues subscriptions create.
	Queues Queues
}

func (o *Options) setDefaults() {
	if o.ConnBuffer == 0 {
		o.ConnBuffer = DefaultConnBuffer
	}
	if o.MaxSubs == 0 {
		o.MaxSubs = DefaultMaxSubs
	}
	if o.WriteTimeout == 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	if o.PingInterval == 0 {
		o.PingInterval = DefaultPingInterval
	}
	if o.ReadLimit == 0 {
		o.ReadLimit = DefaultReadLimit
	}
	if o.CallTimeout == 0 {
		o.CallTimeout = DefaultCallTimeout
	}
	if o.CommandRate == 0 {
		o.CommandRate = DefaultCommandRate
	}
}

// maxQueueNameLen is RSMQ's longest queue name. A subscribed queue's
// dead-letter queue (queue + delivery.DLQSuffix) must fit it too.
const maxQueueNameLen = 160

// closeFrameTimeout bounds the write of a close frame, so a connection ends
// even when the client does not read.
const closeFrameTimeout = time.Second

// writerStopTimeout is how long the end of a connection waits for its writer
// to finish the frame it is writing before it closes the socket under it (a
// client that does not read blocks the writer until the write deadline).
const writerStopTimeout = time.Second

// maxUnconfirmedPings bounds the confirm pings awaiting their pongs; frames
// written meanwhile wait for the next pong and share one ping then.
const maxUnconfirmedPings = 8

// maxPendingEvents bounds event frames (errors, confirmations) waiting for
// the writer: a client that floods commands without reading is closed.
const maxPendingEvents = 256

// Conn is one authenticated client websocket.
type Conn struct {
	ws     *websocket.Conn
	engine *delivery.Engine
	opts   Options
	user   string
	log    *slog.Logger

	wake chan struct{} // writer has work
	done chan struct{} // closed when the connection ends

	closeOnce sync.Once
	closeMsg  []byte // the close frame Close asked for; set inside closeOnce

	rdMu     sync.Mutex // orders the reader's deadline extensions with stopReader
	stopping bool       // guarded by rdMu: the reader must end

	mu       sync.Mutex
	out      []frame
	events   int
	reserved int
	// waitingForSlots holds subscriptions whose Reserve found the buffer
	// full; Release signals them once slots free up.
	waitingForSlots map[*delivery.Subscription]struct{}
	closed          bool
	subs            map[string]*delivery.Subscription // by queue; owned by the reader

	// commands is the command rate's bucket; refusals is the budget of
	// refused commands, so only sustained abuse closes the connection.
	// Both are used by the reader only.
	commands *rate.Limiter
	refusals *rate.Limiter

	// Auto mode's written, unconfirmed message frames. They keep their
	// slots (reserved) until confirmed, so a connection holds at most
	// ConnBuffer messages queued or unconfirmed.
	unpinged  map[*delivery.Subscription][]rsmq.Message // written, no confirm ping after them yet
	unpingedN int
	pings     []confirmPing // written confirm pings, oldest first
	pingSeq   uint64        // sequence number of the last confirm ping

}

// confirmPing is a ping written after message frames: its pong confirms
// them (and every earlier ping's).
type confirmPing struct {
	seq  uint64
	sent time.Time
	n    int
	msgs map[*delivery.Subscription][]rsmq.Message
}

type frame struct {
	sub   *delivery.Subscription // nil for events
	msg   rsmq.Message
	event []byte
}

// New wraps an upgraded websocket of user. Serve runs it.
func New(ws *websocket.Conn, engine *delivery.Engine, user string, opts Options, log *slog.Logger) *Conn {
	opts.setDefaults()
	burst := max(1, int(2*opts.CommandRate))
	return &Conn{
		ws: ws, engine: engine, opts: opts, user: user, log: log,
		commands:        rate.NewLimiter(rate.Limit(opts.CommandRate), burst),
		refusals:        rate.NewLimiter(rate.Limit(opts.CommandRate), burst),
		wake:            make(chan struct{}, 1),
		done:            make(chan struct{}),
		waitingForSlots: make(map[*delivery.Subscription]struct{}),
		subs:            make(map[string]*delivery.Subscription),
	}
}

// User is the authenticated user's id.
func (c *Conn) User() string { return c.user }

// Serve runs the connection until the client leaves or Close is called. It
// sends the hello frame, then first (when not nil), before anything else. On return, every
// subscription is closed and its unacked or unconfirmed messages are back in
// their queues, and no goroutine of the connection is left.
func (c *Conn) Serve(first []byte) {
	c.sendEvent(c.hello())
	if first != nil {
		c.sendEvent(first)
	}
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		c.writeLoop()
	}()
	c.readLoop()
	// The reader ended: the client left, the socket failed or Close was
	// called. Stop the writer before closing subscriptions so no write
	// completes after its messages were handed back.
	c.closeOnce.Do(func() { close(c.done) })
	socketClosed := false
	t := time.NewTimer(writerStopTimeout)
	select {
	case <-writerDone:
	case <-t.C:
		// Stuck in a write to a client that does not read: only closing
		// the socket frees it (no close frame could get through anyway).
		_ = c.ws.Close()
		socketClosed = true
		<-writerDone
	}
	t.Stop()
	c.mu.Lock()
	c.closed = true
	c.out = nil
	c.unpinged, c.unpingedN, c.pings = nil, 0, nil
	c.mu.Unlock()
	// Messages go back before the close frame: a client that reconnects
	// on it finds them visible.
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.CallTimeout)
	defer cancel()
	for q, s := range c.subs {
		s.Close(ctx)
		c.unserve(q)
		delete(c.subs, q)
	}
	if c.closeMsg != nil && !socketClosed {
		_ = c.ws.WriteControl(websocket.CloseMessage, c.closeMsg, time.Now().Add(closeFrameTimeout))
	}
	_ = c.ws.Close()
}

// hello is the connection's first frame.
func (c *Conn) hello() []byte {
	h := protocol.Hello{AckMode: protocol.AckAuto, Prefetch: c.opts.ConnBuffer, PingInterval: c.opts.PingInterval.Milliseconds()}
	// Prefetch is per subscription, within the connection's buffer.
	if c.opts.Manual {
		h.AckMode = protocol.AckManual
	}
	if c.engine != nil {
		h.VisibilityTimeout = c.engine.VisibilityTimeout().Milliseconds()
		h.Prefetch = min(h.Prefetch, c.engine.Prefetch())
	}
	return h.AppendJSON(nil)
}

// Close ends the connection with a close frame (code, reason), sent after
// its in-flight messages went back to their queues. It does not wait: Done
// is closed at once and Serve finishes the work. Safe to call from any
// goroutine, more than once; the first call's code counts.
func (c *Conn) Close(code int, reason string) {
	c.closeOnce.Do(func() {
		c.closeMsg = websocket.FormatCloseMessage(code, reason)
		close(c.done)
	})
	c.stopReader()
}

// errStopping ends the reader from its pong handler or after a frame.
var errStopping = errors.New("wsconn: connection closing")

// extendRead pushes the read deadline out, unless the reader must stop.
func (c *Conn) extendRead() error {
	c.rdMu.Lock()
	defer c.rdMu.Unlock()
	if c.stopping {
		return errStopping
	}
	return c.ws.SetReadDeadline(time.Now().Add(2 * c.opts.PingInterval))
}

// stopReader makes a blocked read return now, and every later one.
func (c *Conn) stopReader() {
	c.rdMu.Lock()
	defer c.rdMu.Unlock()
	c.stopping = true
	_ = c.ws.SetReadDeadline(time.Now())
}

func (c *Conn) readLoop() {
	c.ws.SetReadLimit(c.opts.ReadLimit)
	if c.extendRead() != nil {
		return
	}
	c.ws.SetPongHandler(c.onPong)
	for {
		mt, data, err := c.ws.ReadMessage()
		if err != nil {
			if errors.Is(err, websocket.ErrReadLimit) {
				c.log.Info("client frame too large; closed 1009", "user", c.user)
			}
			return
		}
		if c.extendRead() != nil {
			return
		}
		if mt != websocket.TextMessage {
			c.sendError(protocol.CodeBadRequest, "", "commands are text frames")
			continue
		}
		c.handle(string(data))
	}
}

// handle runs one command. The connection stays up whatever the command.
func (c *Conn) handle(cmd string) {
	if cmd == protocol.Ping {
		if c.admitCommand("") {
			c.sendEvent(pongFrame)
		}
		return
	}
	verb, arg, ok := protocol.ParseCommand(cmd)
	if !ok || verb != protocol.VerbAck {
		queue := ""
		if ok {
			queue = arg // a refused (un)subscribe names its queue, as its answer would
		}
		if !c.admitCommand(queue) {
			return
		}
	}
	if !ok {
		c.sendError(protocol.CodeBadRequest, "", "unknown command: use /subscribe/<queue>, /unsubscribe/<queue>, /ack/<id> or /ping")
		return
	}
	switch verb {
	case protocol.VerbSubscribe:
		c.subscribe(arg)
	case protocol.VerbUnsubscribe:
		s := c.subs[arg]
		if s == nil {
			c.sendQueueError(protocol.CodeBadRequest, arg, "not subscribed")
			return
		}
		delete(c.subs, arg)
		ctx, cancel := context.WithTimeout(context.Background(), c.opts.CallTimeout)
		s.Close(ctx)
		cancel()
		c.unserve(arg)
		c.sendEvent((&protocol.Unsubscribed{Queue: arg}).AppendJSON(nil))
	case protocol.VerbAck:
		if !c.ackInFlight(arg) && c.admitCommand("") {
			c.ackError(arg)
		}
	}
}

var pongFrame = (&protocol.Pong{}).AppendJSON(nil)

// ackInFlight acks id when it is in flight on this connection.
func (c *Conn) ackInFlight(id string) bool {
	if !c.opts.Manual || rsmq.ValidateID(id) != nil {
		return false
	}
	for _, s := range c.subs {
		if s.Ack(id) {
			return true
		}
	}
	return false
}

// ackError answers an ack that acknowledged nothing.
func (c *Conn) ackError(arg string) {
	if !c.opts.Manual {
		c.sendError(protocol.CodeBadRequest, "", "ack needs manual ack mode (connect with ?ack=manual)")
		return
	}
	if err := rsmq.ValidateID(arg); err != nil {
		c.sendError(protocol.CodeBadRequest, "", "invalid message id")
		return
	}
	c.sendEvent((&protocol.ErrorEvent{Code: protocol.CodeUnknownID, ID: arg,
		Message: "no message with this id is in flight on this connection"}).AppendJSON(nil))
}

// admitCommand takes a token for one command. Without one the client gets
// a rate error; once the refusals outrun their own budget (a flood
// sustained at well over the rate) the connection is closed with
// protocol.CloseRateLimited.
func (c *Conn) admitCommand(queue string) bool {
	if c.commands.Allow() {
		return true
	}
	if !c.refusals.Allow() {
		c.log.Info("client floods commands; closing", "user", c.user)
		c.Close(protocol.CloseRateLimited, "too many commands")
		return false
	}
	c.sendQueueError(protocol.CodeRate, queue, "too many commands: at most "+
		strconv.FormatFloat(c.opts.CommandRate, 'g', -1, 64)+" per second, bursts of twice that; slow down or be closed")
	return false
}

func (c *Conn) unserve(queue string) {
	if c.opts.Queues != nil {
		c.opts.Queues.Unserve(queue)
	}
}

// MayUse reports whether user may consume queue: the queue named by its id,
// or <id>-<suffix>. user must have the auth service's id form
// (userid.Valid), so no user's id is a prefix of another's queues.
func MayUse(user, queue string) bool {
	if !userid.Valid(user) {
		return false
	}
	if queue == user {
		return true
	}
	suffix, ok := strings.CutPrefix(queue, user+"-")
	return ok && suffix != ""
}

func (c *Conn) subscribe(queue string) {
	if err := rsmq.ValidateQueueName(queue); err != nil || len(queue)+len(delivery.DLQSuffix) > maxQueueNameLen {
		c.sendQueueError(protocol.CodeBadRequest, queue, "invalid queue name: 1 to 156 characters of [A-Za-z0-9_-]")
		return
	}
	if !MayUse(c.user, queue) {
		c.sendQueueError(protocol.CodeForbidden, queue, "you may use the queue named by your user id and <userId>-<suffix>")
		return
	}
	if c.subs[queue] != nil {
		c.sendEvent((&protocol.Subscribed{Queue: queue}).AppendJSON(nil))
		return
	}
	if len(c.subs) >= c.opts.MaxSubs {
		c.sendQueueError(protocol.CodeLimit, queue, "too many subscriptions on this connection (limit "+strconv.Itoa(c.opts.MaxSubs)+")")
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.CallTimeout)
	defer cancel()
	// The confirmation is queued before the subscription is registered, so
	// it precedes the queue's first message.
	confirm := func() { c.sendEvent((&protocol.Subscribed{Queue: queue}).AppendJSON(nil)) }
	// The Redis work runs on a short-lived goroutine: its deep stack then
	// dies with it instead of staying with the reader for the life of the
	// socket (most sockets are idle, and their stacks are their memory).
	var (
		s    *delivery.Subscription
		err  error
		done = make(chan struct{})
	)
	go func() {
		defer close(done)
		if c.opts.Queues != nil {
			if err = c.opts.Queues.Admit(ctx, c.user, queue); err != nil {
				return
			}
		}
		s, err = c.engine.Subscribe(ctx, c, queue, c.opts.Manual, confirm)
	}()
	<-done
	if errors.Is(err, userqueue.ErrLimit) {
		c.sendQueueError(protocol.CodeLimit, queue, "too many queues for this user: subscribing creates a queue, and a user may have at most "+
			strconv.Itoa(c.opts.Queues.Limit())+" <userId>-<suffix> queues (unsubscribing keeps them); use existing ones")
		return
	}
	if err != nil {
		c.log.Warn("subscribe failed", "user", c.user, "queue", queue, "err", err)
		c.sendQueueError(protocol.CodeUnavailable, queue, "the queue store is unavailable; try again")
		return
	}
	c.subs[queue] = s
	if c.opts.Queues != nil {
		c.opts.Queues.Serve(queue)
	}
}

func (c *Conn) sendError(code, queue, msg string) { c.sendQueueError(code, queue, msg) }

func (c *Conn) sendQueueError(code, queue, msg string) {
	c.sendEvent((&protocol.ErrorEvent{Code: code, Queue: queue, Message: msg}).AppendJSON(nil))
}

// sendEvent queues an event frame. A client that lets events pile up is
// closed: it floods commands without reading answers.
func (c *Conn) sendEvent(b []byte) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.events++
	if c.events > maxPendingEvents {
		c.mu.Unlock()
		c.log.Info("client does not read its events; closing", "user", c.user)
		c.Close(protocol.CloseSlowConsumer, "too many pending frames")
		return
	}
	c.out = append(c.out, frame{event: b})
	c.mu.Unlock()
	c.kick()
}

func (c *Conn) kick() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// Reserve implements delivery.Sink.
func (c *Conn) Reserve(s *delivery.Subscription, n int) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0
	}
	got := min(n, c.opts.ConnBuffer-c.reserved)
	if got <= 0 {
		c.waitingForSlots[s] = struct{}{}
		return 0
	}
	c.reserved += got
	return got
}

// Release implements delivery.Sink.
func (c *Conn) Release(n int) {
	c.mu.Lock()
	c.reserved -= n
	wake := c.takeWaitingForSlotsLocked()
	c.mu.Unlock()
	for _, s := range wake {
		s.Signal()
	}
}

// takeWaitingForSlotsLocked empties waitingForSlots when the buffer has a
// free slot and returns the subscriptions to signal. c.mu must be held.
func (c *Conn) takeWaitingForSlotsLocked() []*delivery.Subscription {
	if len(c.waitingForSlots) == 0 || c.reserved >= c.opts.ConnBuffer {
		return nil
	}
	wake := make([]*delivery.Subscription, 0, len(c.waitingForSlots))
	for s := range c.waitingForSlots {
		wake = append(wake, s)
		delete(c.waitingForSlots, s)
	}
	return wake
}

// Deliver implements delivery.Sink.
func (c *Conn) Deliver(s *delivery.Subscription, msgs []rsmq.Message) bool {
	c.mu.Lock()
	if c.closed {
		c.reserved -= len(msgs)
		c.mu.Unlock()
		return false
	}
	for i := range msgs {
		c.out = append(c.out, frame{sub: s, msg: msgs[i]})
	}
	c.mu.Unlock()
	c.kick()
	return true
}

func (c *Conn) writeLoop() {
	keepalive := time.NewTicker(c.opts.PingInterval)
	defer keepalive.Stop()
	// confirmTimer fires when the oldest confirm ping may have timed out;
	// confirmC is nil while no ping waits.
	confirmTimer := time.NewTimer(c.opts.WriteTimeout)
	confirmTimer.Stop()
	defer confirmTimer.Stop()
	var (
		confirmC <-chan time.Time
		lastPing time.Time
		buf      []byte
		batch    []frame
		written  map[*delivery.Subscription][]rsmq.Message // made on the first message
	)
	for {
		select {
		case <-c.done:
			return
		case <-keepalive.C:
			// A confirm ping doubles as keepalive.
			if time.Since(lastPing) < c.opts.PingInterval {
				continue
			}
			if err := c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(c.opts.WriteTimeout)); err != nil {
				c.Close(protocol.CloseSlowConsumer, "write failed")
				return
			}
			lastPing = time.Now()
			continue
		case <-confirmC:
			confirmC = nil
			if wait := c.pongWait(time.Now()); wait < 0 {
				c.log.Info("client does not answer pings; closing", "user", c.user)
				c.Close(protocol.CloseSlowConsumer, "pong timeout")
				return
			} else if wait > 0 {
				confirmTimer.Reset(wait)
				confirmC = confirmTimer.C
			}
			continue
		case <-c.wake:
		}
		c.mu.Lock()
		batch, c.out = c.out, batch[:0]
		c.events = 0
		c.mu.Unlock()
		// The batch's frames and its confirm ping leave in one write.
		c.cork()
		if len(batch) > 0 {
			_ = c.ws.SetWriteDeadline(time.Now().Add(c.opts.WriteTimeout))
			msgs := 0
			for i := range batch {
				select {
				case <-c.done:
					_ = c.uncork()
					return // closing: what was not confirmed goes back
				default:
				}
				f := &batch[i]
				var err error
				if f.sub == nil {
					err = c.ws.WriteMessage(websocket.TextMessage, f.event)
				} else {
					buf = appendMessageFrame(buf[:0], f.sub.Queue(), &f.msg)
					err = c.ws.WriteMessage(websocket.TextMessage, buf)
				}
				if err != nil {
					// A stalled or broken client. Nothing of this
					// batch is deleted, not even the frames written
					// before the error: they are in flight until the
					// connection's subscriptions close and return them.
					c.log.Info("write failed; closing", "user", c.user, "err", err)
					_ = c.uncork()
					c.Close(protocol.CloseSlowConsumer, "write failed")
					return
				}
				if f.sub != nil {
					if written == nil {
						written = make(map[*delivery.Subscription][]rsmq.Message)
					}
					written[f.sub] = append(written[f.sub], f.msg)
					msgs++
				}
			}
			clear(batch)
			c.flushWritten(written, msgs)
		}
		sent := false
		var err error
		if !c.opts.Manual {
			sent, err = c.sendConfirmPing()
		}
		// Frames written into the cork count as written (Written above):
		// if this write fails they are neither acked nor confirmed, and
		// go back when the connection's subscriptions close.
		if uerr := c.uncork(); err == nil {
			err = uerr
		}
		if err != nil {
			c.log.Info("write failed; closing", "user", c.user, "err", err)
			c.Close(protocol.CloseSlowConsumer, "write failed")
			return
		}
		if sent {
			lastPing = time.Now()
			if confirmC == nil {
				confirmTimer.Reset(c.opts.WriteTimeout)
				confirmC = confirmTimer.C
			}
		}
	}
}

// cork holds the socket's writes back until uncork, when the websocket sits
// on a corkable connection (CorkListener); else both do nothing.
func (c *Conn) cork() {
	if k, ok := c.ws.NetConn().(corker); ok {
		k.Cork()
	}
}

// uncork writes what cork held back, in one write.
func (c *Conn) uncork() error {
	if k, ok := c.ws.NetConn().(corker); ok {
		return k.Uncork()
	}
	return nil
}

// flushWritten reports a batch's n written message frames to their
// subscriptions. Manual mode frees their slots now; auto mode keeps them
// until the client confirms the frames (onPong).
func (c *Conn) flushWritten(written map[*delivery.Subscription][]rsmq.Message, n int) {
	if n == 0 {
		return
	}
	for s, msgs := range written {
		s.Written(msgs)
	}
	if c.opts.Manual {
		clear(written)
		c.Release(n)
		return
	}
	c.mu.Lock()
	if c.unpinged == nil {
		c.unpinged = make(map[*delivery.Subscription][]rsmq.Message, len(written))
	}
	for s, msgs := range written {
		if prev := c.unpinged[s]; prev != nil {
			msgs = append(prev, msgs...)
		}
		c.unpinged[s] = msgs
		delete(written, s)
	}
	c.unpingedN += n
	c.mu.Unlock()
}

// sendConfirmPing writes a ping confirming the frames written since the
// last one, unless none were or maxUnconfirmedPings wait already. The ping
// is recorded before it is written: its pong may come back at once.
func (c *Conn) sendConfirmPing() (sent bool, err error) {
	c.mu.Lock()
	if c.unpingedN == 0 || len(c.pings) >= maxUnconfirmedPings {
		c.mu.Unlock()
		return false, nil
	}
	c.pingSeq++
	seq := c.pingSeq
	c.pings = append(c.pings, confirmPing{seq: seq, sent: time.Now(), n: c.unpingedN, msgs: c.unpinged})
	c.unpinged, c.unpingedN = nil, 0
	c.mu.Unlock()
	var b [20]byte
	return true, c.ws.WriteControl(websocket.PingMessage, strconv.AppendUint(b[:0], seq, 10), time.Now().Add(c.opts.WriteTimeout))
}

// pongWait is how long the oldest confirm ping may still wait for its pong
// at now: 0 when none waits, negative when it waited past WriteTimeout.
func (c *Conn) pongWait(now time.Time) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.pings) == 0 {
		return 0
	}
	if wait := c.pings[0].sent.Add(c.opts.WriteTimeout).Sub(now); wait != 0 {
		return wait
	}
	return -1
}

// onPong is the pong handler, run by the reader: a pong carrying a confirm
// ping's sequence number confirms that ping's frames and every earlier
// one's (a websocket stack answers pings in order, after reading what came
// before them). Other pongs only keep the connection alive.
func (c *Conn) onPong(data string) error {
	if err := c.extendRead(); err != nil {
		return err
	}
	seq, err := strconv.ParseUint(data, 10, 64)
	if err != nil {
		return nil // a keepalive pong, or one the client sent unasked
	}
	c.mu.Lock()
	k := 0
	for k < len(c.pings) && c.pings[k].seq <= seq {
		k++
	}
	if k == 0 {
		c.mu.Unlock()
		return nil
	}
	done := slices.Clone(c.pings[:k])
	clear(c.pings[:k])
	c.pings = c.pings[k:]
	more := c.unpingedN > 0
	c.mu.Unlock()
	n := 0
	for _, p := range done {
		for s, msgs := range p.msgs {
			s.Confirmed(msgs)
		}
		n += p.n
	}
	c.Release(n)
	if more {
		c.kick() // frames wait for a ping slot
	}
	return nil
}

// SendRaw queues an event frame built by the caller (e.g. a token refresh).
func (c *Conn) SendRaw(b []byte) { c.sendEvent(b) }
