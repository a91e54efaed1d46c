package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wsmq/wsmq/pkg/reverify"
	"github.com/wsmq/wsmq/pkg/testenv"
	"github.com/wsmq/wsmq/services/gateway/internal/authclient"
	"github.com/wsmq/wsmq/services/gateway/internal/metrics"
	"github.com/wsmq/wsmq/services/gateway/protocol"
)

// fakeAuth is our own auth client's stand-in: credentials are
// "jwt:<user>:<session>" and "at:<user>:<session>", revoked sessions are
// refused, and VerifyBatch counts its calls, their sizes, the calls in
// flight and the verifications of each credential.
type fakeAuth struct {
	latency time.Duration // of one VerifyBatch call, as an auth round trip

	mu       sync.Mutex
	revoked  map[string]bool // session ids
	shortJWT map[string]bool // sessions whose first JWT expires within two intervals
	verified map[authclient.Credentials]int
	sizes    []int

	inFlight, maxInFlight atomic.Int32
}

func newFakeAuth(latency time.Duration) *fakeAuth {
	return &fakeAuth{latency: latency, revoked: map[string]bool{}, shortJWT: map[string]bool{},
		verified: map[authclient.Credentials]int{}}
}

var errFakeRefused = fmt.Errorf("fake: %w", authclient.ErrUnauthenticated)

