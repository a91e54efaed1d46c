package config

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/wsmq/wsmq/pkg/bearer"
	"github.com/wsmq/wsmq/pkg/config"
	"github.com/wsmq/wsmq/pkg/rsmq"
)

const goodKey = "k-0123456789abcdef"

// parse runs Parse with env as the whole environment.
func parse(args []string, env map[string]string) (Config, error) {
	return Parse(args, config.MapEnv(env))
}

func TestParseDefaults(t *testing.T) {
	c, err := parse(nil, map[string]string{"WSMQ_PUBLISHER_KEYS": goodKey})
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		RedisURL: "redis://127.0.0.1:6379/0", Namespace: "rsmq", Listen: "127.0.0.1:9092", AdminListen: "127.0.0.1:9192",
		GRPCMaxMsgBytes: 4 << 20, MaxBatch: 1000, Queue: rsmq.QueueConfig{VT: 30, Delay: 0, MaxSize: 65536},
		CallTimeout: 2 * time.Second, ShutdownTimeout: 10 * time.Second, HealthInterval: time.Second,
		LogLevel: slog.LevelInfo, KeyDigests: []bearer.Digest{bearer.Sum(goodKey)},
	}
	if c.RedisURL != want.RedisURL || c.Namespace != want.Namespace || c.Listen != want.Listen ||
		c.AdminListen != want.AdminListen || c.GRPCMaxMsgBytes != want.GRPCMaxMsgBytes || c.MaxBatch != want.MaxBatch ||
		c.Queue != want.Queue || c.CallTimeout != want.CallTimeout || c.ShutdownTimeout != want.ShutdownTimeout ||
		c.HealthInterval != want.HealthInterval || c.LogLevel != want.LogLevel || c.Dev ||
		len(c.KeyDigests) != 1 || c.KeyDigests[0] != want.KeyDigests[0] || c.TLSEnabled() {
		t.Fatalf("defaults = %+v\nwant %+v", c, want)
	}
}

func TestFlagsOverrideEnvAndEnvOverridesDefaults(t *testing.T) {
	c, err := parse([]string{"-listen", ":7000", "-queue-vt", "5"}, map[string]string{
		"WSMQ_PUBLISHER_KEYS":         goodKey + ", other-key-0123456789",
		"WSMQ_PUBLISHER_LISTEN":       ":8000",
		"WSMQ_PUBLISHER_ADMIN_LISTEN": "",
		"WSMQ_QUEUE_VT":               "50",
		"WSMQ_QUEUE_MAXSIZE":          "-1",
		"WSMQ_LOG_LEVEL":              "debug",
		"WSMQ_RSMQ_NS":                "wsmq",
	})
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != ":7000" || c.Queue.VT != 5 || c.AdminListen != "" || c.Queue.MaxSize != -1 ||
		c.LogLevel != slog.LevelDebug || c.Namespace != "wsmq" || len(c.KeyDigests) != 2 {
		t.Fatalf("config = %+v", c)
	}
}

func TestHTTPAPIIsOffAndAdminServiceDisabledByDefault(t *testing.T) {
	c, err := parse(nil, map[string]string{"WSMQ_PUBLISHER_KEYS": goodKey})
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTPListen != "" || c.AdminEnabled() || c.HTTPMaxBody != DefaultHTTPMaxBody {
		t.Fatalf("http %q, admin %v, body limit %d", c.HTTPListen, c.AdminEnabled(), c.HTTPMaxBody)
	}
	c, err = parse(nil, map[string]string{"WSMQ_PUBLISHER_KEYS": goodKey, "WSMQ_PUBLISHER_ADMIN_KEYS": "admin-0123456789abcdef"})
	if err != nil || !c.AdminEnabled() || len(c.AdminKeyDigests) != 1 {
		t.Fatalf("with an admin key: %v %+v", err, c.AdminKeyDigests)
	}
}

func TestDevModeNeedsNoKeysAndAllowsShortOnes(t *testing.T) {
	for _, env := range []map[string]string{
		{"WSMQ_DEV": "1"},
		{"WSMQ_DEV": "true", "WSMQ_PUBLISHER_KEYS": "dev"},
	} {
		if c, err := parse(nil, env); err != nil || !c.Dev {
			t.Fatalf("%v: %+v, %v", env, c, err)
		}
	}
}

