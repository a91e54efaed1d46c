package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wsmq/wsmq/pkg/testenv"
	gwclient "github.com/wsmq/wsmq/services/gateway/client"
	"github.com/wsmq/wsmq/services/gateway/protocol"
	"github.com/wsmq/wsmq/services/publisher/client"
	"github.com/wsmq/wsmq/tools/internal/supervisor"
	"github.com/wsmq/wsmq/tools/internal/supervisor/supervisortest"
)

// binDir returns a directory laid out like bin/ after `make build tools`,
// with freshly built binaries, and wsmq-run's path.
func binDir(t *testing.T) (dir, run string) {
	t.Helper()
	cfg := supervisortest.Config(t) // builds the services; skips/fails without redis-server or mongowire
	dir = t.TempDir()
	links := map[string]string{
		"wsmq-auth":      cfg.AuthBin,
		"wsmq-publisher": cfg.PublisherBin,
		"wsmq-gateway":   cfg.GatewayBin,
		"wsmq-mongowire": cfg.MongoBin,
		"wsmq-run":       testenv.Build(t, "github.com/wsmq/wsmq/tools/wsmq-run"),
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	return dir, filepath.Join(dir, "wsmq-run")
}

func portFlags(p supervisor.Ports) []string {
	var args []string
	for _, s := range p.Settings() {
		args = append(args, "-"+s.Flag, strconv.Itoa(*s.Port))
	}
	return args
}

// runProc is wsmq-run as a child process with its output captured.
type runProc struct {
	cmd    *exec.Cmd
	out    testenv.SyncBuffer
	lines  chan string // every stdout line, for waiters
	done   chan struct{}
	exit   error
	stderr testenv.SyncBuffer
}

func startRun(t *testing.T, bin string, args ...string) *runProc {
	t.Helper()
	p := &runProc{lines: make(chan string, 4096), done: make(chan struct{})}
	var envFlags []string
	for _, kv := range supervisortest.Env() {
		envFlags = append(envFlags, "-env", kv)
	}
	p.cmd = exec.Command(bin, append(envFlags, args...)...)
	p.cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stderr = &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			_, _ = p.out.Write([]byte(sc.Text() + "\n"))
			select {
			case p.lines <- sc.Text():
			default:
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	go func() {
		<-copied
		p.exit = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Signal(syscall.SIGKILL)
			<-p.done
		}
		testenv.CheckNoDataRace(t, "wsmq-run", p.output()+p.errOutput())
		if t.Failed() {
			t.Logf("--- wsmq-run stdout:\n%s\n--- stderr:\n%s", p.output(), p.errOutput())
		}
	})
	return p
}

func (p *runProc) output() string { return p.out.String() }

func (p *runProc) errOutput() string { return p.stderr.String() }

// waitLine returns the first stdout line starting with prefix.
func (p *runProc) waitLine(t *testing.T, prefix string, timeout time.Duration) string {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case l := <-p.lines:
			if strings.HasPrefix(l, prefix) {
				return l
			}
		case <-p.done:
			t.Fatalf("wsmq-run exited (%v) before printing %q", p.exit, prefix)
		case <-deadline:
			t.Fatalf("wsmq-run did not print %q within %s", prefix, timeout)
		}
	}
}

func (p *runProc) wait(t *testing.T, timeout time.Duration) error {
	t.Helper()
	select {
	case <-p.done:
		return p.exit
	case <-time.After(timeout):
		t.Fatalf("wsmq-run still running %s later", timeout)
		return nil
	}
}

// parsePIDs reads "wsmq-run: pids redis=1 mongo=2 ...".
func parsePIDs(t *testing.T, line string) map[string]int {
	t.Helper()
	pids := map[string]int{}
	for _, f := range strings.Fields(strings.TrimPrefix(line, "wsmq-run: pids")) {
		name, v, _ := strings.Cut(f, "=")
		pid, err := strconv.Atoi(v)
		if err != nil {
			t.Fatalf("pids line %q: %v", line, err)
		}
		pids[name] = pid
	}
	for _, n := range []string{"redis", "mongo", "auth", "publisher", "gateway-0"} {
		if pids[n] == 0 {
			t.Fatalf("pids line %q lacks %s", line, n)
		}
	}
	return pids
}

func assertGone(t *testing.T, pids map[string]int) {
	t.Helper()
	for name, pid := range pids {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("%s (pid %d) is still there after wsmq-run exited (kill 0: %v)", name, pid, err)
		}
	}
}

