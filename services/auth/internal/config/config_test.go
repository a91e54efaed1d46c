package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wsmq/wsmq/pkg/config"
)

func envOf(m map[string]string) config.Env { return config.MapEnv(m) }

func TestParseReadsEnvironmentAndFlagsOverrideIt(t *testing.T) {
	c, rest, err := Parse([]string{"-jwt-ttl", "5m", "user", "ls"}, envOf(map[string]string{
		"WSMQ_MONGO_URI":        "mongodb://db:27017",
		"WSMQ_MONGO_DB":         "other",
		"WSMQ_JWT_TTL":          "1m",
		"WSMQ_MONGO_TIMEOUT":    "1s",
		"WSMQ_ACCESS_TOKEN_TTL": "0s",
		"WSMQ_DEV":              "1",
		"WSMQ_LOG_LEVEL":        "debug",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.MongoURI != "mongodb://db:27017" || c.MongoDB != "other" || c.JWTTTL != 5*time.Minute ||
		c.MongoTimeout != time.Second || c.AccessTokenTTL != 0 || !c.Dev || c.LogLevel.String() != "DEBUG" {
		t.Fatalf("config %+v", c)
	}
	if strings.Join(rest, " ") != "user ls" {
		t.Fatalf("rest = %q", rest)
	}
	d, _, err := Parse(nil, envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	if d.MongoURI != "mongodb://127.0.0.1:27017" || d.MongoDB != "wsmq" || d.Listen != "127.0.0.1:9091" ||
		d.MetricsListen != "127.0.0.1:9191" || d.JWTTTL != 15*time.Minute || d.MongoTimeout != 3*time.Second ||
		d.JWTIssuer != "wsmq-auth" || d.BcryptCost != 12 || d.AccessTokenTTL != 90*24*time.Hour {
		t.Fatalf("defaults %+v", d)
	}
}

func TestParseRejectsMalformedValuesNamingTheVariable(t *testing.T) {
	for env, val := range map[string]string{
		"WSMQ_JWT_TTL":          "15",
		"WSMQ_MONGO_TIMEOUT":    "soon",
		"WSMQ_ACCESS_TOKEN_TTL": "-1h",
		"WSMQ_DEV":              "yes please",
		"WSMQ_LOG_LEVEL":        "loud",
		"WSMQ_BCRYPT_COST":      "99",
		"WSMQ_MONGO_URI":        "http://127.0.0.1",
		"WSMQ_MONGO_DB":         "a/b",
		"WSMQ_AUTH_LISTEN":      "9091",
		"WSMQ_AUTH_COLOUR":      "blue",
	} {
		_, _, err := Parse(nil, envOf(map[string]string{env: val}))
		if err == nil || !strings.Contains(err.Error(), env) {
			t.Errorf("%s=%q: error %v does not name the variable", env, val, err)
		}
	}
	if _, _, err := Parse([]string{"-jwt-ttl", "x"}, envOf(nil)); err == nil || !strings.Contains(err.Error(), "jwt-ttl") {
		t.Errorf("bad flag: %v", err)
	}
	if _, _, err := Parse([]string{"-no-such-flag"}, envOf(nil)); err == nil {
		t.Error("unknown flag accepted")
	}
	_, _, err := Parse(nil, envOf(map[string]string{"WSMQ_JWT_TTL": "15", "WSMQ_BCRYPT_COST": "99"}))
	if err == nil || !strings.Contains(err.Error(), "WSMQ_JWT_TTL") || !strings.Contains(err.Error(), "WSMQ_BCRYPT_COST") {
		t.Errorf("two bad values: %v, want both named in one error", err)
	}
}

func TestTheGatewaysAuthVariablesAreNotTyposForAuth(t *testing.T) {
	if _, _, err := Parse(nil, envOf(map[string]string{"WSMQ_AUTH_ADDR": "auth:9091", "WSMQ_AUTH_TIMEOUT": "3s",
		"WSMQ_AUTH_TLS": "1", "WSMQ_AUTH_TLS_CA": "/ca.pem", "WSMQ_AUTH_TLS_CLIENT_CERT": "/c.pem", "WSMQ_AUTH_TLS_CLIENT_KEY": "/k.pem"})); err != nil {
		t.Fatalf("a shared environment with the gateway's settings: %v", err)
	}
}

func TestTLSAndGatewayTokenSettingsAreCheckedTogether(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"WSMQ_AUTH_TLS_CERT": "/c.pem"}, "WSMQ_AUTH_TLS_KEY"},
		{map[string]string{"WSMQ_AUTH_TLS_CLIENT_CA": "/ca.pem"}, "WSMQ_AUTH_TLS_CLIENT_CA"},
	} {
		if _, _, err := Parse(nil, envOf(tc.env)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want an error naming %s", tc.env, err, tc.want)
		}
	}
	base := Config{JWTSecret: strings.Repeat("s", 32), AdminToken: strings.Repeat("a", 16), BcryptCost: 12}
	for _, tc := range []struct {
		token, want string
	}{
		{"short", "WSMQ_AUTH_GATEWAY_TOKEN"},
		{strings.Repeat("a", 16), "WSMQ_AUTH_GATEWAY_TOKEN equals WSMQ_AUTH_ADMIN_TOKEN"},
	} {
		c := base
		c.GatewayToken = tc.token
		if _, err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("gateway token %q: %v, want %q", tc.token, err, tc.want)
		}
	}
	c := base
	if w, err := c.Validate(); err != nil || len(w) != 1 || !strings.Contains(w[0], "WSMQ_AUTH_GATEWAY_TOKEN") {
		t.Errorf("no gateway token: warnings %v, err %v; want one warning naming WSMQ_AUTH_GATEWAY_TOKEN", w, err)
	}
	c = base
	c.Dev, c.AdminToken = true, ""
	if _, err := c.Validate(); err != nil || c.GatewayToken != DevGatewayToken {
		t.Errorf("dev mode: gateway token %q, %v; want the dev token", c.GatewayToken, err)
	}
}

