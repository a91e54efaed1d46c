// Package composecheck checks wsmq's docker-compose.yml offline, stricter than
// `docker-compose config`: it loads the file with the Compose Specification's
// own Go loader (github.com/compose-spec/compose-go/v2) and checks the rules
// the deployment relies on (health checks, healthy dependencies, a scalable
// gateway, Redis durability, no inline secrets).
package composecheck

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
)

// Services are the services every wsmq compose file must define.
var Services = []string{"redis", "mongo", "auth", "publisher", "gateway", "lb"}

// secretName matches environment variables that hold secrets.
var secretName = regexp.MustCompile(`(?i)(SECRET|TOKEN|KEYS?|PASSWORD)$`)

// envRef is a value that is only a reference to a variable (from .env or
// the shell), e.g. "${WSMQ_JWT_SECRET:-}".
var envRef = regexp.MustCompile(`^\$\{[A-Z0-9_]+(:?[-?][^}]*)?\}$`)

// Check loads file (a compose file) and returns every rule it breaks, as
// readable sentences; an error means the file could not be loaded at all.
func Check(ctx context.Context, file string) ([]string, error) {
	abs, err := filepath.Abs(file)
	if err != nil {
		return nil, fmt.Errorf("composecheck: %w", err)
	}
	project, err := Load(ctx, abs, nil)
	if err != nil {
		return nil, err
	}
	details := types.ConfigDetails{
		WorkingDir:  filepath.Dir(abs),
		ConfigFiles: []types.ConfigFile{{Filename: abs}},
		Environment: types.Mapping{},
	}
	name := func(o *loader.Options) { o.SetProjectName("wsmq", true) }
	// The same file before interpolation: secrets must be ${VAR} references.
	raw, err := loader.LoadModelWithContext(ctx, details, name, func(o *loader.Options) {
		o.SkipInterpolation = true
		o.SkipResolveEnvironment = true
		o.SkipValidation = true
	})
	if err != nil {
		return nil, fmt.Errorf("composecheck: load %s uninterpolated: %w", file, err)
	}

	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }

	for _, s := range Services {
		if _, ok := project.Services[s]; !ok {
			add("service %s is missing", s)
		}
	}
	for _, name := range sortedNames(project.Services) {
		svc := project.Services[name]
		checkHealth(svc, add)
		for dep, d := range svc.DependsOn {
			if d.Condition != types.ServiceConditionHealthy {
				add("service %s depends on %s with condition %q, want %q", name, dep, d.Condition, types.ServiceConditionHealthy)
			}
		}
		for k, v := range rawEnvironment(raw, name) {
			if secretName.MatchString(k) && !envRef.MatchString(v) {
				add("service %s: secret %s is written inline (%q): take it from .env as ${%s:-}", name, k, redact(v), k)
			}
		}
		if v, ok := svc.Environment["WSMQ_DEV"]; ok && v != nil && *v != "" && *v != "0" && *v != "false" {
			add("service %s runs in dev mode (WSMQ_DEV=%s): compose is the production stack", name, *v)
		}
	}

	if gw, ok := project.Services["gateway"]; ok {
		for _, p := range gw.Ports {
			if p.Published != "" {
				add("service gateway publishes host port %s: it cannot scale; publish the lb instead", p.Published)
			}
		}
		if gw.ContainerName != "" {
			add("service gateway has container_name %q: it cannot scale", gw.ContainerName)
		}
	}
	if lb, ok := project.Services["lb"]; ok {
		if !slices.ContainsFunc(lb.Ports, func(p types.ServicePortConfig) bool { return p.Target == 3000 && p.Published != "" }) {
			add("service lb does not publish port 3000")
		}
		if _, ok := lb.DependsOn["gateway"]; !ok {
			add("service lb does not depend on gateway")
		}
		if lb.Logging == nil || lb.Logging.Options["max-size"] == "" {
			add("service lb has no log rotation (logging.options.max-size)")
		}
		if !slices.ContainsFunc(lb.Volumes, func(v types.ServiceVolumeConfig) bool {
			return v.Target == "/etc/nginx/nginx.conf" && strings.HasSuffix(v.Source, "/deploy/nginx.conf")
		}) {
			add("service lb does not run deploy/nginx.conf as its main config (/etc/nginx/nginx.conf)")
		}
	}
	if r, ok := project.Services["redis"]; ok {
		cmd := " " + strings.Join(r.Command, " ") + " "
		for _, want := range []string{" --appendonly yes ", " --appendfsync everysec ", " --maxmemory-policy noeviction "} {
			if !strings.Contains(cmd, want) {
				add("service redis: command %q lacks %q", strings.TrimSpace(cmd), strings.TrimSpace(want))
			}
		}
		if !hasNamedVolume(r, "/data") {
			add("service redis: /data is not on a named volume")
		}
	}
	if m, ok := project.Services["mongo"]; ok && !hasNamedVolume(m, "/data/db") {
		add("service mongo: /data/db is not on a named volume")
	}
	checkRedisAddresses(project, add)
	return problems, nil
}

