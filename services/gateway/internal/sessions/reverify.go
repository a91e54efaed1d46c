package sessions

import (
	"context"
	"sync"
	"time"

	"github.com/wsmq/wsmq/pkg/reverify"
	"github.com/wsmq/wsmq/services/gateway/internal/authclient"
	"github.com/wsmq/wsmq/services/gateway/internal/wsconn"
	"github.com/wsmq/wsmq/services/gateway/protocol"
)

// Revoke applies a revocation the auth service pushed: it remembers it
// and closes the sockets it covers with 4001 (protocol.CloseUnauthorized) "token revoked". It is safe
// to call from any goroutine.
func (s *Registry) Revoke(r authclient.Revocation) {
	// Record first, then scan: Add registers a socket, then checks the
	// set, so a socket upgrading meanwhile is caught by one or the other.
	s.revoked.add(r, time.Time{})
	// A live socket's JWT carries its issue time in whole seconds: one
	// issued in the revocation's own second may predate it, so it is closed
	// too (iat <= the revocation); a session opened just after, in the same
	// second, is closed as well and must log in again, which is better than
	// keeping a revoked session's socket open. The reconnect check (Refuses) stays strict and
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

// Reverify re-checks every live socket's credentials in batches: each
// socket's JWT while it is valid for more than two intervals (the batch
// checks its session in the database), its access token otherwise (which
// also refreshes the JWT). Identical credentials are verified once.
func (s *Registry) Reverify() {
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
func (s *Registry) applyReverify(c *wsconn.Conn, res authclient.Result) {
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
