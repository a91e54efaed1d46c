// Package testenv starts the real servers wsmq's tests talk to: a
// redis-server and a MongoDB-wire-protocol server (FerretDB, embedded in
// bin/wsmq-mongowire), each on a free loopback port, stopped by t.Cleanup.
//
// A server that cannot be started fails the test under CI=true and skips it
// elsewhere, with a message naming the command that installs what is missing.
package testenv

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// startTimeout bounds how long a server may take to accept connections.
const startTimeout = 20 * time.Second

// Unavailable reports a missing prerequisite: a failure under CI=true (CI
// must never silently run less), a skip on a developer machine.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CI") == "true" {
		t.Fatalf("testenv: %s", msg)
	}
	t.Skipf("testenv: %s (this test fails instead of skipping when CI=true)", msg)
}

// LookPath returns the path of a program a test cannot do without;
// missing, it is Unavailable (hint says how to install it).
func LookPath(t testing.TB, name, hint string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Unavailable(t, "%s not found: %s", name, hint)
	}
	return p
}

// RepoRoot returns the repository root: the nearest directory upwards from the
// working directory that holds go.work.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.work found above the working directory")
		}
		dir = parent
	}
}

// Ports FreePort picks from: below the kernel's ephemeral range, which
// every outgoing connection (and every listen on port 0) draws from, so a
// port handed out here is not taken by one of those between the check and
// the server's own bind.
const (
	freePortLow      = 10000
	ephemeralDefault = 32768 // Linux's default ip_local_port_range start
	freePortTries    = 200
)

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago,
// chosen at random below the ephemeral port range (see freePortLow).
func FreePort(t testing.TB) int {
	t.Helper()
	high := ephemeralStart()
	for range freePortTries {
		port := freePortLow + rand.IntN(high-freePortLow)
		if l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port)); err == nil {
			_ = l.Close()
			return port
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0") // the range is crowded: any port
	if err != nil {
		t.Fatalf("testenv: free port: %v", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	return port
}

// ephemeralStart is the first port of the kernel's ephemeral range.
func ephemeralStart() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return ephemeralDefault
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return ephemeralDefault
	}
	if n, err := strconv.Atoi(f[0]); err == nil && n > freePortLow+1000 {
		return n
	}
	return ephemeralDefault
}