// TestWsmqRunServesAMessageAndCtrlCLeavesNoProcess is `make run`'s smoke
// test: wsmq-run as a child process on free ports, readiness from its
// output, a message from the publisher to a websocket, then SIGINT: exit 0,
// every child gone, Redis data saved.
func TestWsmqRunServesAMessageAndCtrlCLeavesNoProcess(t *testing.T) {
	dir, bin := binDir(t)
	ports, err := supervisor.FreePorts()
	if err != nil {
		t.Fatal(err)
	}
	data := t.TempDir()
	p := startRun(t, bin, append([]string{"-data", data, "-bin", dir}, portFlags(ports)...)...)

	ready := p.waitLine(t, "wsmq-run: ready in ", 90*time.Second)
	secs, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimPrefix(ready, "wsmq-run: ready in "), "s"), 64)
	if err != nil || secs <= 0 {
		t.Fatalf("ready line %q", ready)
	}
	pids := parsePIDs(t, p.waitLine(t, "wsmq-run: pids ", 5*time.Second))
	p.waitLine(t, "  Ctrl-C stops everything.", 5*time.Second)

	gw := "http://127.0.0.1:" + strconv.Itoa(ports.Gateway)
	out := p.output()
	for _, want := range []string{
		"demo / demo",
		gw + "/demo",
		"login --user demo",
		"--gateway " + gw,
		"listen",
		" send ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("next steps do not mention %q:\n%s", want, out)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sess, err := gwclient.Login(ctx, gw, "demo", "demo")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "send "+sess.UserID+" ") {
		t.Errorf("the printed send command does not target the demo user's queue %s", sess.UserID)
	}
	// The printed curl example publishes through the HTTP API.
	httpAPI := "127.0.0.1:" + strconv.Itoa(ports.PublisherHTTP)
	_, curl, ok := strings.Cut(out, "curl -sS ")
	curl, _, _ = strings.Cut(curl, "\n")
	if !ok || !strings.Contains(curl, httpAPI+"/v1/queues/QUEUE/messages") {
		t.Fatalf("no curl example for the HTTP API at %s:\n%s", httpAPI, out)
	}
	curlOut, err := exec.CommandContext(ctx, "bash", "-c", "curl -sS "+strings.Replace(curl, "QUEUE", sess.UserID+"-curl", 1)).CombinedOutput()
	if err != nil || !strings.Contains(string(curlOut), `{"id":"`) {
		t.Fatalf("the printed curl example: %v %s", err, curlOut)
	}
	ws, err := gwclient.Dial(ctx, gw, gwclient.Options{Token: sess.Token, AccessToken: sess.AccessToken})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ws.Close() }()
	if err := ws.Subscribe(ctx, sess.UserID); err != nil {
		t.Fatal(err)
	}
	pub, err := client.Dial(ctx, "127.0.0.1:"+strconv.Itoa(ports.Publisher), client.Options{Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = pub.Close() }()
	id, err := pub.Send(ctx, sess.UserID, "smoke", 0)
	if err != nil {
		t.Fatal(err)
	}
	f, err := ws.Next(ctx)
	if m, ok := f.(*protocol.Message); err != nil || !ok || m.ID != id || m.Message != "smoke" {
		t.Fatalf("received %#v, %v; want message %s", f, err, id)
	}

	if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if err := p.wait(t, 45*time.Second); err != nil {
		t.Fatalf("wsmq-run exit after SIGINT: %v, want status 0", err)
	}
	assertGone(t, pids)
	if !strings.Contains(p.output(), "wsmq-run: stopped; no process left") {
		t.Errorf("no final stop line")
	}
	for _, f := range []string{"redis/dump.rdb", "redis/appendonlydir"} {
		if _, err := os.Stat(filepath.Join(data, f)); err != nil {
			t.Errorf("Redis persistence: %v", err)
		}
	}
}

func TestWsmqRunStopsEverythingAndFailsWhenAProcessCrashes(t *testing.T) {
	dir, bin := binDir(t)
	ports, err := supervisor.FreePorts()
	if err != nil {
		t.Fatal(err)
	}
	p := startRun(t, bin, append([]string{"-bin", dir, "-persist=false"}, portFlags(ports)...)...)
	p.waitLine(t, "wsmq-run: ready in ", 90*time.Second)
	pids := parsePIDs(t, p.waitLine(t, "wsmq-run: pids ", 5*time.Second))
	if err := syscall.Kill(pids["publisher"], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err = p.wait(t, 45*time.Second)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("wsmq-run exit after a crash: %v, want status 1", err)
	}
	if !strings.Contains(p.errOutput(), "publisher exited unexpectedly") {
		t.Errorf("stderr does not name the crashed process: %s", p.errOutput())
	}
	assertGone(t, pids)
}

