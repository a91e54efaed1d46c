package jssdk_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"

	authv1 "github.com/wsmq/wsmq/gen/wsmq/auth/v1"
	"github.com/wsmq/wsmq/pkg/rsmq"
	"github.com/wsmq/wsmq/pkg/testenv"
	"github.com/wsmq/wsmq/services/gateway/client"
	"github.com/wsmq/wsmq/services/gateway/internal/gatewaytest"
	"github.com/wsmq/wsmq/services/gateway/protocol"
)

// repoRoot is the directory holding go.work, above the test's directory.
func repoRoot(t testing.TB) string {
	t.Helper()
	dir, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// nodeArgs are the flags Node needs for a global WebSocket: Node 20 and 21
// have it behind --experimental-websocket, 22 on by default.
func nodeArgs(t testing.TB, node string) []string {
	t.Helper()
	out, err := exec.Command(node, "--version").Output()
	if err != nil {
		t.Fatalf("node --version: %v", err)
	}
	v := strings.TrimPrefix(strings.TrimSpace(string(out)), "v")
	major, _ := strconv.Atoi(strings.SplitN(v, ".", 2)[0])
	if major < 20 {
		t.Fatalf("node %s: the SDK needs Node >= 20", v)
	}
	if major < 22 {
		return []string{"--experimental-websocket", "--no-warnings=ExperimentalWarning"}
	}
	return nil
}

// harness is one test's stack and the control endpoint its Node test
// drives it through.
type harness struct {
	t   *testing.T
	s   *gatewaytest.Stack
	gws []*gatewaytest.Gateway
	px  *testenv.Proxy
	mux *http.ServeMux
	ctl string // the control endpoint's base URL

	mu sync.Mutex
}

// newHarness starts the stack with gateways gateways (each with env) and
// the control endpoint; with none, only the control endpoint (no stack).
func newHarness(t *testing.T, gateways int, stackEnv []string, env ...string) *harness {
	t.Helper()
	return newHarnessAuthEnv(t, gateways, nil, stackEnv, env...)
}

// newHarnessAuthEnv is newHarness with authEnv in the auth process's environment.
func newHarnessAuthEnv(t *testing.T, gateways int, authEnv, stackEnv []string, env ...string) *harness {
	t.Helper()
	h := &harness{t: t, mux: http.NewServeMux()}
	if gateways > 0 {
		h.s = gatewaytest.StartAuthEnv(t, authEnv, stackEnv...)
	}
	for range gateways {
		h.gws = append(h.gws, h.s.StartGateway(env...))
	}
	h.routes()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h.mux, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
	})
	h.ctl = "http://" + ln.Addr().String()
	return h
}

// gw is gateway i, under the harness's lock (restarts replace it).
func (h *harness) gw(i int) *gatewaytest.Gateway {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.gws[i]
}

// withProxy puts a TCP proxy in front of the gateways: each connection
// goes to the first gateway whose process still runs.
func (h *harness) withProxy() *testenv.Proxy {
	h.px = testenv.StartProxyTo(h.t, func() string {
		h.mu.Lock()
		defer h.mu.Unlock()
		for _, g := range h.gws {
			select {
			case <-g.P.Done():
			default:
				return g.Addr
			}
		}
		return h.gws[0].Addr
	})
	return h.px
}

