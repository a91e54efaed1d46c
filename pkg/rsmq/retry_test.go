package rsmq_test

import (
	"bytes"
	"context"
	"net"
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

// replyDropper is a TCP proxy to Redis that, once armed, closes the
// connection instead of forwarding the reply to the first request that
// contains marker: the request reached Redis and ran, the client sees a
// dropped connection, and go-redis retries. With delay set it holds that
// reply back for delay instead (past the client's read timeout), then
// forwards it.
type replyDropper struct {
	ln      net.Listener
	target  string
	marker  []byte
	delay   time.Duration
	armed   atomic.Bool
	dropped atomic.Int32
	wg      sync.WaitGroup
	mu      sync.Mutex
	conns   []net.Conn
}

func startReplyDropper(t *testing.T, target, marker string) *replyDropper {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &replyDropper{ln: ln, target: target, marker: []byte(marker)}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *replyDropper) Addr() string { return p.ln.Addr().String() }

func (p *replyDropper) close() {
	_ = p.ln.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *replyDropper) track(c net.Conn) {
	p.mu.Lock()
	p.conns = append(p.conns, c)
	p.mu.Unlock()
}

func (p *replyDropper) accept() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		server, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = client.Close()
			continue
		}
		p.track(client)
		p.track(server)
		var dropNext atomic.Bool
		p.wg.Add(2)
		go func() { // client -> server
			defer p.wg.Done()
			buf := make([]byte, 64<<10)
			for {
				n, err := client.Read(buf)
				if n > 0 {
					if p.armed.Load() && bytes.Contains(buf[:n], p.marker) {
						dropNext.Store(true) // before Redis can answer
					}
					if _, werr := server.Write(buf[:n]); werr != nil {
						return
					}
				}
				if err != nil {
					_ = server.Close()
					return
				}
			}
		}()
		go func() { // server -> client
			defer p.wg.Done()
			buf := make([]byte, 64<<10)
			for {
				n, err := server.Read(buf)
				if n > 0 && dropNext.Load() && p.armed.CompareAndSwap(true, false) {
					p.dropped.Add(1)
					if p.delay > 0 {
						time.Sleep(p.delay) // the fault: a reply that comes too late
						_, _ = client.Write(buf[:n])
						continue
					}
					_ = client.Close()
					_ = server.Close()
					return
				}
				if n > 0 {
					if _, werr := client.Write(buf[:n]); werr != nil {
						return
					}
				}
				if err != nil {
					_ = client.Close()
					return
				}
			}
		}()
	}
}

// evalshaCalls reads how many EVALSHA commands Redis has run.
func evalshaCalls(t *testing.T, e *env) int {
	t.Helper()
	info := e.raw.Info(e.ctx, "commandstats").Val()
	for _, line := range strings.Split(info, "\n") {
		if rest, ok := strings.CutPrefix(line, "cmdstat_evalsha:calls="); ok {
			n, _ := strconv.Atoi(rest[:strings.IndexByte(rest, ',')])
			return n
		}
	}
	return 0
}

func TestSendRetriedAfterLostReplyIsStoredOnce(t *testing.T) {
	e := newEnv(t, rsmq.Options{})
	e.createQueue(t, "q", 30)
	sub := e.raw.Subscribe(e.ctx, "rsmq:rt:q")
	defer func() { _ = sub.Close() }()
	if _, err := sub.Receive(e.ctx); err != nil {
		t.Fatal(err)
	}
	p := startReplyDropper(t, e.redis.Addr(), "RETRY-ME")
	rdb := redis.NewClient(&redis.Options{Addr: p.Addr(), MaxRetries: 3, MinRetryBackoff: time.Millisecond, MaxRetryBackoff: 5 * time.Millisecond})
	t.Cleanup(func() { _ = rdb.Close() })
	c := rsmq.New(rdb, rsmq.Options{Realtime: true})
	// Warm up: the id clock's TIME call and the script cache, so the dropped
	// reply is the one of a successful write.
	if _, err := c.SendMessage(e.ctx, "q", "warm", 0); err != nil {
		t.Fatal(err)
	}

	before := evalshaCalls(t, e)
	p.armed.Store(true)
	id, err := c.SendMessage(e.ctx, "q", "RETRY-ME", 0)
	if err != nil {
		t.Fatalf("SendMessage through a dropped reply: %v", err)
	}
	if p.dropped.Load() != 1 {
		t.Fatal("the proxy dropped no reply: the test proves nothing")
	}
	if n := evalshaCalls(t, e) - before; n != 2 {
		t.Fatalf("Redis ran the send script %d times, want 2 (first attempt + retry)", n)
	}
	if got := e.raw.ZCard(e.ctx, "rsmq:q").Val(); got != 2 {
		t.Fatalf("zset has %d members, want 2 (warm + one retried send)", got)
	}
	if e.raw.HGet(e.ctx, "rsmq:q:Q", "totalsent").Val() != "2" {
		t.Fatalf("totalsent %s, want 2", e.raw.HGet(e.ctx, "rsmq:q:Q", "totalsent").Val())
	}
	if e.raw.HGet(e.ctx, "rsmq:q:Q", id).Val() != "RETRY-ME" {
		t.Fatal("returned id is not the stored one")
	}
	// One notification per message: "1" (warm), "2"; nothing for the retry.
	for _, want := range []string{"1", "2"} {
		ctx, cancel := context.WithTimeout(e.ctx, 5*time.Second)
		msg, err := sub.ReceiveMessage(ctx)
		cancel()
		if err != nil || msg.Payload != want {
			t.Fatalf("notification %v, %v; want %q", msg, err, want)
		}
	}
	if err := e.raw.Publish(e.ctx, "rsmq:rt:q", "end").Err(); err != nil {
		t.Fatal(err)
	}
	if msg, err := sub.ReceiveMessage(e.ctx); err != nil || msg.Payload != "end" {
		t.Fatalf("after the send's notifications got %v, %v; want only our end marker", msg, err)
	}
}

