package ticket

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wsmq/wsmq/pkg/testenv"
)

func newStore(t *testing.T, opts Options) (*Store, *redis.Client) {
	t.Helper()
	r := testenv.StartRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	return New(rdb, opts), rdb
}

func TestTicketRedeemsOnceToItsGrant(t *testing.T) {
	s, _ := newStore(t, Options{})
	ctx := context.Background()
	g := Grant{UserID: "u1", SessionID: "s1", Token: "jwt", AccessToken: "acc"}
	tk, exp, err := s.Issue(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Until(exp); d <= 0 || d > DefaultTTL {
		t.Fatalf("expiry in %s, want within %s", d, DefaultTTL)
	}
	got, err := s.Redeem(ctx, tk)
	if err != nil || got != g {
		t.Fatalf("Redeem = %+v, %v; want %+v", got, err, g)
	}
	if _, err := s.Redeem(ctx, tk); !errors.Is(err, ErrInvalid) {
		t.Fatalf("second Redeem: %v, want ErrInvalid", err)
	}
}

func TestRedisHoldsNeitherTheTicketNorTheCredentials(t *testing.T) {
	s, rdb := newStore(t, Options{Namespace: "ns"})
	ctx := context.Background()
	tk, _, err := s.Issue(ctx, Grant{UserID: "u1", Token: "the-jwt-value", AccessToken: "the-access-token"})
	if err != nil {
		t.Fatal(err)
	}
	keys, err := rdb.Keys(ctx, "*").Result()
	if err != nil || len(keys) != 1 || !strings.HasPrefix(keys[0], "ns:wsmq:ticket:") || strings.Contains(keys[0], tk) {
		t.Fatalf("keys %v (%v), want one ns:wsmq:ticket:<hash>", keys, err)
	}
	v, _ := rdb.Get(ctx, keys[0]).Result()
	for _, secret := range []string{tk, "the-jwt-value", "the-access-token", "u1"} {
		if strings.Contains(v, secret) {
			t.Fatalf("stored value shows %q", secret)
		}
	}
	ttl, _ := rdb.PTTL(ctx, keys[0]).Result()
	if ttl <= 0 || ttl > DefaultTTL {
		t.Fatalf("TTL %s, want (0, %s]", ttl, DefaultTTL)
	}
}

func TestExpiredTicketIsInvalid(t *testing.T) {
	s, rdb := newStore(t, Options{TTL: 50 * time.Millisecond})
	ctx := context.Background()
	tk, _, err := s.Issue(ctx, Grant{UserID: "u1"})
	if err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 5*time.Second, "ticket key expired", func() bool {
		return rdb.Exists(ctx, s.Key(tk)).Val() == 0
	})
	if _, err := s.Redeem(ctx, tk); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Redeem of an expired ticket: %v, want ErrInvalid", err)
	}
}

func TestForgedOrMalformedTicketsAreInvalid(t *testing.T) {
	s, rdb := newStore(t, Options{})
	ctx := context.Background()
	tk, _, err := s.Issue(ctx, Grant{UserID: "u1"})
	if err != nil {
		t.Fatal(err)
	}
	// Someone with write access to Redis plants a value under another
	// ticket's key: it does not open without that ticket.
	other := strings.Repeat("A", 43)
	v, _ := rdb.Get(ctx, s.Key(tk)).Bytes()
	rdb.Set(ctx, s.Key(other), v, time.Minute)
	for _, bad := range []string{"", "short", other, tk + "A", strings.Repeat("!", 43)} {
		if _, err := s.Redeem(ctx, bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("Redeem(%q): %v, want ErrInvalid", bad, err)
		}
	}
	if g, err := s.Redeem(ctx, tk); err != nil || g.UserID != "u1" {
		t.Fatalf("the real ticket: %+v, %v", g, err)
	}
}
