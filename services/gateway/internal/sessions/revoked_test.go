package sessions

import (
	"fmt"
	"testing"
	"time"

	"github.com/wsmq/wsmq/services/gateway/internal/authclient"
)

func TestRevokedSetRefusesARevokedSessionsJWTOnly(t *testing.T) {
	s := newRevokedSet(time.Hour)
	s.add(authclient.Revocation{UserID: "alice", SessionID: "s1"}, time.Time{})
	iat := time.Now().Truncate(time.Second).UnixMilli()
	for _, tc := range []struct {
		name string
		id   authclient.Identity
		want bool
	}{
		{"the revoked session", authclient.Identity{UserID: "alice", SessionID: "s1", IssuedAt: iat}, true},
		{"another session of the user", authclient.Identity{UserID: "alice", SessionID: "s2", IssuedAt: iat}, false},
		{"another user", authclient.Identity{UserID: "bob", SessionID: "s3", IssuedAt: iat}, false},
	} {
		if got := s.refuses(tc.id); got != tc.want {
			t.Errorf("%s: refuses = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestRevokedSetKeepsARevocationUntilItsJWTsExpire(t *testing.T) {
	const retention = time.Minute
	for _, tc := range []struct {
		name  string
		until time.Duration // from now; 0: no socket told an expiry
		keep  time.Duration // the entry's expected lifetime
	}{
		{"no known expiry: the retention", 0, retention},
		{"a JWT expiring before the retention", retention / 2, retention},
		{"a JWT expiring after the retention", 10 * retention, 10 * retention},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newRevokedSet(retention)
			var until time.Time
			if tc.until > 0 {
				until = time.Now().Add(tc.until)
			}
			before := time.Now()
			s.add(authclient.Revocation{UserID: "alice", SessionID: "s1"}, until)
			s.add(authclient.Revocation{UserID: "bob", AllSessions: true, ValidAfter: before}, until)
			after := time.Now()
			for key, forget := range map[string]time.Time{"session": s.sessions["s1"], "user": s.users["bob"].forget} {
				if tc.until > retention && !forget.Equal(until) {
					t.Errorf("%s remembered until %v, want the JWT's expiry %v", key, forget, until)
				} else if tc.until <= retention && (forget.Before(before.Add(tc.keep)) || forget.After(after.Add(tc.keep))) {
					t.Errorf("%s remembered until %v, want %v after the revocation", key, forget.Sub(before), tc.keep)
				}
			}
			old := before.Add(-time.Hour).Truncate(time.Second).UnixMilli()
			alice := authclient.Identity{UserID: "alice", SessionID: "s1", IssuedAt: old}
			bob := authclient.Identity{UserID: "bob", SessionID: "s9", IssuedAt: old}
			if !s.refuses(alice) || !s.refuses(bob) {
				t.Fatalf("refuses(session) = %v, refuses(user) = %v before expiry, want both", s.refuses(alice), s.refuses(bob))
			}
			// Past its time, an entry refuses nothing (the JWT it covered
			// has expired and auth refuses it anyway).
			s.mu.Lock()
			s.sessions["s1"] = time.Now().Add(-time.Millisecond)
			s.users["bob"] = userRevoked{validAfter: s.users["bob"].validAfter, forget: time.Now().Add(-time.Millisecond)}
			s.mu.Unlock()
			if s.refuses(alice) || s.refuses(bob) {
				t.Errorf("refuses(session) = %v, refuses(user) = %v after expiry, want neither", s.refuses(alice), s.refuses(bob))
			}
		})
	}
}

func TestRevokedSetStaysBoundedAndPrunesExpiredEntriesFirst(t *testing.T) {
	for _, tc := range []struct {
		name    string
		expired int // of the maxRevoked entries already there
		want    int // entries after one more add
	}{
		{"expired entries are dropped", maxRevoked / 5, maxRevoked - maxRevoked/5 + 1},
		{"none expired: down to 90%, then the new one", 0, maxRevoked * 9 / 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newRevokedSet(time.Hour)
			past, future := time.Now().Add(-time.Second), time.Now().Add(time.Hour)
			for i := range maxRevoked {
				forget := future
				if i < tc.expired {
					forget = past
				}
				k := fmt.Sprintf("k%06d", i)
				s.sessions[k] = forget
				s.users[k] = userRevoked{deleted: true, forget: forget}
			}
			s.add(authclient.Revocation{UserID: "new", SessionID: "new", UserDeleted: true}, time.Time{})
			if len(s.sessions) != tc.want || len(s.users) != tc.want {
				t.Errorf("%d sessions, %d users after the add, want %d each (bound %d)", len(s.sessions), len(s.users), tc.want, maxRevoked)
			}
			for i := range tc.expired {
				k := fmt.Sprintf("k%06d", i)
				if _, ok := s.sessions[k]; ok {
					t.Fatalf("expired session %s kept", k)
				}
				if _, ok := s.users[k]; ok {
					t.Fatalf("expired user %s kept", k)
				}
			}
			if !s.refuses(authclient.Identity{UserID: "x", SessionID: "new"}) || !s.refuses(authclient.Identity{UserID: "new", SessionID: "y"}) {
				t.Error("the revocation added when full is not refused")
			}
			// The set never grows past its bound.
			for i := range maxRevoked {
				s.add(authclient.Revocation{UserID: fmt.Sprintf("u%d", i), SessionID: fmt.Sprintf("s%d", i), AllSessions: true}, time.Time{})
			}
			if len(s.sessions) > maxRevoked || len(s.users) > maxRevoked {
				t.Errorf("%d sessions, %d users, more than the bound %d", len(s.sessions), len(s.users), maxRevoked)
			}
		})
	}
}

// A user revocation (revoke all, password change) refuses JWTs issued
// before its second: JWT issue times are whole seconds, so one issued in
// the revocation's own second is not refused here at reconnect (it may be
// the session that changed the password); the auth service's session
// generation decides it. Deletion refuses every JWT.
func TestRevokedSetUserRevocationCutsAtTheWholeSecond(t *testing.T) {
	sec := time.Now().Truncate(time.Second)
	at := sec.Add(700 * time.Millisecond) // the revocation, inside second sec
	for _, tc := range []struct {
		name    string
		deleted bool
		iat     time.Time
		want    bool
	}{
		{"issued the second before", false, sec.Add(-time.Second), true},
		{"issued in the same second", false, sec, false},
		{"issued the second after", false, sec.Add(time.Second), false},
		{"deleted user, same second", true, sec, true},
		{"deleted user, later", true, sec.Add(time.Hour), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newRevokedSet(time.Hour)
			s.add(authclient.Revocation{UserID: "alice", AllSessions: true, ValidAfter: at, UserDeleted: tc.deleted}, time.Time{})
			id := authclient.Identity{UserID: "alice", SessionID: "s1", IssuedAt: tc.iat.UnixMilli()}
			if got := s.refuses(id); got != tc.want {
				t.Errorf("refuses(iat %v after the revocation's second) = %v, want %v", tc.iat.Sub(sec), got, tc.want)
			}
			// An older revocation pushed later does not move the cut back,
			// and does not undelete.
			s.add(authclient.Revocation{UserID: "alice", AllSessions: true, ValidAfter: at.Add(-time.Hour)}, time.Time{})
			if got := s.refuses(id); got != tc.want {
				t.Errorf("after an older revocation: refuses = %v, want %v", got, tc.want)
			}
		})
	}
}
