// Package server is the gateway's HTTP edge: websocket upgrade after
// credential verification, the login endpoint, public liveness, connection
// limits and live re-verification.
package server

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wsmq/wsmq/pkg/serve"
	"github.com/wsmq/wsmq/services/gateway/internal/authclient"
	"github.com/wsmq/wsmq/services/gateway/internal/clientaddr"
	"github.com/wsmq/wsmq/services/gateway/internal/delivery"
	"github.com/wsmq/wsmq/services/gateway/internal/metrics"
	"github.com/wsmq/wsmq/services/gateway/internal/sessions"
	"github.com/wsmq/wsmq/services/gateway/internal/throttle"
	"github.com/wsmq/wsmq/services/gateway/internal/ticket"
	"github.com/wsmq/wsmq/services/gateway/internal/wsconn"
	"github.com/wsmq/wsmq/services/gateway/protocol"
)

// Auth is what the server needs from the auth service.
type Auth interface {
	Verify(ctx context.Context, token, accessToken string) (authclient.Identity, error)
	VerifyBatch(ctx context.Context, items []authclient.Credentials) ([]authclient.Result, error)
	Authenticate(ctx context.Context, userName, password, clientAddr string) (authclient.Session, error)
	Ready(ctx context.Context) error
}

// Defaults of Config's zero values (the gateway's configuration reads them).
// The registry's (conns per user, re-verify interval) are sessions'.
const (
	DefaultConnRate         = 50 // websocket upgrades (and tickets) per second per client address
	DefaultLoginRate        = 5  // logins per second per client address
	DefaultLoginFreeFailsIP = 20 // failed logins from one address before back-off
)

// Config holds the server's limits. Zero values mean the defaults in
// brackets.
type Config struct {
	Conn             wsconn.Options
	AllowedOrigins   []string      // "*" allows any; empty: same origin or no Origin header
	MaxConnsPerUser  int           // [sessions.DefaultMaxConnsPerUser]
	ConnRatePerIP    float64       // websocket upgrades (and tickets) per second per IP [50]
	LoginRatePerIP   float64       // logins per second per IP [5]
	ReverifyInterval time.Duration // [sessions.DefaultReverifyInterval]
	// ShutdownSpread is the window Shutdown spreads its 1001 closes over,
	// at most half of the time its ctx leaves; 0 closes all at once.
	ShutdownSpread time.Duration
	// RevocationRetention is how long a pushed revocation is remembered
	// when no socket here tells its JWT's expiry
	// [sessions.DefaultRevocationRetention].
	RevocationRetention time.Duration
	Demo                bool         // serve /demo
	DemoSend            http.Handler // dev-only POST /demo/send, may be nil

	// TrustedProxies says whose X-Forwarded-For names the client; the
	// zero value trusts none. Limits and logs use the address it gives.
	TrustedProxies clientaddr.Resolver
	// Tickets issues and redeems connect tickets; nil: no /v1/ticket and
	// no ?ticket=.
	Tickets *ticket.Store
	// AllowQueryCredentials accepts token/accessToken query parameters
	// (dev mode, or WSMQ_ALLOW_QUERY_CREDENTIALS); otherwise they are
	// refused with a 401 naming the ticket flow.
	AllowQueryCredentials bool
	LoginFreeFails        int           // failed logins of one user name before back-off [3]
	LoginFreeFailsPerIP   int           // failed logins from one address before back-off [20]
	LoginBackoffMax       time.Duration // [1m]
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

	connLimiter   *throttle.Rate // per client address
	ticketLimiter *throttle.Rate
	loginLimiter  *throttle.Rate
	nameBackoff   *throttle.Backoff // failed logins per user name
	ipBackoff     *throttle.Backoff // failed logins per client address
	sessions      *sessions.Registry
}