// sentinelMonitor finds the master address of "sentinel monitor NAME HOST".
var sentinelMonitor = regexp.MustCompile(`sentinel monitor \S+ (\S+)`)

// checkRedisAddresses: where Redis replicates or runs under Sentinel (any
// profile), every node and Sentinel has a fixed address on the default
// network, outside its dynamic range, and they name each other only by
// address. Redis resolves host names synchronously: a Sentinel or replica
// looking up a killed container's name blocks, the Sentinels fall into TILT
// and no failover happens (the compose test saw it). Sentinels: the master
// is the master's fixed address (given literally or as REDIS_MASTER_IP), no
// resolve-hostnames/announce-hostnames, SENTINEL_IP (when set) their own.
func checkRedisAddresses(p *types.Project, add func(string, ...any)) {
	all := p.AllServices()
	var replicas, sentinels []string
	for _, name := range sortedNames(all) {
		cmd := strings.Join(all[name].Command, " ")
		switch {
		case strings.Contains(cmd, "--sentinel"):
			sentinels = append(sentinels, name)
		case slices.Contains(all[name].Command, "--replicaof"):
			replicas = append(replicas, name)
		}
	}
	if len(replicas)+len(sentinels) == 0 {
		return
	}
	var subnet, dynamic netip.Prefix
	if n, ok := p.Networks["default"]; ok && len(n.Ipam.Config) > 0 {
		subnet, _ = netip.ParsePrefix(n.Ipam.Config[0].Subnet)
		dynamic, _ = netip.ParsePrefix(n.Ipam.Config[0].IPRange)
	}
	if !subnet.IsValid() || !dynamic.IsValid() {
		add("network default has no ipam subnet and ip_range: the Redis nodes and Sentinels need fixed addresses outside the dynamic range")
	}
	fixed := func(name string) netip.Addr {
		var a netip.Addr
		if n := all[name].Networks["default"]; n != nil {
			a, _ = netip.ParseAddr(n.Ipv4Address)
		}
		switch {
		case !a.IsValid():
			add("service %s has no fixed address (networks.default.ipv4_address): Redis nodes and Sentinels name each other by address", name)
		case subnet.IsValid() && !subnet.Contains(a):
			add("service %s: address %s is outside the subnet %s", name, a, subnet)
		case dynamic.IsValid() && dynamic.Contains(a):
			add("service %s: address %s is inside ip_range %s: a container with a dynamic address may take it while %s is stopped", name, a, dynamic, name)
		}
		return a
	}
	master := fixed("redis")
	// is reports whether v is the address a (and a is valid).
	is := func(v string, a netip.Addr) bool {
		b, err := netip.ParseAddr(v)
		return err == nil && a.IsValid() && b == a
	}
	for _, name := range replicas {
		own := fixed(name)
		cmd := all[name].Command
		for i, arg := range cmd[:len(cmd)-1] {
			switch arg {
			case "--replicaof":
				if !is(cmd[i+1], master) {
					add("service %s: --replicaof %q is not the fixed address of redis (%s)", name, cmd[i+1], master)
				}
			case "--replica-announce-ip":
				if !is(cmd[i+1], own) {
					add("service %s: --replica-announce-ip %q is not its fixed address (%s)", name, cmd[i+1], own)
				}
			}
		}
	}
	env := func(svc types.ServiceConfig, k string) string {
		if v := svc.Environment[k]; v != nil {
			return *v
		}
		return ""
	}
	for _, name := range sentinels {
		own := fixed(name)
		svc := all[name]
		cmd := strings.Join(svc.Command, " ")
		for _, bad := range []string{"resolve-hostnames yes", "announce-hostnames yes"} {
			if strings.Contains(cmd, bad) {
				add("service %s: %q: Sentinels must name nodes by address (a dead node's name blocks them)", name, bad)
			}
		}
		m := sentinelMonitor.FindStringSubmatch(cmd)
		switch {
		case m == nil:
			add("service %s: no \"sentinel monitor\" in its command", name)
		case m[1] == "%s":
			if v := env(svc, "REDIS_MASTER_IP"); !is(v, master) {
				add("service %s: REDIS_MASTER_IP %q is not the fixed address of redis (%s)", name, v, master)
			}
		case !is(m[1], master):
			add("service %s: monitors %q, not the fixed address of redis (%s)", name, m[1], master)
		}
		if v := env(svc, "SENTINEL_IP"); v != "" && !is(v, own) {
			add("service %s: SENTINEL_IP %q is not its fixed address (%s)", name, v, own)
		}
	}
}

