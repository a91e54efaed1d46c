// Package server is the gateway's HTTP edge: websocket upgrade after
// credential verification, the login endpoint, public liveness, connection
// limits and live re-verification.
package server

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/time/rate"

	"github.com/wsmq/wsmq/pkg/serve"
	"github.com/wsmq/wsmq/services/gateway/internal/authclient"
	"github.com/wsmq/wsmq/services/gateway/internal/delivery"
	"github.com/wsmq/wsmq/services/gateway/internal/metrics"
	"github.com/wsmq/wsmq/services/gateway/internal/wsconn"
	"github.com/wsmq/wsmq/services/gateway/protocol"
)

// Auth is what the server needs from the auth service.
type Auth interface {
	Verify(ctx context.Context, token, accessToken string) (authclient.Identity, error)
	VerifyBatch(ctx context.Context, items []authclient.Credentials) ([]authclient.Result, error)
	Authenticate(ctx context.Context, userName, password string) (authclient.Session, error)
	Ready(ctx context.Context) error
}

// Config holds the server's limits. Zero values mean the defaults in
// brackets.
type Config struct {
	Conn             wsconn.Options
	AllowedOrigins   []string      // "*" allows any; empty: same origin or no Origin header
	MaxConnsPerUser  int           // [32]
	ConnRatePerIP    float64       // websocket upgrades per second per IP [50]
	LoginRatePerIP   float64       // logins per second per IP [5]
	ReverifyInterval time.Duration // [1m]
	// RevocationRetention is how long a pushed revocation is remembered
	// when no socket here tells its JWT's expiry [DefaultRevocationRetention].
	RevocationRetention time.Duration
	Demo                bool         // serve /demo
	DemoSend            http.Handler // dev-only POST /demo/send, may be nil
}

// Server serves the gateway's HTTP endpoints.
type Server struct {
	cfg      Config
	engine   *delivery.Engine
	auth     Auth
	m        *metrics.Metrics
	log      *slog.Logger
	upgrader websocket.Upgrader
	mux      *http.ServeMux

	connLimiter  *ipLimiter
	loginLimiter *ipLimiter
	revoked      *revokedSet

	mu       sync.Mutex
	conns    map[*wsconn.Conn]*client
	perUser  map[string]int
	draining bool
	wg       sync.WaitGroup // one per live connection

	stop     chan struct{}
	loopDone chan struct{}
	started  atomic.Bool
}

type client struct {
	token       string
	accessToken string
	expiresAt   int64
	issuedAt    int64  // of token, unix ms
	sessionID   string // token's session
}

// New builds a Server; Start starts its re-verify loop.
func New(cfg Config, engine *delivery.Engine, auth Auth, m *metrics.Metrics, log *slog.Logger) *Server {
	if cfg.MaxConnsPerUser == 0 {
		cfg.MaxConnsPerUser = 32
	}
	if cfg.ConnRatePerIP == 0 {
		cfg.ConnRatePerIP = 50
	}
	if cfg.LoginRatePerIP == 0 {
		cfg.LoginRatePerIP = 5
	}
	if cfg.ReverifyInterval == 0 {
		cfg.ReverifyInterval = time.Minute
	}
	s := &Server{
		cfg: cfg, engine: engine, auth: auth, m: m, log: log,
		connLimiter:  newIPLimiter(cfg.ConnRatePerIP),
		loginLimiter: newIPLimiter(cfg.LoginRatePerIP),
		revoked:      newRevokedSet(cfg.RevocationRetention),
		conns:        make(map[*wsconn.Conn]*client),
		perUser:      make(map[string]int),
		stop:         make(chan struct{}),
		loopDone:     make(chan struct{}),
	}
	s.upgrader = websocket.Upgrader{
		ReadBufferSize:  512,
		WriteBufferSize: 4096,
		// Write buffers are taken from the pool only while a frame is
		// written, so an idle connection holds none.
		WriteBufferPool: &sync.Pool{},
		CheckOrigin:     s.checkOrigin,
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.handleWS)
	mux.HandleFunc("GET "+protocol.WebsocketPath, s.handleWS)
	mux.HandleFunc("POST "+protocol.AuthenticatePath, s.handleAuthenticate)
	// Public liveness for load balancers; readiness and metrics are on the
	// admin listener (main.go), so no internal state leaks to clients.
	mux.Handle("GET /healthz", serve.HealthHandler())
	if cfg.Demo {
		mux.HandleFunc("GET /demo", serveDemo)
		if cfg.DemoSend != nil {
			mux.Handle("POST /demo/send", cfg.DemoSend)
		}
	}
	s.mux = mux
	return s
}

