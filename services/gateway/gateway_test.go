package main

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	authv1 "github.com/wsmq/wsmq/gen/wsmq/auth/v1"
	"github.com/wsmq/wsmq/pkg/rsmq"
	"github.com/wsmq/wsmq/pkg/testenv"
	"github.com/wsmq/wsmq/services/gateway/client"
	"github.com/wsmq/wsmq/services/gateway/protocol"
)

func TestOriginalClientFlowDeliversMessages(t *testing.T) {
	s := newStack(t)
	gw := s.startGateway("WSMQ_ALLOW_QUERY_CREDENTIALS=1") // tokens2's query parameters, outside dev mode
	sess := s.user(gw, "alice")
	for _, tc := range []struct {
		name    string
		headers bool
	}{
		{"headers", true},
		{"query parameters", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialOpts(t, gw, client.Options{Token: sess.Token, AccessToken: sess.AccessToken, UseQuery: !tc.headers})
			c.subscribe(sess.UserID)
			id := s.send(sess.UserID, "hello "+tc.name)
			f := c.messages(1)[0]
			if f.Message != "hello "+tc.name || f.ID != id || f.Queue != sess.UserID || f.RC != 1 {
				t.Fatalf("frame %+v, want message %q id %s rc 1", f, "hello "+tc.name, id)
			}
			if d := time.Since(time.UnixMilli(f.Sent)); d < -time.Second || d > time.Minute {
				t.Fatalf("sent %d is not the send time (%s ago)", f.Sent, d)
			}
			// auto ack: the message is gone from the queue once the
			// client's pong confirmed it.
			testenv.Eventually(t, waitLong, "message deleted after delivery", func() bool { return s.attrs(sess.UserID).Msgs == 0 })
		})
	}
}

func TestExpiredJWTWithValidAccessTokenConnectsAndGetsFreshToken(t *testing.T) {
	s := newStack(t)
	gw := s.startGateway()
	sess := s.user(gw, "bob")
	expired := mintJWT(t, sess.UserID, time.Now().Add(-time.Hour))
	c := dialOpts(t, gw, client.Options{Token: expired, AccessToken: sess.AccessToken})
	f, _ := c.next()
	tok, ok := f.(*protocol.Token)
	if !ok || tok.Token == "" || tok.Token == expired || tok.ExpiresAt <= time.Now().UnixMilli() {
		t.Fatalf("first frame %#v, want a fresh token event", f)
	}
	// The fresh token alone is accepted, in the subprotocol as a browser can send it.
	c2 := dialOpts(t, gw, client.Options{Token: tok.Token, UseSubprotocol: true})
	c2.subscribe(sess.UserID)
}

func TestBadCredentialsAreRefusedBeforeUpgrade(t *testing.T) {
	s := newStack(t)
	gw := s.startGateway()
	sess := s.user(gw, "carol")
	expired := mintJWT(t, sess.UserID, time.Now().Add(-time.Hour))
	tampered := sess.Token[:len(sess.Token)-4] + "AAAA"
	for _, tc := range []struct {
		name string
		opts client.Options
	}{
		{"no credentials", client.Options{}},
		{"tampered JWT", client.Options{Token: tampered, UseSubprotocol: true}},
		{"expired JWT alone", client.Options{Token: expired}},
		{"unknown access token", client.Options{AccessToken: "bm90LWEtcmVhbC10b2tlbi1hdC1hbGwtMDEyMzQ1Njc4OTAx", UseSubprotocol: true}},
		{"expired JWT and wrong access token", client.Options{Token: expired, AccessToken: "x" + sess.AccessToken}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tryDial(gw, tc.opts)
			var se *client.StatusError
			if !errors.As(err, &se) || se.StatusCode != http.StatusUnauthorized || se.Message == "" {
				t.Fatalf("dial: %v, want 401 with the gateway's message", err)
			}
		})
	}
}

