package composecheck

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// repoRoot is two directories up from this package.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func TestRepoComposeFileFollowsTheDeploymentRules(t *testing.T) {
	problems, err := Check(context.Background(), filepath.Join(repoRoot(t), "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Error(p)
	}
}

// good is a minimal compose file that passes every rule; each case below
// breaks one.
const good = `
services:
  redis:
    image: redis:7
    command: ["redis-server", "--appendonly", "yes", "--appendfsync", "everysec", "--maxmemory-policy", "noeviction"]
    volumes: ["redis-data:/data"]
    networks: {default: {ipv4_address: 10.9.0.201}}
    healthcheck: {test: ["CMD", "redis-cli", "ping"]}
  redis-replica:
    image: redis:7
    profiles: ["ha"]
    command: ["redis-server", "--replicaof", "10.9.0.201", "6379", "--replica-announce-ip", "10.9.0.202"]
    networks: {default: {ipv4_address: 10.9.0.202}}
    healthcheck: {test: ["CMD", "redis-cli", "ping"]}
    depends_on: {redis: {condition: service_healthy}}
  sentinel-1:
    image: redis:7
    profiles: ["ha"]
    environment: {REDIS_MASTER_IP: 10.9.0.201, SENTINEL_IP: 10.9.0.211}
    networks: {default: {ipv4_address: 10.9.0.211}}
    entrypoint: ["sh", "-c"]
    command: ["printf 'port 26379\\nsentinel monitor wsmq %s 6379 2\\n' \"$$REDIS_MASTER_IP\" > /tmp/s.conf && exec redis-server /tmp/s.conf --sentinel"]
    healthcheck: {test: ["CMD", "redis-cli", "-p", "26379", "ping"]}
    depends_on: {redis: {condition: service_healthy}}
  mongo:
    image: mongo:7
    volumes: ["mongo-data:/data/db"]
    healthcheck: {test: ["CMD", "mongosh", "--eval", "1"]}
  auth:
    build: {context: ., target: auth}
    environment:
      WSMQ_JWT_SECRET: ${WSMQ_JWT_SECRET:-}
    expose: ["9091"]
    healthcheck: {test: ["CMD", "/usr/local/bin/healthprobe", "grpc", "127.0.0.1:9091"]}
    depends_on: {mongo: {condition: service_healthy}}
  publisher:
    build: {context: ., target: publisher}
    environment:
      WSMQ_PUBLISHER_KEYS: ${WSMQ_PUBLISHER_KEYS:-}
    expose: ["9192"]
    healthcheck: {test: ["CMD", "/usr/local/bin/healthprobe", "http://127.0.0.1:9192/readyz"]}
    depends_on: {redis: {condition: service_healthy}}
  gateway:
    build: {context: ., target: gateway}
    expose: ["3000"]
    healthcheck: {test: ["CMD", "/usr/local/bin/healthprobe", "http://127.0.0.1:3000/readyz"]}
    depends_on: {redis: {condition: service_healthy}, auth: {condition: service_healthy}}
  lb:
    image: nginx:alpine
    ports: ["3000:3000"]
    volumes: ["./deploy/nginx.conf:/etc/nginx/nginx.conf:ro"]
    logging: {driver: json-file, options: {max-size: 10m, max-file: "3"}}
    healthcheck: {test: ["CMD", "wget", "-q", "http://127.0.0.1:3000/lb-healthz"]}
    depends_on: {gateway: {condition: service_healthy}}
volumes:
  redis-data:
  mongo-data:
networks:
  default:
    ipam: {config: [{subnet: 10.9.0.0/24, ip_range: 10.9.0.0/25}]}
`

