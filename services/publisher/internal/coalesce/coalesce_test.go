package coalesce

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wsmq/wsmq/pkg/rsmq"
	"github.com/wsmq/wsmq/pkg/testenv"
)

const waitTimeout = 10 * time.Second

// env is a real Redis with queues q and small (max 1,024 UTF-16 units).
type env struct {
	redis *testenv.Redis
	raw   *redis.Client
	q     *rsmq.Client
}

func newEnv(t *testing.T) *env {
	t.Helper()
	r := testenv.StartRedis(t)
	raw := redis.NewClient(&redis.Options{Addr: r.Addr()})
	t.Cleanup(func() { _ = raw.Close() })
	e := &env{redis: r, raw: raw, q: rsmq.New(raw, rsmq.Options{Realtime: true})}
	ctx := context.Background()
	for name, maxSize := range map[string]int{"q": rsmq.DefaultMaxSize, "q2": rsmq.DefaultMaxSize, "small": 1024} {
		if err := e.q.CreateQueue(ctx, name, rsmq.QueueConfig{VT: 30, MaxSize: maxSize}); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

// evalsha is how many EVALSHA commands Redis has run.
func (e *env) evalsha(t *testing.T) int { return testenv.CommandCalls(t, e.raw, "evalsha") }

// gated is a Sender whose first SendBatch waits for open to be closed, so
// a test can line calls up behind a busy flush.
type gated struct {
	to    Sender
	open  chan struct{}
	first atomic.Bool
}

func (g *gated) SendBatch(ctx context.Context, items []rsmq.SendItem) ([]rsmq.SendResult, error) {
	if g.first.CompareAndSwap(false, true) {
		<-g.open
	}
	return g.to.SendBatch(ctx, items)
}

// flushes records the size of every flush.
type flushes struct {
	mu    sync.Mutex
	sizes []int
}

func (f *flushes) add(n int) {
	f.mu.Lock()
	f.sizes = append(f.sizes, n)
	f.mu.Unlock()
}

func (f *flushes) get() []int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]int(nil), f.sizes...)
}

// start runs a Coalescer on to until the test ends, counting taken calls.
func start(t *testing.T, to Sender, opts Options, fl *flushes) (*Coalescer, *atomic.Int64, context.CancelFunc) {
	t.Helper()
	opts.OnFlush = fl.add
	c := New(to, opts)
	var took atomic.Int64
	c.took = func() { took.Add(1) }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return c, &took, cancel
}

// result is one Send's outcome.
type result struct {
	id  string
	err error
}

// busyFlush is a coalescer whose one flush slot (MaxInFlight 1) is held by
// a first Send's flush, waiting on the gate until g.open is closed, so that
// every later Send queues behind it.
type busyFlush struct {
	c     *Coalescer
	g     *gated
	fl    *flushes
	took  *atomic.Int64
	stop  context.CancelFunc
	first chan result
}

func startBusy(t *testing.T, to Sender, opts Options) *busyFlush {
	t.Helper()
	b := &busyFlush{g: &gated{to: to, open: make(chan struct{})}, fl: &flushes{}}
	opts.MaxInFlight = 1
	b.c, b.took, b.stop = start(t, b.g, opts, b.fl)
	b.first = sendAll(b.c, []rsmq.SendItem{{Queue: "q", Message: "first"}})[0]
	testenv.Eventually(t, waitTimeout, "the first flush to start", func() bool { return b.took.Load() == 1 })
	return b
}

// sendAll starts one Send per item and returns their results' channels.
func sendAll(c *Coalescer, items []rsmq.SendItem) []chan result {
	out := make([]chan result, len(items))
	for i, it := range items {
		out[i] = make(chan result, 1)
		go func() {
			id, err := c.Send(context.Background(), it)
			out[i] <- result{id, err}
		}()
	}
	return out
}

func TestALoneSendGoesOutAloneWithoutWaitingForCompany(t *testing.T) {
	e := newEnv(t)
	for _, linger := range []time.Duration{0, MaxLinger} {
		t.Run(linger.String(), func(t *testing.T) {
			var fl flushes
			c, _, _ := start(t, e.q, Options{Linger: linger}, &fl)
			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			defer cancel()
			id, err := c.Send(ctx, rsmq.SendItem{Queue: "q", Message: "alone"})
			if err != nil {
				t.Fatal(err)
			}
			if body := e.raw.HGet(ctx, "rsmq:q:Q", id).Val(); body != "alone" {
				t.Fatalf("stored %q under %s, want the message", body, id)
			}
			if got := fl.get(); len(got) != 1 || got[0] != 1 {
				t.Fatalf("flushes %v, want one of one Send", got)
			}
		})
	}
}

