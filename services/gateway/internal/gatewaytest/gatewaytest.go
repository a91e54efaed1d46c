// Package gatewaytest starts the gateway's real neighbourhood for tests:
// redis-server, the MongoDB-wire server and the auth binary, then gateway
// (and, on demand, publisher) binaries, all on free loopback ports and
// stopped when the test ends. The gateway's own tests and its client's
// tests share it.
package gatewaytest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	authv1 "github.com/wsmq/wsmq/gen/wsmq/auth/v1"
	publisherv1 "github.com/wsmq/wsmq/gen/wsmq/publisher/v1"
	"github.com/wsmq/wsmq/pkg/redisconn"
	"github.com/wsmq/wsmq/pkg/rsmq"
	"github.com/wsmq/wsmq/pkg/testenv"
)

// The keys file lets tests mint JWTs the auth service accepts (e.g. expired
// ones); the secret exists only in test processes.
const (
	KID        = "test1"
	Secret     = "test-secret-0123456789-abcdefghijklmnop"
	AdminToken = "test-admin-token-0123456789"
	// GatewayToken is the credential of auth's revocation stream; every
	// gateway of the stack holds it.
	GatewayToken = "test-gateway-token-0123456789"
)

// Wait bounds every start-up and every wait of a test step.
const Wait = 15 * time.Second

// Stack is a real Redis, a real MongoDB-wire server and the auth binary;
// gateways and publishers are started on demand.
type Stack struct {
	t        testing.TB
	Redis    *testenv.Redis // the first master (StartHA: the sentinels may promote another node)
	HA       *testenv.HA    // the nodes and sentinels of StartHA; nil for Start
	RedisURL string         // every service's WSMQ_REDIS_URL
	RDB      *redis.Client  // follows the master under StartHA
	Queues   *rsmq.Client   // sends with realtime notifications, like the publisher
	AuthAddr string
	Auth     authv1.AuthServiceClient
	// AuthMetrics is the auth process's metrics listener (host:port).
	AuthMetrics string

	GatewayBin string
	GatewayEnv []string // every gateway's environment (before StartGateway's own)
}

// Start starts the stack; gatewayEnv is added to every gateway's environment.
func Start(t testing.TB, gatewayEnv ...string) *Stack {
	t.Helper()
	r := testenv.StartRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	return start(t, r, nil, r.URL(), rdb, nil, gatewayEnv)
}

// StartAuthEnv is Start with authEnv added to the auth process's
// environment (e.g. a short WSMQ_JWT_TTL).
func StartAuthEnv(t testing.TB, authEnv []string, gatewayEnv ...string) *Stack {
	t.Helper()
	r := testenv.StartRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	return start(t, r, nil, r.URL(), rdb, authEnv, gatewayEnv)
}