func TestLoginWithWrongPasswordIs401(t *testing.T) {
	s := newStack(t)
	gw := s.startGateway()
	s.user(gw, "dave")
	ctx, cancel := ctxWait()
	defer cancel()
	sess, err := client.Login(ctx, gw.URL(), "dave", "wrong-password")
	var se *client.StatusError
	if !errors.As(err, &se) || se.StatusCode != http.StatusUnauthorized || sess.Token != "" {
		t.Fatalf("login: %v %+v, want 401 without tokens", err, sess)
	}
}

func TestBadCommandsGetErrorFramesAndConnectionStays(t *testing.T) {
	s := newStack(t)
	gw := s.startGateway()
	sess := s.user(gw, "erin")
	c := dial(t, gw, sess, "")
	for _, tc := range []struct {
		cmd, wantErr, wantQueue string
	}{
		{"/subscribe/someone-else", "forbidden", "someone-else"},
		{"/subscribe/" + sess.UserID + "x", "forbidden", sess.UserID + "x"},
		{"/subscribe/" + sess.UserID + "-", "forbidden", sess.UserID + "-"},
		{"/subscribe/bad queue!", "bad_request", "bad queue!"},
		{"/subscribe/", "bad_request", ""},
		{"hello", "bad_request", ""},
		{"/publish/x", "bad_request", ""},
		{"/subscribe", "bad_request", ""},
		{"/unsubscribe/" + sess.UserID, "bad_request", sess.UserID},
		{"/ack/abc", "bad_request", ""},
	} {
		c.send(tc.cmd)
		ev := c.eventErr()
		if ev.Code != tc.wantErr || ev.Queue != tc.wantQueue || ev.Message == "" {
			t.Errorf("%q: got %+v, want error %q queue %q with a message", tc.cmd, ev, tc.wantErr, tc.wantQueue)
		}
	}
	// Still up: a valid subscription works, and so does a suffixed queue.
	c.subscribe(sess.UserID)
	c.subscribe(sess.UserID + "-news")
	s.send(sess.UserID+"-news", "still here")
	if f := c.messages(1)[0]; f.Message != "still here" || f.Queue != sess.UserID+"-news" {
		t.Fatalf("got %+v", f)
	}
}

func TestAckOfUnknownIDGetsErrorFrame(t *testing.T) {
	s := newStack(t)
	gw := s.startGateway()
	sess := s.user(gw, "frank")
	c := dial(t, gw, sess, protocol.AckManual)
	c.subscribe(sess.UserID)
	id := strings.Repeat("a", 32)
	c.ack(id)
	if ev := c.eventErr(); ev.Code != protocol.CodeUnknownID || ev.ID != id {
		t.Fatalf("got %+v, want unknown_id error", ev)
	}
	s.send(sess.UserID, "after the bad ack")
	if f := c.messages(1)[0]; f.Message != "after the bad ack" {
		t.Fatalf("got %+v", f)
	}
}

func TestOversizeFrameClosesWith1009(t *testing.T) {
	s := newStack(t)
	gw := s.startGateway("WSMQ_READ_LIMIT=1024")
	sess := s.user(gw, "gina")
	c := dial(t, gw, sess, "")
	// The gateway may reset the connection before the client finishes
	// writing; what counts is the close code it sent.
	_ = c.c.WriteCommand(context.Background(), protocol.Subscribe(strings.Repeat("x", 64*1024)))
	if code := closeCode(c.closeErr()); code != websocket.CloseMessageTooBig {
		t.Fatalf("close code %d, want 1009", code)
	}
}

func TestOfflineMessagesArriveInOrderThroughAnotherGateway(t *testing.T) {
	s := newStack(t)
	a := s.startGateway()
	sess := s.user(a, "hank")
	// Subscribe once on A and leave: the queue exists and is kept.
	c := dial(t, a, sess, "")
	c.subscribe(sess.UserID)
	_ = c.c.Close()

	var ids []string
	for i := range 100 {
		ids = append(ids, s.send(sess.UserID, "offline "+itoa(i)))
	}
	b := s.startGateway()
	c2 := dial(t, b, sess, "")
	c2.subscribe(sess.UserID)
	got := c2.messages(100)
	for i, f := range got {
		if f.ID != ids[i] || f.Message != "offline "+itoa(i) {
			t.Fatalf("message %d: got %q (%s), want %q (%s)", i, f.Message, f.ID, "offline "+itoa(i), ids[i])
		}
	}
}

