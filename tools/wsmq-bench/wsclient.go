package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	gwclient "github.com/wsmq/wsmq/services/gateway/client"
	"github.com/wsmq/wsmq/services/gateway/protocol"
)

// session is the bench user's login: POST /v1/authenticate's answer.
type session = gwclient.Session

// message bodies are "<unix ns sent>.<sequence>." followed by padding, so
// receivers compute latency and detect loss and duplicates cheaply.
func appendBody(b []byte, sentNS int64, seq int, pad int) []byte {
	b = strconv.AppendInt(b, sentNS, 10)
	b = append(b, '.')
	b = strconv.AppendInt(b, int64(seq), 10)
	b = append(b, '.')
	for range pad {
		b = append(b, 'x')
	}
	return b
}

func parseBody(body string) (sentNS int64, seq int, ok bool) {
	a := strings.IndexByte(body, '.')
	if a <= 0 {
		return 0, 0, false
	}
	rest := body[a+1:]
	b := strings.IndexByte(rest, '.')
	if b <= 0 {
		return 0, 0, false
	}
	ns, err1 := strconv.ParseInt(body[:a], 10, 64)
	n, err2 := strconv.Atoi(rest[:b])
	if err1 != nil || err2 != nil {
		return 0, 0, false
	}
	return ns, n, true
}

// tracker collects what every client of one run received.
type tracker struct {
	seen     []atomic.Uint32 // bitmap of sequences
	expected int
	unique   atomic.Int64
	dups     atomic.Int64
	foreign  atomic.Int64 // frames that were not bench messages
	latency  bool         // record publish→receive latency
}

func newTracker(expected int, latency bool) *tracker {
	return &tracker{seen: make([]atomic.Uint32, (expected+31)/32), expected: expected, latency: latency}
}

// mark records seq and reports whether it was new.
func (t *tracker) mark(seq int) bool {
	if seq < 0 || seq >= t.expected {
		t.foreign.Add(1)
		return false
	}
	bit := uint32(1) << (seq % 32)
	if t.seen[seq/32].Or(bit)&bit != 0 {
		t.dups.Add(1)
		return false
	}
	t.unique.Add(1)
	return true
}

// wsClient is one bench websocket: its reader goroutine records what arrives.
type wsClient struct {
	conn  *websocket.Conn
	queue string
	lat   []time.Duration
	last  int64 // unix ns of the last new message
	err   error
}

// fleet is a set of connected, subscribed clients and their readers.
type fleet struct {
	clients []*wsClient
	wg      sync.WaitGroup
	tr      atomic.Pointer[tracker]
	manual  bool
}

var dialer = websocket.Dialer{
	HandshakeTimeout: 30 * time.Second,
	ReadBufferSize:   2048,
	WriteBufferSize:  512,
}

// connect opens n websockets as sess, each subscribed to its own queue
// <userId>-<prefix><i>, parallel dials at a time, and starts their readers,
// which report to tr (nil: ignore messages until a tracker is set).
func connect(ctx context.Context, gatewayURL string, sess session, n, parallel int, prefix string, manual bool, tr *tracker) (*fleet, error) {
	u, err := url.Parse(gatewayURL)
	if err != nil {
		return nil, err
	}
	u.Scheme = strings.Replace(u.Scheme, "http", "ws", 1)
	u.Path = protocol.WebsocketPath
	// Credentials in headers: gateways outside dev mode refuse them in the URL.
	hdr := http.Header{protocol.HeaderToken: {sess.Token}, protocol.HeaderAccessToken: {sess.AccessToken}}
	q := url.Values{}
	if manual {
		q.Set(protocol.QueryAck, string(protocol.AckManual))
	}
	u.RawQuery = q.Encode()
	wsURL := u.String()

	f := &fleet{clients: make([]*wsClient, n), manual: manual}
	f.tr.Store(tr)
	var next atomic.Int64
	var firstErr error
	var mu sync.Mutex
	var dialWG sync.WaitGroup
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for range min(parallel, n) {
		dialWG.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				c, err := dialOne(ctx, wsURL, hdr, sess.UserID+"-"+prefix+strconv.Itoa(i))
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("client %d: %w", i, err)
					}
					mu.Unlock()
					cancel()
					return
				}
				f.clients[i] = c
				f.wg.Go(func() { f.read(c) })
			}
		})
	}
	dialWG.Wait()
	if firstErr != nil {
		f.close()
		return nil, firstErr
	}
	return f, nil
}

