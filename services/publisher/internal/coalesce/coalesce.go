// Package coalesce gathers concurrent one-message sends into one Redis round
// trip: a group commit in front of rsmq.Client.SendBatch.
//
// A Send that finds one of the MaxInFlight flush slots free flushes at once,
// in its own goroutine, taking every item waiting at that moment (up to
// MaxBatch): a lone Send on an idle publisher costs no extra goroutine or
// channel and waits for nothing. Sends that find every slot busy wait; a
// flush that ends while items wait goes on with them in a new goroutine,
// so under load the items that arrived during earlier flushes go out
// together, the round trips per message fall as the load rises, and no
// Send waits for a timer. Linger (0 by default, at most MaxLinger) makes a
// flush wait that much for company before it takes its items.
//
// Each item keeps its own result: a flush answers every Send with its id or
// its own error (a missing queue, a too long message), and a failure of the
// whole round trip with that failure. Ids are fixed before the first
// attempt (rsmq.SendBatch), so a flush that go-redis retries after a lost
// reply stores each message once.
package coalesce

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/wsmq/wsmq/pkg/rsmq"
)

// Defaults and limits of Options.
const (
	DefaultMaxBatch    = 64
	DefaultMaxInFlight = 4
	MaxLinger          = 100 * time.Microsecond
)

// ErrStopped is the error of a Send after Run has returned.
var ErrStopped = errors.New("coalesce: stopped")

// Sender stores items in one round trip: *rsmq.Client.
type Sender interface {
	SendBatch(ctx context.Context, items []rsmq.SendItem) ([]rsmq.SendResult, error)
}

// Options configure a Coalescer; zero values take the defaults.
type Options struct {
	// MaxBatch is the most items of one flush (1 to rsmq.MaxBatch).
	MaxBatch int
	// MaxInFlight is the most flushes waiting for Redis at once.
	MaxInFlight int
	// Linger is how long a flush waits for more items before it takes
	// them, 0 (the default) to MaxLinger.
	Linger time.Duration
	// FlushTimeout bounds one flush's Redis work; default 2 s.
	FlushTimeout time.Duration
	// OnFlush, when set, is called after each flush with its size.
	OnFlush func(items int)
}

// Validate reports the first option out of its range.
func (o Options) Validate() error {
	switch {
	case o.MaxBatch < 0 || o.MaxBatch > rsmq.MaxBatch:
		return fmt.Errorf("coalesce: MaxBatch %d: must be between 1 and %d", o.MaxBatch, rsmq.MaxBatch)
	case o.MaxInFlight < 0:
		return fmt.Errorf("coalesce: MaxInFlight %d: must be at least 1", o.MaxInFlight)
	case o.Linger < 0 || o.Linger > MaxLinger:
		return fmt.Errorf("coalesce: Linger %s: must be between 0 and %s", o.Linger, MaxLinger)
	}
	return nil
}

// call is one Send waiting for its flush.
type call struct {
	ctx  context.Context // the caller's: a call whose caller gave up is not sent
	item rsmq.SendItem
	done chan rsmq.SendResult // buffered: the flush never blocks on it
}

// Coalescer gathers Sends. Run owns it: Sends after Run returned get
// ErrStopped.
type Coalescer struct {
	to   Sender
	opts Options

	mu       sync.Mutex
	pending  []*call
	inflight int  // flushes running (at most MaxInFlight)
	stopped  bool // Run ended: no new Send is taken
	flushes  sync.WaitGroup
	done     chan struct{} // closed when Run has returned
	took     func()        // tests: called for every call queued
}

// New returns a Coalescer sending through to. It panics on options that
// fail Validate (the caller's configuration checks them first).
func New(to Sender, opts Options) *Coalescer {
	if err := opts.Validate(); err != nil {
		panic(err)
	}
	if opts.MaxBatch == 0 {
		opts.MaxBatch = DefaultMaxBatch
	}
	if opts.MaxInFlight == 0 {
		opts.MaxInFlight = DefaultMaxInFlight
	}
	if opts.FlushTimeout <= 0 {
		opts.FlushTimeout = 2 * time.Second
	}
	return &Coalescer{to: to, opts: opts, done: make(chan struct{})}
}

