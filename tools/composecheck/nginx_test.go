package composecheck

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wsmq/wsmq/pkg/testenv"
)

// startNginx is testenv.StartNginx: the shipped deploy/nginx.conf.
func startNginx(t *testing.T, upstream string) *testenv.Nginx { return testenv.StartNginx(t, upstream) }

func TestLoadBalancerConfigIsAFullMainConfigWithRoomForConnectionsAndNoQueryStringsInItsLog(t *testing.T) {
	conf, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy", "nginx.conf"))
	if err != nil {
		t.Fatal(err)
	}
	c := string(conf)
	m := regexp.MustCompile(`(?m)^\s*worker_connections\s+(\d+);`).FindStringSubmatch(c)
	if m == nil || !strings.Contains(c, "events {") {
		t.Fatal("deploy/nginx.conf has no events { worker_connections }: it is not a main config")
	}
	if n, _ := strconv.Atoi(m[1]); n < 8192 {
		t.Fatalf("worker_connections %d: the stock 1024 caps the lb at ~512 websockets; want at least 8192", n)
	}
	lf := regexp.MustCompile(`(?s)log_format\s+wsmq\s.*?;`).FindString(c)
	if lf == "" || !regexp.MustCompile(`(?m)^\s*access_log\s+\S+\s+wsmq;`).MatchString(c) {
		t.Fatal("deploy/nginx.conf does not log with its own wsmq log_format")
	}
	for _, v := range []string{"$request ", "$request\"", "$request'", "$request_uri", "$args", "$query_string", "$arg_", "$is_args",
		"$http_authorization", "$http_x_token", "$http_x_access_token", "$http_cookie", "$http_referer", "$http_sec_websocket_protocol"} {
		if strings.Contains(lf, v) {
			t.Errorf("log_format wsmq logs %s", v)
		}
	}
}

// TestLoadBalancerConfigProxiesHTTPAndWebsocketsToTheGateway runs Debian's
// nginx with deploy/nginx.conf (the lb service's config) in front of a
// stand-in gateway on loopback: a websocket upgrades through it and echoes,
// the client's Host reaches the gateway (its same-origin check needs it),
// and /lb-healthz answers. Docker's DNS (127.0.0.11) does not exist here, so
// the upstream name is replaced by the stand-in's address; the re-resolution
// that spreads scaled replicas is not exercised.
func TestLoadBalancerConfigProxiesHTTPAndWebsocketsToTheGateway(t *testing.T) {
	// The stand-in gateway: echoes websocket frames, reports the Host and
	// X-Forwarded-For it received on plain HTTP.
	up := websocket.Upgrader{CheckOrigin: func(r *http.Request) bool { return true }}
	mux := http.NewServeMux()
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer func() { _ = c.Close() }()
		for {
			mt, b, err := c.ReadMessage()
			if err != nil {
				return
			}
			if err := c.WriteMessage(mt, append([]byte("echo "+r.Host+" "), b...)); err != nil {
				return
			}
		}
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		_, _ = fmt.Fprintf(w, "host=%s xff=%s", r.Host, r.Header.Get("X-Forwarded-For"))
	})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	served := make(chan struct{})
	go func() { defer close(served); _ = srv.Serve(lis) }()
	t.Cleanup(func() { _ = srv.Close(); <-served })

	lb := startNginx(t, lis.Addr().String()).Addr
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	// Plain HTTP: the client's Host (with port) and its address pass through.
	res, err := http.Get("http://" + lb + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	_ = res.Body.Close()
	if want := "host=" + lb + " xff=127.0.0.1"; string(body) != want {
		t.Fatalf("gateway saw %q, want %q", body, want)
	}

	// Websocket: the upgrade goes through and frames flow both ways.
	c, resp, err := websocket.DefaultDialer.DialContext(ctx, "ws://"+lb+"/ws", http.Header{"Origin": {"http://" + lb}})
	if err != nil {
		t.Fatalf("websocket through the lb: %v (response %v)", err, resp)
	}
	defer func() { _ = c.Close() }()
	for i := range 3 {
		msg := "/subscribe/q" + strconv.Itoa(i)
		if err := c.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, b, err := c.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		if want := "echo " + lb + " " + msg; string(b) != want {
			t.Fatalf("frame %q, want %q", b, want)
		}
	}
}
