package composecheck

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	authv1 "github.com/wsmq/wsmq/gen/wsmq/auth/v1"
	"github.com/wsmq/wsmq/pkg/testenv"
	gwclient "github.com/wsmq/wsmq/services/gateway/client"
	"github.com/wsmq/wsmq/services/gateway/protocol"
	pubclient "github.com/wsmq/wsmq/services/publisher/client"
)

// composeStack is the compose services run as processes with the
// environment docker-compose.yml gives them (container addresses mapped to
// loopback), in depends_on order.
type composeStack struct {
	procs map[string]*testenv.Process
	addr  map[string]string // "<service>:<container port>" -> loopback host:port
}

func startComposeStack(t *testing.T, dotenv map[string]string) *composeStack {
	t.Helper()
	project, err := Load(context.Background(), filepath.Join(repoRoot(t), "docker-compose.yml"), dotenv)
	if err != nil {
		t.Fatal(err)
	}
	redis := testenv.StartRedis(t)
	mongo := testenv.StartMongo(t)
	hosts := map[string]string{"redis://redis:6379/0": redis.URL(), "mongodb://mongo:27017": mongo.URI()}
	cs := &composeStack{procs: map[string]*testenv.Process{}, addr: map[string]string{}}
	for _, name := range []string{"auth", "publisher", "gateway"} {
		svc := project.Services[name]
		var env []string
		for k, v := range svc.Environment {
			if v == nil {
				continue
			}
			val := *v
			if h, ok := hosts[val]; ok {
				val = h
			}
			if strings.HasPrefix(val, ":") {
				a := "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))
				cs.addr[name+val] = a
				val = a
			}
			env = append(env, k+"="+val)
		}
		// Race-built services on a loaded machine: bcrypt at cost 12 takes
		// seconds, beyond the gateway's default 3 s auth deadline.
		switch name {
		case "auth":
			env = append(env, "WSMQ_BCRYPT_COST=10")
		case "gateway":
			env = append(env, "WSMQ_AUTH_TIMEOUT=15s")
		}
		slices.Sort(env)
		ep := entrypoints[name]
		cs.procs[name] = testenv.StartProcess(t, name, testenv.Build(t, ep.pkg), env, ep.args...)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		switch name {
		case "auth":
			hosts["auth:9091"] = cs.addr["auth:9091"]
			cs.procs[name].WaitDial(ctx, cs.addr["auth:9091"])
		case "publisher":
			cs.procs[name].WaitHTTP(ctx, "http://"+cs.addr["publisher:9192"]+"/readyz")
		case "gateway":
			cs.procs[name].WaitHTTP(ctx, "http://"+cs.addr["gateway:9193"]+"/readyz")
		}
		cancel()
	}
	return cs
}

