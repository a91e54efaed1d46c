// Package publishertest runs the publisher binary on loopback ports for
// tests of other packages of this module (the client's), against a Redis
// the test started. Tests of the publisher itself run it in-process.
package publishertest

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/wsmq/wsmq/pkg/testenv"
)

// Key is the caller key configured by Start unless env overrides
// WSMQ_PUBLISHER_KEYS.
const Key = "test-key-0123456789abcdef"

// Publisher is a running publisher process.
type Publisher struct {
	// Addr is the gRPC address (host:port); AdminAddr the admin listener's.
	Addr, AdminAddr string
	// Process is the child process (Kill, Terminate, Output).
	Process *testenv.Process
}

// Env is the environment of a test publisher against redisURL listening on
// addr and admin: the key Key, a 2s call timeout and shutdown grace, a fast
// health interval; extra entries override or add settings.
func Env(redisURL, addr, admin string, extra map[string]string) map[string]string {
	vars := map[string]string{
		"WSMQ_REDIS_URL":                  redisURL,
		"WSMQ_PUBLISHER_LISTEN":           addr,
		"WSMQ_PUBLISHER_ADMIN_LISTEN":     admin,
		"WSMQ_PUBLISHER_KEYS":             Key,
		"WSMQ_PUBLISHER_CALL_TIMEOUT":     "2s",
		"WSMQ_PUBLISHER_HEALTH_INTERVAL":  "50ms",
		"WSMQ_PUBLISHER_SHUTDOWN_TIMEOUT": "2s",
	}
	for k, v := range extra {
		vars[k] = v
	}
	return vars
}

// Start builds and runs the publisher against redisURL with the key Key and
// a fast health interval; env entries override or add WSMQ_* settings. It
// returns once the publisher is ready; the process is stopped when the test
// ends.
func Start(t testing.TB, redisURL string, env map[string]string) *Publisher {
	t.Helper()
	bin := testenv.Build(t, "github.com/wsmq/wsmq/services/publisher")
	addr := "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))
	admin := "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))
	vars := Env(redisURL, addr, admin, env)
	var environ []string
	for k, v := range vars {
		environ = append(environ, k+"="+v)
	}
	p := testenv.StartProcess(t, "publisher", bin, environ)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	p.WaitHTTP(ctx, "http://"+admin+"/readyz")
	return &Publisher{Addr: addr, AdminAddr: admin, Process: p}
}
