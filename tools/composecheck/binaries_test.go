package composecheck

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wsmq/wsmq/pkg/testenv"
)

// entrypoints are the Dockerfile's ENTRYPOINT + CMD of each service image
// (TestDockerfileRunsServicesAsNonRootOnAStaticBase checks the stages).
var entrypoints = map[string]struct {
	pkg  string
	args []string
}{
	"auth":      {"github.com/wsmq/wsmq/services/auth", []string{"serve"}},
	"publisher": {"github.com/wsmq/wsmq/services/publisher", nil},
	"gateway":   {"github.com/wsmq/wsmq/services/gateway", nil},
}

// TestComposeEnvironmentRunsTheBinariesInProductionModeAndPassesTheirHealthchecks
// is what can be checked here without a Docker engine: the very binaries
// the images hold run with the environment docker-compose.yml gives them
// (with a generated .env), in production mode, against real Redis and
// MongoDB-wire servers, and each service's compose healthcheck command
// (the healthprobe binary) reports it healthy. Container host names and
// ports are mapped to loopback ones.
func TestComposeEnvironmentRunsTheBinariesInProductionModeAndPassesTheirHealthchecks(t *testing.T) {
	dotenv := map[string]string{
		"WSMQ_JWT_SECRET":       secret(t),
		"WSMQ_AUTH_ADMIN_TOKEN": secret(t),
		"WSMQ_PUBLISHER_KEYS":   secret(t) + "," + secret(t),
	}
	project, err := Load(context.Background(), filepath.Join(repoRoot(t), "docker-compose.yml"), dotenv)
	if err != nil {
		t.Fatal(err)
	}
	redis := testenv.StartRedis(t)
	mongo := testenv.StartMongo(t)
	probe := testenv.Build(t, "github.com/wsmq/wsmq/tools/healthprobe")

	hosts := map[string]string{ // compose service address -> loopback
		"redis://redis:6379/0":  redis.URL(),
		"mongodb://mongo:27017": mongo.URI(),
	}
	for _, name := range []string{"auth", "publisher", "gateway"} { // depends_on order
		svc := project.Services[name]
		ports := map[string]string{} // container port -> loopback port
		var env []string
		for k, v := range svc.Environment {
			if v == nil {
				continue
			}
			val := *v
			if h, ok := hosts[val]; ok {
				val = h
			}
			if strings.HasPrefix(val, ":") { // a listen address inside the container
				ports[val[1:]] = strconv.Itoa(testenv.FreePort(t))
				val = "127.0.0.1:" + ports[val[1:]]
			}
			if k == "WSMQ_DEV" {
				t.Fatalf("%s: compose sets WSMQ_DEV", name)
			}
			env = append(env, k+"="+val)
		}
		slices.Sort(env)
		ep := entrypoints[name]
		p := testenv.StartProcess(t, name, testenv.Build(t, ep.pkg), env, ep.args...)
		if name == "auth" {
			hosts["auth:9091"] = "127.0.0.1:" + ports["9091"]
		}

		// The compose healthcheck, with the container's loopback ports mapped.
		args := slices.Clone(svc.HealthCheck.Test[2:])
		for i, a := range args {
			for cport, hport := range ports {
				a = strings.ReplaceAll(a, "127.0.0.1:"+cport, "127.0.0.1:"+hport)
			}
			args[i] = a
		}
		if svc.HealthCheck.Test[1] != "/usr/local/bin/healthprobe" {
			t.Fatalf("%s: healthcheck runs %q, not healthprobe", name, svc.HealthCheck.Test[1])
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			out, err := exec.Command(probe, args...).CombinedOutput()
			if err == nil {
				break
			}
			select {
			case <-p.Done():
				t.Fatalf("%s exited before it was healthy:\n%s", name, p.Output())
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: healthcheck %q still failing: %v\n%s", name, args, err, out)
			}
			time.Sleep(100 * time.Millisecond) // the interval of a healthcheck
		}
		out := p.Output()
		if strings.Contains(out, "DEV MODE") {
			t.Errorf("%s runs in dev mode:\n%s", name, out)
		}
		for k, v := range dotenv {
			for _, s := range strings.Split(v, ",") {
				if strings.Contains(out, s) {
					t.Errorf("%s logged the secret %s", name, k)
				}
			}
		}
	}
}

// TestServicesRefuseToStartWithoutRealSecrets checks that neither a missing
// .env nor an unedited copy of .env.example gives a running stack: auth and
// the publisher stop at once and name the setting.
func TestServicesRefuseToStartWithoutRealSecrets(t *testing.T) {
	example := map[string]string{}
	f, err := os.Open(filepath.Join(repoRoot(t), ".env.example"))
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok && !strings.HasPrefix(k, "#") {
			example[k] = v
		}
	}
	_ = f.Close()

	for _, tc := range []struct {
		name   string
		dotenv map[string]string
	}{
		{"no .env", nil},
		{".env.example copied unedited", example},
	} {
		t.Run(tc.name, func(t *testing.T) {
			project, err := Load(context.Background(), filepath.Join(repoRoot(t), "docker-compose.yml"), tc.dotenv)
			if err != nil {
				t.Fatal(err)
			}
			for name, want := range map[string]string{"auth": "WSMQ_JWT_SECRET", "publisher": "WSMQ_PUBLISHER_KEYS"} {
				var env []string
				for k, v := range project.Services[name].Environment {
					if v != nil && !strings.HasPrefix(*v, ":") { // keep the default loopback listen addresses
						env = append(env, k+"="+*v)
					}
				}
				ep := entrypoints[name]
				p := testenv.StartProcess(t, name, testenv.Build(t, ep.pkg), env, ep.args...)
				select {
				case <-p.Done():
				case <-time.After(15 * time.Second):
					t.Fatalf("%s is still running without real secrets", name)
				}
				if out := p.Output(); !strings.Contains(out, want) {
					t.Errorf("%s stopped without naming %s:\n%s", name, want, out)
				}
			}
		})
	}
}

// secret is what `openssl rand -base64 48` gives.
func secret(t *testing.T) string {
	t.Helper()
	b := make([]byte, 48)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}
