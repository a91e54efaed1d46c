// Package supervisortest starts wsmq's whole stack for tests: it builds the
// service binaries (once per test binary), picks free ports and a temp data
// dir, and stops the stack when the test ends.
package supervisortest

import (
	"context"
	"io"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/wsmq/wsmq/pkg/testenv"
	"github.com/wsmq/wsmq/tools/internal/supervisor"
)

// Env are the settings Config gives every service of a test stack. Under go
// test -race the services are race-enabled, and one bcrypt login of such an
// auth takes seconds at the default cost (12): auth hashes at cost 10 (the
// least it accepts outside dev mode) and the gateway waits up to 15s for it.
func Env() []string { return []string{"WSMQ_BCRYPT_COST=10", "WSMQ_AUTH_TIMEOUT=15s"} }

// Config returns a dev-mode configuration with the freshly built binaries,
// free ports, the test's temp dir as data dir and Env. A missing redis-server or
// wsmq-mongowire fails the test under CI=true and skips it elsewhere.
func Config(t testing.TB) supervisor.Config {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		unavailable(t, "redis-server not found: install it with `apt-get install -y --no-install-recommends redis-server` (or run `make deps`)")
	}
	mongo, err := testenv.MongoBinary()
	if err != nil {
		unavailable(t, "locate wsmq-mongowire: %v", err)
	}
	if _, err := os.Stat(mongo); err != nil {
		unavailable(t, "%s not found: build it with `make tools`", mongo)
	}
	ports, err := supervisor.FreePorts()
	if err != nil {
		t.Fatal(err)
	}
	return supervisor.Config{
		AuthBin:      testenv.Build(t, "github.com/wsmq/wsmq/services/auth"),
		PublisherBin: testenv.Build(t, "github.com/wsmq/wsmq/services/publisher"),
		GatewayBin:   testenv.Build(t, "github.com/wsmq/wsmq/services/gateway"),
		MongoBin:     mongo,
		DataDir:      t.TempDir(),
		Ports:        ports,
		Dev:          true,
		Env:          Env(),
		ReadyTimeout: 60 * time.Second,
	}
}

// Start starts the stack described by cfg (usually from Config). Its log is
// shown when the test fails, or live on stderr with WSMQ_STACK_LOG=1 (or
// written to cfg.Log when set). The stack is stopped when the test ends, and
// the test fails when a process of the stack reported a data race (service
// binaries from Config are race-enabled under go test -race).
func Start(t testing.TB, cfg supervisor.Config) *supervisor.Stack {
	t.Helper()
	log := &testenv.SyncBuffer{}
	live := cfg.Log
	if live == nil && os.Getenv("WSMQ_STACK_LOG") == "1" {
		live = os.Stderr
	}
	cfg.Log = log
	if live != nil {
		cfg.Log = io.MultiWriter(live, log)
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.ReadyTimeout*3+10*time.Second)
	defer cancel()
	s, err := supervisor.Start(ctx, cfg)
	if err != nil {
		t.Fatalf("supervisor: start the stack: %v\n%s", err, log)
	}
	t.Cleanup(func() {
		if err := s.Stop(context.Background()); err != nil {
			t.Errorf("supervisor: stop: %v", err)
		}
		testenv.CheckNoDataRace(t, "the stack", log.String())
		if t.Failed() && live == nil {
			t.Logf("--- stack log:\n%s", log)
		}
	})
	return s
}

func unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("supervisortest: "+format, args...)
	}
	t.Skipf("supervisortest: "+format+" (this test fails instead of skipping when CI=true)", args...)
}
