package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	authv1 "github.com/wsmq/wsmq/gen/wsmq/auth/v1"
	"github.com/wsmq/wsmq/pkg/testenv"
	"github.com/wsmq/wsmq/services/gateway/client"
	"github.com/wsmq/wsmq/services/gateway/internal/ticket"
	"github.com/wsmq/wsmq/services/gateway/protocol"
)

// post sends a JSON POST to the gateway with extra headers and returns the
// status, the Retry-After header and the body.
func post(t *testing.T, gw *gateway, path string, body any, hdr http.Header) (int, http.Header, []byte) {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := ctxWait()
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, gw.URL()+path, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = res.Body.Close() }()
	out, _ := io.ReadAll(res.Body)
	return res.StatusCode, res.Header, out
}

func xff(addr string) http.Header { return http.Header{"X-Forwarded-For": {addr}} }

// login posts a login from forwarded address from ("" = no header).
func loginFrom(t *testing.T, gw *gateway, from, user, pw string) (int, protocol.AuthenticateResponse) {
	t.Helper()
	var h http.Header
	if from != "" {
		h = xff(from)
	}
	code, _, body := post(t, gw, protocol.AuthenticatePath, protocol.AuthenticateRequest{UserName: user, Password: pw}, h)
	var ans protocol.AuthenticateResponse
	if code == http.StatusOK {
		if err := json.Unmarshal(body, &ans); err != nil {
			t.Fatalf("login answer %s: %v", body, err)
		}
	}
	return code, ans
}

// dialStatus dials with opts and returns the HTTP status of a refusal (or
// 101 for a connection, which it closes).
func dialStatus(t *testing.T, gw *gateway, opts client.Options) int {
	t.Helper()
	err := tryDial(gw, opts)
	var se *client.StatusError
	switch {
	case err == nil:
		return http.StatusSwitchingProtocols
	case errors.As(err, &se):
		return se.StatusCode
	}
	t.Fatalf("dial: %v", err)
	return 0
}

// authCalls sums a counter of the auth process's metrics
// (wsmq_auth_authenticate_total, wsmq_auth_verify_total).
func authCalls(t *testing.T, s *stack, metric string) float64 {
	t.Helper()
	res, err := http.Get("http://" + s.AuthMetrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = res.Body.Close() }()
	var sum float64
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, metric+"{") && !strings.HasPrefix(line, metric+" ") {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		sum += v
	}
	return sum
}

func TestFloodFromOneForwardedAddressLeavesAnotherForwardedAddressAlone(t *testing.T) {
	s := newStack(t)
	// Rates so low that no token comes back during the flood, however slow
	// this machine is (burst 1: one request per address passes).
	gw := s.startGateway("WSMQ_TRUSTED_PROXIES=127.0.0.1/32", "WSMQ_CONN_RATE=0.01", "WSMQ_LOGIN_RATE=0.01")
	pw := s.CreateUser("frank")
	const flooder, other = "203.0.113.7", "203.0.113.8"

	// The flood needs no credentials: junk upgrades and junk logins until
	// the flooder's buckets are empty.
	verifies := authCalls(t, s, "wsmq_auth_verify_total")
	logins := authCalls(t, s, "wsmq_auth_authenticate_total")
	upgrades429, logins429 := 0, 0
	for i := range 30 {
		if dialStatus(t, gw, client.Options{Header: xff(flooder)}) == http.StatusTooManyRequests {
			upgrades429++
		}
		if code, _ := loginFrom(t, gw, flooder, "nobody"+strconv.Itoa(i), "x"); code == http.StatusTooManyRequests {
			logins429++
		}
	}
	if upgrades429 < 20 || logins429 < 20 {
		t.Fatalf("flood of 30: %d upgrades and %d logins refused with 429, want most", upgrades429, logins429)
	}
	// Refused requests are cheap: junk upgrades never reach auth, and
	// only the logins inside the bucket do.
	if n := authCalls(t, s, "wsmq_auth_verify_total") - verifies; n != 0 {
		t.Errorf("junk upgrades made %v Verify calls", n)
	}
	if n := authCalls(t, s, "wsmq_auth_authenticate_total") - logins; n > 30-float64(logins429) {
		t.Errorf("%v Authenticate calls for %d logins let through", n, 30-logins429)
	}

	// Meanwhile a client behind the same proxy logs in and connects.
	code, sess := loginFrom(t, gw, other, "frank", pw)
	if code != http.StatusOK {
		t.Fatalf("login from %s during the flood: %d", other, code)
	}
	c := dialOpts(t, gw, client.Options{Token: sess.Token, AccessToken: sess.AccessToken, Header: xff(other)})
	c.subscribe(sess.UserID)
	// The flooder is still refused, and the logs name it, not the proxy.
	if st := dialStatus(t, gw, client.Options{Token: sess.Token, Header: xff(flooder)}); st != http.StatusTooManyRequests {
		t.Fatalf("flooder's next upgrade: %d, want 429", st)
	}
	testenv.Eventually(t, waitLong, "refusals logged with the forwarded address", func() bool {
		return strings.Contains(gw.P.Output(), `"ip":"`+flooder+`"`)
	})
}