func TestEmptyMetricsListenDisablesTheListener(t *testing.T) {
	c, _, err := Parse(nil, envOf(map[string]string{"WSMQ_AUTH_METRICS_LISTEN": ""}))
	if err != nil || c.MetricsListen != "" {
		t.Fatalf("WSMQ_AUTH_METRICS_LISTEN= gives %q, %v; want \"\" (off)", c.MetricsListen, err)
	}
}

func TestValidateRequiresRealSecretsOutsideDevMode(t *testing.T) {
	long := strings.Repeat("s", 32)
	admin := strings.Repeat("a", 16)
	cases := []struct {
		name    string
		env     map[string]string
		wantErr string // substring; "" for success
	}{
		{"no secret", map[string]string{"WSMQ_AUTH_ADMIN_TOKEN": admin}, "WSMQ_JWT_SECRET"},
		{"short secret", map[string]string{"WSMQ_JWT_SECRET": long[:31], "WSMQ_AUTH_ADMIN_TOKEN": admin}, "WSMQ_JWT_SECRET"},
		{"no admin token", map[string]string{"WSMQ_JWT_SECRET": long}, "WSMQ_AUTH_ADMIN_TOKEN"},
		{"short admin token", map[string]string{"WSMQ_JWT_SECRET": long, "WSMQ_AUTH_ADMIN_TOKEN": admin[:15]}, "WSMQ_AUTH_ADMIN_TOKEN"},
		{"secret and keys file", map[string]string{"WSMQ_JWT_SECRET": long, "WSMQ_JWT_KEYS_FILE": "/x", "WSMQ_AUTH_ADMIN_TOKEN": admin}, "both"},
		{"missing keys file", map[string]string{"WSMQ_JWT_KEYS_FILE": "/nonexistent/keys", "WSMQ_AUTH_ADMIN_TOKEN": admin}, "WSMQ_JWT_KEYS_FILE"},
		{"weak bcrypt", map[string]string{"WSMQ_JWT_SECRET": long, "WSMQ_AUTH_ADMIN_TOKEN": admin, "WSMQ_BCRYPT_COST": "6"}, "WSMQ_BCRYPT_COST"},
		{"complete", map[string]string{"WSMQ_JWT_SECRET": long, "WSMQ_AUTH_ADMIN_TOKEN": admin}, ""},
		{"dev mode fills in", map[string]string{"WSMQ_DEV": "1"}, ""},
		{"dev mode allows short values", map[string]string{"WSMQ_DEV": "1", "WSMQ_JWT_SECRET": "short", "WSMQ_AUTH_ADMIN_TOKEN": "x", "WSMQ_BCRYPT_COST": "4"}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, _, err := Parse(nil, envOf(tc.env))
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.Validate()
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("Validate = %v, want an error naming %s", err, tc.wantErr)
			case err == nil && (len(c.JWTKeys) == 0 || c.AdminToken == ""):
				t.Fatalf("valid config without keys or admin token: %+v", c)
			}
		})
	}
}

