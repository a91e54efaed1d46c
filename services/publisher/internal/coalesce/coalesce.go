// Package coalesce gathers concurrent one-message sends into one Redis round
// trip: a group commit in front of rsmq.Client.SendBatch.
//
// A Send hands its item to the Coalescer's dispatcher. The dispatcher starts
// a flush as soon as one of its MaxInFlight flush slots is free, taking every
// item waiting at that moment (up to MaxBatch). A lone Send on an idle
// publisher is flushed at once, alone; under load, the items that arrive
// while the slots are busy with earlier flushes go out together in the
// next one, so the round trips per message fall as the load rises, and no
// Send waits for a timer. Linger (0 by default, at most MaxLinger) lets the
// dispatcher wait that much longer for more items once it has one.
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
	// Linger is how long the dispatcher waits for more items once it has
	// one and a free slot, 0 (the default) to MaxLinger.
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
	item rsmq.SendItem
	done chan rsmq.SendResult // buffered: the flush never blocks on it
}

// Coalescer gathers Sends; Run must be running for Send to return.
type Coalescer struct {
	to    Sender
	opts  Options
	calls chan *call
	done  chan struct{} // closed when Run has returned
	took  func()        // tests: called for every call the dispatcher takes
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
	return &Coalescer{to: to, opts: opts, calls: make(chan *call), done: make(chan struct{})}
}

// Send stores one item (through a flush shared with concurrent Sends) and
// returns its id, or its error as rsmq.SendItem would. When ctx ends first
// it returns ctx's error; the item may then still be stored.
func (c *Coalescer) Send(ctx context.Context, item rsmq.SendItem) (string, error) {
	cl := &call{item: item, done: make(chan rsmq.SendResult, 1)}
	select {
	case c.calls <- cl:
	case <-c.done:
		return "", ErrStopped
	case <-ctx.Done():
		return "", ctx.Err()
	}
	select {
	case r := <-cl.done:
		return r.ID, r.Err
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// Run dispatches flushes until ctx ends, then flushes what it had taken,
// waits for every flush to finish and returns. Sends after that get
// ErrStopped. Run once.
func (c *Coalescer) Run(ctx context.Context) {
	var wg sync.WaitGroup
	slots := make(chan struct{}, c.opts.MaxInFlight)
	defer func() {
		wg.Wait()
		close(c.done)
	}()
	for {
		var first *call
		select {
		case first = <-c.calls:
		case <-ctx.Done():
			return
		}
		c.taken()
		batch := []*call{first}
		// Wait for a free slot, taking the calls that arrive meanwhile.
		for acquired := false; !acquired; {
			if len(batch) == c.opts.MaxBatch {
				slots <- struct{}{}
				break
			}
			select {
			case slots <- struct{}{}:
				acquired = true
			case cl := <-c.calls:
				c.taken()
				batch = append(batch, cl)
			}
		}
		batch = c.gather(ctx, batch)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			c.flush(batch)
		}()
	}
}

// gather adds the calls waiting now (and, with Linger, those arriving
// within it) to batch, up to MaxBatch.
func (c *Coalescer) gather(ctx context.Context, batch []*call) []*call {
	for len(batch) < c.opts.MaxBatch {
		select {
		case cl := <-c.calls:
			c.taken()
			batch = append(batch, cl)
			continue
		default:
		}
		break
	}
	if c.opts.Linger <= 0 || len(batch) == c.opts.MaxBatch {
		return batch
	}
	t := time.NewTimer(c.opts.Linger)
	defer t.Stop()
	for len(batch) < c.opts.MaxBatch {
		select {
		case cl := <-c.calls:
			c.taken()
			batch = append(batch, cl)
		case <-t.C:
			return batch
		case <-ctx.Done():
			return batch
		}
	}
	return batch
}

func (c *Coalescer) taken() {
	if c.took != nil {
		c.took()
	}
}

// flush sends batch in one SendBatch and answers every call. It does not
// end with Run's context: calls already taken are always answered.
func (c *Coalescer) flush(batch []*call) {
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