func TestSpoofedForwardedForFromAnUntrustedPeerIsIgnored(t *testing.T) {
	s := newStack(t)
	// A proxy list that does not hold the test's loopback peer.
	gw := s.startGateway("WSMQ_TRUSTED_PROXIES=10.0.0.0/8", "WSMQ_CONN_RATE=2")
	limited := false
	for i := range 30 {
		// A fresh spoofed address per request would get a fresh bucket
		// each time if the header were believed.
		if dialStatus(t, gw, client.Options{Header: xff(fmt.Sprintf("198.51.100.%d", i))}) == http.StatusTooManyRequests {
			limited = true
			break
		}
	}
	if !limited {
		t.Fatal("30 upgrades with rotating X-Forwarded-For were never rate limited: the header was believed")
	}
	out := gw.P.Output()
	if strings.Contains(out, `"ip":"198.51.100.`) || !strings.Contains(out, `"ip":"127.0.0.1"`) {
		t.Fatalf("logs use the spoofed address instead of the peer:\n%s", out)
	}
}

func TestLoginBackoffOfOneNameDoesNotLockOutAnother(t *testing.T) {
	s := newStack(t)
	gw := s.startGateway("WSMQ_LOGIN_RATE=1000")
	alicePW, bobPW := s.CreateUser("alice"), s.CreateUser("bob")
	for i := range 3 { // the free failures
		if code, _ := loginFrom(t, gw, "", "alice", "wrong"); code != http.StatusUnauthorized {
			t.Fatalf("failure %d: %d, want 401", i+1, code)
		}
	}
	logins := authCalls(t, s, "wsmq_auth_authenticate_total")
	// alice backs off: even the right password waits, in any letter case,
	// and costs auth nothing.
	for _, name := range []string{"alice", "ALICE"} {
		code, hdr, body := post(t, gw, protocol.AuthenticatePath, protocol.AuthenticateRequest{UserName: name, Password: alicePW}, nil)
		if code != http.StatusTooManyRequests || hdr.Get("Retry-After") == "" || !strings.Contains(string(body), "retry in") {
			t.Fatalf("%s while backed off: %d %s (Retry-After %q), want 429", name, code, body, hdr.Get("Retry-After"))
		}
	}
	if n := authCalls(t, s, "wsmq_auth_authenticate_total") - logins; n != 0 {
		t.Fatalf("backed-off logins made %v Authenticate calls", n)
	}
	// bob, from the same address, is not affected.
	if code, sess := loginFrom(t, gw, "", "bob", bobPW); code != http.StatusOK || sess.Token == "" {
		t.Fatalf("bob during alice's back-off: %d", code)
	}
	// After the back-off (1 s), alice logs in.
	testenv.Eventually(t, waitLong, "alice logs in after the back-off", func() bool {
		code, _ := loginFrom(t, gw, "", "alice", alicePW)
		return code == http.StatusOK
	})
}

