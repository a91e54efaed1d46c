// Command composetest drives wsmq's docker compose end-to-end test
// (scripts/compose-e2e.sh runs it). It starts the stack with the project's
// unchanged docker-compose.yml through the compose command it is given,
// then, from the host: creates users with `compose exec`, logs in and holds
// websockets through the lb's host port, sends through the publisher's host
// port with a caller key, and checks delivery across a gateway scale-out, a
// `docker kill` of the gateway holding unacknowledged messages, a Redis
// restart and kill, and a `compose down` + `up`. It prints each phase's time.
//
// It does not tear the stack down: the script does, on every exit path.
// Secrets come from the environment (WSMQ_PUBLISHER_KEY), never argv.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"time"

	gwclient "github.com/wsmq/wsmq/services/gateway/client"
	"github.com/wsmq/wsmq/services/gateway/protocol"
	"github.com/wsmq/wsmq/services/publisher/client"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "composetest: FAIL:", err)
		os.Exit(1)
	}
	fmt.Println("composetest: all phases passed")
}

type stack struct {
	compose   []string // command and its global flags (-p, --env-file, -f)
	httpURL   string   // the lb on the host
	pubAddr   string   // the publisher on the host
	pub       *client.Client
	passwords map[string]string
	users     map[string]gwclient.Session
	nodes     map[string]string // ha: a Redis node's address -> its service
	master    string            // ha: the service the Sentinels promoted
	killed    string            // ha: the container id of the killed master
}

func run() error {
	composeCmd := flag.String("compose", "docker-compose", "compose command and global flags, space-separated")
	httpURL := flag.String("http", "http://127.0.0.1:3000", "the lb on the host")
	pubAddr := flag.String("publisher", "127.0.0.1:9092", "the publisher's gRPC on the host")
	healthy := flag.Duration("healthy-within", 90*time.Second, "bound for every service to be healthy after `up` returns")
	buildBound := flag.Duration("up-within", 15*time.Minute, "bound for `up -d --build` (image build included)")
	scenario := flag.String("scenario", "main", "main, or ha (the compose command must carry --profile ha)")
	network := flag.String("network", "", "the project's network (ha: a gateway is disconnected from it)")
	flag.Parse()
	key := os.Getenv("WSMQ_PUBLISHER_KEY")
	if key == "" {
		return errors.New("WSMQ_PUBLISHER_KEY is not set")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()

	s := &stack{compose: strings.Fields(*composeCmd), httpURL: *httpURL, pubAddr: *pubAddr,
		passwords: map[string]string{}, users: map[string]gwclient.Session{}}
	pub, err := client.Dial(ctx, *pubAddr, client.Options{Key: key, Insecure: true})
	if err != nil {
		return err
	}
	defer func() { _ = pub.Close() }()
	s.pub = pub

	total := time.Now()
	type phase struct {
		name string
		f    func(context.Context) error
	}
	up := phase{"up --build, every service healthy", func(ctx context.Context) error {
		t := time.Now()
		if _, err := s.c(ctx, *buildBound, "", "up", "-d", "--build"); err != nil {
			return err
		}
		fmt.Printf("composetest:   up -d --build returned after %.1fs\n", time.Since(t).Seconds())
		return s.waitHealthy(ctx, *healthy)
	}}
	phases := []phase{up,
		{"non-root, read-only root filesystem, image sizes", s.checkContainers},
		{"users, login, websocket, send", s.basic},
		{"scale gateway=3, clients spread", s.scale},
		{"docker kill of the gateway holding unacked messages", s.killGateway},
		{"redis restart and kill, queued messages survive", s.redisRestart},
		{"down + up, users and queued messages kept", s.downUp},
	}
	switch *scenario {
	case "main":
	case "ha":
		if *network == "" {
			return errors.New("-scenario ha needs -network")
		}
		services = append(services, haServices...)
		phases = []phase{up,
			{"sentinels know the master, both replicas and each other", func(ctx context.Context) error { return s.sentinelsReady(ctx, *network) }},
			{"docker kill of the redis master, sends before and after delivered", s.killMaster},
			{"the old master started again becomes a replica", s.oldMasterReturns},
			{"gateway cut off from redis: not ready, then ready again", func(ctx context.Context) error { return s.cutGateway(ctx, *network) }},
		}
	default:
		return fmt.Errorf("-scenario %q: want main or ha", *scenario)
	}
	for _, p := range phases {
		t := time.Now()
		fmt.Printf("composetest: == %s\n", p.name)
		if err := p.f(ctx); err != nil {
			s.dumpLogs()
			return fmt.Errorf("%s: %w", p.name, err)
		}
		fmt.Printf("composetest: == %s: ok in %.1fs\n", p.name, time.Since(t).Seconds())
	}
	fmt.Printf("composetest: total %.1fs\n", time.Since(total).Seconds())
	return nil
}

// c runs a compose subcommand; stdin is fed to it when not "".
func (s *stack) c(ctx context.Context, bound time.Duration, stdin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	argv := append(append([]string{}, s.compose[1:]...), args...)
	cmd := exec.CommandContext(ctx, s.compose[0], argv...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("compose %s: %w\n%s", strings.Join(args, " "), err, tail(out.String(), 60))
	}
	return out.String(), nil
}

func docker(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("docker %s: %w: %s", strings.Join(args, " "), err, tail(string(out), 20))
	}
	return strings.TrimSpace(string(out)), nil
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func (s *stack) dumpLogs() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, _ := s.c(ctx, time.Minute, "", "ps")
	fmt.Fprintln(os.Stderr, "--- compose ps:\n"+out)
	out, _ = s.c(ctx, time.Minute, "", "logs", "--no-color", "--tail", "40")
	fmt.Fprintln(os.Stderr, "--- compose logs (last 40 lines per container):\n"+out)
}