func TestWsmqRunRefusesABusyPortNamingTheFlagAndVariable(t *testing.T) {
	dir, bin := binDir(t)
	ports, err := supervisor.FreePorts()
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(ports.Redis))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	p := startRun(t, bin, append([]string{"-bin", dir}, portFlags(ports)...)...)
	err = p.wait(t, 30*time.Second)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("exit: %v, want status 1", err)
	}
	want := "port " + strconv.Itoa(ports.Redis) + " (Redis) is in use: stop the other Redis or run with -redis-port / WSMQ_RUN_REDIS_PORT"
	if !strings.Contains(p.errOutput(), want) {
		t.Fatalf("stderr %q does not contain %q", p.errOutput(), want)
	}
}

func TestParseConfigTakesFlagsOverEnvAndNamesBadValues(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		check   func(c config) bool
		wantErr string
	}{
		{"defaults are make run's", nil, nil, func(c config) bool {
			p := c.stack.Ports
			return c.stack.Persist && c.stack.Dev && c.stack.Gateways == 1 && p.Redis == 6379 && p.Mongo == 27017 &&
				p.Auth == 9091 && p.Publisher == 9092 && p.Gateway == 3000
		}, ""},
		{"env sets a port", nil, map[string]string{"WSMQ_RUN_REDIS_PORT": "7000"}, func(c config) bool { return c.stack.Ports.Redis == 7000 }, ""},
		{"flag beats env", []string{"-redis-port", "7001"}, map[string]string{"WSMQ_RUN_REDIS_PORT": "7000"}, func(c config) bool { return c.stack.Ports.Redis == 7001 }, ""},
		{"persistence off", []string{"-persist=false"}, nil, func(c config) bool { return !c.stack.Persist }, ""},
		{"extra service env", []string{"-env", "WSMQ_LOG_LEVEL=debug"}, nil, func(c config) bool {
			return len(c.stack.Env) == 1 && c.stack.Env[0] == "WSMQ_LOG_LEVEL=debug"
		}, ""},
		{"bad env port", nil, map[string]string{"WSMQ_RUN_GATEWAY_PORT": "x"}, nil, "WSMQ_RUN_GATEWAY_PORT"},
		{"bad env bool", nil, map[string]string{"WSMQ_RUN_PERSIST": "maybe"}, nil, "WSMQ_RUN_PERSIST"},
		{"bad -env", []string{"-env", "novalue"}, nil, nil, "KEY=VALUE"},
		{"no gateways", []string{"-gateways", "0"}, nil, nil, "-gateways"},
		{"no replicas or sentinels by default", nil, nil, func(c config) bool { return c.stack.RedisReplicas == 0 && c.stack.Sentinels == 0 }, ""},
		{"replicas and sentinels by flag", []string{"-redis-replicas", "1", "-sentinels", "3"}, nil, func(c config) bool {
			return c.stack.RedisReplicas == 1 && c.stack.Sentinels == 3
		}, ""},
		{"replicas and sentinels by env", nil, map[string]string{"WSMQ_RUN_REDIS_REPLICAS": "2", "WSMQ_RUN_SENTINELS": "5"}, func(c config) bool {
			return c.stack.RedisReplicas == 2 && c.stack.Sentinels == 5
		}, ""},
		{"negative replicas", []string{"-redis-replicas", "-1"}, nil, nil, "-redis-replicas"},
		{"bad env sentinels", nil, map[string]string{"WSMQ_RUN_SENTINELS": "three"}, nil, "WSMQ_RUN_SENTINELS"},
		{"stray argument", []string{"now"}, nil, nil, "unexpected arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseConfig(tt.args, env(tt.env))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one naming %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(c) {
				t.Fatalf("config %+v", c.stack)
			}
		})
	}
}

func TestWsmqRunSecondSignalKillsWhatIsLeft(t *testing.T) {
	dir, bin := binDir(t)
	ports, err := supervisor.FreePorts()
	if err != nil {
		t.Fatal(err)
	}
	p := startRun(t, bin, append([]string{"-bin", dir, "-persist=false"}, portFlags(ports)...)...)
	p.waitLine(t, "wsmq-run: ready in ", 90*time.Second)
	pids := parsePIDs(t, p.waitLine(t, "wsmq-run: pids ", 5*time.Second))
	if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	p.waitLine(t, "wsmq-run: interrupt: stopping", 10*time.Second)
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// Either the stop finished before the second signal (exit 0) or the
	// rest was killed (exit 1); in both cases nothing is left.
	err = p.wait(t, 30*time.Second)
	var ee *exec.ExitError
	if err != nil && (!errors.As(err, &ee) || ee.ExitCode() != 1) {
		t.Fatalf("exit after two signals: %v", err)
	}
	assertGone(t, pids)
}