func TestMalformedOrMissingSettingsFailNamingTheSetting(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"no keys outside dev mode", nil, map[string]string{}, "WSMQ_PUBLISHER_KEYS is required outside dev mode"},
		{"short key", nil, map[string]string{"WSMQ_PUBLISHER_KEYS": "short"}, "WSMQ_PUBLISHER_KEYS: key 1 is shorter than 16"},
		{"empty key in list", nil, map[string]string{"WSMQ_PUBLISHER_KEYS": goodKey + ",,x"}, "WSMQ_PUBLISHER_KEYS: key 2 is empty"},
		{"key with space", nil, map[string]string{"WSMQ_PUBLISHER_KEYS": "a b 0123456789abcdef"}, "key 1 must be printable ASCII"},
		{"redis url scheme", nil, map[string]string{"WSMQ_REDIS_URL": "http://x"}, `WSMQ_REDIS_URL="http://x": scheme "http" is not redis, rediss, unix, redis+sentinel or rediss+sentinel`},
		{"listen without port", nil, map[string]string{"WSMQ_PUBLISHER_LISTEN": "localhost"}, `WSMQ_PUBLISHER_LISTEN="localhost": must be host:port`},
		{"max msg bytes", nil, map[string]string{"WSMQ_GRPC_MAX_MSG_BYTES": "4MB"}, "WSMQ_GRPC_MAX_MSG_BYTES=\"4MB\": must be an integer"},
		{"batch over rsmq limit", nil, map[string]string{"WSMQ_PUBLISHER_MAX_BATCH": "5000"}, "WSMQ_PUBLISHER_MAX_BATCH=\"5000\": must be an integer between 1 and 1000"},
		{"vt", nil, map[string]string{"WSMQ_QUEUE_VT": "-1"}, "WSMQ_QUEUE_VT=\"-1\""},
		{"delay", nil, map[string]string{"WSMQ_QUEUE_DELAY": "10000000"}, "WSMQ_QUEUE_DELAY=\"10000000\""},
		{"maxsize", nil, map[string]string{"WSMQ_QUEUE_MAXSIZE": "100"}, "WSMQ_QUEUE_MAXSIZE=\"100\": must be an integer between 1024 and 65536, or -1"},
		{"dev", nil, map[string]string{"WSMQ_DEV": "maybe"}, "WSMQ_DEV=\"maybe\""},
		{"log level", nil, map[string]string{"WSMQ_LOG_LEVEL": "loud"}, "WSMQ_LOG_LEVEL=\"loud\""},
		{"call timeout", nil, map[string]string{"WSMQ_PUBLISHER_CALL_TIMEOUT": "2"}, "WSMQ_PUBLISHER_CALL_TIMEOUT=\"2\": must be a duration"},
		{"namespace", nil, map[string]string{"WSMQ_RSMQ_NS": "a:b"}, "WSMQ_RSMQ_NS"},
		{"cert without key", nil, map[string]string{"WSMQ_TLS_CERT": "c.pem"}, "WSMQ_TLS_CERT and WSMQ_TLS_KEY must be set together"},
		{"client CA without cert", nil, map[string]string{"WSMQ_TLS_CLIENT_CA": "ca.pem"}, "WSMQ_TLS_CLIENT_CA needs WSMQ_TLS_CERT"},
		{"short admin key", nil, map[string]string{"WSMQ_PUBLISHER_ADMIN_KEYS": "short"}, "WSMQ_PUBLISHER_ADMIN_KEYS: key 1 is shorter than 16"},
		{"admin key repeats a send key", nil, map[string]string{"WSMQ_PUBLISHER_KEYS": goodKey, "WSMQ_PUBLISHER_ADMIN_KEYS": goodKey}, "WSMQ_PUBLISHER_ADMIN_KEYS must not repeat a key of WSMQ_PUBLISHER_KEYS"},
		{"http listen without port", nil, map[string]string{"WSMQ_PUBLISHER_HTTP_LISTEN": "localhost"}, `WSMQ_PUBLISHER_HTTP_LISTEN="localhost": must be host:port`},
		{"http listen on the grpc address", nil, map[string]string{"WSMQ_PUBLISHER_HTTP_LISTEN": "127.0.0.1:9092"}, `WSMQ_PUBLISHER_HTTP_LISTEN "127.0.0.1:9092" is already used`},
		{"http body limit", nil, map[string]string{"WSMQ_PUBLISHER_HTTP_MAX_BODY_BYTES": "10"}, `WSMQ_PUBLISHER_HTTP_MAX_BODY_BYTES="10": must be an integer between 1024`},
		{"unknown publisher variable", nil, map[string]string{"WSMQ_PUBLISHER_COLOUR": "blue"}, "unknown variable WSMQ_PUBLISHER_COLOUR"},
		{"typo of a known variable", nil, map[string]string{"WSMQ_REDIS_ULR": "x"}, "unknown variable WSMQ_REDIS_ULR (did you mean WSMQ_REDIS_URL?)"},
		{"bad flag value", []string{"-queue-vt", "x"}, map[string]string{}, `-queue-vt="x": must be an integer`},
		{"unknown flag", []string{"-colour"}, map[string]string{}, "flag provided but not defined: -colour"},
		{"positional argument", []string{"serve"}, map[string]string{}, `unexpected arguments ["serve"]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{"WSMQ_PUBLISHER_KEYS": goodKey}
			for k, v := range tc.env {
				env[k] = v
			}
			if tc.name == "no keys outside dev mode" {
				delete(env, "WSMQ_PUBLISHER_KEYS")
			}
			_, err := parse(tc.args, env)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Parse = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestKeysAreNeverEchoedInErrors(t *testing.T) {
	_, err := parse(nil, map[string]string{"WSMQ_PUBLISHER_KEYS": "secret-but-short"[:10] + ",x"})
	if err == nil || strings.Contains(err.Error(), "secret") {
		t.Fatalf("error %v echoes a key", err)
	}
}

func TestOtherServicesVariablesAreIgnored(t *testing.T) {
	_, err := parse(nil, map[string]string{"WSMQ_PUBLISHER_KEYS": goodKey, "WSMQ_AUTH_LISTEN": ":9091", "WSMQ_GATEWAY_ORIGINS": "*",
		// wsmqctl's and the publisher client's, under this service's prefix
		"WSMQ_PUBLISHER_ADDR": "127.0.0.1:9092", "WSMQ_PUBLISHER_KEY": goodKey, "WSMQ_PUBLISHER_ADMIN_KEY": goodKey})
	if err != nil {
		t.Fatal(err)
	}
}

func TestDurableAckSettingsParseAndTheirBoundsAreEnforced(t *testing.T) {
	for _, tc := range []struct {
		name        string
		env         map[string]string
		wantMin     int
		wantTimeout time.Duration
		wantErr     string // "" means valid
	}{
		{"off by default", nil, 0, DefaultReplicaTimeout, ""},
		{"one replica, default timeout", map[string]string{"WSMQ_PUBLISHER_MIN_REPLICAS": "1"}, 1, 100 * time.Millisecond, ""},
		{"two replicas, own timeout", map[string]string{"WSMQ_PUBLISHER_MIN_REPLICAS": "2", "WSMQ_PUBLISHER_REPLICA_TIMEOUT": "250ms"}, 2, 250 * time.Millisecond, ""},
		{"most replicas", map[string]string{"WSMQ_PUBLISHER_MIN_REPLICAS": "16"}, 16, DefaultReplicaTimeout, ""},
		{"timeout just under the call timeout", map[string]string{"WSMQ_PUBLISHER_MIN_REPLICAS": "1", "WSMQ_PUBLISHER_REPLICA_TIMEOUT": "1999ms"}, 1, 1999 * time.Millisecond, ""},
		{"long timeout is fine while durable acks are off", map[string]string{"WSMQ_PUBLISHER_REPLICA_TIMEOUT": "5s"}, 0, 5 * time.Second, ""},
		{"negative replicas", map[string]string{"WSMQ_PUBLISHER_MIN_REPLICAS": "-1"}, 0, 0, `WSMQ_PUBLISHER_MIN_REPLICAS="-1": must be an integer between 0 and 16`},
		{"too many replicas", map[string]string{"WSMQ_PUBLISHER_MIN_REPLICAS": "17"}, 0, 0, `WSMQ_PUBLISHER_MIN_REPLICAS="17": must be an integer between 0 and 16`},
		{"replicas not a number", map[string]string{"WSMQ_PUBLISHER_MIN_REPLICAS": "one"}, 0, 0, `WSMQ_PUBLISHER_MIN_REPLICAS="one": must be an integer`},
		{"timeout without unit", map[string]string{"WSMQ_PUBLISHER_REPLICA_TIMEOUT": "100"}, 0, 0, `WSMQ_PUBLISHER_REPLICA_TIMEOUT="100": must be a duration`},
		{"timeout zero", map[string]string{"WSMQ_PUBLISHER_REPLICA_TIMEOUT": "0s"}, 0, 0, `WSMQ_PUBLISHER_REPLICA_TIMEOUT="0s"`},
		{"timeout equal to the call timeout", map[string]string{"WSMQ_PUBLISHER_MIN_REPLICAS": "1", "WSMQ_PUBLISHER_REPLICA_TIMEOUT": "2s"}, 0, 0,
			"WSMQ_PUBLISHER_REPLICA_TIMEOUT (2s) must be shorter than WSMQ_PUBLISHER_CALL_TIMEOUT (2s)"},
		{"timeout over a shortened call timeout", map[string]string{"WSMQ_PUBLISHER_MIN_REPLICAS": "1", "WSMQ_PUBLISHER_REPLICA_TIMEOUT": "300ms", "WSMQ_PUBLISHER_CALL_TIMEOUT": "200ms"}, 0, 0,
			"WSMQ_PUBLISHER_REPLICA_TIMEOUT (300ms) must be shorter than WSMQ_PUBLISHER_CALL_TIMEOUT (200ms)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{"WSMQ_PUBLISHER_KEYS": goodKey}
			for k, v := range tc.env {
				env[k] = v
			}
			c, err := parse(nil, env)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Parse = %v, want an error containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if c.MinReplicas != tc.wantMin || c.ReplicaTimeout != tc.wantTimeout {
				t.Fatalf("MinReplicas %d, ReplicaTimeout %s; want %d, %s", c.MinReplicas, c.ReplicaTimeout, tc.wantMin, tc.wantTimeout)
			}
		})
	}
}
