package serve_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wsmq/wsmq/pkg/serve"
)

var quiet = slog.New(slog.DiscardHandler)

func TestReadyzAnswersTheSameJSONAndNeverErrorText(t *testing.T) {
	var up atomic.Bool
	h := serve.AdminHandler(serve.AdminOptions{Readiness: []serve.Readiness{
		{Name: "redis", Up: up.Load},
		{Name: "auth", Up: func() bool { return true }},
	}})
	for _, tc := range []struct {
		up   bool
		code int
		body string
	}{
		{false, http.StatusServiceUnavailable, `{"status":"unavailable","checks":{"auth":"up","redis":"down"}}`},
		{true, http.StatusOK, `{"status":"ok","checks":{"auth":"up","redis":"up"}}`},
	} {
		up.Store(tc.up)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
		if rec.Code != tc.code || strings.TrimSpace(rec.Body.String()) != tc.body || rec.Header().Get("Content-Type") != "application/json" {
			t.Errorf("up=%v: %d %q", tc.up, rec.Code, rec.Body.String())
		}
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/debug/pprof/", nil))
	if rec.Code != http.StatusNotFound {
		t.Errorf("pprof served without being enabled: %d", rec.Code)
	}
}

func TestProbeFollowsItsDependency(t *testing.T) {
	var fail atomic.Bool
	changes := make(chan bool, 16)
	p := &serve.Probe{Name: "dep", Interval: 5 * time.Millisecond, Log: quiet,
		Check: func(context.Context) error {
			if fail.Load() {
				return errors.New("down")
			}
			return nil
		},
		OnChange: func(up bool) { changes <- up }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	for _, want := range []bool{true, false, true} {
		select {
		case got := <-changes:
			if got != want || p.Up() != want {
				t.Fatalf("change %v (Up %v), want %v", got, p.Up(), want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no change to %v", want)
		}
		fail.Store(want) // next: the opposite
	}
}

// server records its Shutdown order and can be made to hang.
type server struct {
	name  string
	order *[]string
	mu    *sync.Mutex
	hang  bool
	stop  chan struct{}
}

func (s *server) Serve(ln net.Listener) error {
	<-s.stop
	return ln.Close()
}

func (s *server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	*s.order = append(*s.order, s.name)
	s.mu.Unlock()
	if s.hang {
		<-ctx.Done()
	}
	close(s.stop)
	return ctx.Err()
}

func TestGroupStopsServersInOrderWithinOneDeadline(t *testing.T) {
	var order []string
	var mu sync.Mutex
	g := serve.NewGroup(quiet)
	for _, s := range []*server{
		{name: "public", hang: true},
		{name: "admin"},
	} {
		s.order, s.mu, s.stop = &order, &mu, make(chan struct{})
		if _, err := g.Listen(s.name, "WSMQ_TEST", "127.0.0.1:0", s); err != nil {
			t.Fatal(err)
		}
	}
	var loopStopped atomic.Bool
	g.Go(func(ctx context.Context) { <-ctx.Done(); loopStopped.Store(true) })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx, 200*time.Millisecond) }()
	cancel()
	t0 := time.Now()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return past its deadline")
	}
	if d := time.Since(t0); d > 2*time.Second {
		t.Fatalf("stop took %v with a 200ms deadline", d)
	}
	if strings.Join(order, ",") != "public,admin" || !loopStopped.Load() {
		t.Fatalf("stop order %v, loop stopped %v", order, loopStopped.Load())
	}
}

func TestListenErrorNamesTheSetting(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ln.Close() }()
	g := serve.NewGroup(quiet)
	_, err = g.Listen("admin", "WSMQ_X_ADMIN_LISTEN", ln.Addr().String(), serve.NewHTTP(http.NotFoundHandler(), quiet))
	if err == nil || !strings.Contains(err.Error(), "set WSMQ_X_ADMIN_LISTEN to change it") {
		t.Fatalf("busy port: %v", err)
	}
}

func TestHTTPServerFailureStopsTheGroup(t *testing.T) {
	g := serve.NewGroup(quiet)
	h := serve.NewHTTP(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") }), quiet)
	addr, err := g.Listen("http", "WSMQ_X", "127.0.0.1:0", h)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- g.Run(context.Background(), time.Second) }()
	res, err := http.Get("http://" + addr.String())
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	_ = h.Close() // the server dies on its own: Run must return
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "http stopped unexpectedly") {
			t.Fatalf("Run = %v, want the unexpected stop reported", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run kept running after its server stopped")
	}
}