func TestValidateReportsEveryProblemAtOnceNamingEachVariable(t *testing.T) {
	long := strings.Repeat("s", 32)
	admin := strings.Repeat("a", 16)
	cases := []struct {
		name string
		env  map[string]string
		want []string // each must appear in the one error
	}{
		{"weak bcrypt, no secret, no admin token",
			map[string]string{"WSMQ_BCRYPT_COST": "4"},
			[]string{"WSMQ_BCRYPT_COST", "WSMQ_JWT_SECRET", "WSMQ_AUTH_ADMIN_TOKEN"}},
		{"short secret, short admin token, short gateway token",
			map[string]string{"WSMQ_JWT_SECRET": long[:31], "WSMQ_AUTH_ADMIN_TOKEN": admin[:15], "WSMQ_AUTH_GATEWAY_TOKEN": "gw"},
			[]string{"WSMQ_JWT_SECRET: shorter", "WSMQ_AUTH_ADMIN_TOKEN: shorter", "WSMQ_AUTH_GATEWAY_TOKEN: shorter"}},
		{"secret and keys file, weak bcrypt, gateway token equals admin token",
			map[string]string{"WSMQ_JWT_SECRET": long, "WSMQ_JWT_KEYS_FILE": "/x", "WSMQ_BCRYPT_COST": "9",
				"WSMQ_AUTH_ADMIN_TOKEN": admin, "WSMQ_AUTH_GATEWAY_TOKEN": admin},
			[]string{"WSMQ_JWT_KEYS_FILE are both set", "WSMQ_BCRYPT_COST", "WSMQ_AUTH_GATEWAY_TOKEN equals"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, _, err := Parse(nil, envOf(tc.env))
			if err != nil {
				t.Fatal(err)
			}
			w, err := c.Validate()
			if err == nil {
				t.Fatalf("Validate accepted %v (warnings %q)", tc.env, w)
			}
			for _, want := range tc.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Validate error %q does not report %q", err, want)
				}
			}
			if got := strings.Count(err.Error(), "\n") + 1; got != len(tc.want) {
				t.Errorf("Validate reported %d problems, want %d: %q", got, len(tc.want), err)
			}
		})
	}
}

func TestValidateDevModeUsesMarkedDevSecretsAndWarns(t *testing.T) {
	c, _, err := Parse(nil, envOf(map[string]string{"WSMQ_DEV": "true"}))
	if err != nil {
		t.Fatal(err)
	}
	warnings, err := c.Validate()
	if err != nil {
		t.Fatal(err)
	}
	if c.JWTKeys[0].ID != DevJWTKeyID || string(c.JWTKeys[0].Secret) != DevJWTSecret || c.AdminToken != DevAdminToken {
		t.Fatalf("dev config %+v", c)
	}
	if len(warnings) != 2 || !strings.Contains(warnings[0], "DEV MODE") {
		t.Fatalf("warnings %q", warnings)
	}
}

func TestKeysFileLastKeySignsAndAllLoad(t *testing.T) {
	p := filepath.Join(t.TempDir(), "keys")
	content := "# rotation\n\nold " + strings.Repeat("o", 32) + "\nnew " + strings.Repeat("n", 32) + "\n"
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	c, _, err := Parse(nil, envOf(map[string]string{"WSMQ_JWT_KEYS_FILE": p, "WSMQ_AUTH_ADMIN_TOKEN": strings.Repeat("a", 16)}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if len(c.JWTKeys) != 2 || c.JWTKeys[0].ID != "old" || c.JWTKeys[1].ID != "new" {
		t.Fatalf("keys %v", c.JWTKeys)
	}
	for name, bad := range map[string]string{
		"empty":         "# nothing\n",
		"one field":     "k1\n",
		"three fields":  "k1 s x\n",
		"bad kid":       "k/1 secret\n",
		"duplicate kid": "k1 a\nk1 b\n",
	} {
		if _, err := ParseKeys([]byte(bad)); err == nil {
			t.Errorf("%s: accepted %q", name, bad)
		}
	}
	short := filepath.Join(t.TempDir(), "short")
	_ = os.WriteFile(short, []byte("k1 tooshort\n"), 0o600)
	c, _, _ = Parse(nil, envOf(map[string]string{"WSMQ_JWT_KEYS_FILE": short, "WSMQ_AUTH_ADMIN_TOKEN": strings.Repeat("a", 16)}))
	if _, err := c.Validate(); err == nil || !strings.Contains(err.Error(), "k1") {
		t.Fatalf("short key in file: %v", err)
	}
}
