package testenv

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildMu    sync.Mutex
	buildCache = map[string]string{}
	buildDir   string
)

// Build compiles the main package pkg (an import path in the workspace,
// e.g. "github.com/wsmq/wsmq/services/auth") once per test binary and
// returns the executable's path. When the test binary runs under the race
// detector (go test -race), so does the built program: a data race in a
// service fails the black-box test that started it (see StartProcess).
func Build(t testing.TB, pkg string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if p, ok := buildCache[pkg]; ok {
		return p
	}
	if buildDir == "" {
		d, err := os.MkdirTemp("", "wsmq-testbin-")
		if err != nil {
			t.Fatalf("testenv: %v", err)
		}
		buildDir = d
	}
	out := filepath.Join(buildDir, filepath.Base(pkg))
	root, err := RepoRoot()
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	args := []string{"build"}
	if raceEnabled {
		args = append(args, "-race")
	}
	cmd := exec.Command("go", append(args, "-o", out, pkg)...)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("testenv: go build %s: %v\n%s", pkg, err, b)
	}
	buildCache[pkg] = out
	return out
}

// Process is a child process owned by a test; its output is kept and shown
// when the test fails.
type Process struct {
	t    testing.TB
	name string
	cmd  *exec.Cmd
	out  *SyncBuffer
	done chan struct{}
	err  error
}

// StartProcess runs bin with args and env (added to a minimal environment),
// killed by t.Cleanup if still running. The test fails when the process
// reported a data race (a binary from Build under go test -race).
func StartProcess(t testing.TB, name, bin string, env []string, args ...string) *Process {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}, env...)
	out := &SyncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("testenv: start %s: %v", name, err)
	}
	p := &Process{t: t, name: name, cmd: cmd, out: out, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.Kill()
		CheckNoDataRace(t, name, p.Output())
		if t.Failed() {
			t.Logf("--- %s output:\n%s", name, p.Output())
		}
	})
	return p
}

// Output is everything the process wrote so far.
func (p *Process) Output() string { return p.out.String() }

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Kill sends SIGKILL (a crash) and waits for the exit.
func (p *Process) Kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}

// Terminate sends SIGTERM and waits up to timeout for a clean exit; it
// returns the exit error (nil for status 0).
func (p *Process) Terminate(timeout time.Duration) error {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		p.Kill()
		return fmt.Errorf("%s did not exit within %s of SIGTERM", p.name, timeout)
	}
}

// WaitHTTP polls url until it answers 200 or ctx ends, failing fast if the
// process exits.
func (p *Process) WaitHTTP(ctx context.Context, url string) {
	p.t.Helper()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		res, err := http.DefaultClient.Do(req)
		if err == nil {
			_ = res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-p.done:
			p.t.Fatalf("testenv: %s exited before %s was ready: %v\n%s", p.name, url, p.err, p.Output())
		case <-ctx.Done():
			p.t.Fatalf("testenv: %s not ready at %s: %v\n%s", p.name, url, ctx.Err(), p.Output())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// WaitDial waits until the process accepts TCP connections on addr.
func (p *Process) WaitDial(ctx context.Context, addr string) {
	p.t.Helper()
	for {
		dctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		err := WaitDial(dctx, addr)
		cancel()
		if err == nil {
			return
		}
		select {
		case <-p.done:
			p.t.Fatalf("testenv: %s exited before listening on %s: %v\n%s", p.name, addr, p.err, p.Output())
		case <-ctx.Done():
			p.t.Fatalf("testenv: %s not listening on %s: %v\n%s", p.name, addr, ctx.Err(), p.Output())
		default:
		}
	}
}
