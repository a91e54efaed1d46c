package testenv

import (
	"net"
	"strconv"
	"testing"
)

func TestFreePortIsBindableAndBelowTheEphemeralRange(t *testing.T) {
	high := ephemeralStart()
	seen := map[int]bool{}
	for range 20 {
		p := FreePort(t)
		if p < freePortLow || p >= high {
			t.Fatalf("port %d outside [%d, %d): an outgoing connection could take it", p, freePortLow, high)
		}
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			t.Fatalf("port %d not bindable: %v", p, err)
		}
		_ = l.Close()
		seen[p] = true
	}
	if len(seen) < 15 {
		t.Fatalf("20 calls gave %d distinct ports: not spread at random", len(seen))
	}
}