func TestCheckReportsEachBrokenRule(t *testing.T) {
	tests := []struct {
		name    string
		old     string // replaced in good by new
		new     string
		problem string // regexp one reported problem must match
	}{
		{"gateway without healthcheck",
			`healthcheck: {test: ["CMD", "/usr/local/bin/healthprobe", "http://127.0.0.1:3000/readyz"]}`, ``,
			`service gateway has no healthcheck`},
		{"healthcheck disabled",
			`healthcheck: {test: ["CMD", "redis-cli", "ping"]}`, `healthcheck: {disable: true}`,
			`service redis has no healthcheck`},
		{"shell-form probe in a distroless image",
			`["CMD", "/usr/local/bin/healthprobe", "grpc", "127.0.0.1:9091"]`, `["CMD-SHELL", "healthprobe grpc 127.0.0.1:9091"]`,
			`service auth: healthcheck .* must be exec form`},
		{"probe on a port the service does not expose",
			`"http://127.0.0.1:3000/readyz"`, `"http://127.0.0.1:3001/readyz"`,
			`service gateway: healthcheck .* probes port "3001"`},
		{"dependency only started, not healthy",
			`depends_on: {mongo: {condition: service_healthy}}`, `depends_on: {mongo: {condition: service_started}}`,
			`service auth depends on mongo with condition "service_started"`},
		{"gateway on a fixed host port",
			`expose: ["3000"]`, `expose: ["3000"]` + "\n    ports: [\"3000:3000\"]",
			`service gateway publishes host port 3000`},
		{"redis without AOF",
			`"--appendonly", "yes", `, ``,
			`service redis: command .* lacks "--appendonly yes"`},
		{"redis that may evict queued messages",
			`"--maxmemory-policy", "noeviction"`, `"--maxmemory-policy", "allkeys-lru"`,
			`lacks "--maxmemory-policy noeviction"`},
		{"redis data in the container layer",
			`volumes: ["redis-data:/data"]`, ``,
			`service redis: /data is not on a named volume`},
		{"inline secret",
			`WSMQ_JWT_SECRET: ${WSMQ_JWT_SECRET:-}`, `WSMQ_JWT_SECRET: hunter2-hunter2-hunter2-hunter2-x`,
			`service auth: secret WSMQ_JWT_SECRET is written inline`},
		{"secret with an inline default",
			`WSMQ_PUBLISHER_KEYS: ${WSMQ_PUBLISHER_KEYS:-}`, `WSMQ_PUBLISHER_KEYS: key-${X:-}`,
			`service publisher: secret WSMQ_PUBLISHER_KEYS is written inline`},
		{"dev mode",
			`WSMQ_PUBLISHER_KEYS: ${WSMQ_PUBLISHER_KEYS:-}`, `WSMQ_DEV: "1"`,
			`service publisher runs in dev mode`},
		{"no load balancer",
			"  lb:\n    image: nginx:alpine\n    ports: [\"3000:3000\"]\n", "  lb:\n    image: nginx:alpine\n",
			`service lb does not publish port 3000`},
		{"lb logs without rotation",
			`logging: {driver: json-file, options: {max-size: 10m, max-file: "3"}}`, ``,
			`service lb has no log rotation`},
		{"replica of the master's host name",
			`"--replicaof", "10.9.0.201"`, `"--replicaof", "redis"`,
			`service redis-replica: --replicaof "redis" is not the fixed address of redis`},
		{"replica announcing another address",
			`"--replica-announce-ip", "10.9.0.202"`, `"--replica-announce-ip", "redis-replica"`,
			`service redis-replica: --replica-announce-ip "redis-replica" is not its fixed address`},
		{"replica without a fixed address",
			"    networks: {default: {ipv4_address: 10.9.0.202}}\n", ``,
			`service redis-replica has no fixed address`},
		{"fixed address in the dynamic range",
			`ip_range: 10.9.0.0/25`, `ip_range: 10.9.0.0/24`,
			`service redis: address 10.9.0.201 is inside ip_range`},
		{"no dynamic range",
			`, ip_range: 10.9.0.0/25`, ``,
			`network default has no ipam subnet and ip_range`},
		{"sentinel resolving host names",
			`port 26379`, `sentinel resolve-hostnames yes`,
			`service sentinel-1: "resolve-hostnames yes"`},
		{"sentinel monitoring another address",
			`REDIS_MASTER_IP: 10.9.0.201`, `REDIS_MASTER_IP: redis`,
			`service sentinel-1: REDIS_MASTER_IP "redis" is not the fixed address of redis`},
		{"sentinel monitoring a name literally",
			`sentinel monitor wsmq %s 6379 2`, `sentinel monitor wsmq redis 6379 2`,
			`service sentinel-1: monitors "redis"`},
		{"lb config only included in conf.d",
			`/etc/nginx/nginx.conf:ro`, `/etc/nginx/conf.d/default.conf:ro`,
			`service lb does not run deploy/nginx.conf as its main config`},
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "docker-compose.yml")
	if err := os.WriteFile(file, []byte(good), 0o600); err != nil {
		t.Fatal(err)
	}
	problems, err := Check(context.Background(), file)
	if err != nil {
		t.Fatal(err)
	}
	if len(problems) != 0 {
		t.Fatalf("the good file has problems: %q", problems)
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !strings.Contains(good, tt.old) {
				t.Fatalf("test case: %q not in the good file", tt.old)
			}
			file := filepath.Join(t.TempDir(), "docker-compose.yml")
			if err := os.WriteFile(file, []byte(strings.Replace(good, tt.old, tt.new, 1)), 0o600); err != nil {
				t.Fatal(err)
			}
			problems, err := Check(context.Background(), file)
			if err != nil {
				t.Fatal(err)
			}
			re := regexp.MustCompile(tt.problem)
			for _, p := range problems {
				if re.MatchString(p) {
					return
				}
			}
			t.Fatalf("no problem matches %q; got %q", tt.problem, problems)
		})
	}
}