func dialOne(ctx context.Context, wsURL string, hdr http.Header, queue string) (*wsClient, error) {
	conn, resp, err := dialer.DialContext(ctx, wsURL, hdr)
	if err != nil {
		if resp != nil {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			return nil, fmt.Errorf("dial: %w: HTTP %d %s", err, resp.StatusCode, strings.TrimSpace(string(b)))
		}
		return nil, fmt.Errorf("dial: %w", err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	if err := conn.WriteMessage(websocket.TextMessage, []byte(protocol.Subscribe(queue))); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("subscribe: %w", err)
	}
	for {
		_, b, err := conn.ReadMessage()
		if err != nil {
			_ = conn.Close()
			return nil, fmt.Errorf("wait for subscribed: %w", err)
		}
		f, err := protocol.DecodeFrame(b)
		if err != nil {
			_ = conn.Close()
			return nil, fmt.Errorf("wait for subscribed: %w", err)
		}
		switch f := f.(type) {
		case *protocol.Subscribed:
			_ = conn.SetReadDeadline(time.Time{})
			return &wsClient{conn: conn, queue: queue}, nil
		case *protocol.ErrorEvent:
			_ = conn.Close()
			return nil, fmt.Errorf("subscribe %s: %w", queue, f)
		}
	}
}

// read runs until the connection closes, handing message frames to the
// fleet's current tracker. It reads with gorilla/websocket directly (one
// reused buffer, no channel hop) rather than through the gateway client,
// but decodes with the protocol package, whose message fast path skips
// encoding/json.
func (f *fleet) read(c *wsClient) {
	var buf bytes.Buffer
	ack := make([]byte, 0, 48)
	for {
		_, r, err := c.conn.NextReader()
		if err != nil {
			if !errors.Is(err, websocket.ErrCloseSent) && !websocket.IsCloseError(err, websocket.CloseNormalClosure) {
				c.err = err
			}
			return
		}
		buf.Reset()
		if _, err := buf.ReadFrom(r); err != nil {
			c.err = err
			return
		}
		now := time.Now().UnixNano()
		tr := f.tr.Load()
		fr, err := protocol.DecodeFrame(buf.Bytes())
		if err != nil {
			c.err = err
			return
		}
		m, ok := fr.(*protocol.Message)
		if !ok || tr == nil {
			continue // events
		}
		sent, seq, ok := parseBody(m.Message)
		if !ok {
			tr.foreign.Add(1)
			continue
		}
		if tr.mark(seq) {
			c.last = now
			if tr.latency {
				c.lat = append(c.lat, time.Duration(now-sent))
			}
		}
		if f.manual {
			ack = protocol.AppendAck(ack[:0], m.ID)
			if err := c.conn.WriteMessage(websocket.TextMessage, ack); err != nil {
				c.err = err
				return
			}
		}
	}
}

// close closes every connection and waits for the readers.
func (f *fleet) close() {
	for _, c := range f.clients {
		if c != nil {
			_ = c.conn.Close()
		}
	}
	f.wg.Wait()
}

// collect returns the latencies and the last receive time of every client;
// call it after the readers stopped or the run is quiet (closing first is safest).
func (f *fleet) collect() (lat []time.Duration, last time.Time) {
	var lastNS int64
	for _, c := range f.clients {
		if c == nil {
			continue
		}
		lat = append(lat, c.lat...)
		lastNS = max(lastNS, c.last)
	}
	if lastNS == 0 {
		return lat, time.Time{}
	}
	return lat, time.Unix(0, lastNS)
}

// readErrors counts clients whose reader stopped on an error other than our close.
func (f *fleet) readErrors() (n int, first error) {
	for _, c := range f.clients {
		if c != nil && c.err != nil && !strings.Contains(c.err.Error(), "use of closed network connection") {
			if first == nil {
				first = c.err
			}
			n++
		}
	}
	return n, first
}
