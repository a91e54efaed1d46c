// Package sessions holds the gateway's live websockets by user and session
// (the registry): the per-user cap, the pushed revocations and the bounded
// set of revoked sessions that refuses their JWTs at reconnect, the
// periodic re-verification of every socket's credentials (the backstop of
// the pushed revocations), and the spread close at shutdown. The HTTP
// handlers (internal/server) admit sockets through it.
package sessions

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wsmq/wsmq/services/gateway/internal/authclient"
	"github.com/wsmq/wsmq/services/gateway/internal/wsconn"
	"github.com/wsmq/wsmq/services/gateway/protocol"
)

// Defaults of Config's zero values.
const (
	DefaultMaxConnsPerUser  = 32
	DefaultReverifyInterval = time.Minute
)

// Why Reserve refuses a socket.
var (
	ErrDraining  = errors.New("server shutting down")
	ErrUserLimit = errors.New("too many connections for this user")
)

// Verifier is what the re-verify needs from the auth service.
type Verifier interface {
	VerifyBatch(ctx context.Context, items []authclient.Credentials) ([]authclient.Result, error)
}

// Config tunes a Registry. Zero values mean the defaults in brackets.
type Config struct {
	MaxConnsPerUser  int           // [DefaultMaxConnsPerUser]
	ReverifyInterval time.Duration // [DefaultReverifyInterval]
	// RevocationRetention is how long a pushed revocation is remembered
	// when no socket here tells its JWT's expiry [DefaultRevocationRetention].
	RevocationRetention time.Duration
	// ShutdownSpread is the window Shutdown spreads its 1001 closes over,
	// at most half of the time its ctx leaves; 0 closes all at once.
	ShutdownSpread time.Duration
}

// Registry is the gateway's live sockets. Safe for concurrent use.
type Registry struct {
	cfg     Config
	auth    Verifier
	log     *slog.Logger
	revoked *revokedSet

	mu       sync.Mutex
	conns    map[*wsconn.Conn]*client
	perUser  map[string]int
	draining bool
	wg       sync.WaitGroup // one per reserved place: Shutdown waits for their sockets

	stop     chan struct{}
	loopDone chan struct{}
	started  atomic.Bool
}

// client is what the registry knows of one socket's credentials.
type client struct {
	token       string
	accessToken string
	expiresAt   int64
	issuedAt    int64  // of token, unix ms
	sessionID   string // token's session
}

// New returns a Registry; Start starts its re-verify loop.
func New(cfg Config, auth Verifier, log *slog.Logger) *Registry {
	if cfg.MaxConnsPerUser == 0 {
		cfg.MaxConnsPerUser = DefaultMaxConnsPerUser
	}
	if cfg.ReverifyInterval == 0 {
		cfg.ReverifyInterval = DefaultReverifyInterval
	}
	return &Registry{
		cfg: cfg, auth: auth, log: log,
		revoked:  newRevokedSet(cfg.RevocationRetention),
		conns:    make(map[*wsconn.Conn]*client),
		perUser:  make(map[string]int),
		stop:     make(chan struct{}),
		loopDone: make(chan struct{}),
	}
}

// Start starts the re-verify loop; Shutdown stops it.
func (s *Registry) Start() {
	if s.started.CompareAndSwap(false, true) {
		go s.reverifyLoop()
	}
}

// Refuses reports whether id belongs to a revoked session or user.
func (s *Registry) Refuses(id authclient.Identity) bool { return s.revoked.refuses(id) }

// Reserve takes one of userID's places before its websocket is upgraded
// (ErrUserLimit when it has MaxConnsPerUser, ErrDraining after Shutdown
// began). release gives the place back: call it when the upgrade fails or
// the socket's Serve returns.
func (s *Registry) Reserve(userID string) (release func(), err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.draining {
		return nil, ErrDraining
	}
	if s.perUser[userID] >= s.cfg.MaxConnsPerUser {
		return nil, ErrUserLimit
	}
	s.perUser[userID]++
	s.wg.Add(1)
	return func() {
		s.mu.Lock()
		if s.perUser[userID]--; s.perUser[userID] <= 0 {
			delete(s.perUser, userID)
		}
		s.mu.Unlock()
		s.wg.Done()
	}, nil
}

// Add registers a socket that Reserve admitted, with the JWT token (the
// refreshed one when the auth service minted one), accessToken and id
// from its verification. A socket that Shutdown or a revocation overtook
// while it upgraded is closed at once.
func (s *Registry) Add(c *wsconn.Conn, token, accessToken string, id authclient.Identity) {
	s.mu.Lock()
	draining := s.draining
	s.conns[c] = &client{token: token, accessToken: accessToken, expiresAt: id.ExpiresAt, issuedAt: id.IssuedAt, sessionID: id.SessionID}
	s.mu.Unlock()
	if draining {
		// Shutdown took its snapshot while this socket was upgrading.
		c.Close(protocol.CloseGoingAway, "server shutting down")
	} else if s.revoked.refuses(id) {
		// Revoked while upgrading (Revoke records, then scans).
		c.Close(protocol.CloseUnauthorized, "token revoked")
	}
}

// Remove forgets a socket whose Serve returned.
func (s *Registry) Remove(c *wsconn.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// Len is the number of registered sockets.
func (s *Registry) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// Shutdown refuses new sockets, stops the re-verify loop, and closes every
// socket with 1001 (going away) after returning its in-flight messages to
// their queues, the closes spread evenly over ShutdownSpread (bounded by
// half the time ctx leaves) so the clients do not all reconnect elsewhere
// at once (a client that does not read costs its own connection about a
// second, not the others); then it waits for the sockets' goroutines, or
// for ctx.
func (s *Registry) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.draining = true
	conns := make([]*wsconn.Conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	if s.started.Load() {
		<-s.loopDone
	}
	window := s.cfg.ShutdownSpread
	if dl, ok := ctx.Deadline(); ok {
		window = min(window, time.Until(dl)/2)
	}
	start := time.Now()
	t := time.NewTimer(0)
	defer t.Stop()
	<-t.C
	for i, c := range conns {
		if window > 0 && i > 0 {
			t.Reset(time.Until(start.Add(window * time.Duration(i) / time.Duration(len(conns)))))
			select {
			case <-t.C:
			case <-ctx.Done():
				window = 0 // out of time: close the rest at once
			}
		}
		c.Close(protocol.CloseGoingAway, "server shutting down") // does not wait
	}
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// reverifyLoop re-checks every live socket's credentials each interval
// (Reverify) and closes those that no longer pass (4001 "token revoked").
// An unreachable auth service closes nothing. It is the backstop of the
// pushed revocations (Revoke).
func (s *Registry) reverifyLoop() {
	defer close(s.loopDone)
	t := time.NewTicker(s.cfg.ReverifyInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		s.Reverify()
	}
}
