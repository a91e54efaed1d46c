package supervisor

import (
	"fmt"
	"net"
	"strconv"
)

// Ports of the local stack. Zero values mean the defaults.
type Ports struct {
	Redis          int // 6379
	Mongo          int // 27017
	Auth           int // 9091 (gRPC)
	AuthAdmin      int // 9191 (HTTP /metrics /healthz)
	Publisher      int // 9092 (gRPC)
	PublisherAdmin int // 9192 (HTTP /metrics /healthz /readyz)
	PublisherHTTP  int // 9093 (HTTP/JSON publish and admin API)
	Gateway        int // 3000 (HTTP + websocket)
	GatewayAdmin   int // 9193 (HTTP /readyz /metrics /healthz)
}

// PortSetting describes one port of the stack: what listens on it, its
// default, and the wsmq-run flag and environment variable that change it.
// Busy-port errors and wsmq-run's flags are built from the same table.
type PortSetting struct {
	Service string // human name, e.g. "Redis"
	Flag    string // wsmq-run flag without the dash, e.g. "redis-port"
	Env     string // wsmq-run environment variable, e.g. "WSMQ_RUN_REDIS_PORT"
	Default int
	Port    *int // the field of the Ports value the table was built from
}

// Settings returns the table of p's ports, each pointing at its field of p.
func (p *Ports) Settings() []PortSetting {
	return []PortSetting{
		{"Redis", "redis-port", "WSMQ_RUN_REDIS_PORT", 6379, &p.Redis},
		{"MongoDB-wire server", "mongo-port", "WSMQ_RUN_MONGO_PORT", 27017, &p.Mongo},
		{"auth gRPC", "auth-port", "WSMQ_RUN_AUTH_PORT", 9091, &p.Auth},
		{"auth metrics/health", "auth-admin-port", "WSMQ_RUN_AUTH_ADMIN_PORT", 9191, &p.AuthAdmin},
		{"publisher gRPC", "publisher-port", "WSMQ_RUN_PUBLISHER_PORT", 9092, &p.Publisher},
		{"publisher admin", "publisher-admin-port", "WSMQ_RUN_PUBLISHER_ADMIN_PORT", 9192, &p.PublisherAdmin},
		{"publisher HTTP API", "publisher-http-port", "WSMQ_RUN_PUBLISHER_HTTP_PORT", 9093, &p.PublisherHTTP},
		{"gateway", "gateway-port", "WSMQ_RUN_GATEWAY_PORT", 3000, &p.Gateway},
		{"gateway admin", "gateway-admin-port", "WSMQ_RUN_GATEWAY_ADMIN_PORT", 9193, &p.GatewayAdmin},
	}
}

// withDefaults returns p with zero ports replaced by their defaults.
func (p Ports) withDefaults() Ports {
	for _, s := range p.Settings() {
		if *s.Port == 0 {
			*s.Port = s.Default
		}
	}
	return p
}

// FreePorts picks free loopback ports for every service (tests, bench).
// All listeners are held open together, so the ports are distinct.
func FreePorts() (Ports, error) {
	var p Ports
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	for _, s := range p.Settings() {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return Ports{}, fmt.Errorf("free port for %s: %w", s.Service, err)
		}
		ls = append(ls, l)
		*s.Port = l.Addr().(*net.TCPAddr).Port
	}
	return p, nil
}

// PortInUseError reports a port of the stack that something else holds.
type PortInUseError struct {
	Setting PortSetting
	Port    int
	Err     error
}

// Error names the port, what it is for, and how to change it.
func (e *PortInUseError) Error() string {
	return fmt.Sprintf("port %d (%s) is in use: stop the other %s or run with -%s / %s",
		e.Port, e.Setting.Service, e.Setting.Service, e.Setting.Flag, e.Setting.Env)
}

// Unwrap returns the listen error.
func (e *PortInUseError) Unwrap() error { return e.Err }

// checkPorts fails with a *PortInUseError for the first port of p (defaults
// applied) that cannot be bound on loopback, and on duplicates.
func checkPorts(p Ports) error {
	seen := map[int]string{}
	for _, s := range p.Settings() {
		port := *s.Port
		if port <= 0 || port > 65535 {
			return fmt.Errorf("port %d (%s) is not a valid port: set -%s / %s", port, s.Service, s.Flag, s.Env)
		}
		if other, dup := seen[port]; dup {
			return fmt.Errorf("port %d is set for both %s and %s: change -%s / %s", port, other, s.Service, s.Flag, s.Env)
		}
		seen[port] = s.Service
		if err := portFree(port); err != nil {
			return &PortInUseError{Setting: s, Port: port, Err: err}
		}
	}
	return nil
}

// portFree reports whether port can be bound on 127.0.0.1 right now.
func portFree(port int) error {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return err
	}
	return l.Close()
}

// FreePort returns one loopback port that was free a moment ago (tests use
// testenv.FreePort).
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port, nil
}
