// Package authclient calls the wsmq auth service for the gateway and turns
// its gRPC statuses into the few outcomes the gateway acts on.
package authclient

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	authv1 "github.com/wsmq/wsmq/gen/wsmq/auth/v1"
)

// Outcomes other than success.
var (
	// ErrUnauthenticated: the credentials are not valid (any reason).
	ErrUnauthenticated = errors.New("invalid credentials")
	// ErrUnavailable: the auth service could not answer in time.
	ErrUnavailable = errors.New("auth service unavailable")
	// ErrInvalid: the request was malformed (e.g. an empty user name).
	ErrInvalid = errors.New("invalid request")
	// ErrLimited: the auth service's own login limits refused the call
	// (no password was checked); retry later.
	ErrLimited = errors.New("too many login attempts")
)

// Refused reports whether err means the auth service said no (bad or
// revoked credentials, a malformed request), as opposed to not answering:
// the one place the gateway tells a refusal (401, close 4001) from an
// outage (503, keep the connection).
func Refused(err error) bool {
	return errors.Is(err, ErrUnauthenticated) || errors.Is(err, ErrInvalid)
}

// Identity is a verified caller.
type Identity struct {
	UserID    string
	SessionID string // the session (JWT sid); a Revocation names it
	Token     string // a fresh JWT, when one was issued
	ExpiresAt int64  // unix ms when the caller's valid JWT expires
	IssuedAt  int64  // unix ms when the caller's valid JWT was issued (whole seconds)
}

// Credentials are one item of VerifyBatch.
type Credentials struct {
	Token       string
	AccessToken string
}

// Result is one VerifyBatch outcome: Identity, or Err (Refused(Err) tells
// a refusal).
type Result struct {
	Identity Identity
	Err      error
}

// Revocation is one ended session, or all of a user's (AllSessions: every
// session whose JWT was issued before ValidAfter).
type Revocation struct {
	UserID      string
	SessionID   string
	AllSessions bool
	ValidAfter  time.Time
	UserDeleted bool
}

// MaxBatch is the most items of one VerifyBatch call (the auth service's
// limit).
const MaxBatch = 1000

// Session is the result of a login.
type Session struct {
	Token       string
	AccessToken string
	UserID      string
	ExpiresAt   int64
}

// Client is an auth service client.
type Client struct {
	cc         *grpc.ClientConn
	auth       authv1.AuthServiceClient
	health     healthpb.HealthClient
	timeout    time.Duration
	watchToken string
	watchErr   func(error, time.Duration)
}

// Options configures DialWith.
type Options struct {
	// Addr is the auth service's host:port.
	Addr string
	// Timeout bounds every unary call.
	Timeout time.Duration
	// TLS, when set, secures the connection (pkg/tlsconf.Client builds
	// it); nil is plaintext.
	TLS *tls.Config
	// WatchToken is the gateway's credential (the auth service's
	// WSMQ_AUTH_GATEWAY_TOKEN): WatchRevocations needs it, and with it a
	// login's client address counts for auth's per-address limit.
	WatchToken string
}

// Dial connects (lazily, in plaintext) to the auth service at addr. Every
// call is bounded by timeout.
func Dial(addr string, timeout time.Duration) (*Client, error) {
	return DialWith(Options{Addr: addr, Timeout: timeout})
}

// DialWith connects (lazily) as o says.
func DialWith(o Options) (*Client, error) {
	creds := insecure.NewCredentials()
	if o.TLS != nil {
		creds = credentials.NewTLS(o.TLS)
	}
	cc, err := grpc.NewClient(o.Addr, grpc.WithTransportCredentials(creds),
		// A connection whose peer vanished without a FIN or RST (the
		// gateway's network cut and restored, the auth host gone) is
		// noticed within Time+Timeout instead of the kernel's TCP timeout
		// (minutes), during which every call would hang to its deadline.
		// The auth server permits these pings (services/auth/main.go).
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 10 * time.Second, Timeout: 5 * time.Second, PermitWithoutStream: true}),
		// Reconnect at most 5 s apart: the default back-off grows to 120 s,
		// keeping a gateway not ready long after auth is back.
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: time.Second, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 5 * time.Second},
			MinConnectTimeout: 5 * time.Second,
		}))
	if err != nil {
		return nil, fmt.Errorf("auth client %s: %w", o.Addr, err)
	}
	return &Client{cc: cc, auth: authv1.NewAuthServiceClient(cc), health: healthpb.NewHealthClient(cc),
		timeout: o.Timeout, watchToken: o.WatchToken}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.cc.Close() }

// Verify checks a JWT and/or an access token.
func (c *Client) Verify(ctx context.Context, token, accessToken string) (Identity, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	res, err := c.auth.Verify(ctx, &authv1.VerifyRequest{Token: token, AccessToken: accessToken})
	if err != nil {
		return Identity{}, classify(err)
	}
	return identity(res), nil
}

func identity(res *authv1.VerifyResponse) Identity {
	return Identity{UserID: res.GetUserId(), SessionID: res.GetSessionId(), Token: res.GetToken(),
		ExpiresAt: res.GetExpiresAt(), IssuedAt: res.GetIssuedAt()}
}