func TestTicketConnectsOnceAsItsUser(t *testing.T) {
	s := newStack(t)
	gw := s.startGateway()
	alice, bob := s.user(gw, "alice"), s.user(gw, "bob")
	ctx, cancel := ctxWait()
	defer cancel()
	tk, exp, err := client.Ticket(ctx, gw.URL(), alice.Token, alice.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Until(time.UnixMilli(exp)); d <= 0 || d > 31*time.Second {
		t.Fatalf("ticket expires in %s, want about 30s", d)
	}
	c := dialOpts(t, gw, client.Options{Ticket: tk})
	// The socket is alice's: her queue, not bob's.
	c.subscribe(alice.UserID)
	c.send(protocol.Subscribe(bob.UserID))
	if ev := c.eventErr(); ev.Code != protocol.CodeForbidden {
		t.Fatalf("alice's ticket subscribing to bob's queue: %+v, want forbidden", ev)
	}
	id := s.send(alice.UserID, "via ticket")
	if f := c.messages(1)[0]; f.ID != id {
		t.Fatalf("got %+v", f)
	}
	// Single use, on this gateway and on any other sharing the Redis.
	gw2 := s.startGateway()
	for _, g := range []*gateway{gw, gw2} {
		if st := dialStatus(t, g, client.Options{Ticket: tk}); st != http.StatusUnauthorized {
			t.Fatalf("second use of the ticket at %s: %d, want 401", g.Addr, st)
		}
	}
	// A ticket names no one by itself: other credentials cannot pick
	// another user with it, and a forged ticket is refused.
	tk2, _, err := client.Ticket(ctx, gw.URL(), alice.Token, "")
	if err != nil {
		t.Fatal(err)
	}
	c2 := dialOpts(t, gw, client.Options{Ticket: tk2, Token: bob.Token})
	c2.send(protocol.Subscribe(bob.UserID))
	if ev := c2.eventErr(); ev.Code != protocol.CodeForbidden {
		t.Fatalf("alice's ticket with bob's header token: %+v, want alice's socket", ev)
	}
	if st := dialStatus(t, gw, client.Options{Ticket: tk2[:len(tk2)-2] + "AA"}); st != http.StatusUnauthorized {
		t.Fatalf("forged ticket: %d, want 401", st)
	}
}

func TestTicketOfRevokedCredentialsIsRefused(t *testing.T) {
	s := newStack(t)
	gw := s.startGateway()
	sess := s.user(gw, "rita")
	// Body credentials, access token only (as a page holding only it would).
	code, _, body := post(t, gw, protocol.TicketPath, protocol.TicketRequest{AccessToken: sess.AccessToken}, nil)
	if code != http.StatusOK {
		t.Fatalf("ticket: %d %s", code, body)
	}
	var ans protocol.TicketResponse
	if err := json.Unmarshal(body, &ans); err != nil || !ans.Success || ans.UserID != sess.UserID {
		t.Fatalf("ticket answer %s: %v", body, err)
	}
	if _, err := s.Auth.Revoke(s.AdminContext(), &authv1.RevokeRequest{AccessToken: sess.AccessToken}); err != nil {
		t.Fatal(err)
	}
	if st := dialStatus(t, gw, client.Options{Ticket: ans.Ticket}); st != http.StatusUnauthorized {
		t.Fatalf("ticket after its access token was revoked: %d, want 401", st)
	}
	for _, tc := range []struct {
		name string
		body any
		hdr  http.Header
	}{
		{"no credentials", nil, nil},
		{"revoked access token", protocol.TicketRequest{AccessToken: sess.AccessToken}, nil},
		{"tampered JWT header", nil, http.Header{"X-Token": {sess.Token + "x"}}},
	} {
		if code, _, _ := post(t, gw, protocol.TicketPath, tc.body, tc.hdr); code != http.StatusUnauthorized {
			t.Errorf("%s: ticket %d, want 401", tc.name, code)
		}
	}
}

func TestTicketFromAnAccessTokenHandsOverTheFreshJWT(t *testing.T) {
	s := newStack(t)
	gw := s.startGateway()
	sess := s.user(gw, "tess")
	expired := mintJWT(t, sess.UserID, time.Now().Add(-time.Hour))
	ctx, cancel := ctxWait()
	defer cancel()
	ans, err := client.TicketWithToken(ctx, gw.URL(), expired, sess.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	// The answer itself carries the refreshed JWT (for the next ticket)...
	if ans.Token == "" || ans.Token == expired || ans.TokenExpiresAt <= time.Now().UnixMilli() {
		t.Fatalf("ticket answer %+v, want the refreshed JWT", ans)
	}
	c := dialOpts(t, gw, client.Options{Ticket: ans.Ticket})
	f, _ := c.next()
	// ...and so does the socket's first frame after the hello.
	if tok, ok := f.(*protocol.Token); !ok || tok.Token != ans.Token {
		t.Fatalf("first frame %#v, want the fresh token", f)
	}
	// A valid JWT gets no token back.
	fresh, err := client.TicketWithToken(ctx, gw.URL(), ans.Token, sess.AccessToken)
	if err != nil || fresh.Token != "" {
		t.Fatalf("ticket for a valid JWT: %+v %v, want no token", fresh, err)
	}
}

func TestTicketRateLimitIs429WithRetryAfterAndAJSONBody(t *testing.T) {
	s := newStack(t)
	gw := s.startGateway("WSMQ_CONN_RATE=1")
	sess := s.user(gw, "rita")
	var code int
	var body []byte
	var hdr http.Header
	for i := 0; i < 5 && code != http.StatusTooManyRequests; i++ {
		req, err := http.NewRequest(http.MethodPost, gw.URL()+protocol.TicketPath, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set(protocol.HeaderToken, sess.Token)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ = io.ReadAll(res.Body)
		_ = res.Body.Close()
		code, hdr = res.StatusCode, res.Header
	}
	var eb protocol.ErrorBody
	if code != http.StatusTooManyRequests || hdr.Get("Retry-After") == "" || json.Unmarshal(body, &eb) != nil || eb.Message == "" {
		t.Fatalf("ticket flood: %d Retry-After %q body %s, want 429 with Retry-After and a JSON message", code, hdr.Get("Retry-After"), body)
	}
}

func TestTicketExpires(t *testing.T) {
	s := newStack(t)
	gw := s.startGateway()
	sess := s.user(gw, "ted")
	ctx, cancel := ctxWait()
	defer cancel()
	tk, _, err := client.Ticket(ctx, gw.URL(), sess.Token, sess.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	key := ticket.New(s.RDB, ticket.Options{}).Key(tk)
	ttl, err := s.RDB.PTTL(ctx, key).Result()
	if err != nil || ttl <= 0 || ttl > 30*time.Second {
		t.Fatalf("ticket's Redis TTL %s (%v), want (0, 30s]", ttl, err)
	}
	// Let Redis expire it now rather than waiting 30 s.
	if err := s.RDB.PExpire(ctx, key, time.Millisecond).Err(); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, waitLong, "ticket key expired", func() bool { return s.RDB.Exists(ctx, key).Val() == 0 })
	if st := dialStatus(t, gw, client.Options{Ticket: tk}); st != http.StatusUnauthorized {
		t.Fatalf("expired ticket: %d, want 401", st)
	}
	// WSMQ_TICKET_TTL sets the life.
	gw2 := s.startGateway("WSMQ_TICKET_TTL=200ms")
	tk2, _, err := client.Ticket(ctx, gw2.URL(), sess.Token, "")
	if err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, waitLong, "short-lived ticket expired", func() bool {
		return s.RDB.Exists(ctx, ticket.New(s.RDB, ticket.Options{}).Key(tk2)).Val() == 0
	})
	if st := dialStatus(t, gw2, client.Options{Ticket: tk2}); st != http.StatusUnauthorized {
		t.Fatalf("ticket past WSMQ_TICKET_TTL: %d, want 401", st)
	}
}

func TestSubprotocolCredentialsConnectAndOnlyWsmqV1IsEchoed(t *testing.T) {
	s := newStack(t)
	gw := s.startGateway()
	sess := s.user(gw, "sam")
	dialer := func(protos ...string) (*websocket.Conn, *http.Response, error) {
		d := websocket.Dialer{Subprotocols: protos, HandshakeTimeout: waitLong}
		return d.Dial("ws://"+gw.Addr+protocol.WebsocketPath, nil)
	}
	for _, tc := range []struct {
		name   string
		protos []string
	}{
		{"JWT", []string{"wsmq.v1", "wsmq.token." + sess.Token}},
		{"access token", []string{"wsmq.access-token." + sess.AccessToken, "wsmq.v1"}},
		{"both", protocol.Subprotocols(sess.Token, sess.AccessToken)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ws, res, err := dialer(tc.protos...)
			if err != nil {
				t.Fatalf("dial: %v (%v)", err, res)
			}
			defer func() { _ = ws.Close() }()
			if got := res.Header.Values("Sec-WebSocket-Protocol"); len(got) != 1 || got[0] != "wsmq.v1" {
				t.Fatalf("Sec-WebSocket-Protocol answered %q, want exactly wsmq.v1", got)
			}
			if err := ws.WriteMessage(websocket.TextMessage, []byte(protocol.Subscribe(sess.UserID))); err != nil {
				t.Fatal(err)
			}
			_ = ws.SetReadDeadline(time.Now().Add(waitLong))
			for {
				_, b, err := ws.ReadMessage()
				if err != nil {
					t.Fatal(err)
				}
				if strings.Contains(string(b), `"event":"subscribed"`) {
					break
				}
			}
		})
	}
	for _, tc := range []struct {
		name   string
		protos []string
		code   int
	}{
		{"credentials without wsmq.v1", []string{"wsmq.token." + sess.Token}, http.StatusBadRequest},
		{"bad JWT", []string{"wsmq.v1", "wsmq.token." + sess.Token + "x"}, http.StatusUnauthorized},
		{"wsmq.v1 alone", []string{"wsmq.v1"}, http.StatusUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ws, res, err := dialer(tc.protos...)
			if err == nil {
				_ = ws.Close()
				t.Fatal("connected")
			}
			if res == nil || res.StatusCode != tc.code {
				t.Fatalf("dial: %v (%v), want %d", err, res, tc.code)
			}
		})
	}
}

