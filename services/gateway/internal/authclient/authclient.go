// Package authclient calls the wsmq auth service for the gateway and turns
// its gRPC statuses into the few outcomes the gateway acts on.
package authclient

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
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
)

// Refused reports whether err means the auth service said no (bad or
// revoked credentials, a malformed request), as opposed to not answering:
// the one place the gateway tells a refusal (401, close 1008) from an
// outage (503, keep the connection).
func Refused(err error) bool {
	return errors.Is(err, ErrUnauthenticated) || errors.Is(err, ErrInvalid)
}

// Identity is a verified caller.
type Identity struct {
	UserID    string
	Token     string // a fresh JWT, when one was issued
	ExpiresAt int64  // unix ms when the caller's valid JWT expires
	SessionID string // the session the credentials belong to, when auth reports one
}

// Session is the result of a login.
type Session struct {
	Token       string
	AccessToken string
	UserID      string
	ExpiresAt   int64
}

// Client is an auth service client.
type Client struct {
	cc      *grpc.ClientConn
	auth    authv1.AuthServiceClient
	health  healthpb.HealthClient
	timeout time.Duration
}

// Dial connects (lazily) to the auth service at addr. Every call is bounded
// by timeout.
func Dial(addr string, timeout time.Duration) (*Client, error) {
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("auth client %s: %w", addr, err)
	}
	return &Client{cc: cc, auth: authv1.NewAuthServiceClient(cc), health: healthpb.NewHealthClient(cc), timeout: timeout}, nil
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
	return Identity{UserID: res.GetUserId(), Token: res.GetToken(), ExpiresAt: res.GetExpiresAt()}, nil
}

// Authenticate logs a user in.
func (c *Client) Authenticate(ctx context.Context, userName, password string) (Session, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	res, err := c.auth.Authenticate(ctx, &authv1.AuthenticateRequest{UserName: userName, Password: password})
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
	default:
		return fmt.Errorf("%w: %s: %s", ErrUnavailable, st.Code(), st.Message())
	}
}
