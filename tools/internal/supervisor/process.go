package supervisor

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// pollInterval is the period of readiness checks.
const pollInterval = 20 * time.Millisecond

// spec says how to run one process of the stack and how to know it is ready.
type spec struct {
	name string
	bin  string
	args []string
	env  []string
	// readyLine, when set, is a prefix of an output line the process prints
	// once it serves; check runs only after that line.
	readyLine string
	// check answers nil once the process serves; it is polled.
	check func(ctx context.Context) error
}

// proc is one supervised process. It may be started again after it exits
// (Restart).
type proc struct {
	spec
	sink     *logSink
	onExit   func(name string, err error) // called for exits nobody asked for
	mu       sync.Mutex
	cmd      *exec.Cmd
	out      *lineWriter
	done     chan struct{} // closed when the current run exited
	sawLine  chan struct{} // closed when readyLine was printed
	exitErr  error
	stopping bool // the current run is being stopped on purpose
}

// start runs the process in its own process group (a Ctrl-C in the
// terminal reaches only the supervisor, which stops the children in order),
// killed by the kernel if the supervisor dies.
func (p *proc) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		select {
		case <-p.done:
		default:
			return fmt.Errorf("%s is already running (pid %d)", p.name, p.cmd.Process.Pid)
		}
	}
	cmd := exec.Command(p.bin, p.args...)
	cmd.Env = p.env
	sawLine := make(chan struct{})
	var once sync.Once
	out := &lineWriter{name: p.name, sink: p.sink}
	if p.readyLine != "" {
		out.onLine = func(l string) bool {
			if strings.HasPrefix(l, p.readyLine) {
				once.Do(func() { close(sawLine) })
			}
			return true
		}
	}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s (%s): %w", p.name, p.bin, err)
	}
	done := make(chan struct{})
	p.cmd, p.out, p.done, p.sawLine, p.exitErr, p.stopping = cmd, out, done, sawLine, nil, false
	p.sink.write("supervisor", fmt.Sprintf("started %s (pid %d)", p.name, cmd.Process.Pid))
	go func() {
		err := cmd.Wait()
		out.flush()
		// Anything left in the process group (there should be nothing) goes too.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		p.mu.Lock()
		p.exitErr = err
		expected := p.stopping
		p.mu.Unlock()
		close(done)
		if !expected && p.onExit != nil {
			p.onExit(p.name, err)
		}
	}()
	return nil
}

// current returns the running command's state (nil cmd: never started).
func (p *proc) current() (*exec.Cmd, chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd, p.done
}

// pid is the current run's pid, or 0 when it is not running.
func (p *proc) pid() int {
	cmd, done := p.current()
	if cmd == nil {
		return 0
	}
	select {
	case <-done:
		return 0
	default:
		return cmd.Process.Pid
	}
}

// waitReady polls the readiness check until it passes, the process exits
// or ctx ends; failures carry the process's last log lines.
func (p *proc) waitReady(ctx context.Context) error {
	p.mu.Lock()
	done, sawLine, out := p.done, p.sawLine, p.out
	p.mu.Unlock()
	exited := func() error {
		p.mu.Lock()
		err := p.exitErr
		p.mu.Unlock()
		return fmt.Errorf("%s exited before it was ready (%v); its last lines:\n%s", p.name, err, indent(out.lastLines()))
	}
	if p.readyLine != "" {
		select {
		case <-sawLine:
		case <-done:
			return exited()
		case <-ctx.Done():
			return fmt.Errorf("%s not ready: it never printed %q (%w); its last lines:\n%s", p.name, p.readyLine, ctx.Err(), indent(out.lastLines()))
		}
	}
	var last error
	for {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		last = p.check(cctx)
		cancel()
		if last == nil {
			return nil
		}
		select {
		case <-done:
			return exited()
		case <-ctx.Done():
			return fmt.Errorf("%s not ready: %w (last check: %v); its last lines:\n%s", p.name, ctx.Err(), last, indent(out.lastLines()))
		case <-time.After(pollInterval):
		}
	}
}

// stop sends SIGTERM to the process group and waits for the exit; after
// grace, or when ctx ends, it sends SIGKILL. Stopping a stopped process
// does nothing. It returns an error when the process had to be killed.
func (p *proc) stop(ctx context.Context, grace time.Duration) error {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	if cmd == nil {
		p.mu.Unlock()
		return nil
	}
	p.stopping = true
	p.mu.Unlock()
	select {
	case <-done:
		return nil
	default:
	}
	pid := cmd.Process.Pid
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	timer := time.NewTimer(grace)
	defer timer.Stop()
	var err error
	select {
	case <-done:
		p.sink.write("supervisor", fmt.Sprintf("%s stopped", p.name))
		return nil
	case <-timer.C:
		err = fmt.Errorf("%s (pid %d) did not exit within %s of SIGTERM: killed", p.name, pid, grace)
	case <-ctx.Done():
		err = fmt.Errorf("%s (pid %d) killed before it exited: %w", p.name, pid, ctx.Err())
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	<-done
	p.sink.write("supervisor", err.Error())
	return err
}

// kill sends SIGKILL (a crash) and waits for the exit.
func (p *proc) kill() error {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	if cmd == nil {
		p.mu.Unlock()
		return fmt.Errorf("%s was never started", p.name)
	}
	p.stopping = true
	p.mu.Unlock()
	select {
	case <-done:
		return fmt.Errorf("%s is not running", p.name)
	default:
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	<-done
	p.sink.write("supervisor", fmt.Sprintf("%s killed (SIGKILL)", p.name))
	return nil
}

func indent(s string) string {
	if s == "" {
		return "    (no output)"
	}
	return "    " + strings.ReplaceAll(s, "\n", "\n    ")
}

// errNotRunning marks calls about processes that are not part of the stack.
var errNotRunning = errors.New("no such process in the stack")