func TestManualAckRedeliversUnackedAndDeadLetters(t *testing.T) {
	s := newStack(t)
	gw := s.startGateway("WSMQ_VISIBILITY_TIMEOUT=1", "WSMQ_MAX_RECEIVE_COUNT=3")
	sess := s.user(gw, "ivy")
	c := dial(t, gw, sess, protocol.AckManual)
	c.subscribe(sess.UserID)

	acked := s.send(sess.UserID, "ack me")
	ignored := s.send(sess.UserID, "ignore me")
	first := c.messages(2)
	if first[0].ID != acked || first[1].ID != ignored || first[0].RC != 1 || first[1].RC != 1 {
		t.Fatalf("first delivery %+v", first)
	}
	c.ack(acked)

	// The unacked one comes back after the visibility timeout, rc raised;
	// the acked one never does.
	for rc := int64(2); rc <= 3; rc++ {
		f := c.messages(1)[0]
		if f.ID != ignored || f.RC != rc {
			t.Fatalf("redelivery: got %+v, want %s with rc %d", f, ignored, rc)
		}
	}
	// Past the receive limit it moves to the dead-letter queue instead.
	dlq := sess.UserID + "-dlq"
	testenv.Eventually(t, waitLong, "message in the dead-letter queue", func() bool {
		a, err := s.Queues.GetQueueAttributes(context.Background(), dlq)
		return err == nil && a.Msgs == 1
	})
	if a := s.attrs(sess.UserID); a.Msgs != 0 {
		t.Fatalf("source queue still holds %d messages", a.Msgs)
	}
	m, err := s.Queues.ReceiveMessage(context.Background(), dlq, 0)
	if err != nil || m == nil || m.ID != ignored || m.Message != "ignore me" {
		t.Fatalf("dead letter %+v (%v), want %s", m, err, ignored)
	}
	c.quiet(1500 * time.Millisecond)
}

func TestCrashedGatewayLosesNothing(t *testing.T) {
	s := newStack(t, "WSMQ_VISIBILITY_TIMEOUT=2")
	a := s.startGateway()
	b := s.startGateway()
	sess := s.user(a, "jack")
	c := dial(t, a, sess, protocol.AckManual)
	c.subscribe(sess.UserID)
	const n = 20
	var ids []string
	for i := range n {
		ids = append(ids, s.send(sess.UserID, "m"+itoa(i)))
	}
	got := c.messages(n)
	for i := range n / 2 {
		c.ack(got[i].ID)
	}
	// Wait until the acks are applied: half the messages left Redis.
	testenv.Eventually(t, waitLong, "acks applied", func() bool { return s.attrs(sess.UserID).Msgs == n/2 })
	a.P.Kill() // a crash: nothing is returned to the queue
	if err := c.closeErr(); err == nil {
		t.Fatal("socket survived the crash")
	}

	c2 := dial(t, b, sess, protocol.AckManual)
	c2.subscribe(sess.UserID)
	again := c2.messages(n / 2)
	for i, f := range again {
		if f.ID != ids[n/2+i] || f.RC != 2 {
			t.Fatalf("after crash %d: got %s rc %d, want %s rc 2", i, f.ID, f.RC, ids[n/2+i])
		}
		c2.ack(f.ID)
	}
	testenv.Eventually(t, waitLong, "queue drained", func() bool { return s.attrs(sess.UserID).Msgs == 0 })
	c2.quiet(500 * time.Millisecond)
}

