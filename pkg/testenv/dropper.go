package testenv

import (
	"bytes"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// ReplyDropper is a TCP proxy to Redis that, once armed (Armed.Store(true)), closes the
// connection instead of forwarding the reply to the first request that
// contains marker: the request reached Redis and ran, the client sees a
// dropped connection, and go-redis retries. With delay set it holds that
// reply back for delay instead (past the client's read timeout), then
// forwards it. Tests of idempotent retries use it.
type ReplyDropper struct {
	ln     net.Listener
	target string
	marker []byte
	// Delay, when set before arming, holds the reply back instead of
	// dropping the connection.
	Delay time.Duration
	// Armed makes the proxy act on the next request holding the marker;
	// it disarms itself when it did.
	Armed atomic.Bool
	// Dropped counts the replies dropped (or delayed).
	Dropped atomic.Int32
	acted   chan struct{}
	once    sync.Once
	wg      sync.WaitGroup
	mu      sync.Mutex
	conns   []net.Conn
}

// StartReplyDropper starts a ReplyDropper to target (host:port) acting on
// requests that contain marker; the test's cleanup stops it.
func StartReplyDropper(t testing.TB, target, marker string) *ReplyDropper {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &ReplyDropper{ln: ln, target: target, marker: []byte(marker), acted: make(chan struct{})}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

// StartReplyDelayer is StartReplyDropper whose armed reply is held back for
// delay (past the client's read timeout) and then forwarded.
func StartReplyDelayer(t testing.TB, target, marker string, delay time.Duration) *ReplyDropper {
	t.Helper()
	p := StartReplyDropper(t, target, marker)
	p.Delay = delay // before any armed request: the proxy reads it only once armed
	return p
}

// Acted is closed once the proxy dropped a reply, or forwarded a delayed one.
func (p *ReplyDropper) Acted() <-chan struct{} { return p.acted }

// Addr is the proxy's address.
func (p *ReplyDropper) Addr() string { return p.ln.Addr().String() }

func (p *ReplyDropper) close() {
	_ = p.ln.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *ReplyDropper) track(c net.Conn) {
	p.mu.Lock()
	p.conns = append(p.conns, c)
	p.mu.Unlock()
}

func (p *ReplyDropper) accept() {
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
					if p.Armed.Load() && bytes.Contains(buf[:n], p.marker) {
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
				if n > 0 && dropNext.Load() && p.Armed.CompareAndSwap(true, false) {
					p.Dropped.Add(1)
					if p.Delay > 0 {
						time.Sleep(p.Delay) // the fault: a reply that comes too late
						_, _ = client.Write(buf[:n])
						p.once.Do(func() { close(p.acted) })
						continue
					}
					_ = client.Close()
					_ = server.Close()
					p.once.Do(func() { close(p.acted) })
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
