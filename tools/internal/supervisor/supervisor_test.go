package supervisor_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/wsmq/wsmq/pkg/testenv"
	"github.com/wsmq/wsmq/tools/internal/supervisor"
	"github.com/wsmq/wsmq/tools/internal/supervisor/supervisortest"
)

func ctxFor(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func alive(pid int) bool { return syscall.Kill(pid, 0) == nil }

func gone(t *testing.T, pid int) bool {
	t.Helper()
	err := syscall.Kill(pid, 0)
	return errors.Is(err, syscall.ESRCH)
}

func getStatus(t *testing.T, url string) int {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	_ = res.Body.Close()
	return res.StatusCode
}

func grpcServing(t *testing.T, addr string) {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cc.Close() }()
	res, err := healthpb.NewHealthClient(cc).Check(ctxFor(t, 5*time.Second), &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatalf("health check %s: %v", addr, err)
	}
	if res.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health of %s = %s, want SERVING", addr, res.GetStatus())
	}
}

// children returns the pids of this test process's live child processes.
func children(t *testing.T) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	me := strconv.Itoa(os.Getpid())
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...; comm may hold spaces, so cut at the last ')'.
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) > 1 && f[1] == me && f[0] != "Z" {
			pids = append(pids, pid)
		}
	}
	return pids
}

func TestStartMakesEveryProcessReadyAndStopLeavesNoProcess(t *testing.T) {
	cfg := supervisortest.Config(t)
	cfg.Gateways = 2
	s := supervisortest.Start(t, cfg)

	pids := s.PIDs()
	want := []string{"redis", "mongo", "auth", "publisher", "gateway-0", "gateway-1"}
	if len(pids) != len(want) {
		t.Fatalf("PIDs = %v, want %v", pids, want)
	}
	for _, name := range want {
		if pid := pids[name]; pid == 0 || !alive(pid) {
			t.Fatalf("%s: pid %d not alive (PIDs %v)", name, pid, pids)
		}
	}
	rdb := redis.NewClient(&redis.Options{Addr: s.RedisAddr()})
	defer func() { _ = rdb.Close() }()
	if err := rdb.Ping(ctxFor(t, 5*time.Second)).Err(); err != nil {
		t.Fatalf("redis ping: %v", err)
	}
	grpcServing(t, s.AuthAddr())
	grpcServing(t, s.PublisherAddr())
	for i := range s.Gateways() {
		if code := getStatus(t, "http://"+s.GatewayAdminAddr(i)+"/readyz"); code != http.StatusOK {
			t.Fatalf("gateway-%d /readyz = %d", i, code)
		}
	}
	if s.GatewayAddr(0) == s.GatewayAddr(1) {
		t.Fatalf("both gateways on %s", s.GatewayAddr(0))
	}
	if s.AdminToken() != supervisor.DevAdminToken || s.PublisherKey() != "" {
		t.Fatalf("dev secrets: admin %q key %q", s.AdminToken(), s.PublisherKey())
	}

	if err := s.Stop(ctxFor(t, 30*time.Second)); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	for name, pid := range pids {
		if !gone(t, pid) {
			t.Errorf("%s (pid %d) still exists after Stop", name, pid)
		}
	}
	if left := children(t); len(left) > 0 {
		t.Errorf("child processes left after Stop: %v", left)
	}
	if len(s.PIDs()) != 0 {
		t.Errorf("PIDs after Stop = %v", s.PIDs())
	}
}

func TestStartNamesTheBusyPortAndTheSettingThatChangesIt(t *testing.T) {
	base := supervisortest.Config(t)
	tests := []struct {
		name  string
		port  func(p *supervisor.Ports) int
		words []string
	}{
		{"redis", func(p *supervisor.Ports) int { return p.Redis }, []string{"(Redis)", "-redis-port", "WSMQ_RUN_REDIS_PORT"}},
		{"mongo", func(p *supervisor.Ports) int { return p.Mongo }, []string{"MongoDB", "-mongo-port", "WSMQ_RUN_MONGO_PORT"}},
		{"auth", func(p *supervisor.Ports) int { return p.Auth }, []string{"auth", "-auth-port", "WSMQ_RUN_AUTH_PORT"}},
		{"publisher admin", func(p *supervisor.Ports) int { return p.PublisherAdmin }, []string{"-publisher-admin-port", "WSMQ_RUN_PUBLISHER_ADMIN_PORT"}},
		{"gateway", func(p *supervisor.Ports) int { return p.Gateway }, []string{"(gateway)", "-gateway-port", "WSMQ_RUN_GATEWAY_PORT"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			port := tt.port(&base.Ports)
			l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = l.Close() }()
			s, err := supervisor.Start(ctxFor(t, 10*time.Second), base)
			if err == nil {
				_ = s.Stop(context.Background())
				t.Fatal("Start succeeded with a busy port")
			}
			var pe *supervisor.PortInUseError
			if !errors.As(err, &pe) || pe.Port != port {
				t.Fatalf("error %v (%T), want *PortInUseError for port %d", err, err, port)
			}
			msg := err.Error()
			for _, w := range append(tt.words, "port "+strconv.Itoa(port)) {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not mention %q", msg, w)
				}
			}
		})
	}
}