func TestGracefulShutdownReturnsInFlightMessagesAtOnce(t *testing.T) {
	s := newStack(t, "WSMQ_VISIBILITY_TIMEOUT=120")
	a := s.startGateway()
	b := s.startGateway()
	sess := s.user(a, "kate")
	c := dial(t, a, sess, protocol.AckManual)
	c.subscribe(sess.UserID)
	id := s.send(sess.UserID, "in flight")
	if f := c.messages(1)[0]; f.ID != id {
		t.Fatalf("got %+v", f)
	}
	if err := a.P.Terminate(waitLong); err != nil {
		t.Fatalf("gateway exit: %v", err)
	}
	if code := closeCode(c.closeErr()); code != websocket.CloseGoingAway {
		t.Fatalf("close code %d, want 1001", code)
	}
	start := time.Now()
	c2 := dial(t, b, sess, protocol.AckManual)
	c2.subscribe(sess.UserID)
	f := c2.messages(1)[0]
	// rc 1: the shutdown returned it unprocessed, which undoes the receive.
	if f.ID != id || f.RC != 1 {
		t.Fatalf("got %+v, want %s again with rc 1", f, id)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Fatalf("redelivered after %s: not returned at shutdown (visibility timeout 120s)", d)
	}
}

func TestRedisRestartDuringLiveConnectionKeepsDelivering(t *testing.T) {
	s := newStack(t)
	gw := s.startGateway()
	sess := s.user(gw, "liam")
	c := dial(t, gw, sess, "")
	c.subscribe(sess.UserID)
	s.send(sess.UserID, "before")
	if f := c.messages(1)[0]; f.Message != "before" {
		t.Fatalf("got %+v", f)
	}
	s.Redis.Stop()
	s.Redis.Start() // no persistence: the queue is gone, as after a flush
	// The message is sent once the gateway has re-subscribed; until then a
	// notification may be missed, and the sweep still finds it.
	s.send(sess.UserID, "after")
	if f := c.messages(1)[0]; f.Message != "after" {
		t.Fatalf("got %+v", f)
	}
}

func TestRevokedAccessTokenLosesItsSocket(t *testing.T) {
	s := newStack(t, "WSMQ_REVERIFY_INTERVAL=200ms")
	gw := s.startGateway()
	sess := s.user(gw, "mona")
	c := dial(t, gw, sess, "")
	c.subscribe(sess.UserID)
	if _, err := s.Auth.Revoke(context.Background(), &authv1.RevokeRequest{AccessToken: sess.AccessToken}); err != nil {
		t.Fatal(err)
	}
	err := c.closeErr()
	if code := closeCode(err); code != protocol.CloseUnauthorized {
		t.Fatalf("close %v, want 4001", err)
	}
	if !strings.Contains(err.Error(), "token revoked") {
		t.Fatalf("close reason %v, want token revoked", err)
	}
}

// stalledClient subscribes and then reads nothing.
// It is a bare websocket, not the gateway client: that one's reader keeps
// reading (and answering pings) into its buffer.
func stalledClient(t *testing.T, gw *gateway, sess client.Session) *websocket.Conn {
	t.Helper()
	h := http.Header{protocol.HeaderToken: {sess.Token}, protocol.HeaderAccessToken: {sess.AccessToken}}
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+gw.Addr+protocol.WebsocketPath, h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ws.Close() })
	if err := ws.WriteMessage(websocket.TextMessage, []byte(protocol.Subscribe(sess.UserID))); err != nil {
		t.Fatal(err)
	}
	if f, err := readFrame(ws); err != nil || *f.(*protocol.Subscribed) != (protocol.Subscribed{Queue: sess.UserID}) {
		t.Fatalf("subscribe: %#v %v", f, err)
	}
	return ws
}

// readFrame reads the next frame after the connection's hello.
func readFrame(ws *websocket.Conn) (protocol.Frame, error) {
	for {
		_, b, err := ws.ReadMessage()
		if err != nil {
			return nil, err
		}
		f, err := protocol.DecodeFrame(b)
		if _, hello := f.(*protocol.Hello); !hello {
			return f, err
		}
	}
}

// bigBody makes messages large enough that a few hundred exceed any socket
// buffer.
var bigBody = strings.Repeat("z", 60000)