// StartHA is Start on a Redis master with replicas under Sentinel
// (testenv.StartHA): every service gets the redis+sentinel:// URL, and RDB
// is a failover client.
func StartHA(t testing.TB, opts testenv.HAOptions, gatewayEnv ...string) *Stack {
	t.Helper()
	ha := testenv.StartHA(t, opts)
	rdb, err := redisconn.New(ha.URL(), redisconn.Tuning{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
	return start(t, ha.Nodes[0], ha, ha.URL(), rdb, nil, gatewayEnv)
}

func start(t testing.TB, r *testenv.Redis, ha *testenv.HA, url string, rdb *redis.Client, authEnv, gatewayEnv []string) *Stack {
	t.Helper()
	m := testenv.StartMongo(t)
	authBin := testenv.Build(t, "github.com/wsmq/wsmq/services/auth")
	gwBin := testenv.Build(t, "github.com/wsmq/wsmq/services/gateway")

	keys := filepath.Join(t.TempDir(), "jwt-keys")
	if err := os.WriteFile(keys, []byte(KID+" "+Secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	authAddr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	authMetrics := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	ap := testenv.StartProcess(t, "auth", authBin, append([]string{
		"WSMQ_MONGO_URI=" + m.URI(), "WSMQ_AUTH_LISTEN=" + authAddr,
		"WSMQ_AUTH_METRICS_LISTEN=" + authMetrics,
		"WSMQ_JWT_KEYS_FILE=" + keys, "WSMQ_AUTH_ADMIN_TOKEN=" + AdminToken, "WSMQ_BCRYPT_COST=10",
		"WSMQ_AUTH_GATEWAY_TOKEN=" + GatewayToken,
		"WSMQ_MONGO_TIMEOUT=2s",
	}, authEnv...), "serve")
	ctx, cancel := context.WithTimeout(context.Background(), Wait)
	defer cancel()
	ap.WaitDial(ctx, authAddr)

	cc, err := grpc.NewClient(authAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return &Stack{
		t: t, Redis: r, HA: ha, RedisURL: url, RDB: rdb,
		Queues:   rsmq.New(rdb, rsmq.Options{Realtime: true}),
		AuthAddr: authAddr, Auth: authv1.NewAuthServiceClient(cc), AuthMetrics: authMetrics,
		GatewayBin: gwBin,
		GatewayEnv: append([]string{
			"WSMQ_REDIS_URL=" + url, "WSMQ_AUTH_ADDR=" + authAddr, "WSMQ_LOG_LEVEL=debug",
			"WSMQ_AUTH_GATEWAY_TOKEN=" + GatewayToken,
			// A race-enabled auth (go test -race) needs seconds for one
			// bcrypt login on a loaded machine; the default 3s is too tight.
			"WSMQ_AUTH_TIMEOUT=15s",
		}, gatewayEnv...),
	}
}

// Gateway is a running gateway process.
type Gateway struct {
	P     *testenv.Process
	Addr  string // host:port
	Admin string // admin listener host:port (/readyz /metrics)
	env   []string
}

// URL is the gateway's base URL, http://host:port.
func (g *Gateway) URL() string { return "http://" + g.Addr }

// StartGateway starts a gateway process with env added to the stack's
// gateway environment, and waits until it is ready.
func (s *Stack) StartGateway(env ...string) *Gateway {
	s.t.Helper()
	return s.startGatewayAt(fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(s.t)), fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(s.t)), env)
}

func (s *Stack) startGatewayAt(addr, admin string, env []string) *Gateway {
	s.t.Helper()
	full := append(append([]string{"WSMQ_GATEWAY_LISTEN=" + addr, "WSMQ_GATEWAY_ADMIN_LISTEN=" + admin}, s.GatewayEnv...), env...)
	p := testenv.StartProcess(s.t, "gateway "+addr, s.GatewayBin, full)
	ctx, cancel := context.WithTimeout(context.Background(), Wait)
	defer cancel()
	p.WaitHTTP(ctx, "http://"+admin+"/readyz")
	return &Gateway{P: p, Addr: addr, Admin: admin, env: env}
}

// WaitFollowingRevocations waits until g has subscribed to the auth
// service's revocation stream (its "following revocations" log line).
func (g *Gateway) WaitFollowingRevocations(t testing.TB) {
	t.Helper()
	testenv.Eventually(t, Wait, "gateway "+g.Addr+" follows revocations", func() bool {
		return strings.Contains(g.P.Output(), `"msg":"following revocations"`)
	})
}

// RestartGateway stops g gracefully (SIGTERM: in-flight messages go back
// to their queues, sockets close with 1001) and starts a new gateway
// process on the same address and environment.
func (s *Stack) RestartGateway(g *Gateway) *Gateway {
	s.t.Helper()
	if err := g.P.Terminate(Wait); err != nil {
		s.t.Fatalf("gateway %s exit: %v", g.Addr, err)
	}
	return s.startGatewayAt(g.Addr, g.Admin, g.env)
}

// StartPublisher starts a dev-mode (keyless) publisher process on the
// stack's Redis and returns its gRPC address.
func (s *Stack) StartPublisher() string {
	s.t.Helper()
	return s.StartPublisherEnv()
}

// StartPublisherEnv is StartPublisher with env added to its environment.
func (s *Stack) StartPublisherEnv(env ...string) string {
	s.t.Helper()
	return s.StartPublisherAdmin(env...).Addr
}

// DialPublisher is a plaintext PublisherService client for the publisher
// at addr, closed when the test ends.
func (s *Stack) DialPublisher(addr string) publisherv1.PublisherServiceClient {
	s.t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { _ = cc.Close() })
	return publisherv1.NewPublisherServiceClient(cc)
}

// Publisher is a running publisher process.
type Publisher struct {
	P     *testenv.Process
	Addr  string // gRPC host:port
	Admin string // admin listener host:port (/readyz /metrics)
}

// StartPublisherAdmin is StartPublisherEnv returning the process and its
// admin address too.
func (s *Stack) StartPublisherAdmin(env ...string) *Publisher {
	s.t.Helper()
	bin := testenv.Build(s.t, "github.com/wsmq/wsmq/services/publisher")
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(s.t))
	admin := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(s.t))
	p := testenv.StartProcess(s.t, "publisher "+addr, bin, append([]string{
		"WSMQ_DEV=1", "WSMQ_REDIS_URL=" + s.RedisURL, "WSMQ_PUBLISHER_LISTEN=" + addr,
		"WSMQ_PUBLISHER_ADMIN_LISTEN=" + admin,
	}, env...))
	ctx, cancel := context.WithTimeout(context.Background(), Wait)
	defer cancel()
	p.WaitDial(ctx, addr)
	return &Publisher{P: p, Addr: addr, Admin: admin}
}

// AdminContext carries the auth admin credential, bounded by Wait.
func (s *Stack) AdminContext() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), Wait)
	s.t.Cleanup(cancel)
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+AdminToken)
}

// CreateUser creates user name with password "password-<name>" and
// returns the password.
func (s *Stack) CreateUser(name string) string {
	s.t.Helper()
	pw := "password-" + name
	if _, err := s.Auth.CreateUser(s.AdminContext(), &authv1.CreateUserRequest{UserName: name, Password: pw}); err != nil {
		s.t.Fatalf("create user %s: %v", name, err)
	}
	return pw
}

// Send puts msg on queue q (creating the queue) with a realtime
// notification, as the publisher does, and returns its id.
func (s *Stack) Send(q, msg string) string {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Wait)
	defer cancel()
	id, err := s.Queues.SendMessage(ctx, q, msg, rsmq.QueueDefault)
	if errors.Is(err, rsmq.ErrQueueNotFound) {
		if _, err := s.Queues.EnsureQueue(ctx, q, rsmq.DefaultQueueConfig()); err != nil {
			s.t.Fatal(err)
		}
		id, err = s.Queues.SendMessage(ctx, q, msg, rsmq.QueueDefault)
	}
	if err != nil {
		s.t.Fatalf("send to %s: %v", q, err)
	}
	return id
}

// Attrs returns queue q's attributes.
func (s *Stack) Attrs(q string) *rsmq.QueueAttributes {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Wait)
	defer cancel()
	a, err := s.Queues.GetQueueAttributes(ctx, q)
	if err != nil {
		s.t.Fatalf("attributes of %s: %v", q, err)
	}
	return a
}
