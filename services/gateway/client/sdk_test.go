package client_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	authv1 "github.com/wsmq/wsmq/gen/wsmq/auth/v1"
	"github.com/wsmq/wsmq/pkg/rsmq"
	"github.com/wsmq/wsmq/pkg/testenv"
	"github.com/wsmq/wsmq/services/gateway/client"
	"github.com/wsmq/wsmq/services/gateway/internal/gatewaytest"
	"github.com/wsmq/wsmq/services/gateway/protocol"
)

// run starts c.Run on a goroutine owned by the test; the returned channel
// yields Run's result. Cleanup cancels it and waits.
func run(t *testing.T, c *client.Client) <-chan error {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	res := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		res <- c.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return res
}

// recorder is a handler counting calls per body, in order.
type recorder struct {
	mu     sync.Mutex
	bodies []string
	calls  map[string]int
}

func newRecorder() *recorder { return &recorder{calls: make(map[string]int)} }

func (r *recorder) handle(_ context.Context, m *protocol.Message) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.bodies = append(r.bodies, m.Message)
	r.calls[m.Message]++
	return nil
}

func (r *recorder) distinct() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.calls)
}

func (r *recorder) snapshot() ([]string, map[string]int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	calls := make(map[string]int, len(r.calls))
	for k, v := range r.calls {
		calls[k] = v
	}
	return append([]string(nil), r.bodies...), calls
}

// sessionCredentials is a provider of a fixed session at one gateway.
func sessionCredentials(url string, sess client.Session) client.CredentialsFunc {
	return func(context.Context) (client.Credentials, error) {
		return client.Credentials{URL: url, Token: sess.Token, AccessToken: sess.AccessToken}, nil
	}
}