func TestSlowClientStopsPullingAndLosesNothing(t *testing.T) {
	s := newStack(t, "WSMQ_CONN_BUFFER=16", "WSMQ_WRITE_TIMEOUT=60s")
	gw := s.startGateway()
	sess := s.user(gw, "nick")
	ws := stalledClient(t, gw, sess)
	const n = 400 // 24 MB
	for i := range n {
		s.send(sess.UserID, itoa(i)+":"+bigBody)
	}
	// The gateway holds at most its buffer in flight (queued for the
	// writer, or written and not yet confirmed by a pong), deletes nothing
	// the client did not read, and leaves the rest queued in Redis.
	// (Receives are counted by TotalRecv: HiddenMsgs counts from the
	// current second, so it counts just-sent messages as hidden.)
	testenv.Eventually(t, waitLong, "gateway stalls on the slow client", func() bool {
		a := s.attrs(sess.UserID)
		return a.Msgs == n && a.TotalRecv > 0
	})
	time.Sleep(500 * time.Millisecond) // give a runaway puller time to show itself
	if a := s.attrs(sess.UserID); a.TotalRecv > 16 || a.Msgs != n {
		t.Fatalf("stalled client: %d received (buffer 16), %d queued of %d: gateway kept pulling or deleted unread messages", a.TotalRecv, a.Msgs, n)
	}
	for i := range n {
		f, err := readFrame(ws)
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if m, ok := f.(*protocol.Message); !ok || !strings.HasPrefix(m.Message, itoa(i)+":") {
			t.Fatalf("message %d out of order or lost: %.40q", i, f.AppendJSON(nil))
		}
	}
}

func TestStuckClientIsClosedAndItsMessagesReturned(t *testing.T) {
	s := newStack(t, "WSMQ_CONN_BUFFER=16", "WSMQ_WRITE_TIMEOUT=1s", "WSMQ_VISIBILITY_TIMEOUT=120")
	gw := s.startGateway()
	sess := s.user(gw, "nora")
	stalledClient(t, gw, sess)
	const n = 300
	for i := range n {
		s.send(sess.UserID, itoa(i)+":"+bigBody)
	}
	// The write deadline (or the pong timeout, as long) passes, the
	// gateway drops the client and returns what it held: nothing stays
	// hidden for the 120 s visibility timeout, and nothing was deleted (the
	// client confirmed no frame: it read none).
	testenv.Eventually(t, waitLong, "stuck client dropped and in-flight messages returned", func() bool {
		a := s.attrs(sess.UserID)
		return a.HiddenMsgs == 0 && a.Msgs == n
	})
	c := dial(t, gw, sess, "")
	c.subscribe(sess.UserID)
	left := int(s.attrs(sess.UserID).Msgs)
	got := c.messages(left)
	// Returned messages go back at their send time (from the id), so they
	// keep their place ahead of later ones. A message's first score is
	// Redis's clock at the send script, its id the publisher's estimate of
	// that clock taken just before: the two may differ by a few ms, so
	// neighbours sent within that much may swap, nothing more.
	const idClockSlack = 50 // ms
	for i := 1; i < len(got); i++ {
		if got[i].Sent < got[i-1].Sent-idClockSlack {
			t.Fatalf("out of order at %d: sent %d after %d", i, got[i].Sent, got[i-1].Sent)
		}
	}
}

func TestMessageFromPublisherWithoutRealtimeIsDeliveredBySweep(t *testing.T) {
	// Keyspace wake-ups off: the sweep is what finds the message.
	s := newStack(t, "WSMQ_SWEEP_INTERVAL=300ms", "WSMQ_HOT_SWEEP_INTERVAL=100ms", "WSMQ_GATEWAY_WAKE=realtime")
	gw := s.startGateway()
	sess := s.user(gw, "olga")
	c := dial(t, gw, sess, "")
	c.subscribe(sess.UserID)
	plain := rsmq.New(s.RDB, rsmq.Options{}) // like Node rsmq without realtime
	start := time.Now()
	if _, err := plain.SendMessage(context.Background(), sess.UserID, "no notification", rsmq.QueueDefault); err != nil {
		t.Fatal(err)
	}
	if f := c.messages(1)[0]; f.Message != "no notification" {
		t.Fatalf("got %+v", f)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("delivered after %s, want within the sweep bound", d)
	}
}

