package wsconn

import (
	"net"
	"sync"
)

// corkLimit is the most bytes a corked connection holds before it writes
// them anyway: a bound on the memory of one batch.
const corkLimit = 64 << 10

// corkKeep is the most buffer a connection keeps between batches: a few
// frames' worth, as gorilla's own write buffer.
const corkKeep = 8 << 10

// CorkListener wraps ln so that every connection it accepts can be corked:
// a Conn whose websocket sits on such a connection writes a batch of frames
// and its confirm ping with one write(2) instead of one per frame.
func CorkListener(ln net.Listener) net.Listener { return corkListener{ln} }

type corkListener struct{ net.Listener }

func (l corkListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &corkConn{Conn: c}, nil
}

// corker is a connection that can hold writes back (corkConn).
type corker interface {
	// Cork makes writes go to a buffer until Uncork.
	Cork()
	// Uncork writes what the buffer holds in one write and writes
	// directly again; its error is that write's.
	Uncork() error
}

// corkConn is a net.Conn whose writes can be gathered (corked). Gorilla
// serialises a websocket's writes; the mutex also covers a write racing
// Cork or Uncork.
type corkConn struct {
	net.Conn
	mu     sync.Mutex
	corked bool
	buf    []byte
}

func (c *corkConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.corked {
		return c.Conn.Write(p)
	}
	c.buf = append(c.buf, p...)
	if len(c.buf) >= corkLimit {
		if err := c.flush(); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

func (c *corkConn) Cork() {
	c.mu.Lock()
	c.corked = true
	c.mu.Unlock()
}

func (c *corkConn) Uncork() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.corked = false
	return c.flush()
}

// flush writes the buffer; c.mu is held.
func (c *corkConn) flush() error {
	if len(c.buf) == 0 {
		return nil
	}
	_, err := c.Conn.Write(c.buf)
	if cap(c.buf) > corkKeep {
		c.buf = nil // a burst's buffer is not kept by an idle connection
	} else {
		c.buf = c.buf[:0]
	}
	return err
}
