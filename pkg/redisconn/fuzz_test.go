package redisconn_test

import (
	"net/url"
	"strings"
	"testing"

	"github.com/wsmq/wsmq/pkg/redisconn"
)

// FuzzParseURL: the parser never panics, accepts only its schemes, and its
// errors and Redact never show a URL's password.
func FuzzParseURL(f *testing.F) {
	for _, s := range []string{"redis://127.0.0.1:6379/0", "rediss://u:secretpw@h:1/2", "unix:///tmp/r.sock", "http://x", "redis://:secretpw@h:notaport", "", "::",
		"redis+sentinel://u:secretpw@a:1,b:2/3?master_name=m&sentinel_password=x", "redis+sentinel://a:1?master_name=m&sentinel_password=secretpw"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		tg, err := redisconn.ParseURL(raw)
		if err == nil && (tg == nil || (tg.Single == nil) == (tg.Failover == nil)) {
			t.Fatalf("ParseURL(%q): want exactly one of Single and Failover", raw)
		}
		if err == nil && tg.Single != nil {
			u, perr := url.Parse(raw)
			if perr != nil || (u.Scheme != "redis" && u.Scheme != "rediss" && u.Scheme != "unix") || (u.Host == "" && u.Path == "") {
				t.Fatalf("accepted %q", raw)
			}
		}
		// A password is what stands in a user part: between "//" or ":" and "@".
		if strings.Contains(raw, ":secretpw@") || strings.Contains(raw, "//secretpw@") || strings.Contains(raw, "sentinel_password=secretpw") {
			if err != nil && strings.Contains(err.Error(), "secretpw") && !strings.Contains(raw, "secretpw:") && !strings.Contains(strings.SplitN(raw, "@", 2)[len(strings.SplitN(raw, "@", 2))-1], "secretpw") {
				t.Fatalf("error shows the password: %v", err)
			}
			if r := redisconn.Redact(raw); strings.Contains(r, ":secretpw@") || strings.Contains(r, "//secretpw@") || strings.Contains(r, "sentinel_password=secretpw") {
				t.Fatalf("Redact(%q) = %q shows the password", raw, redisconn.Redact(raw))
			}
		}
	})
}
