package redisconn_test

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wsmq/wsmq/pkg/redisconn"
	"github.com/wsmq/wsmq/pkg/testenv"
)

func TestParseURLAcceptsSingleServerAndSentinelForms(t *testing.T) {
	for _, tc := range []struct {
		name, url string
		single    string   // want Single.Addr
		sentinels []string // want Failover.SentinelAddrs
		master    string
		db        int
		user      string
		pass      string
		sUser     string
		sPass     string
		tls       bool
	}{
		{name: "plain", url: "redis://127.0.0.1:6379/2", single: "127.0.0.1:6379", db: 2},
		{name: "tls", url: "rediss://u:p@h:6380/0", single: "h:6380", user: "u", pass: "p", tls: true},
		{name: "one sentinel", url: "redis+sentinel://10.0.0.1:26379?master_name=mymaster",
			sentinels: []string{"10.0.0.1:26379"}, master: "mymaster"},
		{name: "three sentinels, db, auth", url: "redis+sentinel://app:s%40cret@a:1,b:2,c:3/5?master_name=m&sentinel_username=su&sentinel_password=sp",
			sentinels: []string{"a:1", "b:2", "c:3"}, master: "m", db: 5, user: "app", pass: "s@cret", sUser: "su", sPass: "sp"},
		{name: "tls sentinel, trailing slash", url: "rediss+sentinel://[::1]:26379/?master_name=m",
			sentinels: []string{"[::1]:26379"}, master: "m", tls: true},
		{name: "password only", url: "redis+sentinel://:pw@h:1?master_name=m", sentinels: []string{"h:1"}, master: "m", pass: "pw"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := redisconn.ParseURL(tc.url)
			if err != nil {
				t.Fatalf("ParseURL(%q): %v", tc.url, err)
			}
			if tc.single != "" {
				o := got.Single
				if o == nil || got.Failover != nil {
					t.Fatalf("want a single-server target, got %+v", got)
				}
				if o.Addr != tc.single || o.DB != tc.db || o.Username != tc.user || o.Password != tc.pass || (o.TLSConfig != nil) != tc.tls {
					t.Fatalf("options %+v", o)
				}
				return
			}
			o := got.Failover
			if o == nil || got.Single != nil {
				t.Fatalf("want a sentinel target, got %+v", got)
			}
			if !slices.Equal(o.SentinelAddrs, tc.sentinels) || o.MasterName != tc.master || o.DB != tc.db {
				t.Fatalf("sentinels %v master %q db %d", o.SentinelAddrs, o.MasterName, o.DB)
			}
			if o.Username != tc.user || o.Password != tc.pass || o.SentinelUsername != tc.sUser || o.SentinelPassword != tc.sPass {
				t.Fatalf("credentials %q %q %q %q", o.Username, o.Password, o.SentinelUsername, o.SentinelPassword)
			}
			if (o.TLSConfig != nil) != tc.tls {
				t.Fatalf("TLS %v, want %v", o.TLSConfig != nil, tc.tls)
			}
			if got.Addr() != "sentinel:"+tc.master {
				t.Fatalf("Addr %q", got.Addr())
			}
		})
	}
}

func TestParseURLRejectsBadSentinelURLsNamingTheProblem(t *testing.T) {
	for _, tc := range []struct{ url, want string }{
		{"redis+sentinel://h:1", "master_name is required"},
		{"redis+sentinel://?master_name=m", "no sentinel host:port"},
		{"redis+sentinel://h?master_name=m", `"h" is not host:port`},
		{"redis+sentinel://h:1,:2?master_name=m", `":2" is not host:port`},
		{"redis+sentinel://h:99999?master_name=m", "port must be 1..65535"},
		{"redis+sentinel://h:1/x?master_name=m", `database "x"`},
		{"redis+sentinel://h:1?master_name=m&pool=3", `unknown parameter "pool"`},
		{"redis+sentinel://h:1?master_name=m&master_name=n", "master_name given 2 times"},
		{"redis+sentinel://u:p%zz@h:1?master_name=m", "password is not URL-escaped"},
		{"http://h:1", `scheme "http"`},
	} {
		_, err := redisconn.ParseURL(tc.url)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseURL(%q) = %v, want an error containing %q", tc.url, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "p%zz") {
			t.Errorf("error echoes the password: %v", err)
		}
	}
}

func TestRedactHidesSentinelPasswords(t *testing.T) {
	got := redisconn.Redact("redis+sentinel://app:secret1@h:1?master_name=m&sentinel_password=secret2")
	if strings.Contains(got, "secret1") || strings.Contains(got, "secret2") {
		t.Fatalf("Redact left a password: %s", got)
	}
	got = redisconn.Redact("redis+sentinel://app:secret1@a:1,b:2?master_name=m")
	if strings.Contains(got, "secret1") {
		t.Fatalf("Redact left a password: %s", got)
	}
}

func TestMasterWatchFollowsTheFailoverClientToTheNewMasterOnly(t *testing.T) {
	ha := testenv.StartHA(t, testenv.HAOptions{})
	var changes []string
	var mu sync.Mutex
	w := &redisconn.MasterWatch{OnChange: func(old, addr string) {
		mu.Lock()
		changes = append(changes, addr)
		mu.Unlock()
	}}
	rdb, err := redisconn.New(ha.URL(), redisconn.Tuning{Master: w})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	first := ha.Master().Addr()
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if w.Addr() != first || w.Failovers() != 0 {
		t.Fatalf("watch says %s after %d failovers, want %s and 0 (sentinel connections must not count)", w.Addr(), w.Failovers(), first)
	}
	old := ha.KillMaster()
	next := ha.WaitFailover(ctx, old.Addr())
	testenv.Eventually(t, 10*time.Second, "the client on the new master", func() bool { return rdb.Ping(ctx).Err() == nil })
	if w.Addr() != next.Addr() || w.Failovers() != 1 {
		t.Fatalf("watch says %s after %d failovers, want %s after 1", w.Addr(), w.Failovers(), next.Addr())
	}
	mu.Lock()
	defer mu.Unlock()
	if len(changes) != 2 || changes[0] != first || changes[1] != next.Addr() {
		t.Fatalf("OnChange saw %v, want [%s %s]", changes, first, next.Addr())
	}
}