func TestKillIsNotReportedAndRestartBringsTheProcessBack(t *testing.T) {
	s := supervisortest.Start(t, supervisortest.Config(t))
	old := s.PIDs()["gateway-0"]
	if err := s.Kill("gateway-0"); err != nil {
		t.Fatalf("Kill: %v", err)
	}
	if !gone(t, old) {
		t.Fatalf("gateway pid %d alive after Kill", old)
	}
	if _, ok := s.PIDs()["gateway-0"]; ok {
		t.Fatalf("PIDs lists a killed process: %v", s.PIDs())
	}
	if err := s.Restart(ctxFor(t, 60*time.Second), "gateway-0"); err != nil {
		t.Fatalf("Restart after Kill: %v", err)
	}
	if code := getStatus(t, "http://"+s.GatewayAdminAddr(0)+"/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz after Restart = %d", code)
	}
	// Restart of a running process: a new pid, the old one gone.
	pub := s.PIDs()["publisher"]
	if err := s.Restart(ctxFor(t, 60*time.Second), "publisher"); err != nil {
		t.Fatalf("Restart publisher: %v", err)
	}
	if np := s.PIDs()["publisher"]; np == 0 || np == pub || !gone(t, pub) {
		t.Fatalf("publisher pid %d -> %d after Restart", pub, np)
	}
	grpcServing(t, s.PublisherAddr())
	select {
	case err := <-s.Exits():
		t.Fatalf("Kill/Restart reported as unexpected exit: %v", err)
	default:
	}
	if err := s.Kill("nope"); err == nil || !strings.Contains(err.Error(), "gateway-0") {
		t.Fatalf("Kill of an unknown name: %v, want an error listing the names", err)
	}
}

func TestCrashOfAProcessIsReportedOnExits(t *testing.T) {
	s := supervisortest.Start(t, supervisortest.Config(t))
	if err := syscall.Kill(s.PIDs()["auth"], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-s.Exits():
		if !strings.Contains(err.Error(), "auth exited unexpectedly") {
			t.Fatalf("Exits: %v", err)
		}
	case <-ctxFor(t, 10*time.Second).Done():
		t.Fatal("a crashed process was not reported")
	}
}

func TestRedisDataSurvivesStopOnlyWithPersistence(t *testing.T) {
	for _, persist := range []bool{true, false} {
		t.Run("persist="+strconv.FormatBool(persist), func(t *testing.T) {
			cfg := supervisortest.Config(t)
			cfg.Persist = persist
			s, err := supervisor.Start(ctxFor(t, 60*time.Second), cfg)
			if err != nil {
				t.Fatal(err)
			}
			rdb := redis.NewClient(&redis.Options{Addr: s.RedisAddr()})
			if err := rdb.Set(ctxFor(t, 5*time.Second), "k", "v", 0).Err(); err != nil {
				t.Fatal(err)
			}
			_ = rdb.Close()
			if err := s.Stop(ctxFor(t, 30*time.Second)); err != nil {
				t.Fatal(err)
			}

			s = supervisortest.Start(t, cfg) // same data dir and ports
			rdb = redis.NewClient(&redis.Options{Addr: s.RedisAddr()})
			defer func() { _ = rdb.Close() }()
			v, err := rdb.Get(ctxFor(t, 5*time.Second), "k").Result()
			switch {
			case persist && (err != nil || v != "v"):
				t.Fatalf("with persistence, after a restart GET k = %q, %v; want v", v, err)
			case !persist && !errors.Is(err, redis.Nil):
				t.Fatalf("without persistence, after a restart GET k = %q, %v; want nil", v, err)
			}
		})
	}
}

func TestFailedStartStopsWhatItStartedAndQuotesTheFailingLog(t *testing.T) {
	cfg := supervisortest.Config(t)
	cfg.GatewayEnv = []string{"WSMQ_GATEWAY_WORKERS=lots"}
	log := &testenv.SyncBuffer{}
	cfg.Log = log
	_, err := supervisor.Start(ctxFor(t, 60*time.Second), cfg)
	if err == nil {
		t.Fatal("Start succeeded with a malformed gateway setting")
	}
	if !strings.Contains(err.Error(), "gateway-0 exited before it was ready") || !strings.Contains(err.Error(), "WSMQ_GATEWAY_WORKERS") {
		t.Fatalf("error does not name the process and quote its log: %v", err)
	}
	if left := children(t); len(left) > 0 {
		t.Fatalf("child processes left after a failed Start: %v\n%s", left, log)
	}
	for _, name := range []string{"redis", "mongo", "auth", "publisher"} {
		if !strings.Contains(log.String(), name+" stopped") {
			t.Errorf("log does not show %s stopped:\n%s", name, log)
		}
	}
}

func TestStartWithoutDevModeGeneratesSecrets(t *testing.T) {
	cfg := supervisortest.Config(t)
	cfg.Dev = false
	s := supervisortest.Start(t, cfg)
	if len(s.AdminToken()) < 16 || len(s.PublisherKey()) < 16 || s.AdminToken() == supervisor.DevAdminToken {
		t.Fatalf("secrets outside dev mode: admin %d chars, key %d chars", len(s.AdminToken()), len(s.PublisherKey()))
	}
	grpcServing(t, s.PublisherAddr())
}

func TestSecondStackOnTheSameDataDirIsRefused(t *testing.T) {
	cfg := supervisortest.Config(t)
	s := supervisortest.Start(t, cfg)
	other, err := supervisor.FreePorts()
	if err != nil {
		t.Fatal(err)
	}
	second := cfg
	second.Ports = other
	if s2, err := supervisor.Start(ctxFor(t, 30*time.Second), second); err == nil {
		_ = s2.Stop(context.Background())
		t.Fatal("a second stack started on the same data dir")
	} else if !strings.Contains(err.Error(), "in use by another running stack") {
		t.Fatalf("error %v does not say the data dir is in use", err)
	}
	if err := s.Stop(ctxFor(t, 30*time.Second)); err != nil {
		t.Fatal(err)
	}
	// Released by Stop: the data dir is usable again.
	supervisortest.Start(t, second)
}