// New builds a Server; Start starts its registry's re-verify loop.
func New(cfg Config, engine *delivery.Engine, auth Auth, m *metrics.Metrics, log *slog.Logger) *Server {
	if cfg.ConnRatePerIP == 0 {
		cfg.ConnRatePerIP = DefaultConnRate
	}
	if cfg.LoginRatePerIP == 0 {
		cfg.LoginRatePerIP = DefaultLoginRate
	}
	if cfg.LoginFreeFailsPerIP == 0 {
		cfg.LoginFreeFailsPerIP = DefaultLoginFreeFailsIP
	}
	s := &Server{
		cfg: cfg, engine: engine, auth: auth, m: m, log: log,
		connLimiter:   throttle.NewRate(cfg.ConnRatePerIP),
		ticketLimiter: throttle.NewRate(cfg.ConnRatePerIP),
		loginLimiter:  throttle.NewRate(cfg.LoginRatePerIP),
		nameBackoff:   throttle.New(throttle.Config{Free: cfg.LoginFreeFails, Max: cfg.LoginBackoffMax}),
		ipBackoff:     throttle.New(throttle.Config{Free: cfg.LoginFreeFailsPerIP, Max: cfg.LoginBackoffMax}),
		sessions: sessions.New(sessions.Config{MaxConnsPerUser: cfg.MaxConnsPerUser, ReverifyInterval: cfg.ReverifyInterval,
			RevocationRetention: cfg.RevocationRetention, ShutdownSpread: cfg.ShutdownSpread}, auth, log),
	}
	s.upgrader = websocket.Upgrader{
		ReadBufferSize:  512,
		WriteBufferSize: 4096,
		// Write buffers are taken from the pool only while a frame is
		// written, so an idle connection holds none.
		WriteBufferPool: &sync.Pool{},
		CheckOrigin:     s.checkOrigin,
		// Offered credentials are never echoed: only wsmq.v1 is chosen.
		Subprotocols: []string{protocol.Subprotocol},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.handleWS)
	mux.HandleFunc("GET "+protocol.WebsocketPath, s.handleWS)
	mux.HandleFunc("POST "+protocol.AuthenticatePath, s.handleAuthenticate)
	if cfg.Tickets != nil {
		mux.HandleFunc("POST "+protocol.TicketPath, s.handleTicket)
	}
	// Public liveness for load balancers; readiness and metrics are on the
	// admin listener (main.go), so no internal state leaks to clients.
	mux.Handle("GET /healthz", serve.HealthHandler())
	if cfg.Demo {
		mux.HandleFunc("GET /demo", serveDemo)
		mux.HandleFunc("GET /demo/wsmq.js", serveSDK)
		if cfg.DemoSend != nil {
			mux.Handle("POST /demo/send", cfg.DemoSend)
		}
	}
	s.mux = mux
	return s
}

// Start starts the registry's re-verify loop; Shutdown stops it.
func (s *Server) Start() { s.sessions.Start() }

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Revoke applies a revocation the auth service pushed (sessions.Registry.Revoke).
func (s *Server) Revoke(r authclient.Revocation) { s.sessions.Revoke(r) }

// Shutdown closes every websocket with 1001 after returning its in-flight
// messages, the closes spread over ShutdownSpread, and waits for them or
// for ctx (sessions.Registry.Shutdown). The http.Server's own Shutdown
// must be called first so no new connection arrives.
func (s *Server) Shutdown(ctx context.Context) error { return s.sessions.Shutdown(ctx) }

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

// creds are the credentials a websocket request carries, and where.
type creds struct {
	token, accessToken string
	ticket             string
	inQuery            bool // token or accessToken came in the URL
	subprotocol        bool // ... or in Sec-WebSocket-Protocol
	offersV1           bool // wsmq.v1 was offered
}

// credentials reads tokens2's headers, then the subprotocol entries, then
// the query parameters; a ticket comes in the query.
func credentials(r *http.Request) creds {
	c := creds{token: r.Header.Get(protocol.HeaderToken), accessToken: r.Header.Get(protocol.HeaderAccessToken)}
	st, sa, v1 := protocol.ParseSubprotocols(websocketProtocols(r))
	c.offersV1 = v1
	if c.token == "" && st != "" {
		c.token, c.subprotocol = st, true
	}
	if c.accessToken == "" && sa != "" {
		c.accessToken, c.subprotocol = sa, true
	}
	q := r.URL.Query()
	c.ticket = q.Get(protocol.QueryTicket)
	if qt := q.Get(protocol.QueryToken); qt != "" {
		c.inQuery = true
		if c.token == "" {
			c.token = qt
		}
	}
	if qa := q.Get(protocol.QueryAccessToken); qa != "" {
		c.inQuery = true
		if c.accessToken == "" {
			c.accessToken = qa
		}
	}
	return c
}