// Start starts the re-verify loop; Shutdown stops it.
func (s *Server) Start() {
	if s.started.CompareAndSwap(false, true) {
		go s.reverifyLoop()
	}
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Shutdown closes every websocket with 1001 (going away) after returning
// its in-flight messages to their queues, all connections at once (a
// client that does not read costs its own connection about a second, not
// the others), and waits for the connections' goroutines, or for ctx. The
// http.Server's own Shutdown must be called first so no new connection
// arrives.
func (s *Server) Shutdown(ctx context.Context) error {
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
	for _, c := range conns {
		c.Close(wsconn.CloseGoingAway, "server shutting down") // does not wait
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

func (s *Server) checkOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true // not a browser
	}
	if slices.Contains(s.cfg.AllowedOrigins, "*") || slices.Contains(s.cfg.AllowedOrigins, origin) {
		return true
	}
	u, err := url.Parse(origin)
	return err == nil && strings.EqualFold(u.Host, r.Host)
}

func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// credentials reads tokens2's headers, or the query parameters browsers
// must use.
func credentials(r *http.Request) (token, accessToken string) {
	token = r.Header.Get(protocol.HeaderToken)
	accessToken = r.Header.Get(protocol.HeaderAccessToken)
	q := r.URL.Query()
	if token == "" {
		token = q.Get(protocol.QueryToken)
	}
	if accessToken == "" {
		accessToken = q.Get(protocol.QueryAccessToken)
	}
	return token, accessToken
}

func (s *Server) reject(w http.ResponseWriter, code int, reason, msg string) {
	s.m.Rejected.WithLabelValues(reason).Inc()
	writeJSON(w, code, protocol.ErrorBody{Message: msg})
}

func (s *Server) handleWS(w http.ResponseWriter, r *http.Request) {
	if !websocket.IsWebSocketUpgrade(r) {
		s.reject(w, http.StatusBadRequest, "not_websocket", "websocket upgrade required")
		return
	}
	if !s.connLimiter.allow(clientIP(r)) {
		s.reject(w, http.StatusTooManyRequests, "rate", "too many connections; slow down")
		return
	}
	manual := false
	switch protocol.AckMode(r.URL.Query().Get(protocol.QueryAck)) {
	case "", protocol.AckAuto:
	case protocol.AckManual:
		manual = true
	default:
		s.reject(w, http.StatusBadRequest, "bad_request", "ack must be auto or manual")
		return
	}
	token, accessToken := credentials(r)
	if token == "" && accessToken == "" {
		s.reject(w, http.StatusUnauthorized, "unauthenticated", "missing credentials: x-token / x-access-token headers or token / accessToken query parameters")
		return
	}
	id, err := s.auth.Verify(r.Context(), token, accessToken)
	switch {
	case authclient.Refused(err):
		s.reject(w, http.StatusUnauthorized, "unauthenticated", "invalid credentials")
		return
	case err != nil:
		s.log.Warn("auth unavailable", "err", err)
		s.reject(w, http.StatusServiceUnavailable, "auth_unavailable", "authentication service unavailable; try again")
		return
	case s.revoked.refuses(id):
		s.reject(w, http.StatusUnauthorized, "unauthenticated", "invalid credentials")
		return
	}
	s.mu.Lock()
	if s.draining {
		s.mu.Unlock()
		s.reject(w, http.StatusServiceUnavailable, "draining", "server shutting down")
		return
	}
	if s.perUser[id.UserID] >= s.cfg.MaxConnsPerUser {
		s.mu.Unlock()
		s.reject(w, http.StatusTooManyRequests, "user_limit", "too many connections for this user")
		return
	}
	s.perUser[id.UserID]++
	s.wg.Add(1)
	s.mu.Unlock()
	release := func() {
		s.mu.Lock()
		if s.perUser[id.UserID]--; s.perUser[id.UserID] <= 0 {
			delete(s.perUser, id.UserID)
		}
		s.mu.Unlock()
		s.wg.Done()
	}

	ws, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		release() // the upgrader already answered
		return
	}
	opts := s.cfg.Conn
	opts.Manual = manual
	c := wsconn.New(ws, s.engine, id.UserID, opts, s.log)
	cl := &client{token: token, accessToken: accessToken, expiresAt: id.ExpiresAt, issuedAt: id.IssuedAt, sessionID: id.SessionID}
	var first []byte
	if id.Token != "" {
		cl.token = id.Token
		first = (&protocol.Token{Token: id.Token, ExpiresAt: id.ExpiresAt}).AppendJSON(nil)
	}
	s.mu.Lock()
	draining := s.draining
	s.conns[c] = cl
	s.mu.Unlock()
	if draining {
		// Shutdown took its snapshot while this socket was upgrading.
		c.Close(wsconn.CloseGoingAway, "server shutting down")
	} else if s.revoked.refuses(id) {
		// Revoked while upgrading (Revoke records, then scans).
		c.Close(wsconn.ClosePolicy, "token revoked")
	}
	s.m.Connections.Inc()
	// Serve on a fresh goroutine and let the handler return: net/http then
	// drops its per-connection buffers and the handler's deep stack, which
	// would otherwise stay alive (about 10 KB) for the socket's lifetime.
	// The server's WaitGroup (s.wg, taken above) owns this goroutine.
	go func() {
		defer func() {
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
			s.m.Connections.Dec()
			release()
		}()
		c.Serve(first)
	}()
}