func TestEnvExampleHoldsPlaceholdersOnly(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot(t), ".env.example"))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
		if !ok || strings.HasPrefix(k, "#") || !secretName.MatchString(k) {
			continue
		}
		seen[k] = true
		for _, item := range strings.Split(v, ",") {
			// Placeholders are shorter than any service accepts (16 bytes),
			// so a copied .env.example cannot run in production by mistake.
			if !strings.HasPrefix(item, "change-me") || len(item) >= 16 {
				t.Errorf("%s: %q is not a short change-me placeholder", k, item)
			}
		}
	}
	for _, k := range []string{"WSMQ_JWT_SECRET", "WSMQ_AUTH_ADMIN_TOKEN", "WSMQ_PUBLISHER_KEYS"} {
		if !seen[k] {
			t.Errorf(".env.example lacks %s", k)
		}
	}
	if !strings.Contains(string(b), "openssl rand -base64 48") {
		t.Error(".env.example does not say how to generate secrets")
	}
}

func TestDockerfileRunsServicesAsNonRootOnAStaticBase(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	df := string(b)
	for _, want := range []string{
		"CGO_ENABLED=0",
		"FROM gcr.io/distroless/static-debian12:nonroot AS runtime",
		"USER nonroot:nonroot",
		"FROM runtime AS auth",
		"FROM runtime AS publisher",
		"FROM runtime AS gateway",
		"/out/healthprobe",
	} {
		if !strings.Contains(df, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	if regexp.MustCompile(`(?m)^USER\s+(root|0)\b`).MatchString(df) {
		t.Error("Dockerfile switches to root")
	}
}

// The compose e2e test found these: Debian's docker-compose 1.29 builds
// with the classic builder, which refuses BuildKit-only syntax ("the --mount
// option requires BuildKit"), and a `# syntax=` line makes BuildKit pull its
// frontend image from a registry. The Go module proxy is a build argument
// (the test feeds a file:// proxy; the default stays Go's own).
func TestDockerfileBuildsWithEitherBuilderOffline(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	df := string(b)
	if regexp.MustCompile(`(?m)^\s*#\s*syntax\s*=`).MatchString(df) {
		t.Error("Dockerfile has a # syntax= directive (BuildKit pulls the frontend image)")
	}
	if regexp.MustCompile(`(?m)^\s*(RUN|COPY|ADD)\b[^\n]*\s--(mount|link|parents|chmod|exclude)\b`).MatchString(df) {
		t.Error("Dockerfile uses BuildKit-only flags; the classic builder (docker-compose 1.29) refuses them")
	}
	if !strings.Contains(df, "ARG GOPROXY=https://proxy.golang.org,direct") {
		t.Error("Dockerfile lacks the GOPROXY build argument with Go's default")
	}
	cb, err := os.ReadFile(filepath.Join(repoRoot(t), "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(cb), "GOPROXY: ${WSMQ_GOPROXY:-https://proxy.golang.org,direct}") {
		t.Error("docker-compose.yml does not pass WSMQ_GOPROXY as the GOPROXY build argument")
	}
}