var services = []string{"redis", "mongo", "auth", "publisher", "gateway", "lb"}

// containers returns the ids of the running containers of service.
func (s *stack) containers(ctx context.Context, service string) ([]string, error) {
	out, err := s.c(ctx, time.Minute, "", "ps", "-q", service)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, id := range strings.Fields(out) {
		if running, _ := docker(ctx, "inspect", "-f", "{{.State.Running}}", id); running == "true" {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

// waitHealthy waits until every running container of every service reports
// healthy (and each service has at least one), and prints how long it took.
func (s *stack) waitHealthy(ctx context.Context, bound time.Duration) error {
	t := time.Now()
	deadline := t.Add(bound)
	for {
		var waiting []string
		for _, svc := range services {
			ids, err := s.containers(ctx, svc)
			if err != nil {
				return err
			}
			if len(ids) == 0 {
				waiting = append(waiting, svc+"(none running)")
			}
			for _, id := range ids {
				st, _ := docker(ctx, "inspect", "-f", "{{.State.Health.Status}}", id)
				if st != "healthy" {
					waiting = append(waiting, svc+"("+st+")")
				}
			}
		}
		if len(waiting) == 0 {
			fmt.Printf("composetest:   every service healthy after %.1fs\n", time.Since(t).Seconds())
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not healthy within %s: %s", bound, strings.Join(waiting, " "))
		}
		time.Sleep(time.Second)
	}
}

// checkContainers: the three service containers run as a non-root user on a
// read-only root filesystem; prints the sizes of their images.
func (s *stack) checkContainers(ctx context.Context) error {
	for _, svc := range []string{"auth", "publisher", "gateway"} {
		ids, err := s.containers(ctx, svc)
		if err != nil || len(ids) == 0 {
			return fmt.Errorf("%s: no container (%v)", svc, err)
		}
		out, err := docker(ctx, "inspect", "-f", "{{.Config.User}}|{{.HostConfig.ReadonlyRootfs}}|{{.Config.Image}}", ids[0])
		if err != nil {
			return err
		}
		f := strings.Split(out, "|")
		user, ro, image := f[0], f[1], f[2]
		if user == "" || user == "0" || strings.HasPrefix(user, "root") || strings.HasPrefix(user, "0:") {
			return fmt.Errorf("%s runs as user %q", svc, user)
		}
		if ro != "true" {
			return fmt.Errorf("%s: root filesystem is not read-only", svc)
		}
		// The process itself, as the kernel sees it.
		top, err := docker(ctx, "top", ids[0], "-o", "pid,uid,comm")
		if err != nil {
			return err
		}
		lines := strings.Split(top, "\n")
		for _, l := range lines[1:] {
			if fs := strings.Fields(l); len(fs) > 1 && fs[1] == "0" {
				return fmt.Errorf("%s: a process runs as uid 0: %s", svc, l)
			}
		}
		size, err := docker(ctx, "image", "inspect", "-f", "{{.Size}}", image)
		if err != nil {
			return err
		}
		n, _ := strconv.ParseInt(size, 10, 64)
		fmt.Printf("composetest:   %-9s image %-22s %5.1f MB, user %s, read-only rootfs, processes: %s\n",
			svc, image, float64(n)/1e6, user, strings.Join(lines[1:], "; "))
	}
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// addUser creates a user with `compose exec` (the password on stdin) and
// logs it in through the lb.
func (s *stack) addUser(ctx context.Context, name string) (gwclient.Session, error) {
	pw := randomHex(16)
	out, err := s.c(ctx, time.Minute, pw+"\n", "exec", "-T", "auth", "/usr/local/bin/wsmq-auth", "user", "add", name)
	if err != nil {
		return gwclient.Session{}, err
	}
	if !strings.Contains(out, "created user "+name) {
		return gwclient.Session{}, fmt.Errorf("user add %s: %q", name, out)
	}
	s.passwords[name] = pw
	return s.login(ctx, name)
}

func (s *stack) login(ctx context.Context, name string) (gwclient.Session, error) {
	var last error
	for i := 0; i < 20; i++ {
		ses, err := gwclient.Login(ctx, s.httpURL, name, s.passwords[name])
		if err == nil {
			s.users[name] = ses
			return ses, nil
		}
		last = err
		time.Sleep(500 * time.Millisecond)
	}
	return gwclient.Session{}, last
}

// dial opens a websocket through the lb and subscribes to the user's queue,
// retrying while a replica goes away.
func (s *stack) dial(ctx context.Context, name, ack string) (*gwConn, []*protocol.Message, error) {
	ses := s.users[name]
	var last error
	for i := 0; i < 30; i++ {
		c, err := dialGateway(ctx, s.httpURL, ses, ack)
		if err == nil {
			early, err := c.Subscribe(ses.UserID, 10*time.Second)
			if err == nil {
				return c, early, nil
			}
			_ = c.Close()
		}
		last = err
		time.Sleep(500 * time.Millisecond)
	}
	return nil, nil, fmt.Errorf("websocket for %s: %w", name, last)
}

func (s *stack) send(ctx context.Context, queue string, msgs []string) error {
	for _, m := range msgs {
		if _, err := s.pub.Send(ctx, queue, m, 0); err != nil {
			return fmt.Errorf("send %q to %s: %w", m, queue, err)
		}
	}
	return nil
}

func batch(prefix string, n int) []string {
	var out []string
	for i := 1; i <= n; i++ {
		out = append(out, fmt.Sprintf("%s-%d-%s", prefix, i, randomHex(4)))
	}
	return out
}

// collect reads messages on c until every one of want arrived (duplicates,
// an at-least-once delivery, are allowed), acking each in manual mode.
func collect(c *gwConn, early []*protocol.Message, want []string, manualAck bool, timeout time.Duration) ([]*protocol.Message, error) {
	missing := map[string]bool{}
	for _, m := range want {
		missing[m] = true
	}
	var got []*protocol.Message
	take := func(f *protocol.Message) error {
		got = append(got, f)
		delete(missing, f.Message)
		if manualAck {
			return c.Ack(f.ID)
		}
		return nil
	}
	for _, f := range early {
		if err := take(f); err != nil {
			return got, err
		}
	}
	deadline := time.Now().Add(timeout)
	for len(missing) > 0 {
		fs, err := c.Messages(1, time.Until(deadline))
		if err != nil {
			return got, fmt.Errorf("%d of %d messages missing: %w", len(missing), len(want), err)
		}
		if err := take(fs[0]); err != nil {
			return got, err
		}
	}
	return got, nil
}

func (s *stack) basic(ctx context.Context) error {
	for i := 1; i <= 6; i++ {
		if _, err := s.addUser(ctx, fmt.Sprintf("e2e-user-%d", i)); err != nil {
			return err
		}
	}
	fmt.Printf("composetest:   6 users created with compose exec, logged in through the lb at %s\n", s.httpURL)
	c, early, err := s.dial(ctx, "e2e-user-1", "")
	if err != nil {
		return err
	}
	defer func() { _ = c.Close() }()
	want := batch("hello", 3)
	if err := s.send(ctx, s.users["e2e-user-1"].UserID, want); err != nil {
		return err
	}
	if _, err := collect(c, early, want, false, 15*time.Second); err != nil {
		return err
	}
	fmt.Printf("composetest:   3 messages sent to %s with a caller key arrived on the websocket\n", s.pubAddr)
	// A wrong caller key is refused.
	bad, err := client.Dial(ctx, s.pubAddr, client.Options{Key: "not-a-key-" + randomHex(8), Insecure: true,
		Retry: client.Retry{MaxAttempts: 1}})
	if err != nil {
		return err
	}
	defer func() { _ = bad.Close() }()
	if _, err := bad.Send(ctx, s.users["e2e-user-1"].UserID, "x", 0); status.Code(err) != codes.Unauthenticated {
		return fmt.Errorf("send with a wrong key: %v, want Unauthenticated", err)
	}
	return nil
}

// metric reads one unlabelled sample from a gateway replica's /metrics,
// straight at the container's address on the compose network.
func metric(ctx context.Context, id, name string) (float64, error) {
	ip, err := docker(ctx, "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", id)
	if err != nil {
		return 0, err
	}
	ip = strings.Fields(ip + " ")[0]
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+ip+":9193/metrics", nil)
	cl := http.Client{Timeout: 5 * time.Second}
	res, err := cl.Do(req)
	if err != nil {
		return 0, err
	}
	defer func() { _ = res.Body.Close() }()
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 2 && f[0] == name {
			return strconv.ParseFloat(f[1], 64)
		}
	}
	return 0, fmt.Errorf("%s: no %s in /metrics", id[:12], name)
}

func (s *stack) gatewayMetric(ctx context.Context, name string) (map[string]float64, error) {
	ids, err := s.containers(ctx, "gateway")
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for _, id := range ids {
		v, err := metric(ctx, id, name)
		if err != nil {
			return nil, err
		}
		out[id] = v
	}
	return out, nil
}

func short(m map[string]float64) string {
	var parts []string
	for id, v := range m {
		parts = append(parts, fmt.Sprintf("%s=%g", id[:12], v))
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}

// held are the websockets opened by scale, closed by killGateway.
var held []*gwConn

func (s *stack) scale(ctx context.Context) error {
	// A client connected before the scale-out keeps working during it.
	c, early, err := s.dial(ctx, "e2e-user-2", "")
	if err != nil {
		return err
	}
	held = append(held, c)
	if _, err := s.c(ctx, 5*time.Minute, "", "up", "-d", "--no-recreate", "--scale", "gateway=3"); err != nil {
		return err
	}
	if err := s.waitHealthy(ctx, 90*time.Second); err != nil {
		return err
	}
	ids, _ := s.containers(ctx, "gateway")
	if len(ids) != 3 {
		return fmt.Errorf("%d gateway replicas running, want 3", len(ids))
	}
	want := batch("during-scale", 2)
	if err := s.send(ctx, s.users["e2e-user-2"].UserID, want); err != nil {
		return err
	}
	if _, err := collect(c, early, want, false, 15*time.Second); err != nil {
		return fmt.Errorf("client connected before the scale-out: %w", err)
	}
	// nginx re-resolves "gateway" every 5 s (resolver valid=5s).
	time.Sleep(6 * time.Second)
	before, err := s.gatewayMetric(ctx, "wsmq_gateway_connections")
	if err != nil {
		return err
	}
	const n = 30
	for i := 0; i < n; i++ {
		c, _, err := s.dial(ctx, fmt.Sprintf("e2e-user-%d", 3+i%4), "")
		if err != nil {
			return err
		}
		held = append(held, c)
	}
	after, err := s.gatewayMetric(ctx, "wsmq_gateway_connections")
	if err != nil {
		return err
	}
	added := map[string]float64{}
	for id, v := range after {
		added[id] = v - before[id]
	}
	fmt.Printf("composetest:   %d new websockets through the lb per replica: %s\n", n, short(added))
	for id, v := range added {
		if v < 1 {
			return fmt.Errorf("replica %s got none of %d new connections: %s", id[:12], n, short(added))
		}
	}
	return nil
}

func (s *stack) killGateway(ctx context.Context) error {
	user := "e2e-user-1"
	c, early, err := s.dial(ctx, user, "manual")
	if err != nil {
		return err
	}
	defer func() { _ = c.Close() }()
	before, err := s.gatewayMetric(ctx, "wsmq_gateway_delivered_total")
	if err != nil {
		return err
	}
	want := batch("unacked", 5)
	if err := s.send(ctx, s.users[user].UserID, want); err != nil {
		return err
	}
	// Received, deliberately not acked: they are in flight, hidden in Redis.
	if _, err := collect(c, early, want, false, 15*time.Second); err != nil {
		return err
	}
	after, err := s.gatewayMetric(ctx, "wsmq_gateway_delivered_total")
	if err != nil {
		return err
	}
	var holder string
	for id, v := range after {
		if v-before[id] >= float64(len(want)) {
			holder = id
		}
	}
	if holder == "" {
		return fmt.Errorf("no replica delivered the %d messages: before %s, after %s", len(want), short(before), short(after))
	}
	conns, _ := metric(ctx, holder, "wsmq_gateway_connections")
	t := time.Now()
	if _, err := docker(ctx, "kill", holder); err != nil {
		return err
	}
	fmt.Printf("composetest:   docker kill %s (held the %d unacked messages and %g websockets)\n", holder[:12], len(want), conns)
	_ = c.Close()
	for _, h := range held {
		_ = h.Close()
	}
	held = nil

	c2, early2, err := s.dial(ctx, user, "manual")
	if err != nil {
		return err
	}
	defer func() { _ = c2.Close() }()
	fmt.Printf("composetest:   reconnected through the lb %.1fs after the kill\n", time.Since(t).Seconds())
	// The killed replica could not return them: they reappear after the
	// visibility timeout (30 s from their delivery), are found by the next
	// sweep (5 s) and come again with rc raised.
	got, err := collect(c2, early2, want, true, 90*time.Second)
	if err != nil {
		return err
	}
	for _, f := range got {
		if f.RC < 2 {
			return fmt.Errorf("redelivered message %s has rc %d, want >= 2", f.ID, f.RC)
		}
	}
	if running, _ := docker(ctx, "inspect", "-f", "{{.State.Running}}", holder); running == "true" {
		return fmt.Errorf("killed replica %s is running again", holder[:12])
	}
	fmt.Printf("composetest:   all %d redelivered (rc >= 2) through another replica %.1fs after the kill; killed replica still down\n",
		len(want), time.Since(t).Seconds())
	// Back to one replica for the next phases.
	if _, err := s.c(ctx, 2*time.Minute, "", "up", "-d", "--no-recreate", "--scale", "gateway=1"); err != nil {
		return err
	}
	return s.waitHealthy(ctx, 90*time.Second)
}

func (s *stack) redisRestart(ctx context.Context) error {
	user := "e2e-user-2"
	q := s.users[user].UserID
	// Queued while nobody listens.
	a := batch("before-restart", 10)
	if err := s.send(ctx, q, a); err != nil {
		return err
	}
	t := time.Now()
	if _, err := s.c(ctx, 2*time.Minute, "", "restart", "redis"); err != nil {
		return err
	}
	if err := s.waitHealthy(ctx, 90*time.Second); err != nil {
		return err
	}
	// SIGTERM: Redis writes and fsyncs the AOF before it exits; this case
	// relies on --appendonly yes alone (any appendfsync).
	fmt.Printf("composetest:   compose restart redis (SIGTERM; relies on --appendonly yes): healthy again after %.1fs\n", time.Since(t).Seconds())
	b := batch("before-kill", 10)
	if err := s.sendRetry(ctx, q, b); err != nil {
		return err
	}
	// SIGKILL right after the last acknowledged send, no wait for a fsync:
	// Redis write()s the AOF before it replies, and killing the process does
	// not lose the kernel's page cache, so this relies on --appendonly yes;
	// --appendfsync everysec is what bounds a power cut or kernel crash to
	// about a second, which no container test can show.
	t = time.Now()
	if _, err := s.c(ctx, time.Minute, "", "kill", "redis"); err != nil {
		return err
	}
	if _, err := s.c(ctx, time.Minute, "", "start", "redis"); err != nil {
		return err
	}
	if err := s.waitHealthy(ctx, 90*time.Second); err != nil {
		return err
	}
	fmt.Printf("composetest:   compose kill redis (SIGKILL) + start (relies on --appendonly yes: AOF written before the reply): healthy again after %.1fs\n", time.Since(t).Seconds())
	c, early, err := s.dial(ctx, user, "manual")
	if err != nil {
		return err
	}
	defer func() { _ = c.Close() }()
	want := append(append([]string{}, a...), b...)
	if _, err := collect(c, early, want, true, 30*time.Second); err != nil {
		return err
	}
	fmt.Printf("composetest:   all %d queued messages delivered after the restart and the kill\n", len(want))
	// The stack works on after both: a live send arrives.
	live := batch("after-redis", 1)
	if err := s.sendRetry(ctx, q, live); err != nil {
		return err
	}
	_, err = collect(c, nil, live, true, 15*time.Second)
	return err
}

// sendRetry sends, retrying while the publisher reconnects to Redis.
func (s *stack) sendRetry(ctx context.Context, queue string, msgs []string) error {
	for _, m := range msgs {
		var err error
		for i := 0; i < 30; i++ {
			if _, err = s.pub.Send(ctx, queue, m, 0); err == nil {
				break
			}
			time.Sleep(500 * time.Millisecond)
		}
		if err != nil {
			return fmt.Errorf("send %q: %w", m, err)
		}
	}
	return nil
}

func (s *stack) downUp(ctx context.Context) error {
	user := "e2e-user-3"
	q := s.users[user].UserID
	want := batch("across-down", 5)
	if err := s.send(ctx, q, want); err != nil {
		return err
	}
	if _, err := s.c(ctx, 3*time.Minute, "", "down"); err != nil {
		return err
	}
	t := time.Now()
	if _, err := s.c(ctx, 5*time.Minute, "", "up", "-d"); err != nil {
		return err
	}
	if err := s.waitHealthy(ctx, 90*time.Second); err != nil {
		return err
	}
	fmt.Printf("composetest:   down, then up -d: every service healthy after %.1fs\n", time.Since(t).Seconds())
	// The user survived (mongo-data volume): a fresh login with its password.
	if _, err := s.login(ctx, user); err != nil {
		return fmt.Errorf("login after down/up: %w", err)
	}
	c, early, err := s.dial(ctx, user, "manual")
	if err != nil {
		return err
	}
	defer func() { _ = c.Close() }()
	if _, err := collect(c, early, want, true, 30*time.Second); err != nil {
		return err
	}
	fmt.Printf("composetest:   user logged in again and its %d queued messages arrived (volumes kept)\n", len(want))
	return nil
}