// reverifyLoop re-checks every live connection's credentials each interval
// (batched: reverify in revocations.go) and closes those that no longer
// pass (1008 "token revoked"). An unreachable auth service closes nothing.
// It is the backstop of the pushed revocations (Revoke).
func (s *Server) reverifyLoop() {
	defer close(s.loopDone)
	t := time.NewTicker(s.cfg.ReverifyInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		s.reverify()
	}
}

func (s *Server) handleAuthenticate(w http.ResponseWriter, r *http.Request) {
	if !s.loginLimiter.allow(clientIP(r)) {
		s.reject(w, http.StatusTooManyRequests, "login_rate", "too many login attempts; slow down")
		return
	}
	var req protocol.AuthenticateRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, protocol.ErrorBody{Message: "body must be JSON {\"userName\",\"password\"}"})
		return
	}
	if req.UserName == "" || req.Password == "" {
		writeJSON(w, http.StatusBadRequest, protocol.ErrorBody{Message: "userName and password are required"})
		return
	}
	sess, err := s.auth.Authenticate(r.Context(), req.UserName, req.Password)
	switch {
	case errors.Is(err, authclient.ErrLimited):
		s.reject(w, http.StatusTooManyRequests, "login_rate", "too many login attempts; slow down")
		return
	case authclient.Refused(err):
		writeJSON(w, http.StatusUnauthorized, protocol.ErrorBody{Message: "invalid user name or password"})
		return
	case err != nil:
		s.log.Warn("login: auth unavailable", "err", err)
		writeJSON(w, http.StatusServiceUnavailable, protocol.ErrorBody{Message: "authentication service unavailable; try again"})
		return
	}
	writeJSON(w, http.StatusOK, protocol.AuthenticateResponse{
		Success: true, Token: sess.Token, AccessToken: sess.AccessToken,
		UserID: sess.UserID, ExpiresAt: sess.ExpiresAt,
	})
}

func writeJSON(w http.ResponseWriter, code int, v any) { serve.WriteJSON(w, code, v) }

// ipLimiter is a token bucket per client IP, forgetting idle IPs.
type ipLimiter struct {
	rate  rate.Limit
	burst int

	mu      sync.Mutex
	buckets map[string]*rate.Limiter
	swept   time.Time
}

func newIPLimiter(perSecond float64) *ipLimiter {
	return &ipLimiter{rate: rate.Limit(perSecond), burst: max(1, int(2*perSecond)), buckets: make(map[string]*rate.Limiter)}
}

func (l *ipLimiter) allow(ip string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if now.Sub(l.swept) > time.Minute {
		// A full bucket is the same as no bucket: drop those.
		for k, b := range l.buckets {
			if b.TokensAt(now) >= float64(l.burst) {
				delete(l.buckets, k)
			}
		}
		l.swept = now
	}
	b := l.buckets[ip]
	if b == nil {
		b = rate.NewLimiter(l.rate, l.burst)
		l.buckets[ip] = b
	}
	return b.AllowN(now, 1)
}