// websocketProtocols splits every Sec-WebSocket-Protocol line.
func websocketProtocols(r *http.Request) []string {
	var out []string
	for _, line := range r.Header.Values("Sec-WebSocket-Protocol") {
		for _, p := range strings.Split(line, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

// refusedQuery is the 401 for credentials in the URL outside dev mode.
const refusedQuery = "credentials in the URL are refused (URLs are logged): POST " + protocol.TicketPath +
	" with the x-token / x-access-token headers, then connect to " + protocol.WebsocketPath + "?" + protocol.QueryTicket +
	"=<ticket>; or send them as the " + protocol.Subprotocol + " subprotocol's " + protocol.SubprotocolToken + "<jwt> entry"

func (s *Server) reject(w http.ResponseWriter, ip string, code int, reason, msg string) {
	s.m.Rejected.WithLabelValues(reason).Inc()
	s.log.Debug("request refused", "reason", reason, "ip", ip, "status", code)
	body := protocol.ErrorBody{Message: msg}
	if reason == "query_credentials" {
		body.TicketPath = protocol.TicketPath
	}
	writeJSON(w, code, body)
}

func (s *Server) handleWS(w http.ResponseWriter, r *http.Request) {
	ip := s.cfg.TrustedProxies.ClientIP(r)
	if !websocket.IsWebSocketUpgrade(r) {
		s.reject(w, ip, http.StatusBadRequest, "not_websocket", "websocket upgrade required")
		return
	}
	if !s.connLimiter.Allow(ip) {
		s.reject(w, ip, http.StatusTooManyRequests, "rate", "too many connections; slow down")
		return
	}
	manual := false
	switch protocol.AckMode(r.URL.Query().Get(protocol.QueryAck)) {
	case "", protocol.AckAuto:
	case protocol.AckManual:
		manual = true
	default:
		s.reject(w, ip, http.StatusBadRequest, "bad_request", "ack must be auto or manual")
		return
	}
	cr := credentials(r)
	if cr.inQuery && !s.cfg.AllowQueryCredentials {
		s.reject(w, ip, http.StatusUnauthorized, "query_credentials", refusedQuery)
		return
	}
	if cr.subprotocol && !cr.offersV1 {
		s.reject(w, ip, http.StatusBadRequest, "bad_request", "credentials in Sec-WebSocket-Protocol need the "+protocol.Subprotocol+" subprotocol offered too")
		return
	}
	token, accessToken := cr.token, cr.accessToken
	var grant *ticket.Grant
	if cr.ticket != "" && s.cfg.Tickets != nil {
		g, err := s.cfg.Tickets.Redeem(r.Context(), cr.ticket)
		switch {
		case errors.Is(err, ticket.ErrInvalid):
			s.reject(w, ip, http.StatusUnauthorized, "ticket", "invalid, used or expired ticket: get a new one with POST "+protocol.TicketPath)
			return
		case err != nil:
			s.log.Warn("ticket store unavailable", "ip", ip, "err", err)
			s.reject(w, ip, http.StatusServiceUnavailable, "ticket_unavailable", "ticket store unavailable; try again")
			return
		}
		// The ticket stands for its own credentials; any others are ignored.
		grant, token, accessToken = &g, g.Token, g.AccessToken
	}
	if token == "" && accessToken == "" {
		s.reject(w, ip, http.StatusUnauthorized, "unauthenticated",
			"missing credentials: x-token / x-access-token headers, a ticket from POST "+protocol.TicketPath+", or the "+protocol.Subprotocol+" subprotocol's credential entries")
		return
	}
	verifyToken := token
	if grant != nil && accessToken != "" {
		// A ticket's access token is checked itself (revoked since the
		// ticket was issued?); the JWT alone would pass until it expires.
		verifyToken = ""
	}
	id, err := s.auth.Verify(r.Context(), verifyToken, accessToken)
	switch {
	case authclient.Refused(err):
		s.reject(w, ip, http.StatusUnauthorized, "unauthenticated", "invalid credentials")
		return
	case err != nil:
		s.log.Warn("auth unavailable", "ip", ip, "err", err)
		s.reject(w, ip, http.StatusServiceUnavailable, "auth_unavailable", "authentication service unavailable; try again")
		return
	}
	if grant != nil && (id.UserID != grant.UserID || (grant.SessionID != "" && id.SessionID != grant.SessionID)) {
		// The credentials behind the ticket now belong elsewhere.
		s.reject(w, ip, http.StatusUnauthorized, "ticket", "ticket no longer matches its user")
		return
	}
	if s.sessions.Refuses(id) {
		s.reject(w, ip, http.StatusUnauthorized, "unauthenticated", "invalid credentials")
		return
	}
	release, err := s.sessions.Reserve(id.UserID)
	switch {
	case errors.Is(err, sessions.ErrDraining):
		s.reject(w, ip, http.StatusServiceUnavailable, "draining", "server shutting down")
		return
	case err != nil:
		s.reject(w, ip, http.StatusTooManyRequests, "user_limit", "too many connections for this user")
		return
	}

	ws, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		release() // the upgrader already answered
		return
	}
	opts := s.cfg.Conn
	opts.Manual = manual
	c := wsconn.New(ws, s.engine, id.UserID, opts, s.log.With("ip", ip))
	var first []byte
	if grant != nil {
		switch {
		case grant.Refreshed && id.Token == "":
			id.Token = grant.Token // refreshed when the ticket was issued
		case !grant.Refreshed && grant.Token != "":
			// The client holds a valid JWT: the one checking the access
			// token minted is not news to hand over.
			id.Token, id.ExpiresAt = "", grant.ExpiresAt
		}
	}
	if id.Token != "" {
		token = id.Token
		first = (&protocol.Token{Token: id.Token, ExpiresAt: id.ExpiresAt}).AppendJSON(nil)
	}
	s.sessions.Add(c, token, accessToken, id)
	s.m.Connections.Inc()
	// Serve on a fresh goroutine and let the handler return: net/http then
	// drops its per-connection buffers and the handler's deep stack, which
	// would otherwise stay alive (about 10 KB) for the socket's lifetime.
	// The registry's place (Reserve above) owns this goroutine: Shutdown
	// waits for it.
	go func() {
		defer func() {
			s.sessions.Remove(c)
			s.m.Connections.Dec()
			release()
		}()
		c.Serve(first)
	}()
}

// handleAuthenticate logs a user in. Refusals by the limiters cost no
// auth call: the per-address token bucket and back-off are checked before
// the body is read, the per-name back-off before auth is called.
func (s *Server) handleAuthenticate(w http.ResponseWriter, r *http.Request) {
	ip := s.cfg.TrustedProxies.ClientIP(r)
	if !s.loginLimiter.Allow(ip) {
		s.reject(w, ip, http.StatusTooManyRequests, "login_rate", "too many login attempts; slow down")
		return
	}
	if ok, wait := s.ipBackoff.Allow(ip); !ok {
		s.backoff(w, ip, "login_backoff_ip", "too many failed logins from this address", wait)
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
	name := strings.ToLower(req.UserName)
	if ok, wait := s.nameBackoff.Allow(name); !ok {
		s.backoff(w, ip, "login_backoff_name", "too many failed logins for this user name", wait)
		return
	}
	sess, err := s.auth.Authenticate(r.Context(), req.UserName, req.Password, ip)
	switch {
	case errors.Is(err, authclient.ErrLimited):
		s.reject(w, ip, http.StatusTooManyRequests, "login_rate", "too many login attempts; slow down")
		return
	case authclient.Refused(err):
		s.nameBackoff.Fail(name)
		s.ipBackoff.Fail(ip)
		s.log.Debug("login refused", "ip", ip)
		writeJSON(w, http.StatusUnauthorized, protocol.ErrorBody{Message: "invalid user name or password"})
		return
	case err != nil:
		s.log.Warn("login: auth unavailable", "ip", ip, "err", err)
		writeJSON(w, http.StatusServiceUnavailable, protocol.ErrorBody{Message: "authentication service unavailable; try again"})
		return
	}
	s.nameBackoff.Succeed(name)
	s.ipBackoff.Succeed(ip)
	writeJSON(w, http.StatusOK, protocol.AuthenticateResponse{
		Success: true, Token: sess.Token, AccessToken: sess.AccessToken,
		UserID: sess.UserID, ExpiresAt: sess.ExpiresAt,
	})
}

// backoff answers 429 with Retry-After (whole seconds, rounded up).
func (s *Server) backoff(w http.ResponseWriter, ip, reason, msg string, wait time.Duration) {
	secs := int((wait + time.Second - 1) / time.Second)
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	s.reject(w, ip, http.StatusTooManyRequests, reason, msg+"; retry in "+strconv.Itoa(secs)+"s")
}

// handleTicket exchanges credentials (headers, else a JSON body) for a
// single-use connect ticket, so that no long-lived credential goes in a
// websocket URL. An expired JWT with a valid access token is accepted: the
// answer carries the refreshed JWT. Refusals are JSON: 401, 429 with
// Retry-After, 503.
func (s *Server) handleTicket(w http.ResponseWriter, r *http.Request) {
	ip := s.cfg.TrustedProxies.ClientIP(r)
	if !s.ticketLimiter.Allow(ip) {
		s.backoff(w, ip, "rate", "too many ticket requests", time.Second)
		return
	}
	token, accessToken := r.Header.Get(protocol.HeaderToken), r.Header.Get(protocol.HeaderAccessToken)
	if token == "" && accessToken == "" && r.ContentLength != 0 {
		var req protocol.TicketRequest
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 8192)).Decode(&req); err != nil {
			s.reject(w, ip, http.StatusBadRequest, "bad_request", "body must be JSON {\"token\",\"accessToken\"}")
			return
		}
		token, accessToken = req.Token, req.AccessToken
	}
	if token == "" && accessToken == "" {
		s.reject(w, ip, http.StatusUnauthorized, "unauthenticated", "missing credentials: x-token / x-access-token headers or a JSON body {\"token\",\"accessToken\"}")
		return
	}
	id, err := s.auth.Verify(r.Context(), token, accessToken)
	switch {
	case authclient.Refused(err):
		s.reject(w, ip, http.StatusUnauthorized, "unauthenticated", "invalid credentials")
		return
	case err != nil:
		s.log.Warn("ticket: auth unavailable", "ip", ip, "err", err)
		s.reject(w, ip, http.StatusServiceUnavailable, "auth_unavailable", "authentication service unavailable; try again")
		return
	}
	g := ticket.Grant{UserID: id.UserID, SessionID: id.SessionID, Token: token, AccessToken: accessToken, ExpiresAt: id.ExpiresAt}
	if id.Token != "" {
		g.Token, g.Refreshed = id.Token, true // the socket's first frame hands it over
	}
	t, exp, err := s.cfg.Tickets.Issue(r.Context(), g)
	if err != nil {
		s.log.Warn("ticket store unavailable", "ip", ip, "err", err)
		s.reject(w, ip, http.StatusServiceUnavailable, "ticket_unavailable", "ticket store unavailable; try again")
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	res := protocol.TicketResponse{Success: true, Ticket: t, ExpiresAt: exp.UnixMilli(), UserID: id.UserID}
	if id.Token != "" {
		// The JWT was expired (or missing) and the access token valid: the
		// client gets the refreshed JWT now, for its next ticket.
		res.Token, res.TokenExpiresAt = id.Token, id.ExpiresAt
	}
	writeJSON(w, http.StatusOK, res)
}

func writeJSON(w http.ResponseWriter, code int, v any) { serve.WriteJSON(w, code, v) }