func (f *fakeAuth) identity(cr authclient.Credentials) (authclient.Identity, error) {
	cred := cr.Token
	if cred == "" {
		cred = cr.AccessToken
	}
	kind, rest, _ := strings.Cut(cred, ":")
	user, session, ok := strings.Cut(rest, ":")
	if !ok || (kind != "jwt" && kind != "at") {
		return authclient.Identity{}, errFakeRefused
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.revoked[session] {
		return authclient.Identity{}, errFakeRefused
	}
	now := time.Now()
	id := authclient.Identity{UserID: user, SessionID: session, IssuedAt: now.Truncate(time.Second).UnixMilli(),
		ExpiresAt: now.Add(15 * time.Minute).UnixMilli()}
	switch {
	case kind == "at":
		id.Token = "jwt:" + user + ":" + session // a fresh JWT
	case f.shortJWT[session]:
		id.ExpiresAt = now.Add(time.Minute).UnixMilli()
	}
	return id, nil
}

func (f *fakeAuth) Verify(_ context.Context, token, accessToken string) (authclient.Identity, error) {
	return f.identity(authclient.Credentials{Token: token, AccessToken: accessToken})
}

func (f *fakeAuth) VerifyBatch(ctx context.Context, items []authclient.Credentials) ([]authclient.Result, error) {
	n := f.inFlight.Add(1)
	defer f.inFlight.Add(-1)
	for m := f.maxInFlight.Load(); n > m && !f.maxInFlight.CompareAndSwap(m, n); m = f.maxInFlight.Load() {
	}
	f.mu.Lock()
	f.sizes = append(f.sizes, len(items))
	for _, it := range items {
		f.verified[it]++
	}
	f.mu.Unlock()
	// The call's round trip: long enough that calls overlap when more
	// than reverify.InFlight are started.
	t := time.NewTimer(f.latency)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	out := make([]authclient.Result, len(items))
	for i, it := range items {
		out[i].Identity, out[i].Err = f.identity(it)
	}
	return out, nil
}

func (f *fakeAuth) Authenticate(context.Context, string, string, string) (authclient.Session, error) {
	return authclient.Session{}, errors.New("fake: no logins")
}

func (f *fakeAuth) Ready(context.Context) error { return nil }

// pass returns the calls' sizes, the verifications and the most calls in
// flight since the last pass, and resets them.
func (f *fakeAuth) pass() (sizes []int, verified map[authclient.Credentials]int, maxInFlight int32) {
	f.mu.Lock()
	defer f.mu.Unlock()
	sizes, verified = f.sizes, f.verified
	f.sizes, f.verified = nil, map[authclient.Credentials]int{}
	return sizes, verified, f.maxInFlight.Swap(0)
}

// pipeListener is an in-memory net.Listener: 10,000 loopback sockets
// would be 20,000 descriptors in this one process, the machine's whole
// open-files limit, so the websockets run over net.Pipe (the real HTTP
// upgrade and websocket framing, without the kernel).
type pipeListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newPipeListener() *pipeListener {
	return &pipeListener{conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return pipeAddr{} }

func (l *pipeListener) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	client, server := net.Pipe()
	select {
	case l.conns <- server:
		return client, nil
	case <-l.done:
		return nil, net.ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }

// testClient is one websocket client: it reads every frame until the
// socket closes, then reports the close code.
type testClient struct {
	session string
	tokens  atomic.Int32 // token frames received
	code    int          // close code; valid after done
	done    chan struct{}
}

func TestReverifyOf10000SessionsBatchesVerifiesEachOnceAndClosesTheRevoked(t *testing.T) {
	const (
		sessions = 10_000
		users    = 500
		twins    = 100 // sessions with a second socket on the same credentials
		revokeN  = 100 // sessions refused by auth at the first pass
	)
	interval := time.Minute // the default ReverifyInterval
	auth := newFakeAuth(20 * time.Millisecond)
	s, ln, wg := startPipeGateway(t, Config{ConnRatePerIP: 1e9, MaxConnsPerUser: 1000, ReverifyInterval: interval}, auth)
	// Every tenth session connects with a JWT about to expire and its
	// access token, so the pass verifies the access token and hands out
	// a fresh JWT; the others connect with a JWT alone.
	want := map[authclient.Credentials]bool{}
	var clients []*testClient
	dialer := websocket.Dialer{NetDialContext: ln.dial, ReadBufferSize: 256, WriteBufferSize: 256, HandshakeTimeout: 30 * time.Second}
	connect := func(i int) *testClient {
		user, session := fmt.Sprintf("user%d", i%users), fmt.Sprintf("s%05d", i)
		h := http.Header{}
		h.Set(protocol.HeaderToken, "jwt:"+user+":"+session)
		cr := authclient.Credentials{Token: "jwt:" + user + ":" + session}
		if i%10 == 0 {
			auth.mu.Lock()
			auth.shortJWT[session] = true
			auth.mu.Unlock()
			h.Set(protocol.HeaderAccessToken, "at:"+user+":"+session)
			cr = authclient.Credentials{AccessToken: "at:" + user + ":" + session}
		}
		want[cr] = true
		ws, resp, err := dialer.Dial("ws://gateway"+protocol.WebsocketPath, h)
		if err != nil {
			t.Fatalf("session %d: dial: %v", i, err)
		}
		_ = resp.Body.Close()
		c := &testClient{session: session, done: make(chan struct{})}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(c.done)
			defer func() { _ = ws.Close() }()
			for {
				_, msg, err := ws.ReadMessage()
				var ce *websocket.CloseError
				if errors.As(err, &ce) {
					c.code = ce.Code
					return
				}
				if err != nil {
					return
				}
				if strings.Contains(string(msg), `"token"`) {
					c.tokens.Add(1)
				}
			}
		}()
		return c
	}
	start := time.Now()
	for i := range sessions {
		clients = append(clients, connect(i))
	}
	for i := range twins {
		clients = append(clients, connect(i*97))
	}
	t.Logf("%d sockets of %d sessions connected in %v", len(clients), sessions, time.Since(start))
	// A client's dial returns on the 101, just before the gateway
	// registers the socket.
	testenv.Eventually(t, 30*time.Second, "every socket registered", func() bool { return s.liveConns() == sessions+twins })

	isRevoked := map[string]bool{}
	auth.mu.Lock()
	for i := range revokeN {
		sess := fmt.Sprintf("s%05d", i*97) // covers every twin's session too
		auth.revoked[sess], isRevoked[sess] = true, true
	}
	auth.mu.Unlock()

	checkPass := func(pass int, want map[authclient.Credentials]bool, took time.Duration) {
		t.Helper()
		sizes, verified, maxInFlight := auth.pass()
		t.Logf("pass %d: %d sessions in %d VerifyBatch calls (at most %d in flight) in %v", pass, len(want), len(sizes), maxInFlight, took)
		if maxInFlight > reverify.InFlight || maxInFlight < 2 {
			t.Errorf("pass %d: %d VerifyBatch calls in flight at most, want 2..%d", pass, maxInFlight, reverify.InFlight)
		}
		total := 0
		for _, n := range sizes {
			if n > reverify.Batch || n == 0 {
				t.Errorf("pass %d: a VerifyBatch call of %d items, want 1..%d", pass, n, reverify.Batch)
			}
			total += n
		}
		if wantCalls := (len(want) + reverify.Batch - 1) / reverify.Batch; len(sizes) != wantCalls {
			t.Errorf("pass %d: %d VerifyBatch calls, want %d", pass, len(sizes), wantCalls)
		}
		if total != len(want) || len(verified) != len(want) {
			t.Errorf("pass %d: %d items over %d distinct credentials, want each of %d once", pass, total, len(verified), len(want))
		}
		for cr := range want {
			if verified[cr] != 1 {
				t.Errorf("pass %d: %+v verified %d times, want once", pass, cr, verified[cr])
			}
		}
		if took > interval {
			t.Errorf("pass %d took %v, longer than the %v interval", pass, took, interval)
		}
	}

	start = time.Now()
	s.sessions.Reverify()
	checkPass(1, want, time.Since(start))

	// The revoked sessions' sockets (twins included) close with 4001; the
	// others stay and those verified by access token got a fresh JWT.
	closed := 0
	for _, c := range clients {
		if !isRevoked[c.session] {
			continue
		}
		closed++
		select {
		case <-c.done:
		case <-time.After(30 * time.Second):
			t.Fatalf("session %s: revoked socket still open", c.session)
		}
		if c.code != protocol.CloseUnauthorized {
			t.Errorf("session %s: closed with %d, want %d", c.session, c.code, protocol.CloseUnauthorized)
		}
	}
	if closed != revokeN+twins {
		t.Fatalf("%d revoked sockets, want %d", closed, revokeN+twins)
	}
	testenv.Eventually(t, 30*time.Second, "closed sockets leave the gateway", func() bool {
		return s.liveConns() == sessions-revokeN
	})
	for i, c := range clients[:sessions] {
		if isRevoked[c.session] {
			continue
		}
		select {
		case <-c.done:
			t.Fatalf("session %s: valid socket closed with %d", c.session, c.code)
		default:
		}
		if got, wantTok := c.tokens.Load() > 0, i%10 == 0; got != wantTok {
			t.Errorf("session %s: fresh JWT frame received = %v, want %v", c.session, got, wantTok)
		}
	}

	// The second pass verifies the survivors once each, with the JWTs the
	// first pass handed out instead of the access tokens.
	want2 := map[authclient.Credentials]bool{}
	for cr := range want {
		cred := cr.Token + cr.AccessToken
		if isRevoked[cred[strings.LastIndex(cred, ":")+1:]] {
			continue
		}
		if cr.AccessToken != "" {
			cr = authclient.Credentials{Token: "jwt" + strings.TrimPrefix(cr.AccessToken, "at")}
		}
		want2[cr] = true
	}
	start = time.Now()
	s.sessions.Reverify()
	checkPass(2, want2, time.Since(start))
	if n := s.liveConns(); n != sessions-revokeN {
		t.Errorf("%d live sockets after the second pass, want %d", n, sessions-revokeN)
	}
}

// startPipeGateway serves a gateway over an in-memory listener until the
// test ends; its WaitGroup is for the test's client goroutines, which the
// gateway's shutdown ends.
func startPipeGateway(t *testing.T, cfg Config, auth Auth) (*Server, *pipeListener, *sync.WaitGroup) {
	t.Helper()
	s := New(cfg, nil, auth, metrics.New(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	ln := newPipeListener()
	hs := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	wg := &sync.WaitGroup{}
	t.Cleanup(func() {
		defer wg.Wait() // the gateway's shutdown closes every socket
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = hs.Shutdown(ctx)
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("gateway shutdown: %v", err)
		}
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
	})
	return s, ln, wg
}

// liveConns is the sockets the gateway serves.
func (s *Server) liveConns() int { return s.sessions.Len() }