// rawUpgrade sends a websocket upgrade for path and returns the status and
// the decoded ErrorBody of a refusal.
func rawUpgrade(t *testing.T, gw *gateway, path string) (int, protocol.ErrorBody) {
	t.Helper()
	ws, res, err := websocket.DefaultDialer.Dial("ws://"+gw.Addr+path, nil)
	if err == nil {
		_ = ws.Close()
		return http.StatusSwitchingProtocols, protocol.ErrorBody{}
	}
	if res == nil {
		t.Fatalf("dial %s: %v", path, err)
	}
	var body protocol.ErrorBody
	b, _ := io.ReadAll(res.Body)
	_ = json.Unmarshal(b, &body)
	return res.StatusCode, body
}

func TestQueryCredentialsAreRefusedOutsideDevModeNamingTheTicketFlow(t *testing.T) {
	s := newStack(t)
	prod := s.startGateway()
	sess := s.user(prod, "quentin")
	for _, q := range []string{"?token=" + sess.Token, "?accessToken=" + sess.AccessToken, "?token=" + sess.Token + "&accessToken=" + sess.AccessToken} {
		code, body := rawUpgrade(t, prod, protocol.WebsocketPath+q)
		if code != http.StatusUnauthorized || body.TicketPath != protocol.TicketPath ||
			!strings.Contains(body.Message, protocol.TicketPath) || !strings.Contains(body.Message, "ticket=") {
			t.Fatalf("query credentials outside dev: %d %+v, want 401 naming %s", code, body, protocol.TicketPath)
		}
	}
	// Refused even with good headers: the token already went in the URL.
	if st := dialStatus(t, prod, client.Options{Token: sess.Token, AccessToken: sess.AccessToken, UseQuery: true}); st != http.StatusUnauthorized {
		t.Fatalf("client UseQuery outside dev: %d", st)
	}
	for name, gw := range map[string]*gateway{
		"dev mode":                       s.startGateway("WSMQ_DEV=1"),
		"WSMQ_ALLOW_QUERY_CREDENTIALS=1": s.startGateway("WSMQ_ALLOW_QUERY_CREDENTIALS=1"),
	} {
		if code, body := rawUpgrade(t, gw, protocol.WebsocketPath+"?token="+sess.Token+"&accessToken="+sess.AccessToken); code != http.StatusSwitchingProtocols {
			t.Errorf("%s: query credentials got %d %+v, want the upgrade", name, code, body)
		}
	}
}