// Load loads the compose file with env as the variables that ${VAR} refers
// to (what docker compose reads from .env and the shell; nil: none).
func Load(ctx context.Context, file string, env map[string]string) (*types.Project, error) {
	abs, err := filepath.Abs(file)
	if err != nil {
		return nil, fmt.Errorf("composecheck: %w", err)
	}
	details := types.ConfigDetails{
		WorkingDir:  filepath.Dir(abs),
		ConfigFiles: []types.ConfigFile{{Filename: abs}},
		Environment: types.Mapping(env),
	}
	if details.Environment == nil {
		details.Environment = types.Mapping{}
	}
	project, err := loader.LoadWithContext(ctx, details, func(o *loader.Options) { o.SetProjectName("wsmq", true) })
	if err != nil {
		return nil, fmt.Errorf("composecheck: load %s: %w", file, err)
	}
	return project, nil
}

// checkHealth requires a health check whose probe, for a wsmq service,
// targets a port the service exposes.
func checkHealth(svc types.ServiceConfig, add func(string, ...any)) {
	hc := svc.HealthCheck
	if hc == nil || hc.Disable || len(hc.Test) < 2 || hc.Test[0] == "NONE" {
		add("service %s has no healthcheck", svc.Name)
		return
	}
	if svc.Build == nil {
		return
	}
	// A built (distroless) image has no shell: the probe must be exec form.
	if hc.Test[0] != "CMD" {
		add("service %s: healthcheck %q must be exec form [\"CMD\", ...]: the image has no shell", svc.Name, hc.Test)
		return
	}
	port := ""
	for _, a := range hc.Test[1:] {
		if m := regexp.MustCompile(`127\.0\.0\.1:(\d+)`).FindStringSubmatch(a); m != nil {
			port = m[1]
		}
	}
	if port == "" || !slices.Contains(svc.Expose, port) {
		add("service %s: healthcheck %q probes port %q, which the service does not expose %q", svc.Name, hc.Test, port, svc.Expose)
	}
}

// rawEnvironment is the environment of service as written in the file
// (model from LoadModelWithContext without interpolation), map or list form.
func rawEnvironment(model map[string]any, service string) map[string]string {
	env := map[string]string{}
	services, _ := model["services"].(map[string]any)
	svc, _ := services[service].(map[string]any)
	switch e := svc["environment"].(type) {
	case map[string]any:
		for k, v := range e {
			if v != nil {
				env[k] = fmt.Sprint(v)
			}
		}
	case []any:
		for _, item := range e {
			if k, v, ok := strings.Cut(fmt.Sprint(item), "="); ok {
				env[k] = v
			}
		}
	}
	return env
}

func hasNamedVolume(svc types.ServiceConfig, target string) bool {
	return slices.ContainsFunc(svc.Volumes, func(v types.ServiceVolumeConfig) bool {
		return v.Type == types.VolumeTypeVolume && v.Source != "" && v.Target == target
	})
}

func sortedNames(m types.Services) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

func redact(v string) string {
	if len(v) <= 4 {
		return "****"
	}
	return v[:2] + "…"
}