// WaitDial waits until addr accepts TCP connections or the deadline passes.
func WaitDial(ctx context.Context, addr string) error {
	var d net.Dialer
	for {
		c, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			return c.Close()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s did not accept connections: %w", addr, err)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// KeyspaceEvents is the notify-keyspace-events value of test servers:
// keyevent (E) and keyspace (K) events of sorted sets (z), so tests can
// run the gateway in either keyspace wake mode.
const KeyspaceEvents = "KEz"

// Redis is a redis-server process owned by a test.
type Redis struct {
	t    testing.TB
	bin  string
	dir  string
	port int
	args []string // extra arguments (replicaof, ...)

	mu  sync.Mutex
	cmd *exec.Cmd
	out *strings.Builder
}

// StartRedis starts a redis-server on a free loopback port without
// persistence, with keyspace notifications of sorted sets on (`make run`
// and compose run it with "Ez": they wake gateways for every sender), stopped
// when the test ends.
func StartRedis(t testing.TB) *Redis {
	t.Helper()
	return StartRedisWith(t)
}

// StartRedisWith is StartRedis with extra redis-server arguments, which
// override the defaults (e.g. "--notify-keyspace-events", "" for none).
func StartRedisWith(t testing.TB, args ...string) *Redis {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		Unavailable(t, "redis-server not found: install it with `apt-get install -y --no-install-recommends redis-server` (or run `make deps`)")
	}
	r := &Redis{t: t, bin: bin, dir: t.TempDir(), port: FreePort(t), args: args}
	r.Start()
	t.Cleanup(r.Stop)
	return r
}

// Addr is the server's host:port.
func (r *Redis) Addr() string { return "127.0.0.1:" + strconv.Itoa(r.port) }

// URL is the server's redis:// URL, database 0.
func (r *Redis) URL() string { return "redis://" + r.Addr() + "/0" }

// Start (re)starts the server on its port; it returns once the server
// accepts connections. Starting a running server is a test failure.
func (r *Redis) Start() {
	r.t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd != nil {
		r.t.Fatalf("testenv: redis on %s already running", r.Addr())
	}
	cmd := exec.Command(r.bin,
		"--port", strconv.Itoa(r.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", r.dir,
		"--protected-mode", "no", "--daemonize", "no", "--loglevel", "warning",
		"--repl-diskless-sync-delay", "0", "--notify-keyspace-events", KeyspaceEvents)
	cmd.Args = append(cmd.Args, r.args...)
	out := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		r.t.Fatalf("testenv: start redis-server: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if err := WaitDial(ctx, r.Addr()); err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		r.t.Fatalf("testenv: redis-server: %v; output:\n%s", err, out)
	}
	r.cmd, r.out = cmd, out
}

// Stop kills the server (SIGKILL: to clients it looks like a crash) and
// waits for it to exit. Stopping a stopped server does nothing.
func (r *Redis) Stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Kill()
	_ = r.cmd.Wait()
	r.cmd = nil
}

// Signal sends sig to the running server (SIGSTOP freezes it, SIGCONT
// resumes it); a stopped server is a test failure.
func (r *Redis) Signal(sig syscall.Signal) {
	r.t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil {
		r.t.Fatalf("testenv: signal %v to redis on %s: not running", sig, r.Addr())
	}
	if err := r.cmd.Process.Signal(sig); err != nil {
		r.t.Fatalf("testenv: signal %v to redis on %s: %v", sig, r.Addr(), err)
	}
}

// Mongo is a MongoDB-wire-protocol server process owned by a test.
type Mongo struct {
	uri string
	cmd *exec.Cmd
}

// MongoBinary returns the path of the MongoDB-wire dev server binary,
// bin/wsmq-mongowire under the repository root, or WSMQ_MONGOWIRE_BIN.
func MongoBinary() (string, error) {
	if p := os.Getenv("WSMQ_MONGOWIRE_BIN"); p != "" {
		return p, nil
	}
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, "bin", "wsmq-mongowire"), nil
}

// StartMongo starts the MongoDB-wire server (FerretDB, SQLite backend, data
// in a temp dir) on a free loopback port, stopped when the test ends.
func StartMongo(t testing.TB) *Mongo {
	t.Helper()
	bin, err := MongoBinary()
	if err != nil {
		Unavailable(t, "locate wsmq-mongowire: %v", err)
	}
	if _, err := os.Stat(bin); err != nil {
		Unavailable(t, "%s not found: build it with `make tools`", bin)
	}
	cmd := exec.Command(bin, "-listen", "127.0.0.1:0", "-data", t.TempDir())
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	stderr := &strings.Builder{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("testenv: start %s: %v", bin, err)
	}
	m := &Mongo{cmd: cmd}
	t.Cleanup(m.Stop)

	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		if sc.Scan() {
			line <- sc.Text()
		}
		close(line)
		// Drain the rest so the child never blocks on a full pipe.
		for sc.Scan() {
		}
	}()
	select {
	case uri, ok := <-line:
		if !ok || !strings.HasPrefix(uri, "mongodb://") {
			t.Fatalf("testenv: wsmq-mongowire printed no URI (%q); stderr:\n%s", uri, stderr)
		}
		m.uri = uri
	case <-time.After(startTimeout):
		t.Fatalf("testenv: wsmq-mongowire did not start within %s; stderr:\n%s", startTimeout, stderr)
	}
	return m
}

// URI is the server's mongodb:// URI.
func (m *Mongo) URI() string { return m.uri }

// Stop kills the server and waits for it. Stopping twice does nothing.
func (m *Mongo) Stop() {
	if m.cmd == nil {
		return
	}
	_ = m.cmd.Process.Kill()
	_ = m.cmd.Wait()
	m.cmd = nil
}