// TestABurstOf64CallersTakesTwoRoundTrips: with one flush in flight, the 64
// callers that arrive while it waits for Redis go out together in the next.
func TestABurstOf64CallersTakesTwoRoundTrips(t *testing.T) {
	e := newEnv(t)
	if _, err := e.q.SendBatch(context.Background(), []rsmq.SendItem{{Queue: "q2", Message: "warm"}}); err != nil {
		t.Fatal(err) // the script cache: no NOSCRIPT round trip below
	}
	b := startBusy(t, e.q, Options{MaxBatch: 64})
	items := make([]rsmq.SendItem, 64)
	for i := range items {
		items[i] = rsmq.SendItem{Queue: []string{"q", "q2"}[i%2], Message: "burst " + strconv.Itoa(i)}
	}
	before := e.evalsha(t)
	burst := sendAll(b.c, items)
	testenv.Eventually(t, waitTimeout, "the dispatcher to take all 64 calls", func() bool { return b.took.Load() == 65 })
	close(b.g.open)

	if r := <-b.first; r.err != nil {
		t.Fatal(r.err)
	}
	ids := map[string]bool{}
	for i, ch := range burst {
		r := <-ch
		if r.err != nil {
			t.Fatalf("call %d: %v", i, r.err)
		}
		if body := e.raw.HGet(context.Background(), "rsmq:"+items[i].Queue+":Q", r.id).Val(); body != items[i].Message {
			t.Fatalf("call %d: stored %q, want %q", i, body, items[i].Message)
		}
		ids[r.id] = true
	}
	if len(ids) != 64 {
		t.Fatalf("%d distinct ids for 64 calls", len(ids))
	}
	if got := b.fl.get(); len(got) != 2 || got[0] != 1 || got[1] != 64 {
		t.Fatalf("flushes %v, want [1 64]", got)
	}
	if n := e.evalsha(t) - before; n != 2 {
		t.Fatalf("Redis ran %d scripts for the two flushes, want 2", n)
	}
}

// TestARetriedFlushStoresEachMessageOnce: the reply of a flush of ten is
// lost after Redis ran it; go-redis retries it, and each message is stored
// once under the id its caller got.
func TestARetriedFlushStoresEachMessageOnce(t *testing.T) {
	e := newEnv(t)
	p := testenv.StartReplyDropper(t, e.redis.Addr(), "RETRY-ME")
	rdb := redis.NewClient(&redis.Options{Addr: p.Addr(), MaxRetries: 3, MinRetryBackoff: time.Millisecond, MaxRetryBackoff: 5 * time.Millisecond})
	t.Cleanup(func() { _ = rdb.Close() })
	g := &gated{to: rsmq.New(rdb, rsmq.Options{Realtime: true}), open: make(chan struct{})}
	var fl flushes
	c, took, _ := start(t, g, Options{MaxInFlight: 1}, &fl)
	warm := sendAll(c, []rsmq.SendItem{{Queue: "q", Message: "warm"}}) // id clock, script cache
	testenv.Eventually(t, waitTimeout, "the first flush to start", func() bool { return took.Load() == 1 })
	items := make([]rsmq.SendItem, 10)
	for i := range items {
		items[i] = rsmq.SendItem{Queue: "q", Message: "m" + strconv.Itoa(i)}
	}
	items[4].Message = "RETRY-ME"
	res := sendAll(c, items)
	testenv.Eventually(t, waitTimeout, "the ten calls to be taken", func() bool { return took.Load() == 11 })
	p.Armed.Store(true)
	close(g.open)
	if r := <-warm[0]; r.err != nil {
		t.Fatal(r.err)
	}
	ctx := context.Background()
	for i, ch := range res {
		r := <-ch
		if r.err != nil {
			t.Fatalf("call %d: %v", i, r.err)
		}
		if body := e.raw.HGet(ctx, "rsmq:q:Q", r.id).Val(); body != items[i].Message {
			t.Fatalf("call %d: stored %q, want %q", i, body, items[i].Message)
		}
	}
	if p.Dropped.Load() != 1 {
		t.Fatal("the proxy dropped no reply: the test proves nothing")
	}
	if got := fl.get(); len(got) != 2 || got[1] != 10 {
		t.Fatalf("flushes %v, want [1 10]", got)
	}
	if n := e.raw.ZCard(ctx, "rsmq:q").Val(); n != 11 {
		t.Fatalf("queue holds %d messages, want 11 (each once)", n)
	}
	if s := e.raw.HGet(ctx, "rsmq:q:Q", "totalsent").Val(); s != "11" {
		t.Fatalf("totalsent %s, want 11", s)
	}
}

