package config

import (
	"strings"
	"testing"
	"time"

	"github.com/wsmq/wsmq/pkg/config"
)

func env(m map[string]string) config.Env { return config.MapEnv(m) }

func TestDefaultsMatchTheDesign(t *testing.T) {
	c, err := Parse(nil, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.1:3000" || c.AuthAddr != "127.0.0.1:9091" || c.RedisURL != "redis://127.0.0.1:6379/0" ||
		c.NS != "rsmq" || c.VisibilityTimeout != 30 || c.Prefetch != 64 || c.MaxReceiveCount != 10 ||
		c.ReverifyInterval != time.Minute || c.Dev || c.Demo || c.Wake != WakeAuto {
		t.Fatalf("defaults %+v", c)
	}
}

func TestFlagsWinOverEnvironmentAndDevEnablesDemo(t *testing.T) {
	c, err := Parse([]string{"-prefetch", "5"}, env(map[string]string{"WSMQ_PREFETCH": "7", "WSMQ_DEV": "1", "WSMQ_ALLOWED_ORIGINS": "https://a, https://b"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Prefetch != 5 || !c.Dev || !c.Demo || len(c.AllowedOrigins) != 2 || c.AllowedOrigins[1] != "https://b" {
		t.Fatalf("got %+v", c)
	}
}

func TestInvalidSettingsAreNamed(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"WSMQ_PREFETCH": "many"}, "WSMQ_PREFETCH"},
		{map[string]string{"WSMQ_PREFETCH": "0"}, "WSMQ_PREFETCH"},
		{map[string]string{"WSMQ_VISIBILITY_TIMEOUT": "0"}, "WSMQ_VISIBILITY_TIMEOUT"},
		{map[string]string{"WSMQ_REDIS_URL": "http://x"}, "WSMQ_REDIS_URL"},
		{map[string]string{"WSMQ_RSMQ_NS": "a:b"}, "WSMQ_RSMQ_NS"},
		{map[string]string{"WSMQ_SWEEP_INTERVAL": "soon"}, "WSMQ_SWEEP_INTERVAL"},
		{map[string]string{"WSMQ_DEV": "maybe"}, "WSMQ_DEV"},
		{map[string]string{"WSMQ_LOG_LEVEL": "loud"}, "WSMQ_LOG_LEVEL"},
		{map[string]string{"WSMQ_CONN_RATE": "-1"}, "WSMQ_CONN_RATE"},
		{map[string]string{"WSMQ_READ_LIMIT": "10"}, "WSMQ_READ_LIMIT"},
		{map[string]string{"WSMQ_GATEWAY_ADMIN_LISTEN": "nowhere"}, "WSMQ_GATEWAY_ADMIN_LISTEN"},
		{map[string]string{"WSMQ_GATEWAY_COLOUR": "blue"}, "unknown variable WSMQ_GATEWAY_COLOUR"},
		{map[string]string{"WSMQ_PREFETCH": "0", "WSMQ_SWEEP_INTERVAL": "soon"}, "WSMQ_SWEEP_INTERVAL"},
		{map[string]string{"WSMQ_TRUSTED_PROXIES": "10.0.0.0/8,lb"}, "WSMQ_TRUSTED_PROXIES"},
		{map[string]string{"WSMQ_TICKET_TTL": "1h"}, "WSMQ_TICKET_TTL"},
		{map[string]string{"WSMQ_ALLOW_QUERY_CREDENTIALS": "perhaps"}, "WSMQ_ALLOW_QUERY_CREDENTIALS"},
		{map[string]string{"WSMQ_GATEWAY_WAKE": "keyspaces"}, "WSMQ_GATEWAY_WAKE"},
	} {
		_, err := Parse(nil, env(tc.env))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want one naming %s", tc.env, err, tc.want)
		}
	}
	if _, err := Parse([]string{"extra"}, env(nil)); err == nil {
		t.Error("stray argument accepted")
	}
}

func TestEdgeSecurityDefaultsTrustNoProxyAndRefuseQueryCredentials(t *testing.T) {
	c, err := Parse(nil, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.TrustedProxies.Len() != 0 || c.AllowQueryCreds || c.TicketTTL != 30*time.Second ||
		c.HTTPReadTimeout != 30*time.Second || c.HTTPIdleTimeout != 2*time.Minute || c.LoginFreeFails != 3 {
		t.Fatalf("defaults %+v", c)
	}
	c, err = Parse(nil, env(map[string]string{"WSMQ_TRUSTED_PROXIES": "172.30.0.0/24, 10.0.0.1"}))
	if err != nil || c.TrustedProxies.Len() != 2 {
		t.Fatalf("WSMQ_TRUSTED_PROXIES: %v %+v", err, c.TrustedProxies)
	}
}
