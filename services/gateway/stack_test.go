package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"
	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	authv1 "github.com/wsmq/wsmq/gen/wsmq/auth/v1"
	"github.com/wsmq/wsmq/pkg/rsmq"
	"github.com/wsmq/wsmq/pkg/testenv"
)

// The keys file lets tests mint JWTs the auth service accepts (e.g. expired
// ones); the secret exists only in test processes.
const (
	testKID    = "test1"
	testSecret = "test-secret-0123456789-abcdefghijklmnop"
	adminToken = "test-admin-token-0123456789"
)

const waitLong = 15 * time.Second

// stack is a real Redis, a real MongoDB-wire server, the auth binary, and
// gateway binaries started on demand.
type stack struct {
	t        *testing.T
	redis    *testenv.Redis
	rdb      *redis.Client
	queues   *rsmq.Client // sends with realtime notifications, like the publisher
	authAddr string
	authConn *grpc.ClientConn
	auth     authv1.AuthServiceClient
	gwBin    string
	gwEnv    []string
}

func newStack(t *testing.T, gatewayEnv ...string) *stack {
	t.Helper()
	r := testenv.StartRedis(t)
	m := testenv.StartMongo(t)
	authBin := testenv.Build(t, "github.com/wsmq/wsmq/services/auth")
	gwBin := testenv.Build(t, "github.com/wsmq/wsmq/services/gateway")

	keys := filepath.Join(t.TempDir(), "jwt-keys")
	if err := os.WriteFile(keys, []byte(testKID+" "+testSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	authAddr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	ap := testenv.StartProcess(t, "auth", authBin, []string{
		"WSMQ_MONGO_URI=" + m.URI(), "WSMQ_AUTH_LISTEN=" + authAddr,
		fmt.Sprintf("WSMQ_AUTH_METRICS_LISTEN=127.0.0.1:%d", testenv.FreePort(t)),
		"WSMQ_JWT_KEYS_FILE=" + keys, "WSMQ_AUTH_ADMIN_TOKEN=" + adminToken, "WSMQ_BCRYPT_COST=10",
		"WSMQ_MONGO_TIMEOUT=2s",
	}, "serve")
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	ap.WaitDial(ctx, authAddr)

	cc, err := grpc.NewClient(authAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	return &stack{
		t: t, redis: r, rdb: rdb,
		queues:   rsmq.New(rdb, rsmq.Options{Realtime: true}),
		authAddr: authAddr, authConn: cc, auth: authv1.NewAuthServiceClient(cc),
		gwBin: gwBin,
		gwEnv: append([]string{
			"WSMQ_REDIS_URL=" + r.URL(), "WSMQ_AUTH_ADDR=" + authAddr, "WSMQ_LOG_LEVEL=debug",
			// A race-enabled auth (go test -race) needs seconds for one
			// bcrypt login on a loaded machine; the default 3s is too tight.
			"WSMQ_AUTH_TIMEOUT=15s",
		}, gatewayEnv...),
	}
}

type gateway struct {
	p    *testenv.Process
	addr string
}

func (s *stack) startGateway(env ...string) *gateway {
	s.t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(s.t))
	full := append(append([]string{"WSMQ_GATEWAY_LISTEN=" + addr}, s.gwEnv...), env...)
	p := testenv.StartProcess(s.t, "gateway "+addr, s.gwBin, full)
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	p.WaitHTTP(ctx, "http://"+addr+"/readyz")
	return &gateway{p: p, addr: addr}
}

func (s *stack) adminCtx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	s.t.Cleanup(cancel)
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+adminToken)
}

// user creates a user and logs it in through the gateway's HTTP endpoint.
func (s *stack) user(gw *gateway, name string) session {
	s.t.Helper()
	if _, err := s.auth.CreateUser(s.adminCtx(), &authv1.CreateUserRequest{UserName: name, Password: "password-" + name}); err != nil {
		s.t.Fatalf("create user %s: %v", name, err)
	}
	return login(s.t, gw, name, "password-"+name)
}

type session struct {
	Success     bool   `json:"success"`
	Message     string `json:"message"`
	Token       string `json:"token"`
	AccessToken string `json:"accessToken"`
	UserID      string `json:"userId"`
	ExpiresAt   int64  `json:"expiresAt"`
}

func login(t *testing.T, gw *gateway, name, password string) session {
	t.Helper()
	sess, code := postLogin(t, gw, name, password)
	if code != http.StatusOK || !sess.Success || sess.Token == "" || sess.AccessToken == "" || sess.UserID == "" {
		t.Fatalf("login %s: HTTP %d %+v", name, code, sess)
	}
	return sess
}

func postLogin(t *testing.T, gw *gateway, name, password string) (session, int) {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"userName": name, "password": password})
	res, err := http.Post("http://"+gw.addr+"/v1/authenticate", "application/json", strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = res.Body.Close() }()
	var sess session
	if err := json.NewDecoder(res.Body).Decode(&sess); err != nil {
		t.Fatalf("login body: %v", err)
	}
	return sess, res.StatusCode
}