// TestMessageFromPublisherWithoutRealtimeIsPushedByKeyspaceNotifications:
// the test Redis publishes keyevent and keyspace events of sorted sets (make
// run and compose: keyevent), so in either mode a plain Node-rsmq-style send
// wakes the gateway at once although the sweep runs once a minute; the
// gateway says at start which way it wakes.
func TestMessageFromPublisherWithoutRealtimeIsPushedByKeyspaceNotifications(t *testing.T) {
	for _, tc := range []struct{ setting, logged string }{
		{"auto", `"wake":"keyevent"`},
		{"keyspace", `"wake":"keyspace"`},
	} {
		t.Run(tc.setting, func(t *testing.T) {
			s := newStack(t, "WSMQ_SWEEP_INTERVAL=1m", "WSMQ_HOT_SWEEP_INTERVAL=1m", "WSMQ_GATEWAY_WAKE="+tc.setting)
			gw := s.startGateway()
			if out := gw.P.Output(); !strings.Contains(out, "keyspace notifications on") || !strings.Contains(out, tc.logged) {
				t.Fatalf("the gateway did not log that keyspace notifications wake queues (%s):\n%s", tc.logged, out)
			}
			sess := s.user(gw, "oleg")
			c := dial(t, gw, sess, "")
			c.subscribe(sess.UserID)
			plain := rsmq.New(s.RDB, rsmq.Options{}) // like Node rsmq without realtime
			for i := range 5 {
				body := "pushed " + itoa(i)
				if _, err := plain.SendMessage(context.Background(), sess.UserID, body, rsmq.QueueDefault); err != nil {
					t.Fatal(err)
				}
				if f := c.messages(1)[0]; f.Message != body {
					t.Fatalf("got %+v, want %q", f, body)
				}
			}
		})
	}
}

func TestCompetingConnectionsGetEachMessageOnce(t *testing.T) {
	s := newStack(t)
	a := s.startGateway()
	b := s.startGateway()
	sess := s.user(a, "pete")
	c1 := dial(t, a, sess, "")
	c2 := dial(t, b, sess, "")
	c1.subscribe(sess.UserID)
	c2.subscribe(sess.UserID)
	const n = 300
	for i := range n {
		s.send(sess.UserID, itoa(i))
	}
	// Each connection's reader counts what it gets until the total is in.
	ctx, cancel := ctxWait()
	defer cancel()
	got := make(chan string, n)
	var wg sync.WaitGroup
	for _, c := range []*conn{c1, c2} {
		wg.Go(func() {
			for {
				f, err := c.c.Next(ctx)
				if err != nil {
					return
				}
				if m, ok := f.(*protocol.Message); ok {
					got <- m.Message
				}
			}
		})
	}
	seen := map[string]int{}
	for count := 0; count < n; count++ {
		select {
		case m := <-got:
			seen[m]++
		case <-ctx.Done():
			t.Fatalf("got %d of %d messages", count, n)
		}
	}
	cancel()
	wg.Wait()
	for m, k := range seen {
		if k != 1 {
			t.Fatalf("message %s delivered %d times", m, k)
		}
	}
	if len(seen) != n {
		t.Fatalf("%d distinct messages, want %d", len(seen), n)
	}
}

func TestDelayedMessageArrivesWhenVisibleWithoutWaitingForTheSweep(t *testing.T) {
	s := newStack(t, "WSMQ_SWEEP_INTERVAL=1m", "WSMQ_HOT_SWEEP_INTERVAL=1m")
	gw := s.startGateway()
	sess := s.user(gw, "rita")
	c := dial(t, gw, sess, "")
	c.subscribe(sess.UserID)
	start := time.Now()
	if _, err := s.Queues.SendMessage(context.Background(), sess.UserID, "later", 1); err != nil {
		t.Fatal(err)
	}
	f := c.messages(1)[0]
	d := time.Since(start)
	if f.Message != "later" || d < 900*time.Millisecond || d > 10*time.Second {
		t.Fatalf("got %+v after %s, want it after its 1 s delay (the sweep runs once a minute)", f, d)
	}
}
