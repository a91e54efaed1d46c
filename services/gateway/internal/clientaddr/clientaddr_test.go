package clientaddr

import (
	"net/http"
	"net/netip"
	"testing"
)

func TestClientIPIsTheRightMostUntrustedHopBehindTrustedProxies(t *testing.T) {
	r, err := Parse("10.0.0.0/8, 192.0.2.1, ::1")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		remote string
		xff    []string
		want   string
	}{
		{"untrusted peer: header ignored", "198.51.100.9:5000", []string{"203.0.113.7"}, "198.51.100.9"},
		{"untrusted peer: spoofed private hop ignored", "198.51.100.9:5000", []string{"10.1.1.1"}, "198.51.100.9"},
		{"trusted peer without header", "10.0.0.5:5000", nil, "10.0.0.5"},
		{"trusted peer: its hop", "10.0.0.5:5000", []string{"203.0.113.7"}, "203.0.113.7"},
		{"client-written hops left of the real one ignored", "10.0.0.5:5000", []string{"1.1.1.1, 2.2.2.2, 203.0.113.7"}, "203.0.113.7"},
		{"chain of trusted proxies skipped", "10.0.0.5:5000", []string{"6.6.6.6, 203.0.113.7, 192.0.2.1, 10.9.9.9"}, "203.0.113.7"},
		{"several header lines read as one list", "10.0.0.5:5000", []string{"6.6.6.6", "203.0.113.7, 10.2.2.2"}, "203.0.113.7"},
		{"every hop trusted: left-most", "10.0.0.5:5000", []string{"10.3.3.3, 10.4.4.4"}, "10.3.3.3"},
		{"garbage hop stops at the last good one", "10.0.0.5:5000", []string{"203.0.113.7, not-an-ip, 10.4.4.4"}, "10.4.4.4"},
		{"garbage right-most hop: the peer", "10.0.0.5:5000", []string{"203.0.113.7, junk"}, "10.0.0.5"},
		{"hop with a port", "10.0.0.5:5000", []string{"203.0.113.7:1234"}, "203.0.113.7"},
		{"IPv6 trusted peer", "[::1]:5000", []string{"2001:db8::7"}, "2001:db8::7"},
		{"IPv4-mapped peer is the IPv4 address", "[::ffff:10.0.0.5]:5000", []string{"203.0.113.8"}, "203.0.113.8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := &http.Request{RemoteAddr: tc.remote, Header: http.Header{}}
			for _, h := range tc.xff {
				req.Header.Add("X-Forwarded-For", h)
			}
			if got := r.ClientIP(req); got != tc.want {
				t.Fatalf("ClientIP = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestZeroResolverNeverReadsTheHeader(t *testing.T) {
	req := &http.Request{RemoteAddr: "127.0.0.1:1", Header: http.Header{"X-Forwarded-For": {"203.0.113.7"}}}
	if got := (Resolver{}).ClientIP(req); got != "127.0.0.1" {
		t.Fatalf("ClientIP = %s, want the peer", got)
	}
}

func TestParseRejectsWhatIsNotAnIPOrCIDR(t *testing.T) {
	for _, bad := range []string{"lb", "10.0.0.0/33", "10.0.0.1/8/1", "300.1.1.1"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
	r, err := Parse(" ,10.0.0.0/8,")
	if err != nil || r.Len() != 1 || !r.Trusts(netip.MustParseAddr("10.200.0.1")) || r.Trusts(netip.MustParseAddr("11.0.0.1")) {
		t.Fatalf("Parse with empty entries: %v %+v", err, r)
	}
}

func FuzzClientIP(f *testing.F) {
	f.Add("10.0.0.5:1", "203.0.113.7, 10.1.1.1")
	f.Add("[::1]:1", "::1, junk,,")
	r, err := Parse("10.0.0.0/8,::1")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, remote, xff string) {
		req := &http.Request{RemoteAddr: remote, Header: http.Header{"X-Forwarded-For": {xff}}}
		got := r.ClientIP(req)
		if got == "" && remote != "" {
			t.Fatalf("empty client for remote %q", remote)
		}
		// An untrusted peer is always its own client.
		if a := peerAddr(remote); a.IsValid() && !r.Trusts(a) && got != a.String() {
			t.Fatalf("untrusted peer %q resolved to %q", remote, got)
		}
	})
}
