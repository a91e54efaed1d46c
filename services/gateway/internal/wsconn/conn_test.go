package wsconn

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/redis/go-redis/v9"

	"github.com/wsmq/wsmq/pkg/rsmq"
	"github.com/wsmq/wsmq/pkg/testenv"
	"github.com/wsmq/wsmq/services/gateway/internal/delivery"
	"github.com/wsmq/wsmq/services/gateway/internal/metrics"
	"github.com/wsmq/wsmq/services/gateway/protocol"
)

// smallBuffers is the socket buffer size of both ends in these tests, so a
// few frames fill them and a write blocks mid-batch.
const smallBuffers = 4096

// TestWriteErrorMidBatchReturnsTheBatchNotDeletesIt: a client that reads
// nothing makes the writer fail in the middle of a batch (write deadline).
// The frames written before the error sit in socket buffers, not in the
// client: they must go back to the queue with the rest of the batch, at
// once and none deleted.
func TestWriteErrorMidBatchReturnsTheBatchNotDeletesIt(t *testing.T) {
	for _, corked := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "corked"}[corked], func(t *testing.T) { writeErrorMidBatch(t, corked) })
	}
}

// tcpConn is the TCP connection under c (a corkConn's too).
func tcpConn(c net.Conn) *net.TCPConn {
	if k, ok := c.(*corkConn); ok {
		c = k.Conn
	}
	return c.(*net.TCPConn)
}

func writeErrorMidBatch(t *testing.T, corked bool) {
	r := testenv.StartRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	q := rsmq.New(rdb, rsmq.Options{Realtime: true})
	e := delivery.New(delivery.Config{Workers: 2, VisibilityTimeout: 120}, rdb, q, metrics.New(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	e.Start()
	t.Cleanup(e.Stop)

	ctx := context.Background()
	const user, n = "0123456789abcdef01234567", 64 // a user id of the auth service's shape
	if err := q.CreateQueue(ctx, user, rsmq.DefaultQueueConfig()); err != nil {
		t.Fatal(err)
	}
	body := strings.Repeat("x", 3000) // a few frames fill the buffers, n of them are far more
	for i := range n {
		if _, err := q.SendMessage(ctx, user, fmt.Sprint(i, ":", body), 0); err != nil {
			t.Fatal(err)
		}
	}

	served := make(chan struct{})
	up := websocket.Upgrader{}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		_ = tcpConn(ws.NetConn()).SetWriteBuffer(smallBuffers)
		c := New(ws, e, user, Options{WriteTimeout: 300 * time.Millisecond, CallTimeout: 5 * time.Second}, slog.New(slog.NewTextHandler(io.Discard, nil)))
		c.Serve(nil)
		close(served)
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if corked {
		ln = CorkListener(ln)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })

	// The client's receive buffer is set before connecting, so the window
	// it advertises stays small.
	d := websocket.Dialer{NetDialContext: (&net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, smallBuffers)
		})
		if err != nil {
			return err
		}
		return serr
	}}).DialContext}
	ws, _, err := d.Dial("ws://"+ln.Addr().String()+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ws.Close() }()
	if err := ws.WriteMessage(websocket.TextMessage, []byte(protocol.Subscribe(user))); err != nil {
		t.Fatal(err)
	}
	select {
	case <-served:
	case <-time.After(10 * time.Second):
		t.Fatal("the connection did not end after its write deadline")
	}
	// Stop sends any delete still queued, so a wrong delete shows below.
	e.Stop()

	// What the gateway wrote before the error is still readable here.
	got := 0
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		_, b, err := ws.ReadMessage()
		if err != nil {
			break
		}
		if f, err := protocol.DecodeFrame(b); err == nil {
			if _, ok := f.(*protocol.Message); ok {
				got++
			}
		}
	}
	if got == 0 || got >= n {
		t.Fatalf("client holds %d of %d message frames; the test needs a write error after some frames of the batch", got, n)
	}
	a, err := q.GetQueueAttributes(ctx, user)
	if err != nil {
		t.Fatal(err)
	}
	visible := testenv.VisibleNow(t, rdb, q.Namespace()+":"+user)
	if a.Msgs != n || visible != n {
		t.Fatalf("after the write error: %d messages, %d visible; want all %d, visible (the %d frames written before the error were not confirmed)", a.Msgs, visible, n, got)
	}
}

// countingListener counts the writes of the connections it accepts.
type countingListener struct {
	net.Listener
	writes *atomic.Int64
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return countingConn{c, l.writes}, nil
}

type countingConn struct {
	net.Conn
	writes *atomic.Int64
}

func (c countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// TestCorkedConnectionWritesABatchAndItsPingInOneWrite: 40 queued messages
// reach the client, and their frames and confirm pings left the gateway in
// far fewer writes than frames (without corking: one write per frame and
// one per ping). The messages are deleted once confirmed, as without it.
func TestCorkedConnectionWritesABatchAndItsPingInOneWrite(t *testing.T) {
	r := testenv.StartRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	q := rsmq.New(rdb, rsmq.Options{Realtime: true})
	e := delivery.New(delivery.Config{Workers: 2}, rdb, q, metrics.New(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	e.Start()
	t.Cleanup(e.Stop)
	ctx := context.Background()
	const user, n = "0123456789abcdef01234567", 40
	if err := q.CreateQueue(ctx, user, rsmq.DefaultQueueConfig()); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if _, err := q.SendMessage(ctx, user, fmt.Sprint("m", i), 0); err != nil {
			t.Fatal(err)
		}
	}
	up := websocket.Upgrader{}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		New(ws, e, user, Options{CallTimeout: 5 * time.Second}, slog.New(slog.NewTextHandler(io.Discard, nil))).Serve(nil)
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var writes atomic.Int64
	ln = CorkListener(countingListener{ln, &writes})
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })

	ws, _, err := websocket.DefaultDialer.Dial("ws://"+ln.Addr().String()+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ws.Close() }()
	if err := ws.WriteMessage(websocket.TextMessage, []byte(protocol.Subscribe(user))); err != nil {
		t.Fatal(err)
	}
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	for got := 0; got < n; {
		_, b, err := ws.ReadMessage() // gorilla answers the confirm pings meanwhile
		if err != nil {
			t.Fatalf("after %d of %d messages: %v", got, n, err)
		}
		if f, err := protocol.DecodeFrame(b); err == nil {
			if _, ok := f.(*protocol.Message); ok {
				got++
			}
		}
	}
	// The pongs go out from the reader above; keep reading so the last
	// ones are answered while the deletes are awaited.
	go func() {
		for {
			if _, _, err := ws.ReadMessage(); err != nil {
				return
			}
		}
	}()
	testenv.Eventually(t, 10*time.Second, "deletes of the confirmed messages", func() bool {
		a, err := q.GetQueueAttributes(ctx, user)
		return err == nil && a.Msgs == 0
	})
	w := writes.Load()
	t.Logf("%d message frames (plus hello, subscribed and confirm pings) in %d writes", n, w)
	if w >= n/2 {
		t.Fatalf("%d writes for %d frames: frames are not gathered", w, n)
	}
}