func reply(w http.ResponseWriter, v any, err error) {
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// handle registers a JSON endpoint: the body decodes into a map.
func (h *harness) handle(path string, fn func(req map[string]any) (any, error)) {
	h.mux.HandleFunc("POST "+path, func(w http.ResponseWriter, r *http.Request) {
		req := map[string]any{}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil && !errors.Is(err, io.EOF) {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		v, err := fn(req)
		reply(w, v, err)
	})
}

func str(req map[string]any, k string) string { s, _ := req[k].(string); return s }
func num(req map[string]any, k string) int    { f, _ := req[k].(float64); return int(f) }

// routes are the control endpoint's operations. They run on the server's
// goroutines: failures are answered as HTTP errors (the Node test fails),
// never t.Fatal.
func (h *harness) routes() {
	ctx := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.Background(), gatewaytest.Wait)
	}
	h.handle("/user", func(req map[string]any) (any, error) {
		name := str(req, "name")
		pw := "password-" + name
		c, cancel := ctx()
		defer cancel()
		_, err := h.s.Auth.CreateUser(h.s.AdminContext(), &authv1.CreateUserRequest{UserName: name, Password: pw})
		if err != nil {
			return nil, err
		}
		if req["login"] != true {
			return map[string]string{"password": pw}, nil
		}
		sess, err := client.Login(c, h.gw(0).URL(), name, pw)
		return map[string]string{"password": pw, "userId": sess.UserID, "token": sess.Token, "accessToken": sess.AccessToken}, err
	})
	h.handle("/send", func(req map[string]any) (any, error) {
		q, n, prefix := str(req, "queue"), max(1, num(req, "n")), str(req, "prefix")
		c, cancel := ctx()
		defer cancel()
		ids := make([]string, 0, n)
		for i := range n {
			id, err := sendTo(c, h.s, q, prefix+strconv.Itoa(i))
			if err != nil {
				return nil, err
			}
			ids = append(ids, id)
		}
		return map[string]any{"ids": ids}, nil
	})
	h.handle("/sendEach", func(req map[string]any) (any, error) {
		qs, _ := req["queues"].([]any)
		c, cancel := ctx()
		defer cancel()
		for _, q := range qs {
			qn, _ := q.(string)
			if _, err := sendTo(c, h.s, qn, str(req, "body")); err != nil {
				return nil, err
			}
		}
		return map[string]int{"sent": len(qs)}, nil
	})
	h.handle("/attrs", func(req map[string]any) (any, error) {
		c, cancel := ctx()
		defer cancel()
		a, err := h.s.Queues.GetQueueAttributes(c, str(req, "queue"))
		if err != nil {
			return nil, err
		}
		return map[string]any{"msgs": a.Msgs, "hiddenMsgs": a.HiddenMsgs}, nil
	})
	h.handle("/kill", func(req map[string]any) (any, error) {
		g := h.gw(num(req, "gw"))
		g.P.Kill()
		<-g.P.Done()
		return map[string]bool{"ok": true}, nil
	})
	h.handle("/restart", func(req map[string]any) (any, error) {
		i := num(req, "gw")
		g := h.s.RestartGateway(h.gw(i)) // SIGTERM, wait, start on the same address
		h.mu.Lock()
		h.gws[i] = g
		h.mu.Unlock()
		return map[string]bool{"ok": true}, nil
	})
	h.handle("/revoke", func(req map[string]any) (any, error) {
		c, cancel := ctx()
		defer cancel()
		_, err := h.s.Auth.Revoke(c, &authv1.RevokeRequest{AccessToken: str(req, "accessToken")})
		return map[string]bool{"ok": err == nil}, err
	})
	h.handle("/mint", func(req map[string]any) (any, error) {
		tok, err := mintJWT(str(req, "userId"), time.Now().Add(time.Duration(num(req, "ttlMs"))*time.Millisecond))
		return map[string]string{"token": tok}, err
	})
	h.handle("/proxy", func(req map[string]any) (any, error) {
		if h.px == nil {
			return nil, errors.New("no proxy in this test")
		}
		switch str(req, "mode") {
		case "blackhole":
			h.px.SetForward(false)
		case "forward":
			h.px.SetForward(true)
		case "cut":
			h.px.Cut()
		default:
			return nil, fmt.Errorf("proxy mode %q", str(req, "mode"))
		}
		return map[string]bool{"ok": true}, nil
	})
	// /fake is a websocket that sends a hello and closes with ?code: the
	// close-code matrix without having to provoke each code.
	up := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
	h.mux.HandleFunc("GET /fake/ws", func(w http.ResponseWriter, r *http.Request) {
		code, err := strconv.Atoi(r.URL.Query().Get("code"))
		if err != nil {
			http.Error(w, "code", http.StatusBadRequest)
			return
		}
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer func() { _ = c.Close() }()
		hello := (&protocol.Hello{AckMode: protocol.AckManual, Prefetch: 8, VisibilityTimeout: 30000, PingInterval: 25000}).AppendJSON(nil)
		_ = c.WriteMessage(websocket.TextMessage, hello)
		_ = c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, "fake close"), time.Now().Add(time.Second))
		// Wait for the client's close answer (or its going away).
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		for {
			if _, _, err := c.ReadMessage(); err != nil {
				return
			}
		}
	})
}

// sendTo puts msg on q, creating the queue first when missing.
func sendTo(ctx context.Context, s *gatewaytest.Stack, q, msg string) (string, error) {
	id, err := s.Queues.SendMessage(ctx, q, msg, rsmq.QueueDefault)
	if errors.Is(err, rsmq.ErrQueueNotFound) {
		if err := s.Queues.CreateQueue(ctx, q, rsmq.DefaultQueueConfig()); err != nil && !errors.Is(err, rsmq.ErrQueueExists) {
			return "", err
		}
		id, err = s.Queues.SendMessage(ctx, q, msg, rsmq.QueueDefault)
	}
	return id, err
}

// mintJWT signs a JWT the auth service accepts for userID, expiring at exp.
func mintJWT(userID string, exp time.Time) (string, error) {
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": "users/" + userID, "iat": time.Now().Unix(), "exp": exp.Unix(), "iss": "wsmq-auth",
	})
	tok.Header["kid"] = gatewaytest.KID
	return tok.SignedString([]byte(gatewaytest.Secret))
}

// runNode runs the Node test file clients/js/test/<file> against the
// harness; WSMQ_CTL is the control endpoint, WSMQ_GATEWAY the gateway (or
// proxy) URL. Its output goes to the test log.
func (h *harness) runNode(file string, env ...string) {
	t := h.t
	t.Helper()
	node := testenv.LookPath(t, "node", "apt-get install -y nodejs")
	root := repoRoot(t)
	gw := h.ctl // no stack: the control endpoint's own websockets (/fake/ws)
	if len(h.gws) > 0 {
		gw = h.gw(0).URL()
	}
	if h.px != nil {
		gw = h.px.URL()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	args := append(nodeArgs(t, node), "--test", "--test-reporter=spec", "--test-force-exit", filepath.Join(root, "clients", "js", "test", file))
	cmd := exec.CommandContext(ctx, node, args...)
	cmd.Dir = filepath.Join(root, "clients", "js")
	cmd.Env = append(os.Environ(), append([]string{"WSMQ_CTL=" + h.ctl, "WSMQ_GATEWAY=" + gw, "NO_COLOR=1"}, env...)...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		t.Log(sc.Text())
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("node --test %s: %v (output above)", file, err)
	}
}
