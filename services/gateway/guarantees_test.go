package main

import (
	"context"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wsmq/wsmq/pkg/testenv"
	"github.com/wsmq/wsmq/services/gateway/client"
	"github.com/wsmq/wsmq/services/gateway/protocol"
)

// rawClient is a misbehaving client: a bare gorilla websocket, which reads
// (and so answers pings) only when the test reads, over a TCP connection
// the test holds so it can reset it.
type rawClient struct {
	t   *testing.T
	ws  *websocket.Conn
	tcp *net.TCPConn
}

// dialRaw connects to addr (host:port) with sess's tokens. With tiny, the
// socket advertises a small window and segment size, so a few kilobytes
// fill the path and the gateway's writes block, as they do to a phone
// that stopped reading.
func dialRaw(t *testing.T, addr string, sess client.Session, tiny bool) *rawClient {
	t.Helper()
	rc := &rawClient{t: t}
	nd := &net.Dialer{}
	if tiny {
		nd.Control = func(_, _ string, raw syscall.RawConn) error {
			var serr error
			err := raw.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_MAXSEG, 536)
				if serr == nil {
					serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
				}
			})
			if err != nil {
				return err
			}
			return serr
		}
	}
	d := websocket.Dialer{
		HandshakeTimeout: waitLong,
		NetDialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
			c, err := nd.DialContext(ctx, network, a)
			if err == nil {
				rc.tcp = c.(*net.TCPConn)
			}
			return c, err
		},
	}
	h := http.Header{protocol.HeaderToken: {sess.Token}, protocol.HeaderAccessToken: {sess.AccessToken}}
	ws, _, err := d.Dial("ws://"+addr+protocol.WebsocketPath, h)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	rc.ws = ws
	t.Cleanup(func() { _ = ws.Close() })
	return rc
}

// subscribe sends /subscribe/q and reads until its confirmation.
func (rc *rawClient) subscribe(q string) {
	rc.t.Helper()
	if err := rc.ws.WriteMessage(websocket.TextMessage, []byte(protocol.Subscribe(q))); err != nil {
		rc.t.Fatal(err)
	}
	for {
		f := rc.frame()
		if s, ok := f.(*protocol.Subscribed); ok && s.Queue == q {
			return
		}
	}
}

func (rc *rawClient) frame() protocol.Frame {
	rc.t.Helper()
	_ = rc.ws.SetReadDeadline(time.Now().Add(waitLong))
	_, b, err := rc.ws.ReadMessage()
	if err != nil {
		rc.t.Fatalf("read: %v", err)
	}
	f, err := protocol.DecodeFrame(b)
	if err != nil {
		rc.t.Fatalf("decode %.80q: %v", b, err)
	}
	return f
}

// messages reads n message frames and returns them.
func (rc *rawClient) messages(n int) []*protocol.Message {
	rc.t.Helper()
	out := make([]*protocol.Message, 0, n)
	for len(out) < n {
		if m, ok := rc.frame().(*protocol.Message); ok {
			out = append(out, m)
		}
	}
	return out
}

// reset aborts the connection with a TCP RST, as a phone losing its
// network or a killed tab does: nothing the gateway wrote after that
// point can reach the client.
func (rc *rawClient) reset() {
	rc.t.Helper()
	if err := rc.tcp.SetLinger(0); err != nil {
		rc.t.Fatal(err)
	}
	_ = rc.tcp.Close()
}

// numbered makes message i of a loss test: its number, padded to size.
func numbered(i, size int) string {
	s := strconv.Itoa(i) + ":"
	return s + strings.Repeat("p", size-len(s))
}

func numberOf(t *testing.T, body string) int {
	t.Helper()
	n, err := strconv.Atoi(body[:strings.IndexByte(body, ':')])
	if err != nil {
		t.Fatalf("message %.40q is not one of the test's", body)
	}
	return n
}

// drain reads queue q through gw with the gateway client (auto mode) until
// every one of n numbered messages was seen (counting seen, which holds
// what other clients got), and returns how many it got twice. It stays
// connected until the gateway deleted them all: a client that leaves before
// its last pong gets its last frames again next time.
func (s *stack) drain(t *testing.T, gw string, sess client.Session, q string, n int, seen map[int]int) (dups int) {
	t.Helper()
	ctx, cancel := ctxWait()
	defer cancel()
	c, err := client.Dial(ctx, gw, client.Options{Token: sess.Token, AccessToken: sess.AccessToken})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	if err := c.Subscribe(ctx, q); err != nil {
		t.Fatal(err)
	}
	for len(seen) < n {
		f, err := c.Next(ctx)
		if err != nil {
			t.Fatalf("%d of %d messages arrived across both clients, then: %v (lost)", len(seen), n, err)
		}
		if m, ok := f.(*protocol.Message); ok {
			i := numberOf(t, m.Message)
			if seen[i]++; seen[i] > 1 {
				dups++
			}
		}
	}
	testenv.Eventually(t, waitLong, "queue empty once the client confirmed everything", func() bool { return s.attrs(q).Msgs == 0 })
	return dups
}

// startNginx runs Debian's nginx with deploy/nginx.conf (the compose load
// balancer's main config) in front of upstream and returns its host:port.
func startNginx(t *testing.T, upstream string) string { return testenv.StartNginx(t, upstream).Addr }