func TestSendBatchRetriedAfterLostReplyStoresEachOnce(t *testing.T) {
	e := newEnv(t, rsmq.Options{})
	e.createQueue(t, "q", 30)
	p := startReplyDropper(t, e.redis.Addr(), "RETRY-ME")
	rdb := redis.NewClient(&redis.Options{Addr: p.Addr(), MaxRetries: 3, MinRetryBackoff: time.Millisecond, MaxRetryBackoff: 5 * time.Millisecond})
	t.Cleanup(func() { _ = rdb.Close() })
	c := rsmq.New(rdb, rsmq.Options{})
	if _, err := c.SendBatch(e.ctx, []rsmq.SendItem{{Queue: "q", Message: "warm"}}); err != nil {
		t.Fatal(err)
	}
	before := evalshaCalls(t, e)
	p.armed.Store(true)
	res, err := c.SendBatch(e.ctx, []rsmq.SendItem{
		{Queue: "q", Message: "a"}, {Queue: "q", Message: "RETRY-ME"}, {Queue: "q", Message: "c"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if p.dropped.Load() != 1 {
		t.Fatal("the proxy dropped no reply")
	}
	if n := evalshaCalls(t, e) - before; n != 2 {
		t.Fatalf("Redis ran %d send scripts, want 2 (one call for the 3 items, twice)", n)
	}
	for i, r := range res {
		if r.Err != nil || !e.raw.HExists(e.ctx, "rsmq:q:Q", r.ID).Val() {
			t.Fatalf("item %d: %+v not stored", i, r)
		}
	}
	if n := e.raw.ZCard(e.ctx, "rsmq:q").Val(); n != 4 {
		t.Fatalf("zset has %d members, want 4", n)
	}
	if s := e.raw.HGet(e.ctx, "rsmq:q:Q", "totalsent").Val(); s != "4" {
		t.Fatalf("totalsent %s, want 4", s)
	}
}

// TestReceiveRetriedAfterLostReplyHidesOneMoreMessage documents the limit
// stated in the package doc: the first attempt's message is hidden and
// counted but never returned; it comes back after its vt with rc raised.
func TestReceiveRetriedAfterLostReplyHidesOneMoreMessage(t *testing.T) {
	e := newEnv(t, rsmq.Options{})
	e.createQueue(t, "q", 1)
	p := startReplyDropper(t, e.redis.Addr(), "RETRY-RECV")
	rdb := redis.NewClient(&redis.Options{Addr: p.Addr(), MaxRetries: 3, MinRetryBackoff: time.Millisecond, MaxRetryBackoff: 5 * time.Millisecond})
	t.Cleanup(func() { _ = rdb.Close() })
	c := rsmq.New(rdb, rsmq.Options{})
	if err := e.q.CreateQueue(e.ctx, "RETRY-RECV", rsmq.QueueConfig{VT: 1, MaxSize: 65536}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ReceiveMessage(e.ctx, "RETRY-RECV", rsmq.QueueDefault); err != nil { // load script
		t.Fatal(err)
	}
	first := e.send(t, "RETRY-RECV", "first")
	second := e.send(t, "RETRY-RECV", "second")
	p.armed.Store(true)
	m, err := c.ReceiveMessage(e.ctx, "RETRY-RECV", rsmq.QueueDefault)
	if err != nil || p.dropped.Load() != 1 {
		t.Fatalf("ReceiveMessage = %+v, %v (dropped %d)", m, err, p.dropped.Load())
	}
	if m == nil || m.ID != second {
		t.Fatalf("retried receive got %+v, want the second message", m)
	}
	var back *rsmq.Message
	testenv.Eventually(t, 5*time.Second, "the lost delivery to come back", func() bool {
		back = e.receive(t, "RETRY-RECV", 60)
		return back != nil
	})
	if back.ID != first || back.RC != 2 {
		t.Fatalf("came back %+v, want the first message with rc 2", back)
	}
}