// mintJWT signs a token the auth service accepts, with the given expiry.
func mintJWT(t *testing.T, userID string, exp time.Time) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": "users/" + userID, "iat": exp.Add(-time.Hour).Unix(), "exp": exp.Unix(), "iss": "wsmq-auth",
	})
	tok.Header["kid"] = testKID
	s, err := tok.SignedString([]byte(testSecret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// frame is any server frame.
type frame struct {
	Event     string `json:"event"`
	Error     string `json:"error"`
	Message   string `json:"message"`
	Queue     string `json:"queue"`
	ID        string `json:"id"`
	RC        int64  `json:"rc"`
	Sent      int64  `json:"sent"`
	Token     string `json:"token"`
	ExpiresAt int64  `json:"expiresAt"`
}

// client is a test websocket client whose frames arrive on a channel.
type client struct {
	t      *testing.T
	ws     *websocket.Conn
	frames chan frame
	closed chan error // the read error (close frame) when the socket ends
}

type creds struct {
	headers bool // x-token / x-access-token headers instead of query parameters
	token   string
	access  string
	query   string // extra query, e.g. "ack=manual"
}

func dialRaw(gw *gateway, c creds) (*websocket.Conn, *http.Response, error) {
	q := url.Values{}
	h := http.Header{}
	if c.headers {
		if c.token != "" {
			h.Set("x-token", c.token)
		}
		if c.access != "" {
			h.Set("x-access-token", c.access)
		}
	} else {
		if c.token != "" {
			q.Set("token", c.token)
		}
		if c.access != "" {
			q.Set("accessToken", c.access)
		}
	}
	u := "ws://" + gw.addr + "/ws?" + q.Encode()
	if c.query != "" {
		u += "&" + c.query
	}
	return websocket.DefaultDialer.Dial(u, h)
}

func dial(t *testing.T, gw *gateway, sess session, query string) *client {
	t.Helper()
	return dialCreds(t, gw, creds{token: sess.Token, access: sess.AccessToken, query: query})
}

func dialCreds(t *testing.T, gw *gateway, c creds) *client {
	t.Helper()
	ws, res, err := dialRaw(gw, c)
	if err != nil {
		code := 0
		if res != nil {
			code = res.StatusCode
		}
		t.Fatalf("dial %s: %v (HTTP %d)", gw.addr, err, code)
	}
	cl := &client{t: t, ws: ws, frames: make(chan frame, 100000), closed: make(chan error, 1)}
	go func() {
		for {
			_, data, err := ws.ReadMessage()
			if err != nil {
				cl.closed <- err
				close(cl.frames)
				return
			}
			var f frame
			if err := json.Unmarshal(data, &f); err != nil {
				cl.closed <- fmt.Errorf("bad frame %q: %w", data, err)
				close(cl.frames)
				return
			}
			cl.frames <- f
		}
	}()
	t.Cleanup(func() { _ = ws.Close() })
	return cl
}

func (c *client) send(cmd string) {
	c.t.Helper()
	if err := c.ws.WriteMessage(websocket.TextMessage, []byte(cmd)); err != nil {
		c.t.Fatalf("send %.80q: %v", cmd, err)
	}
}

func (c *client) next() frame {
	c.t.Helper()
	select {
	case f, ok := <-c.frames:
		if !ok {
			c.t.Fatalf("connection closed: %v", <-c.closed)
		}
		return f
	case <-time.After(waitLong):
		c.t.Fatalf("no frame within %s", waitLong)
	}
	return frame{}
}

// subscribe sends /subscribe/q and expects the confirmation.
func (c *client) subscribe(q string) {
	c.t.Helper()
	c.send("/subscribe/" + q)
	if f := c.next(); f.Event != "subscribed" || f.Queue != q {
		c.t.Fatalf("subscribe %s: got %+v", q, f)
	}
}

// messages reads n message frames (failing on any event frame).
func (c *client) messages(n int) []frame {
	c.t.Helper()
	out := make([]frame, 0, n)
	for len(out) < n {
		f := c.next()
		if f.Event != "" {
			c.t.Fatalf("expected a message, got event %+v", f)
		}
		out = append(out, f)
	}
	return out
}

// quiet asserts no frame arrives within d.
func (c *client) quiet(d time.Duration) {
	c.t.Helper()
	select {
	case f, ok := <-c.frames:
		if ok {
			c.t.Fatalf("unexpected frame %+v", f)
		}
	case <-time.After(d):
	}
}

// closeErr waits for the socket to end and returns its close error.
func (c *client) closeErr() error {
	c.t.Helper()
	for {
		select {
		case _, ok := <-c.frames:
			if !ok {
				return <-c.closed
			}
		case <-time.After(waitLong):
			c.t.Fatalf("connection not closed within %s", waitLong)
		}
	}
}

func closeCode(err error) int {
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		return ce.Code
	}
	return -1
}

func (s *stack) send(q, msg string) string {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	id, err := s.queues.SendMessage(ctx, q, msg, rsmq.QueueDefault)
	if errors.Is(err, rsmq.ErrQueueNotFound) {
		if err := s.queues.CreateQueue(ctx, q, rsmq.DefaultQueueConfig()); err != nil && !errors.Is(err, rsmq.ErrQueueExists) {
			s.t.Fatal(err)
		}
		id, err = s.queues.SendMessage(ctx, q, msg, rsmq.QueueDefault)
	}
	if err != nil {
		s.t.Fatalf("send to %s: %v", q, err)
	}
	return id
}

func (s *stack) attrs(q string) *rsmq.QueueAttributes {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	a, err := s.queues.GetQueueAttributes(ctx, q)
	if err != nil {
		s.t.Fatalf("attributes of %s: %v", q, err)
	}
	return a
}

func itoa(i int) string { return strconv.Itoa(i) }
