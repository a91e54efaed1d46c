package testenv

import (
	"net"
	"sync"
	"testing"
)

// Proxy is a TCP proxy on a free loopback port whose forwarding can stop (a
// black hole: bytes are held and connections stay open, as on a dead
// network) and resume, and whose connections can be cut. The test's
// cleanup stops it.
type Proxy struct {
	ln     net.Listener
	target func() string

	mu      sync.Mutex
	forward bool
	resumed chan struct{} // closed when forwarding resumes
	conns   []net.Conn
	wg      sync.WaitGroup
}

// StartProxy starts a Proxy to target (host:port).
func StartProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	return StartProxyTo(t, func() string { return target })
}

// StartProxyTo starts a Proxy whose every new connection goes to the
// address target returns then (a target that moves, e.g. a restarted server).
func StartProxyTo(t testing.TB, target func() string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{ln: ln, target: target, forward: true, resumed: make(chan struct{})}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() {
		_ = ln.Close()
		p.SetForward(true)
		p.Cut()
		p.wg.Wait()
	})
	return p
}

// Addr is the proxy's host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// URL is the proxy's http:// URL.
func (p *Proxy) URL() string { return "http://" + p.Addr() }

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		out, err := net.Dial("tcp", p.target())
		if err != nil {
			_ = in.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, in, out)
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(in, out)
		go p.pipe(out, in)
	}
}

// gate returns nil while forwarding, else a channel closed on resumption.
func (p *Proxy) gate() chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.forward {
		return nil
	}
	return p.resumed
}

func (p *Proxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	defer func() {
		_ = dst.Close()
		_ = src.Close()
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if g := p.gate(); g != nil {
				<-g // held, as a black-holed network holds them
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// SetForward stops (false: a black hole) or resumes forwarding.
func (p *Proxy) SetForward(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if on == p.forward {
		return
	}
	p.forward = on
	if on {
		close(p.resumed)
	} else {
		p.resumed = make(chan struct{})
	}
}

// Cut closes every proxied connection, both sides.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.conns = nil
}
