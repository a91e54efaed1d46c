package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Nginx is Debian's nginx running the repository's deploy/nginx.conf (the
// compose load balancer's whole main config) on loopback.
type Nginx struct {
	Addr string // host:port
	dir  string
}

// StartNginx runs deploy/nginx.conf in front of upstream (host:port) on a
// free loopback port. Only what cannot hold outside a container is
// replaced, and the file must hold each exactly once: the user, the pid
// file, the stdout/stderr log targets (files here, read back by Logs), the
// open-files limit (this machine's cannot be raised), the temp paths, the
// listen port, the "gateway" upstream and Docker's DNS (127.0.0.11).
// Missing nginx fails the test under CI=true and skips it elsewhere.
func StartNginx(t testing.TB, upstream string) *Nginx {
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
		Unavailable(t, "nginx not found: install it with `apt-get install -y --no-install-recommends nginx-light`")
	}
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	conf, err := os.ReadFile(filepath.Join(root, "deploy", "nginx.conf"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	port := FreePort(t)
	main := string(conf)
	for _, r := range [][2]string{
		{"user nginx;", ""},
		{"pid /var/run/nginx.pid;", "daemon off;\nmaster_process off;\npid " + dir + "/nginx.pid;"},
		{"error_log /dev/stderr warn;", "error_log " + dir + "/error.log info;"},
		{"access_log /dev/stdout wsmq;", "access_log " + dir + "/access.log wsmq;"},
		{"worker_rlimit_nofile 65536;", ""},
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
	p := StartProcess(t, "nginx", bin, nil, "-p", dir, "-c", path)
	n := &Nginx{Addr: "127.0.0.1:" + strconv.Itoa(port), dir: dir}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	p.WaitHTTP(ctx, "http://"+n.Addr+"/lb-healthz")
	return n
}

// AccessLog is everything nginx wrote to its access log.
func (n *Nginx) AccessLog(t testing.TB) string {
	t.Helper()
	return n.read(t, "access.log")
}

// Logs is the access log and the error log.
func (n *Nginx) Logs(t testing.TB) string {
	t.Helper()
	return n.read(t, "access.log") + n.read(t, "error.log")
}

func (n *Nginx) read(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(n.dir, name))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return string(b)
}
