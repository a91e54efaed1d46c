package client

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/wsmq/wsmq/services/gateway/protocol"
)

func TestDecideGivesEveryCloseCodeItsOneAction(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want protocol.CloseAction
	}{
		{&CloseError{Code: protocol.CloseUnauthorized}, protocol.ActionStop},
		{&CloseError{Code: protocol.CloseForbidden}, protocol.ActionStop},
		{&CloseError{Code: protocol.CloseRateLimited}, protocol.ActionRetryLater},
		{&CloseError{Code: protocol.CloseSlowConsumer}, protocol.ActionRetry},
		{&CloseError{Code: protocol.CloseInternal}, protocol.ActionRetry},
		{&CloseError{Code: protocol.CloseGoingAway}, protocol.ActionRetrySpread},
		{&CloseError{Code: protocol.CloseRestart}, protocol.ActionRetrySpread},
		{&CloseError{Code: protocol.CloseTryAgainLater}, protocol.ActionRetrySpread},
		{fmt.Errorf("hello: %w", &CloseError{Code: protocol.CloseUnauthorized}), protocol.ActionStop},
		{errors.New("gateway connection lost: EOF"), protocol.ActionRetry},
		{errWatchdog, protocol.ActionRetry},
	} {
		if got := decide(tc.err); got != tc.want {
			t.Errorf("decide(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
	if !errors.Is(&CloseError{Code: protocol.CloseUnauthorized}, ErrUnauthorized) || !errors.Is(&CloseError{Code: protocol.CloseForbidden}, ErrForbidden) ||
		errors.Is(&CloseError{Code: protocol.CloseGoingAway}, ErrUnauthorized) {
		t.Fatal("4001/4003 closes must match ErrUnauthorized/ErrForbidden, and only they")
	}
}

func TestDelaysAreFullJitterWithinTheirBounds(t *testing.T) {
	c := New(Options{})
	for n := range 12 {
		ceiling := min(DefaultMaxBackoff, DefaultMinBackoff<<n)
		var top time.Duration
		for range 200 {
			d := c.backoff(n)
			if d <= 0 || d > ceiling {
				t.Fatalf("backoff(%d) = %v, want in (0, %v]", n, d, ceiling)
			}
			top = max(top, d)
		}
		if top < ceiling/2 {
			t.Fatalf("backoff(%d) never above %v of %v: not full jitter", n, top, ceiling)
		}
	}
	for range 200 {
		if d := c.spread(); d <= 0 || d > DefaultRestartSpread {
			t.Fatalf("spread %v, want in (0, %v]", d, DefaultRestartSpread)
		}
		if d := c.later(); d < DefaultMaxBackoff || d > 2*DefaultMaxBackoff {
			t.Fatalf("later %v, want in [%v, %v]", d, DefaultMaxBackoff, 2*DefaultMaxBackoff)
		}
	}
}

func TestIDSetForgetsTheOldestBeyondItsBound(t *testing.T) {
	s := newIDSet(3)
	for _, id := range []string{"a", "b", "c", "a", "d"} {
		s.add(id)
	}
	if s.has("a") || !s.has("b") || !s.has("c") || !s.has("d") || len(s.ids) != 3 {
		t.Fatalf("set %v, want b c d", s.ids)
	}
}