// TestAFullRunThroughTheLoadBalancerLogsNoSecret runs the services with the
// compose environment at debug level behind real nginx with the shipped
// deploy/nginx.conf, goes through every way a client logs in and connects
// (including a refused attempt with credentials in the URL and a reused
// ticket), and then finds none of the secrets it used in any log line of
// any process: services, nginx's access log and its error log.
func TestAFullRunThroughTheLoadBalancerLogsNoSecret(t *testing.T) {
	dotenv := map[string]string{
		"WSMQ_JWT_SECRET":       secret(t),
		"WSMQ_AUTH_ADMIN_TOKEN": secret(t),
		"WSMQ_PUBLISHER_KEYS":   secret(t),
		"WSMQ_LOG_LEVEL":        "debug",
		// nginx runs on loopback here, not on the compose network.
		"WSMQ_NETWORK_PREFIX": "127.0.0",
	}
	cs := startComposeStack(t, dotenv)
	lb := startNginx(t, cs.addr["gateway:3000"])
	base := "http://" + lb.Addr
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// A user, created with the admin credential.
	const password = "correct horse battery staple 42"
	cc, err := grpc.NewClient(cs.addr["auth:9091"], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cc.Close() }()
	actx := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+dotenv["WSMQ_AUTH_ADMIN_TOKEN"])
	if _, err := authv1.NewAuthServiceClient(cc).CreateUser(actx, &authv1.CreateUserRequest{UserName: "lena", Password: password}); err != nil {
		t.Fatal(err)
	}
	secrets := map[string]string{
		"password": password, "JWT secret": dotenv["WSMQ_JWT_SECRET"],
		"admin token": dotenv["WSMQ_AUTH_ADMIN_TOKEN"], "publisher key": dotenv["WSMQ_PUBLISHER_KEYS"],
	}

	if _, err := gwclient.Login(ctx, base, "lena", "wrong "+password); !errors.Is(err, gwclient.ErrUnauthorized) {
		t.Fatalf("wrong password: %v", err)
	}
	sess, err := gwclient.Login(ctx, base, "lena", password)
	if err != nil {
		t.Fatal(err)
	}
	secrets["JWT"], secrets["access token"] = sess.Token, sess.AccessToken
	secrets["JWT signature"] = sess.Token[strings.LastIndexByte(sess.Token, '.')+1:]

	// Credentials in the URL are refused (production mode), and even this
	// refused request must not put them in a log.
	ws, res, err := websocket.DefaultDialer.DialContext(ctx, "ws://"+lb.Addr+"/ws?token="+sess.Token+"&accessToken="+sess.AccessToken, nil)
	if err == nil {
		_ = ws.Close()
		t.Fatal("query credentials accepted by a production gateway")
	}
	if res == nil || res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("query credentials: %v %v, want 401", err, res)
	}

	pub, err := pubclient.Dial(ctx, cs.addr["publisher:9092"], pubclient.Options{Insecure: true, Key: dotenv["WSMQ_PUBLISHER_KEYS"]})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = pub.Close() }()

	tk, _, err := gwclient.Ticket(ctx, base, sess.Token, sess.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	secrets["ticket"] = tk
	for i, opts := range []gwclient.Options{
		{Ticket: tk},
		{Token: sess.Token, AccessToken: sess.AccessToken},
		{Token: sess.Token, UseSubprotocol: true},
		{AccessToken: sess.AccessToken, UseSubprotocol: true}, // gets a fresh JWT
	} {
		c, err := gwclient.Dial(ctx, base, opts)
		if err != nil {
			t.Fatalf("connection %d through the lb: %v", i, err)
		}
		if err := c.Subscribe(ctx, sess.UserID); err != nil {
			t.Fatal(err)
		}
		msg := "message " + strconv.Itoa(i)
		if _, err := pub.Send(ctx, sess.UserID, msg, 0); err != nil {
			t.Fatal(err)
		}
		for {
			f, err := c.Next(ctx)
			if err != nil {
				t.Fatalf("connection %d: %v", i, err)
			}
			if tok, ok := f.(*protocol.Token); ok {
				secrets["fresh JWT "+strconv.Itoa(i)] = tok.Token
			}
			if m, ok := f.(*protocol.Message); ok && m.Message == msg {
				break
			}
		}
		_ = c.Close()
	}
	// The used ticket again: refused, through the lb.
	if _, err := gwclient.Dial(ctx, base, gwclient.Options{Ticket: tk}); !errors.Is(err, gwclient.ErrUnauthorized) {
		t.Fatalf("reused ticket: %v, want 401", err)
	}

	// With no gateway behind it, nginx's error log quotes each failing
	// request's line, query string included: query credentials must be
	// refused by the lb itself, with the gateway's 401 and body, before
	// anything is proxied, while a ticket still goes through.
	down := startNginx(t, "127.0.0.1:"+strconv.Itoa(testenv.FreePort(t)))
	for _, q := range []string{"token=" + sess.Token, "accessToken=" + sess.AccessToken, "ticket=x&accessToken=" + sess.AccessToken} {
		_, res, err := websocket.DefaultDialer.DialContext(ctx, "ws://"+down.Addr+"/ws?"+q, nil)
		if res == nil || res.StatusCode != http.StatusUnauthorized {
			t.Fatalf("query credentials with the gateway down: %v %v, want the lb's 401", err, res)
		}
		var body protocol.ErrorBody
		if err := json.NewDecoder(res.Body).Decode(&body); err != nil || body.TicketPath != protocol.TicketPath ||
			res.Header.Get("Content-Type") != "application/json" {
			t.Errorf("the lb's 401: %+v (%v), content type %q; want the gateway's body naming %s", body, err, res.Header.Get("Content-Type"), protocol.TicketPath)
		}
		_ = res.Body.Close()
	}
	const spentTicket = "spent-ticket-quoted-by-the-error-log"
	if _, res, _ := websocket.DefaultDialer.DialContext(ctx, "ws://"+down.Addr+"/ws?ticket="+spentTicket, nil); res == nil || res.StatusCode != http.StatusBadGateway {
		t.Fatalf("a ticket with the gateway down: %v, want 502 (proxied, not refused)", res)
	}
	testenv.Eventually(t, 10*time.Second, "nginx's error log quotes the failing request", func() bool {
		return strings.Contains(down.Logs(t), spentTicket)
	})

	// nginx logged the requests (the grep below is not vacuous), by path.
	testenv.Eventually(t, 10*time.Second, "nginx logged the run", func() bool {
		al := lb.AccessLog(t)
		return strings.Count(al, `"path":"/ws`) >= 6 && strings.Contains(al, `"path":"/v1/ticket"`) &&
			strings.Contains(al, `"path":"/v1/authenticate"`) && strings.Contains(al, `"status":401`)
	})
	logs := map[string]string{"nginx": lb.Logs(t), "nginx with the gateway down": down.Logs(t)}
	for name, p := range cs.procs {
		logs[name] = p.Output()
	}
	for where, text := range logs {
		if strings.TrimSpace(text) == "" {
			t.Errorf("%s logged nothing: the check would be vacuous", where)
		}
		for _, line := range strings.Split(text, "\n") {
			for what, s := range secrets {
				if s != "" && strings.Contains(line, s) {
					t.Errorf("%s logged the %s:\n%s", where, what, line)
				}
			}
		}
	}
	if t.Failed() {
		return
	}
	t.Logf("%d secrets checked in %d log lines", len(secrets), strings.Count(strings.Join(slices.Collect(mapValues(logs)), ""), "\n"))
}

func mapValues(m map[string]string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for _, v := range m {
			if !yield(v) {
				return
			}
		}
	}
}
