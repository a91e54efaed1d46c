package server

import (
	"context"
	"sync"
	"time"

	"github.com/wsmq/wsmq/pkg/reverify"
	"github.com/wsmq/wsmq/services/gateway/internal/authclient"
	"github.com/wsmq/wsmq/services/gateway/internal/wsconn"
	"github.com/wsmq/wsmq/services/gateway/protocol"
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

// Revoke applies a revocation the auth service pushed: it remembers it
// and closes the sockets it covers with 4001 (protocol.CloseUnauthorized) "token revoked". It is safe
// to call from any goroutine.
func (s *Server) Revoke(r authclient.Revocation) {
	// Record first, then scan: handleWS registers a socket, then checks
	// the set, so a socket upgrading meanwhile is caught by one or the
	// other.
	s.revoked.add(r, time.Time{})
	// A live socket's JWT carries its issue time in whole seconds: one
	// issued in the revocation's own second may predate it, so it is closed
	// too (iat <= the revocation); a session opened just after, in the same
	// second, is closed as well and must log in again, which is better than
	// keeping a revoked session's socket open. The reconnect check above stays strict and
	// leaves that second to auth's session generation.
	u := userRevoked{validAfter: r.ValidAfter.UnixMilli()/1000*1000 + 1000, deleted: r.UserDeleted}
	var victims []*wsconn.Conn
	var until int64
	s.mu.Lock()
	for c, cl := range s.conns {
		if (r.SessionID != "" && cl.sessionID == r.SessionID) ||
			((r.AllSessions || r.UserDeleted) && c.User() == r.UserID && covers(u, cl.issuedAt)) {
			victims = append(victims, c)
			until = max(until, cl.expiresAt)
		}
	}
	s.mu.Unlock()
	if len(victims) == 0 {
		return
	}
	// Remember at least until the closed sockets' JWTs expire.
	s.revoked.add(r, time.UnixMilli(until).Add(30*time.Second))
	s.log.Info("revoked; closing sockets", "user", r.UserID, "sockets", len(victims))
	for _, c := range victims {
		c.Close(protocol.CloseUnauthorized, "token revoked") // does not wait
	}
}

// reverify re-checks every live socket's credentials in batches: each
// socket's JWT while it is valid for more than two intervals (the batch
// checks its session in the database), its access token otherwise (which
// also refreshes the JWT). Identical credentials are verified once.
func (s *Server) reverify() {
	now := time.Now().UnixMilli()
	margin := 2 * s.cfg.ReverifyInterval.Milliseconds()
	s.mu.Lock()
	byCreds := make(map[authclient.Credentials][]*wsconn.Conn, len(s.conns))
	for c, cl := range s.conns {
		cr := authclient.Credentials{Token: cl.token}
		if cl.accessToken != "" && (cl.token == "" || cl.expiresAt-now < margin) {
			cr = authclient.Credentials{AccessToken: cl.accessToken}
		}
		byCreds[cr] = append(byCreds[cr], c)
	}
	s.mu.Unlock()
	creds := make([]authclient.Credentials, 0, len(byCreds))
	for cr := range byCreds {
		creds = append(creds, cr)
	}
	sem := make(chan struct{}, reverify.InFlight)
	var wg sync.WaitGroup
	for lo := 0; lo < len(creds); lo += reverify.Batch {
		part := creds[lo:min(lo+reverify.Batch, len(creds))]
		select {
		case <-s.stop:
			wg.Wait()
			return
		case sem <- struct{}{}:
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			results, err := s.auth.VerifyBatch(ctx, part)
			if err != nil {
				s.log.Warn("re-verify: auth unavailable; keeping connections", "sockets", len(part), "err", err)
				return
			}
			for i, res := range results {
				for _, c := range byCreds[part[i]] {
					s.applyReverify(c, res)
				}
			}
		}()
	}
	wg.Wait()
}

// applyReverify acts on one socket's re-verify result.
func (s *Server) applyReverify(c *wsconn.Conn, res authclient.Result) {
	id, err := res.Identity, res.Err
	switch {
	case authclient.Refused(err):
		s.log.Info("credentials no longer valid; closing", "user", c.User())
		c.Close(protocol.CloseUnauthorized, "token revoked")
	case err != nil:
		s.log.Warn("re-verify: auth unavailable; keeping connection", "user", c.User(), "err", err)
	case id.UserID != c.User() || s.revoked.refuses(id):
		c.Close(protocol.CloseUnauthorized, "token revoked")
	case id.Token != "":
		s.mu.Lock()
		if p := s.conns[c]; p != nil {
			p.token, p.expiresAt, p.issuedAt, p.sessionID = id.Token, id.ExpiresAt, id.IssuedAt, id.SessionID
			s.mu.Unlock()
			c.SendRaw((&protocol.Token{Token: id.Token, ExpiresAt: id.ExpiresAt}).AppendJSON(nil))
			return
		}
		s.mu.Unlock()
	}
}