// TestAutoModeClientThatStallsThenVanishesLosesNothing is the issue's
// measurement as a test: an auto-mode client subscribes, 3,000 messages of
// 2 KiB are sent, it reads 20, stops reading for 1.5 s and then goes away
// without reading the rest (a TCP reset, or a close frame after which it
// reads nothing), directly or behind the compose load balancer. A second
// client then drains the queue: every message arrives at least once. The
// gateway deletes only what the first client's websocket stack confirmed
// with a pong; everything else written to it goes back to the queue.
func TestAutoModeClientThatStallsThenVanishesLosesNothing(t *testing.T) {
	s := newStack(t)
	gw := s.startGateway()
	const n, size, read = 3000, 2048, 20
	stall := 1500 * time.Millisecond
	for i, tc := range []struct {
		name  string
		nginx bool
		leave func(rc *rawClient)
	}{
		{"TCP reset", false, func(rc *rawClient) { rc.reset() }},
		{"close frame then no reads", false, func(rc *rawClient) {
			msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye")
			if err := rc.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second)); err != nil {
				rc.t.Fatal(err)
			}
			time.Sleep(stall) // the scenario: a client that closed and reads nothing more
			_ = rc.ws.Close()
		}},
		{"TCP reset behind nginx", true, func(rc *rawClient) { rc.reset() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := gw.Addr
			if tc.nginx {
				addr = startNginx(t, gw.Addr)
			}
			sess := s.user(gw, "vanish"+itoa(i))
			rc := dialRaw(t, addr, sess, false)
			rc.subscribe(sess.UserID)
			for i := range n {
				s.send(sess.UserID, numbered(i, size))
			}
			seen := map[int]int{}
			for _, m := range rc.messages(read) {
				seen[numberOf(t, m.Message)]++
			}
			time.Sleep(stall) // the scenario: a client that stops reading for a while
			tc.leave(rc)
			dups := s.drain(t, "http://"+addr, sess, sess.UserID, n, seen)
			t.Logf("all %d arrived; %d twice (read by the first client after its last pong)", n, dups)
		})
	}
}

// TestGracefulShutdownWithStalledClientsReturnsEverythingWithinItsDeadline:
// 50 clients that read nothing hold a full path each (the gateway's writes
// to them block). SIGTERM closes them concurrently (their 1001s spread over
// a 1 s WSMQ_SHUTDOWN_SPREAD, set here: with the default 3 s and a 5 s
// deadline it took 4.5 s, too close on a loaded machine): the gateway exits
// cleanly (exit status 0) within the default WSMQ_SHUTDOWN_TIMEOUT of 10 s
// (about 3 s under -race; it used to spend about a second per such client,
// in sequence: 50 s here), and every message of
// every one of the 50 queues is visible again at once, so a client on
// another gateway gets it promptly, not after the 120 s visibility timeout.
func TestGracefulShutdownWithStalledClientsReturnsEverythingWithinItsDeadline(t *testing.T) {
	const clients, perClient, size = 50, 64, 4096 // 256 KiB per client: more than its path holds
	const shutdownTimeout = 10 * time.Second      // the default; done in sequence it would take ~50 s
	s := newStack(t, "WSMQ_VISIBILITY_TIMEOUT=120", "WSMQ_MAX_CONNS_PER_USER=64", "WSMQ_CONN_RATE=1000")
	a := s.startGateway("WSMQ_SHUTDOWN_TIMEOUT="+shutdownTimeout.String(), "WSMQ_SHUTDOWN_SPREAD=1s", "WSMQ_WRITE_TIMEOUT=60s")
	b := s.startGateway()
	sess := s.user(a, "stalled")
	queue := func(i int) string { return sess.UserID + "-" + itoa(i) }
	for i := range clients {
		dialRaw(t, a.Addr, sess, true).subscribe(queue(i))
	}
	for i := range clients {
		for k := range perClient {
			s.send(queue(i), numbered(k, size))
		}
	}
	testenv.Eventually(t, waitLong, "every message in flight to a stalled client", func() bool {
		for i := range clients {
			// TotalRecv, not HiddenMsgs: that counts messages sent this
			// second as hidden.
			if a := s.attrs(queue(i)); a.TotalRecv != perClient {
				return false
			}
		}
		return true
	})

	start := time.Now()
	if err := a.P.Terminate(waitLong); err != nil {
		t.Fatalf("gateway exit: %v", err)
	}
	if d := time.Since(start); d > shutdownTimeout {
		t.Fatalf("shutdown took %s with %d stalled clients, deadline %s", d, clients, shutdownTimeout)
	} else {
		t.Logf("shutdown with %d stalled clients took %s", clients, d)
	}
	for i := range clients {
		if a := s.attrs(queue(i)); a.Msgs != perClient {
			t.Fatalf("queue %d holds %d messages after shutdown, want %d (none received)", i, a.Msgs, perClient)
		}
	}
	// Visible now, not hidden: Redis's clock, not the test's, decides.
	for i := range clients {
		if n := testenv.VisibleNow(t, s.RDB, "rsmq:"+queue(i)); n != perClient {
			t.Fatalf("queue %d: %d of %d messages visible right after shutdown", i, n, perClient)
		}
	}
	// Promptly deliverable: another gateway delivers every queue's
	// messages now, long before the visibility timeout would have let
	// them out (a connection per queue: a client reading one queue's
	// messages while it subscribes to the next would fill its buffer).
	for i := range clients {
		c := dial(t, b, sess, "")
		c.subscribe(queue(i))
		for _, m := range c.messages(perClient) {
			if m.Queue != queue(i) {
				t.Fatalf("subscribed to queue %d, got a message of %s", i, m.Queue)
			}
		}
		_ = c.c.Close()
	}
}