// VerifyBatch verifies up to MaxBatch credentials in one call; the results
// are in order. An error means the whole call failed (nothing is known).
func (c *Client) VerifyBatch(ctx context.Context, items []Credentials) ([]Result, error) {
	if len(items) > MaxBatch {
		return nil, fmt.Errorf("%w: %d items, at most %d", ErrInvalid, len(items), MaxBatch)
	}
	req := &authv1.VerifyBatchRequest{Items: make([]*authv1.VerifyRequest, len(items))}
	for i, it := range items {
		req.Items[i] = &authv1.VerifyRequest{Token: it.Token, AccessToken: it.AccessToken}
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	res, err := c.auth.VerifyBatch(ctx, req)
	if err != nil {
		return nil, classify(err)
	}
	if len(res.GetResults()) != len(items) {
		return nil, fmt.Errorf("%w: %d results for %d items", ErrUnavailable, len(res.GetResults()), len(items))
	}
	out := make([]Result, len(items))
	for i, r := range res.GetResults() {
		if code := codes.Code(r.GetCode()); code != codes.OK {
			out[i] = Result{Err: classify(status.Error(code, r.GetMessage()))}
			continue
		}
		out[i] = Result{Identity: identity(r.GetResponse())}
	}
	return out, nil
}

// Backoff bounds of WatchRevocations' reconnects.
const (
	watchMinBackoff = 100 * time.Millisecond
	watchMaxBackoff = 5 * time.Second
)

// WatchRevocations follows the auth service's revocations until ctx ends,
// calling fn for each (on this goroutine), reconnecting with exponential
// back-off (100 ms to 5 s) whenever the stream breaks. onSubscribed, when
// not nil, is called each time a stream is established: revocations
// published while no stream was up are lost to this watcher (the periodic
// re-verify covers them). It returns ctx's error.
func (c *Client) WatchRevocations(ctx context.Context, fn func(Revocation), onSubscribed func()) error {
	backoff := watchMinBackoff
	for {
		start := time.Now()
		err := c.watchOnce(ctx, fn, onSubscribed)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Since(start) > watchMaxBackoff {
			backoff = watchMinBackoff // it ran a while: a fresh failure
		}
		if c.watchErr != nil {
			c.watchErr(err, backoff)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, watchMaxBackoff)
	}
}

func (c *Client) watchOnce(ctx context.Context, fn func(Revocation), onSubscribed func()) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if c.watchToken != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+c.watchToken)
	}
	stream, err := c.auth.WatchRevocations(ctx, &authv1.WatchRevocationsRequest{})
	if err != nil {
		return classify(err)
	}
	if _, err := stream.Header(); err != nil {
		return classify(err)
	}
	if onSubscribed != nil {
		onSubscribed()
	}
	for {
		r, err := stream.Recv()
		if err != nil {
			return classify(err)
		}
		fn(Revocation{UserID: r.GetUserId(), SessionID: r.GetSessionId(), AllSessions: r.GetAllSessions(),
			ValidAfter: time.UnixMilli(r.GetValidAfterMs()), UserDeleted: r.GetUserDeleted()})
	}
}

// OnWatchError sets a function told of every broken revocation stream and
// the wait before the next attempt (for logs); call before
// WatchRevocations.
func (c *Client) OnWatchError(f func(err error, retryIn time.Duration)) { c.watchErr = f }

// Authenticate logs a user in for the end client at clientAddr (its IP
// address, behind the gateway's trusted proxies). With the gateway's
// credential the auth service limits logins per clientAddr; without it,
// per gateway.
func (c *Client) Authenticate(ctx context.Context, userName, password, clientAddr string) (Session, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req := &authv1.AuthenticateRequest{UserName: userName, Password: password}
	if c.watchToken != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+c.watchToken)
		if a, err := netip.ParseAddr(clientAddr); err == nil {
			req.ClientAddress = a.String() // not an IP (a peer the gateway could not parse): auth keys on the gateway
		}
	}
	res, err := c.auth.Authenticate(ctx, req)
	if err != nil {
		return Session{}, classify(err)
	}
	return Session{Token: res.GetToken(), AccessToken: res.GetAccessToken(), UserID: res.GetUserId(), ExpiresAt: res.GetExpiresAt()}, nil
}

// Ready reports whether the auth service answers its health check as
// SERVING.
func (c *Client) Ready(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	res, err := c.health.Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	if res.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return fmt.Errorf("%w: %s", ErrUnavailable, res.GetStatus())
	}
	return nil
}

func classify(err error) error {
	st, _ := status.FromError(err)
	switch st.Code() {
	case codes.Unauthenticated, codes.PermissionDenied, codes.NotFound:
		return fmt.Errorf("%w: %s", ErrUnauthenticated, st.Message())
	case codes.InvalidArgument:
		return fmt.Errorf("%w: %s", ErrInvalid, st.Message())
	case codes.ResourceExhausted:
		return fmt.Errorf("%w: %s", ErrLimited, st.Message())
	default:
		return fmt.Errorf("%w: %s: %s", ErrUnavailable, st.Code(), st.Message())
	}
}
