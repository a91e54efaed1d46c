package sessions

import (
	"sync"
	"time"

	"github.com/wsmq/wsmq/services/gateway/internal/authclient"
)

// Defaults of revocation handling and of the batched re-verify.
const (
	// DefaultRevocationRetention is how long a revoked session or user is
	// remembered when no socket here says when its JWT expires: the auth
	// service's default JWT lifetime (15 min) plus its clock leeway.
	DefaultRevocationRetention = 15*time.Minute + 30*time.Second
	// maxRevoked bounds each set (sessions, users); when full, expired
	// entries are dropped, then arbitrary ones (the auth service still
	// refuses those tokens; the set only makes the refusal immediate).
	maxRevoked = 100_000
)

// revokedSet remembers revoked sessions, and users whose sessions all
// ended, until the JWTs they cover expire, so a revoked JWT is refused at
// reconnect at once (the auth service's own JWT checks may lag by its
// session cache TTL on other replicas).
type revokedSet struct {
	retention time.Duration

	mu       sync.Mutex
	sessions map[string]time.Time // session id -> forget after
	users    map[string]userRevoked
}

type userRevoked struct {
	validAfter int64 // unix ms, whole seconds: JWTs issued before are dead
	deleted    bool
	forget     time.Time
}

func newRevokedSet(retention time.Duration) *revokedSet {
	if retention <= 0 {
		retention = DefaultRevocationRetention
	}
	return &revokedSet{retention: retention, sessions: make(map[string]time.Time), users: make(map[string]userRevoked)}
}

// add records r; until is the latest JWT expiry this gateway knows of the
// sockets r covers (zero: none).
func (s *revokedSet) add(r authclient.Revocation, until time.Time) {
	now := time.Now()
	forget := now.Add(s.retention)
	if until.After(forget) {
		forget = until
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.SessionID != "" {
		if len(s.sessions) >= maxRevoked {
			prune(s.sessions, now, func(t time.Time) time.Time { return t })
		}
		s.sessions[r.SessionID] = forget
	}
	if r.AllSessions || r.UserDeleted {
		if len(s.users) >= maxRevoked {
			prune(s.users, now, func(u userRevoked) time.Time { return u.forget })
		}
		va := r.ValidAfter.UnixMilli() / 1000 * 1000
		prev := s.users[r.UserID]
		s.users[r.UserID] = userRevoked{validAfter: max(va, prev.validAfter), deleted: r.UserDeleted || prev.deleted, forget: forget}
	}
}

// prune drops expired entries, then (still full) arbitrary ones down to
// 90% of the bound.
func prune[V any](m map[string]V, now time.Time, forget func(V) time.Time) {
	for k, v := range m {
		if now.After(forget(v)) {
			delete(m, k)
		}
	}
	for k := range m {
		if len(m) < maxRevoked*9/10 {
			break
		}
		delete(m, k)
	}
}

// refuses reports whether an identity the auth service accepted belongs to
// a session revoked here.
func (s *revokedSet) refuses(id authclient.Identity) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	if t, ok := s.sessions[id.SessionID]; ok && now.Before(t) {
		return true
	}
	u, ok := s.users[id.UserID]
	return ok && now.Before(u.forget) && covers(u, id.IssuedAt)
}

// covers reports whether a user revocation ends a session whose JWT was
// issued at issuedAt (unix ms).
func covers(u userRevoked, issuedAt int64) bool {
	return u.deleted || issuedAt < u.validAfter
}
