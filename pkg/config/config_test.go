package config_test

import (
	"errors"
	"flag"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/wsmq/wsmq/pkg/config"
	"github.com/wsmq/wsmq/pkg/rsmq"
)

type settings struct {
	listen, admin string
	n             int
	d             time.Duration
	dev           bool
	key           string
}

func newSet(c *settings) *config.Set {
	s := config.NewSet("prog", "WSMQ_PROG_")
	s.String(&c.listen, "listen", "WSMQ_PROG_LISTEN", "127.0.0.1:1", "listen", config.HostPort)
	s.String(&c.admin, "admin", "WSMQ_PROG_ADMIN", "127.0.0.1:2", "admin", config.OptionalHostPort)
	s.Int(&c.n, "n", "WSMQ_PROG_N", 5, 1, 10, "n")
	s.Duration(&c.d, "d", "WSMQ_PROG_D", time.Second, time.Millisecond, time.Minute, "d")
	s.Dev(&c.dev, "test")
	s.Secret("WSMQ_PROG_KEY", "key", func(v string) error {
		if v != "" && len(v) < 8 {
			return errors.New("too short")
		}
		c.key = v
		return nil
	})
	return s
}

func parse(t *testing.T, args []string, env map[string]string) (settings, []string, error) {
	t.Helper()
	var c settings
	rest, err := newSet(&c).Parse(args, config.MapEnv(env))
	return c, rest, err
}

func TestFlagBeatsEnvironmentBeatsDefault(t *testing.T) {
	c, rest, err := parse(t, []string{"-n", "7", "serve"}, map[string]string{"WSMQ_PROG_N": "3", "WSMQ_PROG_D": "2s"})
	if err != nil {
		t.Fatal(err)
	}
	if c.n != 7 || c.d != 2*time.Second || c.listen != "127.0.0.1:1" || len(rest) != 1 || rest[0] != "serve" {
		t.Fatalf("got %+v rest %q", c, rest)
	}
}

func TestEmptyVariableMeansDefaultForNumbersAndEmptyForStrings(t *testing.T) {
	c, _, err := parse(t, nil, map[string]string{"WSMQ_PROG_N": "", "WSMQ_DEV": "", "WSMQ_PROG_ADMIN": ""})
	if err != nil {
		t.Fatal(err)
	}
	if c.n != 5 || c.dev || c.admin != "" {
		t.Fatalf("got %+v, want n=5, dev off, admin off", c)
	}
}

func TestOneBooleanSyntax(t *testing.T) {
	for v, want := range map[string]bool{"1": true, "true": true, "YES": true, "on": true, "0": false, "false": false, "no": false, "Off": false} {
		c, _, err := parse(t, nil, map[string]string{"WSMQ_DEV": v})
		if err != nil || c.dev != want {
			t.Errorf("WSMQ_DEV=%q: dev=%v err=%v, want %v", v, c.dev, err, want)
		}
	}
	if c, _, err := parse(t, []string{"-dev"}, nil); err != nil || !c.dev {
		t.Errorf("bare -dev: %v %v", c.dev, err)
	}
	if _, _, err := parse(t, nil, map[string]string{"WSMQ_DEV": "maybe"}); err == nil || !strings.Contains(err.Error(), `WSMQ_DEV="maybe"`) {
		t.Errorf("WSMQ_DEV=maybe: %v", err)
	}
}

func TestEveryProblemIsReportedAtOnceNamingItsVariable(t *testing.T) {
	_, _, err := parse(t, []string{"-d", "soon"}, map[string]string{
		"WSMQ_PROG_N": "11", "WSMQ_PROG_LISTEN": "nowhere", "WSMQ_PROG_LISTN": "x", "WSMQ_PROG_COLOUR": "blue",
		"WSMQ_OTHER_SERVICE_SETTING": "left alone",
	})
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		`-d="soon": must be a duration`,
		`WSMQ_PROG_N="11": must be an integer between 1 and 10`,
		`WSMQ_PROG_LISTEN="nowhere": must be host:port`,
		"unknown variable WSMQ_PROG_LISTN (did you mean WSMQ_PROG_LISTEN?)",
		"unknown variable WSMQ_PROG_COLOUR (known: ",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "WSMQ_OTHER_SERVICE_SETTING") {
		t.Errorf("another program's variable was reported:\n%v", err)
	}
}

func TestSecretsAreNeverEchoed(t *testing.T) {
	_, _, err := parse(t, nil, map[string]string{"WSMQ_PROG_KEY": "s3cr"})
	if err == nil || strings.Contains(err.Error(), "s3cr") || !strings.Contains(err.Error(), "WSMQ_PROG_KEY") {
		t.Fatalf("error %v: want it to name WSMQ_PROG_KEY without its value", err)
	}
}

func TestHelpReturnsTheUsage(t *testing.T) {
	_, _, err := parse(t, []string{"-h"}, nil)
	if !errors.Is(err, flag.ErrHelp) || !strings.Contains(err.Error(), "WSMQ_PROG_LISTEN") || !strings.Contains(err.Error(), `(default "127.0.0.1:1")`) {
		t.Fatalf("-h: %v", err)
	}
}

func TestParseFlagsAppliesFlagsAfterACommandWord(t *testing.T) {
	var c settings
	s := newSet(&c)
	rest, err := s.Parse([]string{"-n", "2", "serve", "-d", "3s"}, config.MapEnv(map[string]string{"WSMQ_PROG_D": "9s"}))
	if err != nil || rest[0] != "serve" {
		t.Fatal(rest, err)
	}
	rest, err = s.ParseFlags(rest[1:])
	if err != nil || len(rest) != 0 || c.n != 2 || c.d != 3*time.Second {
		t.Fatalf("after ParseFlags: %+v rest %q err %v", c, rest, err)
	}
}

func TestCommonSettingsUseOneRule(t *testing.T) {
	for _, tc := range []struct {
		env, val, want string
	}{
		{"WSMQ_REDIS_URL", "http://x", `scheme "http" is not redis, rediss, unix, redis+sentinel or rediss+sentinel`},
		{"WSMQ_REDIS_URL", "redis://:pw@host:notaport/0", "WSMQ_REDIS_URL="},
		{"WSMQ_RSMQ_NS", "a:b", "without ':'"},
		{"WSMQ_LOG_LEVEL", "loud", "debug, info, warn or error"},
		{"WSMQ_QUEUE_MAXSIZE", "100", "between 1024 and 65536, or -1"},
		{"WSMQ_QUEUE_VT", "-1", "WSMQ_QUEUE_VT"},
	} {
		var c struct {
			url, ns string
			level   slog.Level
			queue   rsmq.QueueConfig
		}
		s := config.NewSet("prog", "")
		s.RedisURL(&c.url)
		s.Namespace(&c.ns)
		s.LogLevel(&c.level)
		s.QueueDefaults(&c.queue)
		_, err := s.Parse(nil, config.MapEnv(map[string]string{tc.env: tc.val}))
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "pw") {
			t.Errorf("%s=%q: %v, want %q and no password", tc.env, tc.val, err, tc.want)
		}
	}
	for _, ok := range []string{"redis://127.0.0.1:6379/0", "rediss://u:p@h:6380/1", "unix:///run/redis.sock"} {
		var url string
		s := config.NewSet("prog", "")
		s.RedisURL(&url)
		if _, err := s.Parse(nil, config.MapEnv(map[string]string{"WSMQ_REDIS_URL": ok})); err != nil || url != ok {
			t.Errorf("WSMQ_REDIS_URL=%q refused: %v", ok, err)
		}
	}
}