func TestHelloComesFirstAndPingIsAnsweredWithPong(t *testing.T) {
	s := gatewaytest.Start(t)
	gw := s.StartGateway("WSMQ_VISIBILITY_TIMEOUT=7", "WSMQ_PING_INTERVAL=3s")
	sess := login(t, s, gw, "hana")
	c := dial(t, gw, client.Options{Token: sess.Token, AckMode: protocol.AckManual})
	h, err := c.Hello(ctxFor(t))
	if err != nil {
		t.Fatal(err)
	}
	if h.AckMode != protocol.AckManual || h.VisibilityTimeout != 7000 || h.PingInterval != 3000 || h.Prefetch <= 0 {
		t.Fatalf("hello %+v, want manual, vt 7000ms, ping 3000ms, a prefetch", h)
	}
	if err := c.Ping(ctxFor(t)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	f, err := c.Next(ctx)
	if _, ok := f.(*protocol.Pong); !ok || err != nil {
		t.Fatalf("answer to /ping: %#v %v, want a pong", f, err)
	}
}

func TestClientSeedFlowLogsInSubscribesReceivesAndAcks(t *testing.T) {
	s := gatewaytest.Start(t)
	gw := s.StartGateway()
	sess := login(t, s, gw, "sam")
	got := make(chan *protocol.Message, 1)
	var states sync.Map
	c := client.New(client.Options{Credentials: sessionCredentials(gw.URL(), sess),
		OnState: func(st client.State, _ error) { states.Store(st, true) }})
	if err := c.Subscribe(sess.UserID, func(_ context.Context, m *protocol.Message) error {
		got <- m
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	run(t, c)
	testenv.Eventually(t, wait, "connected", func() bool { return c.State() == client.StateConnected })
	// The subscription goes out right after the hello; a message sent
	// before it is delivered too (the queue holds it).
	id := s.Send(sess.UserID, "seed")
	select {
	case m := <-got:
		if m.ID != id || m.Message != "seed" || m.Queue != sess.UserID {
			t.Fatalf("message %+v, want %s", m, id)
		}
	case <-time.After(wait):
		t.Fatal("no message reached the handler")
	}
	// Manual mode by default: the handler's nil return acked it.
	testenv.Eventually(t, wait, "acked message deleted", func() bool {
		a := s.Attrs(sess.UserID)
		return a.Msgs == 0
	})
	if _, ok := states.Load(client.StateConnecting); !ok {
		t.Fatal("no connecting state reported")
	}
	if st := c.Stats(); st.Handled != 1 || st.Connects != 1 || st.Duplicates != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestClientHandsAThousandMessagesInOrderExactlyOnceInBothAckModes(t *testing.T) {
	s := gatewaytest.Start(t)
	gw := s.StartGateway()
	for _, mode := range []protocol.AckMode{protocol.AckAuto, protocol.AckManual} {
		t.Run(string(mode), func(t *testing.T) {
			sess := login(t, s, gw, "k"+string(mode))
			const n = 1000
			for i := range n {
				s.Send(sess.UserID, strconv.Itoa(i))
			}
			rec := newRecorder()
			c := client.New(client.Options{Credentials: sessionCredentials(gw.URL(), sess), AckMode: mode})
			if err := c.Subscribe(sess.UserID, rec.handle); err != nil {
				t.Fatal(err)
			}
			run(t, c)
			testenv.Eventually(t, 2*wait, "every message handled", func() bool { return rec.distinct() == n })
			testenv.Eventually(t, wait, "queue empty", func() bool { return s.Attrs(sess.UserID).Msgs == 0 })
			bodies, _ := rec.snapshot()
			if len(bodies) != n {
				t.Fatalf("%d handler calls for %d messages", len(bodies), n)
			}
			for i, b := range bodies {
				if b != strconv.Itoa(i) {
					t.Fatalf("call %d got message %s: out of order", i, b)
				}
			}
		})
	}
}

func TestClientSurvivesSIGKILLOfItsGatewayAndHandlesEveryMessageOnce(t *testing.T) {
	s := gatewaytest.Start(t, "WSMQ_VISIBILITY_TIMEOUT=2")
	gw1, gw2 := s.StartGateway(), s.StartGateway()
	sess := login(t, s, gw1, "kim")
	var dials [2]atomic.Int32
	provider := func(context.Context) (client.Credentials, error) {
		url := gw1.URL()
		select {
		case <-gw1.P.Done():
			url = gw2.URL()
			dials[1].Add(1)
		default:
			dials[0].Add(1)
		}
		return client.Credentials{URL: url, Token: sess.Token, AccessToken: sess.AccessToken}, nil
	}
	rec := newRecorder()
	c := client.New(client.Options{Credentials: provider, MinBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
	if err := c.Subscribe(sess.UserID, rec.handle); err != nil {
		t.Fatal(err)
	}
	run(t, c)
	const n = 400
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		for i := range n {
			s.Send(sess.UserID, strconv.Itoa(i))
			if i%20 == 0 {
				time.Sleep(5 * time.Millisecond) // a stream, not one burst (pacing, not synchronisation)
			}
		}
	}()
	testenv.Eventually(t, wait, "a third handled", func() bool { return rec.distinct() >= n/3 })
	gw1.P.Kill()
	<-sent
	testenv.Eventually(t, 3*wait, "every message handled", func() bool { return rec.distinct() == n })
	testenv.Eventually(t, wait, "queue empty", func() bool { return s.Attrs(sess.UserID).Msgs == 0 })
	_, calls := rec.snapshot()
	for body, k := range calls {
		if k != 1 {
			t.Fatalf("message %s handled %d times", body, k)
		}
	}
	st := c.Stats()
	if dials[1].Load() == 0 || st.Connects < 2 {
		t.Fatalf("no reconnect to the second gateway (dials %d/%d, stats %+v)", dials[0].Load(), dials[1].Load(), st)
	}
	t.Logf("after SIGKILL: %d connects, %d duplicates deduped, %d acks dropped", st.Connects, st.Duplicates, st.DroppedAcks)
}

func TestAckOfAMessageOfALostConnectionIsNeverSentOnTheNewOneAndItsRedeliveryIsDeduped(t *testing.T) {
	s := gatewaytest.Start(t)
	gw := s.StartGateway()
	px := testenv.StartProxy(t, gw.Addr)
	sess := login(t, s, gw, "ada")
	entered := make(chan struct{}, 4)
	var calls atomic.Int32
	c := client.New(client.Options{Credentials: sessionCredentials(px.URL(), sess), MinBackoff: 20 * time.Millisecond})
	if err := c.Subscribe(sess.UserID, func(ctx context.Context, _ *protocol.Message) error {
		calls.Add(1)
		entered <- struct{}{}
		<-ctx.Done() // the connection that delivered it is gone...
		return nil   // ...and the handler still succeeds: its ack must not go out
	}); err != nil {
		t.Fatal(err)
	}
	run(t, c)
	s.Send(sess.UserID, "held")
	select {
	case <-entered:
	case <-time.After(wait):
		t.Fatal("handler not called")
	}
	px.Cut()
	// The gateway put the unacked message back at once; the new connection
	// gets it again (rc 2), the client drops it as a duplicate and acks it
	// there, where it was delivered.
	testenv.Eventually(t, wait, "redelivery deduped", func() bool { return c.Stats().Duplicates == 1 })
	testenv.Eventually(t, wait, "queue empty", func() bool { return s.Attrs(sess.UserID).Msgs == 0 })
	st := c.Stats()
	if calls.Load() != 1 || st.DroppedAcks != 1 || st.UnknownAcks != 0 || st.Connects != 2 {
		t.Fatalf("handler calls %d, stats %+v: want 1 call, 1 dropped ack, no unknown ack, 2 connects", calls.Load(), st)
	}
}

func TestRevocationClosesWith4001AndTheClientStopsForGood(t *testing.T) {
	s := gatewaytest.Start(t, "WSMQ_REVERIFY_INTERVAL=200ms")
	gw := s.StartGateway()
	sess := login(t, s, gw, "rev")
	var attempts atomic.Int32
	c := client.New(client.Options{Credentials: func(ctx context.Context) (client.Credentials, error) {
		attempts.Add(1)
		return sessionCredentials(gw.URL(), sess)(ctx)
	}, MinBackoff: 10 * time.Millisecond})
	if err := c.Subscribe(sess.UserID, newRecorder().handle); err != nil {
		t.Fatal(err)
	}
	res := run(t, c)
	testenv.Eventually(t, wait, "connected", func() bool { return c.State() == client.StateConnected })
	if _, err := s.Auth.Revoke(context.Background(), &authv1.RevokeRequest{AccessToken: sess.AccessToken}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-res:
		var ce *client.CloseError
		if !errors.Is(err, client.ErrUnauthorized) || !errors.As(err, &ce) || ce.Code != protocol.CloseUnauthorized {
			t.Fatalf("Run returned %v, want a 4001 close matching ErrUnauthorized", err)
		}
	case <-time.After(wait):
		t.Fatal("Run did not stop after the revocation")
	}
	if n := attempts.Load(); n != 1 {
		t.Fatalf("%d connect attempts, want 1 (no retry with revoked credentials)", n)
	}
	if c.State() != client.StateClosed {
		t.Fatalf("state %v, want closed", c.State())
	}
}

// TestClientSessionOutlivesItsJWTAndStopsForGoodOnRevocation is acceptance
// item 5 for the Go SDK: with a 2 s JWT the connection lives on across its
// expiry (the gateway re-verifies with the access token and hands over a
// fresh JWT), a reconnect uses the fresh one, and a revocation then stops
// the client for good with 4001.
func TestClientSessionOutlivesItsJWTAndStopsForGoodOnRevocation(t *testing.T) {
	s := gatewaytest.StartAuthEnv(t, []string{"WSMQ_JWT_TTL=2s"}, "WSMQ_REVERIFY_INTERVAL=200ms")
	gw := s.StartGateway()
	px := testenv.StartProxy(t, gw.Addr)
	sess := login(t, s, gw, "long")
	var mu sync.Mutex
	var fresh []string
	c := client.New(client.Options{URL: px.URL(), Token: sess.Token, AccessToken: sess.AccessToken,
		OnToken: func(token string, _ int64) {
			mu.Lock()
			fresh = append(fresh, token)
			mu.Unlock()
		},
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
	rec := newRecorder()
	if err := c.Subscribe(sess.UserID, rec.handle); err != nil {
		t.Fatal(err)
	}
	res := run(t, c)
	testenv.Eventually(t, wait, "connected", func() bool { return c.State() == client.StateConnected })
	testenv.Eventually(t, wait, "a fresh JWT after the first expired", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(fresh) > 0 && fresh[len(fresh)-1] != sess.Token
	})
	s.Send(sess.UserID, "after expiry")
	testenv.Eventually(t, wait, "the message after the expiry", func() bool { return rec.distinct() == 1 })
	if n := c.Stats().Connects; n != 1 {
		t.Fatalf("%d connects: the connection did not outlive its JWT", n)
	}

	px.Cut() // a reconnect, with the refreshed JWT
	testenv.Eventually(t, wait, "reconnected", func() bool { return c.Stats().Connects == 2 && c.State() == client.StateConnected })
	s.Send(sess.UserID, "after the reconnect")
	testenv.Eventually(t, wait, "the message after the reconnect", func() bool { return rec.distinct() == 2 })

	if _, err := s.Auth.Revoke(context.Background(), &authv1.RevokeRequest{AccessToken: sess.AccessToken}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-res:
		var ce *client.CloseError
		if !errors.Is(err, client.ErrUnauthorized) || !errors.As(err, &ce) || ce.Code != protocol.CloseUnauthorized {
			t.Fatalf("Run returned %v, want a 4001 close matching ErrUnauthorized", err)
		}
	case <-time.After(wait):
		t.Fatal("Run did not stop after the revocation")
	}
	if c.State() != client.StateClosed || c.Stats().Connects != 2 {
		t.Fatalf("state %v after %d connects, want closed after 2 (no retry with revoked credentials)", c.State(), c.Stats().Connects)
	}
}

func TestProviderUnauthorizedErrorStopsTheClient(t *testing.T) {
	var attempts atomic.Int32
	c := client.New(client.Options{Credentials: func(context.Context) (client.Credentials, error) {
		if attempts.Add(1) < 3 {
			return client.Credentials{}, errors.New("token service down") // retried
		}
		return client.Credentials{}, client.ErrUnauthorized
	}, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond})
	select {
	case err := <-run(t, c):
		if !errors.Is(err, client.ErrUnauthorized) || attempts.Load() != 3 {
			t.Fatalf("Run: %v after %d attempts, want ErrUnauthorized after 3", err, attempts.Load())
		}
	case <-time.After(wait):
		t.Fatal("Run did not stop")
	}
}

func TestCommandFloodClosesWith4029WhichMeansRetryLater(t *testing.T) {
	s := gatewaytest.Start(t)
	gw := s.StartGateway("WSMQ_COMMAND_RATE=5")
	sess := login(t, s, gw, "flo")
	c := dial(t, gw, client.Options{Token: sess.Token})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for ctx.Err() == nil {
			if c.WriteCommand(ctx, protocol.Ping) != nil {
				return
			}
		}
	}()
	var err error
	for err == nil {
		_, err = c.Next(ctxFor(t))
		var ee *client.EventError
		if errors.As(err, &ee) {
			err = nil // the rate errors before the close
		}
	}
	var ce *client.CloseError
	if !errors.As(err, &ce) || ce.Code != protocol.CloseRateLimited || ce.Action() != protocol.ActionRetryLater {
		t.Fatalf("flood ended with %v, want close 4029 → retry later", err)
	}
}

func TestGracefulShutdownSpreadsIts1001ClosesAndTheClientMovesToTheOtherGateway(t *testing.T) {
	s := gatewaytest.Start(t)
	gw1 := s.StartGateway("WSMQ_SHUTDOWN_SPREAD=1s")
	gw2 := s.StartGateway()
	sess := login(t, s, gw1, "gus")
	const conns = 10
	closed := make(chan time.Time, conns)
	for range conns {
		c := dial(t, gw1, client.Options{Token: sess.Token})
		go func() {
			<-c.Done()
			closed <- time.Now()
		}()
	}
	rec := newRecorder()
	var (
		causeMu sync.Mutex
		causes  []error
	)
	c := client.New(client.Options{Credentials: func(ctx context.Context) (client.Credentials, error) {
		url := gw1.URL()
		select {
		case <-gw1.P.Done():
			url = gw2.URL()
		default:
		}
		return client.Credentials{URL: url, Token: sess.Token}, nil
	}, RestartSpread: 200 * time.Millisecond, OnState: func(st client.State, err error) {
		if st == client.StateDisconnected {
			causeMu.Lock()
			causes = append(causes, err)
			causeMu.Unlock()
		}
	}})
	if err := c.Subscribe(sess.UserID, rec.handle); err != nil {
		t.Fatal(err)
	}
	run(t, c)
	testenv.Eventually(t, wait, "connected", func() bool { return c.State() == client.StateConnected })
	t0 := time.Now()
	if err := gw1.P.Terminate(wait); err != nil {
		t.Fatal(err)
	}
	t.Logf("gateway exited %v after SIGTERM", time.Since(t0))
	first, last := time.Time{}, time.Time{}
	for i := range conns {
		at := <-closed
		if i == 0 {
			first = at
		}
		last = at
	}
	if spread := last.Sub(first); spread < 400*time.Millisecond {
		t.Fatalf("%d closes within %v, want them spread over about 1s", conns, spread)
	}
	t.Logf("closes spread over %v", last.Sub(first))
	s.Send(sess.UserID, "after")
	testenv.Eventually(t, wait, "message via the second gateway", func() bool { return rec.distinct() == 1 })
	t.Logf("message handled %v after SIGTERM", time.Since(t0))
	causeMu.Lock()
	defer causeMu.Unlock()
	var ce *client.CloseError
	if len(causes) == 0 || !errors.As(causes[0], &ce) || ce.Code != protocol.CloseGoingAway {
		t.Fatalf("disconnect causes %v, want a close 1001 first", causes)
	}
}

func TestWatchdogGivesABlackHoledConnectionUpWithinItsBoundAndTheClientResumes(t *testing.T) {
	s := gatewaytest.Start(t)
	gw := s.StartGateway("WSMQ_PING_INTERVAL=1s") // the hello's ping interval: the watchdog bound is 3 s
	px := testenv.StartProxy(t, gw.Addr)
	sess := login(t, s, gw, "hole")
	rec := newRecorder()
	down := make(chan error, 8)
	c := client.New(client.Options{Credentials: sessionCredentials(px.URL(), sess), MinBackoff: 100 * time.Millisecond, MaxBackoff: time.Second,
		OnState: func(st client.State, err error) {
			if st == client.StateDisconnected {
				down <- err
			}
		}})
	if err := c.Subscribe(sess.UserID, rec.handle); err != nil {
		t.Fatal(err)
	}
	run(t, c)
	s.Send(sess.UserID, "before")
	testenv.Eventually(t, wait, "first message", func() bool { return rec.distinct() == 1 })

	px.SetForward(false)
	t0 := time.Now()
	var err error
	select {
	case err = <-down:
	case <-time.After(wait):
		t.Fatal("the black-holed connection was not given up")
	}
	took := time.Since(t0)
	t.Logf("watchdog gave the connection up %v after the black hole (bound 3s): %v", took.Round(time.Millisecond), err)
	if err == nil || !strings.Contains(err.Error(), "watchdog") {
		t.Fatalf("disconnected by %v, want the watchdog", err)
	}
	// The last frame came at most one ping interval before the black hole.
	if took < 2*time.Second-100*time.Millisecond || took > 3*time.Second+time.Second {
		t.Fatalf("given up after %v, want within the watchdog bound (2-3 s after the last frame)", took)
	}
	s.Send(sess.UserID, "during")
	px.SetForward(true)
	s.Send(sess.UserID, "after")
	testenv.Eventually(t, 2*wait, "every message", func() bool { return rec.distinct() == 3 })
	if st := c.Stats(); st.Connects < 2 {
		t.Fatalf("stats %+v: want a second connection", st)
	}
}

// TestFiveHundredClientsSpreadTheirReconnectsAfterAGatewayRestart restarts
// (SIGTERM, then a new process on the same address) the gateway of 500
// clients: their reconnect attempts spread over the restart window
// (histograms logged), and none loses a message sent before, during or
// after the restart.
func TestFiveHundredClientsSpreadTheirReconnectsAfterAGatewayRestart(t *testing.T) {
	const n = 500
	s := gatewaytest.Start(t)
	gw := s.StartGateway("WSMQ_CONN_RATE=1000000", "WSMQ_MAX_CONNS_PER_USER=1000", "WSMQ_MAX_QUEUES_PER_USER=1000")
	sess := login(t, s, gw, "herd") // one user, a secondary queue per client
	type probe struct {
		queue    string
		rec      *recorder
		mu       sync.Mutex
		closedAt time.Time // the 1001
		firstTry time.Time // the first attempt after it
		attempts int
		c        *client.Client
	}
	probes := make([]*probe, n)
	firstClose := make(chan struct{})
	var closeOnce sync.Once
	for i := range probes {
		p := &probe{queue: fmt.Sprintf("%s-c%d", sess.UserID, i), rec: newRecorder()}
		p.c = client.New(client.Options{URL: gw.URL(), Token: sess.Token, AccessToken: sess.AccessToken, OnState: func(st client.State, err error) {
			p.mu.Lock()
			defer p.mu.Unlock()
			var ce *client.CloseError
			switch {
			case st == client.StateDisconnected && p.closedAt.IsZero() && errors.As(err, &ce) && ce.Code == protocol.CloseGoingAway:
				p.closedAt = time.Now()
				closeOnce.Do(func() { close(firstClose) })
			case st == client.StateConnecting && !p.closedAt.IsZero():
				p.attempts++
				if p.firstTry.IsZero() {
					p.firstTry = time.Now()
				}
			}
		}})
		if err := p.c.Subscribe(p.queue, p.rec.handle); err != nil {
			t.Fatal(err)
		}
		s.Send(p.queue, "before")
		probes[i] = p
	}
	for _, p := range probes {
		run(t, p.c)
	}
	handledAll := func(body string) func() bool {
		return func() bool {
			for _, p := range probes {
				if _, calls := p.rec.snapshot(); calls[body] == 0 {
					return false
				}
			}
			return true
		}
	}
	testenv.Eventually(t, 4*wait, "every client handled its first message", handledAll("before"))

	// Sent while the gateway goes down and comes back (from the first 1001
	// on): queued, not lost.
	during := make(chan error, 1)
	go func() {
		<-firstClose
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		for _, p := range probes {
			if _, err := s.Queues.SendMessage(ctx, p.queue, "during", rsmq.QueueDefault); err != nil {
				during <- err
				return
			}
		}
		during <- nil
	}()
	t0 := time.Now()
	s.RestartGateway(gw)
	if err := <-during; err != nil {
		t.Fatal(err)
	}
	for _, p := range probes {
		s.Send(p.queue, "after")
	}
	testenv.Eventually(t, 4*wait, "every message handled", func() bool { return handledAll("during")() && handledAll("after")() })
	var closes, delays, tries []time.Duration
	attempts := 0
	for _, p := range probes {
		_, calls := p.rec.snapshot()
		for body, k := range calls {
			if k != 1 {
				t.Fatalf("%s: %s handled %d times", p.queue, body, k)
			}
		}
		p.mu.Lock()
		closes = append(closes, p.closedAt.Sub(t0))
		delays = append(delays, p.firstTry.Sub(p.closedAt))
		tries = append(tries, p.firstTry.Sub(t0))
		attempts += p.attempts
		p.mu.Unlock()
	}
	t.Log(histogram("1001 closes after SIGTERM", closes))
	t.Log(histogram("first reconnect attempt after the client's 1001", delays))
	t.Log(histogram("first reconnect attempts after SIGTERM", tries))
	t.Logf("%d attempts for %d reconnects (attempts that met the gateway down retried with backoff)", attempts, n)
	lo, hi, top := delays[0], delays[0], 0
	counts := map[int]int{}
	for _, d := range delays {
		lo, hi = min(lo, d), max(hi, d)
		counts[int(d/(500*time.Millisecond))]++
		top = max(top, counts[int(d/(500*time.Millisecond))])
		if d <= 0 || d > client.DefaultRestartSpread+time.Second {
			t.Fatalf("a reconnect %v after its 1001: outside the spread window %v", d, client.DefaultRestartSpread)
		}
	}
	if hi-lo < client.DefaultRestartSpread/2 || top > n/4 {
		t.Fatalf("reconnects not spread: delays %v-%v, fullest 500ms bucket %d of %d", lo, hi, top, n)
	}
}

// histogram renders durations in 500 ms buckets.
func histogram(title string, ds []time.Duration) string {
	const bucket = 500 * time.Millisecond
	var counts []int
	for _, d := range ds {
		i := max(0, int(d/bucket))
		for len(counts) <= i {
			counts = append(counts, 0)
		}
		counts[i]++
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s (%d values, 500 ms buckets)\n", title, len(ds))
	for i, c := range counts {
		fmt.Fprintf(&b, "%6d-%-6d ms %4d %s\n", i*500, (i+1)*500, c, strings.Repeat("#", (c+3)/4))
	}
	return b.String()
}
