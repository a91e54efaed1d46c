package composecheck

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wsmq/wsmq/pkg/testenv"
)

// nginx is Debian's nginx running deploy/nginx.conf, the lb's whole main
// config, on loopback.
type nginx struct {
	Addr string // host:port
	dir  string
}

// Logs is everything nginx logged: the access log and the error log.
func (n *nginx) Logs(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	for _, name := range []string{"access.log", "error.log"} {
		data, err := os.ReadFile(filepath.Join(n.dir, name))
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		b.Write(data)
	}
	return b.String()
}

// AccessLog is the access log.
func (n *nginx) AccessLog(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(n.dir, "access.log"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return string(data)
}

// startNginx runs deploy/nginx.conf in front of upstream (host:port). Only
// what cannot hold outside a container is replaced: Docker's DNS
// (127.0.0.11) and the "gateway" name, the user, the pid file, the
// container's stdout/stderr log targets (files, to read back), the temp
// paths, and the listen port; the file must still contain each of them.
func startNginx(t *testing.T, upstream string) *nginx {
	t.Helper()
	bin, err := exec.LookPath("nginx")
	if err != nil {
		for _, p := range []string{"/usr/sbin/nginx", "/sbin/nginx"} {
			if _, serr := os.Stat(p); serr == nil {
				bin, err = p, nil
			}
		}
	}
	if err != nil {
		msg := "nginx not found: install it with `apt-get install -y --no-install-recommends nginx-light` to test deploy/nginx.conf"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg + " (under CI=true this fails instead of skipping)")
	}
	conf, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy", "nginx.conf"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	port := testenv.FreePort(t)
	main := string(conf)
	for _, r := range [][2]string{
		{"user nginx;", ""},
		{"pid /var/run/nginx.pid;", "daemon off;\nmaster_process off;\npid " + dir + "/nginx.pid;"},
		{"error_log /dev/stderr warn;", "error_log " + dir + "/error.log info;"},
		{"access_log /dev/stdout wsmq;", "access_log " + dir + "/access.log wsmq;"},
		{"worker_rlimit_nofile 65536;", ""}, // this machine's open-files limit cannot be raised
		{"http {", "http {\n" + fmt.Sprintf("client_body_temp_path %[1]s/body; proxy_temp_path %[1]s/proxy; fastcgi_temp_path %[1]s/fastcgi; uwsgi_temp_path %[1]s/uwsgi; scgi_temp_path %[1]s/scgi;", dir)},
		{"listen 3000;", "listen 127.0.0.1:" + strconv.Itoa(port) + ";"},
		{"http://gateway:3000", "http://" + upstream},
		{"resolver 127.0.0.11 valid=", "resolver 127.0.0.1 valid="},
	} {
		if strings.Count(main, r[0]) != 1 {
			t.Fatalf("deploy/nginx.conf does not hold %q exactly once", r[0])
		}
		main = strings.Replace(main, r[0], r[1], 1)
	}
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(main), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "-t", "-p", dir, "-c", path).CombinedOutput(); err != nil {
		t.Fatalf("nginx -t rejects deploy/nginx.conf: %v\n%s", err, out)
	}
	p := testenv.StartProcess(t, "nginx", bin, nil, "-p", dir, "-c", path)
	n := &nginx{Addr: "127.0.0.1:" + strconv.Itoa(port), dir: dir}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	p.WaitHTTP(ctx, "http://"+n.Addr+"/lb-healthz")
	return n
}

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
