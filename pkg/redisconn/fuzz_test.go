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
	for _, s := range []string{"redis://127.0.0.1:6379/0", "rediss://u:secretpw@h:1/2", "unix:///tmp/r.sock", "http://x", "redis://:secretpw@h:notaport", "", "::"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		opts, err := redisconn.ParseURL(raw)
		if err == nil && opts == nil {
			t.Fatal("nil options without an error")
		}
		if err == nil {
			u, perr := url.Parse(raw)
			if perr != nil || (u.Scheme != "redis" && u.Scheme != "rediss" && u.Scheme != "unix") || (u.Host == "" && u.Path == "") {
				t.Fatalf("accepted %q", raw)
			}
		}
		// A password is what stands in a user part: between "//" or ":" and "@".
		if strings.Contains(raw, ":secretpw@") || strings.Contains(raw, "//secretpw@") {
			if err != nil && strings.Contains(err.Error(), "secretpw") {
				t.Fatalf("error shows the password: %v", err)
			}
			if strings.Contains(redisconn.Redact(raw), "secretpw") {
				t.Fatalf("Redact(%q) = %q shows the password", raw, redisconn.Redact(raw))
			}
		}
	})
}