// Send stores one item (through a flush shared with concurrent Sends) and
// returns its id, or its error as rsmq.SendItem would. When ctx ends first
// it returns ctx's error; the item is then not sent unless its flush had
// already taken it (then it may be stored).
func (c *Coalescer) Send(ctx context.Context, item rsmq.SendItem) (string, error) {
	cl := &call{ctx: ctx, item: item, done: make(chan rsmq.SendResult, 1)}
	c.mu.Lock()
	if c.stopped {
		c.mu.Unlock()
		return "", ErrStopped
	}
	c.pending = append(c.pending, cl)
	if c.took != nil {
		c.took()
	}
	if c.inflight < c.opts.MaxInFlight {
		c.inflight++
		c.flushes.Add(1)
		c.mu.Unlock()
		c.run(ctx) // this goroutine flushes, its own item among the first
	} else {
		c.mu.Unlock()
	}
	select {
	case r := <-cl.done:
		return r.ID, r.Err
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// run flushes what is pending; a flush slot is held (inflight counted,
// flushes added). When more items wait after the flush it goes on with
// them in a new goroutine, so the caller that started it gets its answer.
// The slot is given back however the flush ends, a panic included.
func (c *Coalescer) run(ctx context.Context) {
	next := false
	defer func() {
		if next {
			go c.run(context.Background()) // the slot passes on
			return
		}
		c.mu.Lock()
		c.inflight--
		c.mu.Unlock()
		c.flushes.Done()
	}()
	if c.opts.Linger > 0 {
		c.linger(ctx)
	}
	c.mu.Lock()
	n := min(len(c.pending), c.opts.MaxBatch)
	batch := c.pending[:n:n]
	c.pending = c.pending[n:]
	if len(c.pending) == 0 {
		c.pending = nil // let the backing array go
	}
	c.mu.Unlock()
	c.flush(batch)
	c.mu.Lock()
	next = len(c.pending) > 0
	c.mu.Unlock()
}

// linger waits up to Linger for MaxBatch items (or ctx's end).
func (c *Coalescer) linger(ctx context.Context) {
	t := time.NewTimer(c.opts.Linger)
	defer t.Stop()
	select { // a bounded wait for company, the option's whole point
	case <-t.C:
	case <-ctx.Done():
	}
}

// Run waits until ctx ends, then refuses new Sends, waits for the flushes
// of every Send already taken and returns. Run once.
func (c *Coalescer) Run(ctx context.Context) {
	<-ctx.Done()
	c.mu.Lock()
	c.stopped = true
	c.mu.Unlock()
	c.flushes.Wait()
	close(c.done)
}

// flush sends batch in one SendBatch and answers every call. It does not
// end with a caller's context: calls already taken are always answered.
func (c *Coalescer) flush(batch []*call) {
	// Callers that gave up are answered, not sent: their RPC has failed,
	// and a retry of theirs must not find the message stored twice.
	live := batch[:0:0]
	for _, cl := range batch {
		if err := cl.ctx.Err(); err != nil {
			cl.done <- rsmq.SendResult{Err: err}
			continue
		}
		live = append(live, cl)
	}
	batch = live
	if len(batch) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.FlushTimeout)
	defer cancel()
	items := make([]rsmq.SendItem, len(batch))
	for i, cl := range batch {
		items[i] = cl.item
	}
	res, err := c.to.SendBatch(ctx, items)
	if c.opts.OnFlush != nil {
		c.opts.OnFlush(len(batch)) // before the answers: a caller's next look sees it
	}
	for i, cl := range batch {
		if err != nil {
			cl.done <- rsmq.SendResult{Err: err}
		} else {
			cl.done <- res[i]
		}
	}
}