// TestErrorsOfOneFlushStayWithTheirItems: a missing queue and a too long
// message in a flush fail only their own Sends.
func TestErrorsOfOneFlushStayWithTheirItems(t *testing.T) {
	e := newEnv(t)
	b := startBusy(t, e.q, Options{})
	items := []rsmq.SendItem{
		{Queue: "q", Message: "ok 1"},
		{Queue: "missing", Message: "x"},
		{Queue: "small", Message: strings.Repeat("x", 1025)},
		{Queue: "q2", Message: "ok 2"},
		{Queue: "bad name", Message: "x"},
	}
	res := sendAll(b.c, items)
	testenv.Eventually(t, waitTimeout, "the calls to be taken", func() bool { return b.took.Load() == 6 })
	close(b.g.open)
	<-b.first
	want := []error{nil, rsmq.ErrQueueNotFound, rsmq.ErrMessageTooLong, nil, rsmq.ErrInvalidFormat}
	for i, ch := range res {
		r := <-ch
		if want[i] == nil {
			if r.err != nil || e.raw.HGet(context.Background(), "rsmq:"+items[i].Queue+":Q", r.id).Val() != items[i].Message {
				t.Fatalf("call %d: %q, %v; want stored", i, r.id, r.err)
			}
			continue
		}
		if !errors.Is(r.err, want[i]) || r.id != "" {
			t.Fatalf("call %d: %q, %v; want %v", i, r.id, r.err, want[i])
		}
	}
	if got := b.fl.get(); len(got) != 2 || got[1] != 5 {
		t.Fatalf("flushes %v, want [1 5]", got)
	}
}

// TestStopAnswersEveryTakenCallThenRefusesNewOnes: calls taken before Run
// ended are flushed and answered; a Send after that gets ErrStopped.
func TestStopAnswersEveryTakenCallThenRefusesNewOnes(t *testing.T) {
	e := newEnv(t)
	b := startBusy(t, e.q, Options{})
	second := sendAll(b.c, []rsmq.SendItem{{Queue: "q", Message: "second"}})
	testenv.Eventually(t, waitTimeout, "the second call to be taken", func() bool { return b.took.Load() == 2 })
	b.stop()
	close(b.g.open)
	for _, ch := range []chan result{b.first, second[0]} {
		if r := <-ch; r.err != nil {
			t.Fatalf("a taken call failed at stop: %v", r.err)
		}
	}
	<-b.c.done
	if _, err := b.c.Send(context.Background(), rsmq.SendItem{Queue: "q", Message: "late"}); !errors.Is(err, ErrStopped) {
		t.Fatalf("Send after stop: %v, want ErrStopped", err)
	}
	if n := e.raw.ZCard(context.Background(), "rsmq:q").Val(); n != 2 {
		t.Fatalf("queue holds %d, want the 2 taken messages", n)
	}
}

func TestOptionsOutOfRangeAreRefusedNamingTheOption(t *testing.T) {
	for _, tc := range []struct {
		opts Options
		want string
	}{
		{Options{MaxBatch: rsmq.MaxBatch + 1}, "MaxBatch"},
		{Options{MaxBatch: -1}, "MaxBatch"},
		{Options{MaxInFlight: -1}, "MaxInFlight"},
		{Options{Linger: MaxLinger + time.Microsecond}, "Linger"},
		{Options{Linger: -time.Microsecond}, "Linger"},
	} {
		if err := tc.opts.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate(%+v) = %v, want an error naming %s", tc.opts, err, tc.want)
		}
	}
	if err := (Options{MaxBatch: rsmq.MaxBatch, MaxInFlight: 1, Linger: MaxLinger}).Validate(); err != nil {
		t.Errorf("the limits themselves are refused: %v", err)
	}
}

// TestASendWhoseCallerGaveUpBeforeItsFlushIsNotSent: a Send waiting behind
// a busy flush whose context ends returns that error, and its item is not
// stored when the flush slot frees (a retry must not find it twice).
func TestASendWhoseCallerGaveUpBeforeItsFlushIsNotSent(t *testing.T) {
	e := newEnv(t)
	b := startBusy(t, e.q, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	gaveUp := make(chan error, 1)
	go func() {
		_, err := b.c.Send(ctx, rsmq.SendItem{Queue: "q", Message: "abandoned"})
		gaveUp <- err
	}()
	testenv.Eventually(t, waitTimeout, "the second Send to wait", func() bool { return b.took.Load() == 2 })
	cancel()
	if err := <-gaveUp; !errors.Is(err, context.Canceled) {
		t.Fatalf("the abandoned Send returned %v, want context.Canceled", err)
	}
	close(b.g.open)
	if r := <-b.first; r.err != nil {
		t.Fatal(r.err)
	}
	testenv.Eventually(t, waitTimeout, "the flush slot to be free", func() bool {
		b.c.mu.Lock()
		defer b.c.mu.Unlock()
		return b.c.inflight == 0
	})
	if n := e.raw.ZCard(context.Background(), "rsmq:q").Val(); n != 1 {
		t.Fatalf("queue holds %d messages, want only the first (the abandoned one not sent)", n)
	}
	if got := b.fl.get(); len(got) != 1 || got[0] != 1 {
		t.Fatalf("flushes %v, want [1]: nothing was left to send", got)
	}
}
