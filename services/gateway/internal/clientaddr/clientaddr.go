// Package clientaddr finds the address of the client behind trusted
// proxies: the right-most X-Forwarded-For hop that is not itself a trusted
// proxy, or the peer's address when the peer is not trusted.
package clientaddr

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Resolver resolves client addresses. Its zero value trusts no proxy, so
// X-Forwarded-For is never read. Safe for concurrent use.
type Resolver struct {
	trusted []netip.Prefix
}

// Parse reads a comma-separated list of CIDRs or bare IPs (a bare IP is a
// /32 or /128) into a Resolver trusting them.
func Parse(list string) (Resolver, error) {
	var r Resolver
	for _, f := range strings.Split(list, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if !strings.Contains(f, "/") {
			a, err := netip.ParseAddr(f)
			if err != nil {
				return Resolver{}, fmt.Errorf("trusted proxy %q: not an IP or CIDR: %w", f, err)
			}
			a = a.Unmap()
			r.trusted = append(r.trusted, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return Resolver{}, fmt.Errorf("trusted proxy %q: not an IP or CIDR: %w", f, err)
		}
		if p.Addr().Is4In6() {
			p = netip.PrefixFrom(p.Addr().Unmap(), max(0, p.Bits()-96))
		}
		r.trusted = append(r.trusted, p.Masked())
	}
	return r, nil
}

// Trusts reports whether a is one of the trusted proxies.
func (r Resolver) Trusts(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range r.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Len is the number of trusted prefixes.
func (r Resolver) Len() int { return len(r.trusted) }

// ClientIP is the client's address for req, as a string for limiter keys
// and logs.
//
// When the peer (req.RemoteAddr) is a trusted proxy, the X-Forwarded-For
// hops (every header line, in order) are read from the right: each hop a
// trusted proxy appended is skipped, and the first one that is not trusted
// is the client; hops left of it were written by the client and are
// ignored. When every hop is trusted, the left-most is the client. A hop
// that does not parse stops the walk at the last good address. Without a
// trusted peer the header is ignored: anyone can send it.
func (r Resolver) ClientIP(req *http.Request) string {
	peer := peerAddr(req.RemoteAddr)
	if !peer.IsValid() {
		return req.RemoteAddr
	}
	if len(r.trusted) == 0 || !r.Trusts(peer) {
		return peer.String()
	}
	client := peer
	hops := req.Header.Values("X-Forwarded-For")
	for i := len(hops) - 1; i >= 0; i-- {
		parts := strings.Split(hops[i], ",")
		for j := len(parts) - 1; j >= 0; j-- {
			a, ok := parseHop(parts[j])
			if !ok {
				return client.String()
			}
			client = a
			if !r.Trusts(a) {
				return a.String()
			}
		}
	}
	return client.String()
}

func peerAddr(remote string) netip.Addr {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap().WithZone("")
}

// parseHop reads one X-Forwarded-For element: an IP, optionally with a
// port ("1.2.3.4:80", "[::1]:80"), as some proxies write it.
func parseHop(s string) (netip.Addr, bool) {
	s = strings.TrimSpace(s)
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap().WithZone(""), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap().WithZone(""), true
	}
	return netip.Addr{}, false
}