func TestWebsocketOutlivesTheHTTPReadTimeout(t *testing.T) {
	s := newStack(t)
	const readTimeout = 300 * time.Millisecond
	gw := s.startGateway("WSMQ_HTTP_READ_TIMEOUT=300ms", "WSMQ_HTTP_IDLE_TIMEOUT=300ms")
	sess := s.user(gw, "olga")
	c := dial(t, gw, sess, "")
	c.subscribe(sess.UserID)
	born := time.Now()
	for i := 0; time.Since(born) < 5*readTimeout; i++ {
		msg := "alive " + strconv.Itoa(i)
		s.send(sess.UserID, msg)
		if f := c.messages(1)[0]; f.Message != msg {
			t.Fatalf("got %+v, want %q", f, msg)
		}
	}
	// A slow request body is cut by the same ReadTimeout.
	conn, err := net.Dial("tcp", gw.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	_, _ = io.WriteString(conn, "POST "+protocol.AuthenticatePath+" HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
	start := time.Now()
	_ = conn.SetReadDeadline(time.Now().Add(waitLong))
	_, _ = io.ReadAll(conn) // the gateway answers 400 and closes, or just closes
	if d := time.Since(start); d > 10*readTimeout {
		t.Fatalf("a stalled request body held the connection for %s (ReadTimeout %s)", d, readTimeout)
	}
	// And an idle keep-alive connection is closed after IdleTimeout.
	idle, err := net.Dial("tcp", gw.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = idle.Close() }()
	_, _ = io.WriteString(idle, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReader(idle)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, res.Body)
	_ = res.Body.Close()
	start = time.Now()
	_ = idle.SetReadDeadline(time.Now().Add(waitLong))
	if _, err := br.ReadByte(); err == nil || time.Since(start) > 10*readTimeout {
		t.Fatalf("idle keep-alive connection: read %v after %s, want closed within about %s", err, time.Since(start), readTimeout)
	}
}
