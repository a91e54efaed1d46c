// Package server handles wsmq.auth.v1.AuthService requests: request
// mapping, the admin credential check, the one function that turns errors
// into gRPC statuses, and metrics.
package server

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	authv1 "github.com/wsmq/wsmq/gen/wsmq/auth/v1"
	"github.com/wsmq/wsmq/pkg/bearer"
	"github.com/wsmq/wsmq/services/auth/internal/authn"
	"github.com/wsmq/wsmq/services/auth/internal/revocations"
	"github.com/wsmq/wsmq/services/auth/internal/store"
	"github.com/wsmq/wsmq/services/auth/internal/throttle"
)

// Errors of the credential checks and limits.
var (
	errAdminMissing   = errors.New("admin credential required (authorization: Bearer <admin token>)")
	errAdminWrong     = errors.New("admin credential refused")
	errGatewayMissing = errors.New("gateway credential required (authorization: Bearer <gateway token>)")
	errGatewayWrong   = errors.New("gateway credential refused")
	errThrottled      = errors.New("too many login attempts; retry later")
)

// Options configures a Server. Zero values mean defaults.
type Options struct {
	// Service does the work. Required.
	Service *authn.Service
	// AdminToken is the admin credential. Required.
	AdminToken string
	// Logger receives the logs (discarded when nil).
	Logger *slog.Logger
	// Metrics records counts and latencies (a fresh set when nil).
	Metrics *Metrics
	// GatewayToken is the credential of WatchRevocations (the admin token
	// is accepted too); empty: admin token only.
	GatewayToken string
	// Revocations is the hub WatchRevocations streams from (nil: the
	// stream ends at once).
	Revocations *revocations.Hub
	// Throttle guards Authenticate (a default one when nil).
	Throttle *throttle.Throttle
}

// Server handles AuthService requests; main.go serves it on a grpc.Server
// (Register, Interceptor).
type Server struct {
	authv1.UnimplementedAuthServiceServer

	svc      *authn.Service
	admin    *bearer.Checker
	watchers *bearer.Checker
	hub      *revocations.Hub
	throttle *throttle.Throttle
	log      *slog.Logger
	metrics  *Metrics
}

// New returns the request handler.
func New(o Options) *Server {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics()
	}
	if o.Throttle == nil {
		o.Throttle = throttle.New(throttle.Options{})
	}
	watch := []bearer.Digest{bearer.Sum(o.AdminToken)}
	if o.GatewayToken != "" {
		watch = append(watch, bearer.Sum(o.GatewayToken))
	}
	return &Server{
		svc:      o.Service,
		admin:    bearer.New([]bearer.Digest{bearer.Sum(o.AdminToken)}, false),
		watchers: bearer.New(watch, false),
		hub:      o.Revocations,
		throttle: o.Throttle,
		log:      o.Logger,
		metrics:  o.Metrics,
	}
}

// Register registers the auth service, and reflection (grpcurl and friends
// can call it without the .proto files; the contract is public anyway).
func (s *Server) Register(gs *grpc.Server) {
	authv1.RegisterAuthServiceServer(gs, s)
	reflection.Register(gs)
}

// Interceptor records every call's latency and outcome; serve it in front
// of the handlers.
func (s *Server) Interceptor() grpc.UnaryServerInterceptor { return s.intercept }

// intercept records latency and logs failures at the edge.
func (s *Server) intercept(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	start := time.Now()
	resp, err := h(ctx, req)
	method := info.FullMethod[strings.LastIndexByte(info.FullMethod, '/')+1:]
	code := status.Code(err)
	s.metrics.latency.WithLabelValues(method, code.String()).Observe(time.Since(start).Seconds())
	s.log.DebugContext(ctx, "rpc", "method", method, "code", code.String(), "duration", time.Since(start))
	return resp, err
}

// toStatus turns an error into the gRPC status the client sees: the one
// place where errors become codes.
func (s *Server) toStatus(ctx context.Context, method string, err error) error {
	if err == nil {
		return nil
	}
	var fe *authn.FieldError
	switch {
	case errors.As(err, &fe):
		return status.Error(codes.InvalidArgument, fe.Error())
	case errors.Is(err, authn.ErrInvalidCredentials):
		return status.Error(codes.Unauthenticated, authn.ErrInvalidCredentials.Error())
	case errors.Is(err, errAdminMissing):
		return status.Error(codes.Unauthenticated, errAdminMissing.Error())
	case errors.Is(err, errAdminWrong):
		return status.Error(codes.PermissionDenied, errAdminWrong.Error())
	case errors.Is(err, errGatewayMissing):
		return status.Error(codes.Unauthenticated, errGatewayMissing.Error())
	case errors.Is(err, errGatewayWrong):
		return status.Error(codes.PermissionDenied, errGatewayWrong.Error())
	case errors.Is(err, errThrottled):
		return status.Error(codes.ResourceExhausted, errThrottled.Error())
	case errors.Is(err, store.ErrDuplicate):
		return status.Error(codes.AlreadyExists, "user_name: already taken")
	case errors.Is(err, store.ErrNotFound):
		return status.Error(codes.NotFound, "user not found")
	case errors.Is(err, store.ErrUnavailable):
		s.log.WarnContext(ctx, "database unavailable", "method", method, "err", err)
		return status.Error(codes.Unavailable, "database unavailable")
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "canceled")
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "deadline exceeded")
	default:
		s.log.ErrorContext(ctx, "internal error", "method", method, "err", err)
		return status.Error(codes.Internal, "internal error")
	}
}

// checkAdmin checks the `authorization: Bearer <admin token>` metadata
// (digests compared in constant time).
func (s *Server) checkAdmin(ctx context.Context) error {
	switch err := s.admin.Check(ctx); {
	case err == nil:
		return nil
	case errors.Is(err, bearer.ErrUnknown):
		return errAdminWrong
	default:
		return errAdminMissing
	}
}

// peerIP is the caller's address without the port ("" when unknown).
func peerIP(ctx context.Context) string {
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return ""
	}
	a := p.Addr.String()
	if host, _, err := net.SplitHostPort(a); err == nil {
		return host
	}
	return a
}

// loginAddress is the address the per-address login limit keys on: the
// end client's (client_address) when a gateway (or the admin) calls with
// its credential, else the caller's own. A client_address that is not an IP
// address is a field error, whoever sends it.
func (s *Server) loginAddress(ctx context.Context, req *authv1.AuthenticateRequest) (string, error) {
	a := req.GetClientAddress()
	if a == "" {
		return peerIP(ctx), nil
	}
	ip, err := netip.ParseAddr(a)
	if err != nil {
		return "", &authn.FieldError{Field: "client_address", Reason: "not an IP address"}
	}
	if s.watchers.Check(ctx) != nil {
		return peerIP(ctx), nil // not a gateway: its claim about others is not trusted
	}
	return ip.Unmap().String(), nil
}

// Authenticate implements AuthService. The throttle runs first: a refused
// attempt costs no database read and no bcrypt.
func (s *Server) Authenticate(ctx context.Context, req *authv1.AuthenticateRequest) (*authv1.AuthenticateResponse, error) {
	name := req.GetUserName()
	addr, err := s.loginAddress(ctx, req)
	if err != nil {
		return nil, s.toStatus(ctx, "Authenticate", err)
	}
	if ok, wait := s.throttle.Allow(addr, name); !ok {
		s.metrics.authenticate.WithLabelValues("throttled").Inc()
		s.log.DebugContext(ctx, "login throttled", "user_name", name, "retry_in", wait)
		return nil, s.toStatus(ctx, "Authenticate", errThrottled)
	}
	sess, err := s.svc.Authenticate(ctx, name, req.GetPassword())
	s.metrics.authenticate.WithLabelValues(result(err)).Inc()
	switch {
	case err == nil:
		s.throttle.Success(name)
	case errors.Is(err, authn.ErrInvalidCredentials):
		s.throttle.Failure(name)
	}
	if err != nil {
		return nil, s.toStatus(ctx, "Authenticate", err)
	}
	return &authv1.AuthenticateResponse{
		Token:       sess.Token,
		AccessToken: sess.AccessToken,
		UserId:      sess.UserID,
		ExpiresAt:   sess.ExpiresAt.UnixMilli(),
		SessionId:   sess.SessionID,
	}, nil
}

// Verify implements AuthService.
func (s *Server) Verify(ctx context.Context, req *authv1.VerifyRequest) (*authv1.VerifyResponse, error) {
	v, err := s.svc.Verify(ctx, req.GetToken(), req.GetAccessToken())
	res := result(err)
	if err == nil && v.Token != "" {
		res = "refreshed"
	}
	s.metrics.verify.WithLabelValues(res).Inc()
	if err != nil {
		return nil, s.toStatus(ctx, "Verify", err)
	}
	return verifyResponse(v), nil
}

func verifyResponse(v authn.Verified) *authv1.VerifyResponse {
	return &authv1.VerifyResponse{UserId: v.UserID, Token: v.Token, ExpiresAt: v.ExpiresAt.UnixMilli(),
		SessionId: v.SessionID, IssuedAt: v.IssuedAt.UnixMilli()}
}

// VerifyBatch implements AuthService.
func (s *Server) VerifyBatch(ctx context.Context, req *authv1.VerifyBatchRequest) (*authv1.VerifyBatchResponse, error) {
	items := make([]authn.Credentials, len(req.GetItems()))
	for i, it := range req.GetItems() {
		items[i] = authn.Credentials{Token: it.GetToken(), AccessToken: it.GetAccessToken()}
	}
	results, err := s.svc.VerifyBatch(ctx, items)
	if err != nil {
		return nil, s.toStatus(ctx, "VerifyBatch", err)
	}
	out := &authv1.VerifyBatchResponse{Results: make([]*authv1.VerifyBatchResult, len(results))}
	for i, r := range results {
		res := result(r.Err)
		if r.Err == nil && r.Verified.Token != "" {
			res = "refreshed"
		}
		s.metrics.verify.WithLabelValues(res).Inc()
		if r.Err != nil {
			st, _ := status.FromError(s.toStatus(ctx, "VerifyBatch", r.Err))
			out.Results[i] = &authv1.VerifyBatchResult{Code: int32(st.Code()), Message: st.Message()}
			continue
		}
		out.Results[i] = &authv1.VerifyBatchResult{Response: verifyResponse(r.Verified)}
	}
	return out, nil
}

// WatchRevocations implements AuthService: it streams the hub's
// revocations until the caller leaves, the watcher falls too far behind
// (UNAVAILABLE: reconnect) or the server stops.
func (s *Server) WatchRevocations(_ *authv1.WatchRevocationsRequest, stream grpc.ServerStreamingServer[authv1.Revocation]) error {
	ctx := stream.Context()
	switch err := s.watchers.Check(ctx); {
	case err == nil:
	case errors.Is(err, bearer.ErrUnknown):
		return s.toStatus(ctx, "WatchRevocations", errGatewayWrong)
	default:
		return s.toStatus(ctx, "WatchRevocations", errGatewayMissing)
	}
	if s.hub == nil {
		return status.Error(codes.Unavailable, "revocations not published")
	}
	w := s.hub.Watch()
	defer s.hub.Cancel(w)
	// Headers now, so the watcher knows it is subscribed before any
	// revocation arrives.
	if err := stream.SendHeader(nil); err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case r := <-w.C:
			if err := stream.Send(&authv1.Revocation{
				UserId: r.UserID, SessionId: r.SessionID, AllSessions: r.AllSessions,
				ValidAfterMs: r.ValidAfter.UnixMilli(), UserDeleted: r.UserDeleted,
			}); err != nil {
				return err
			}
		case <-w.Done():
			select {
			case <-ctx.Done():
				return nil
			default:
			}
			return status.Error(codes.Unavailable, "revocation stream ended (server stopping or watcher too slow); reconnect")
		}
	}
}

// result labels an outcome for the counters.
func result(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, authn.ErrInvalidCredentials):
		return "invalid_credentials"
	case errors.Is(err, store.ErrUnavailable):
		return "unavailable"
	default:
		var fe *authn.FieldError
		if errors.As(err, &fe) {
			return "invalid_argument"
		}
		return "error"
	}
}

// Revoke implements AuthService.
func (s *Server) Revoke(ctx context.Context, req *authv1.RevokeRequest) (*authv1.RevokeResponse, error) {
	var n int64
	var err error
	if req.GetUserName() != "" {
		switch {
		case req.GetAccessToken() != "":
			err = &authn.FieldError{Field: "access_token", Reason: "must be empty when user_name is set"}
		default:
			if err = s.checkAdmin(ctx); err == nil {
				n, err = s.svc.RevokeUser(ctx, req.GetUserName())
			}
		}
	} else {
		n, err = s.svc.RevokeAccessToken(ctx, req.GetAccessToken(), req.GetAll())
	}
	if err != nil {
		return nil, s.toStatus(ctx, "Revoke", err)
	}
	return &authv1.RevokeResponse{Revoked: n}, nil
}

// CreateUser implements AuthService.
func (s *Server) CreateUser(ctx context.Context, req *authv1.CreateUserRequest) (*authv1.CreateUserResponse, error) {
	if err := s.checkAdmin(ctx); err != nil {
		return nil, s.toStatus(ctx, "CreateUser", err)
	}
	id, err := s.svc.CreateUser(ctx, req.GetUserName(), req.GetPassword())
	if err != nil {
		return nil, s.toStatus(ctx, "CreateUser", err)
	}
	return &authv1.CreateUserResponse{UserId: id}, nil
}

// DeleteUser implements AuthService.
func (s *Server) DeleteUser(ctx context.Context, req *authv1.DeleteUserRequest) (*authv1.DeleteUserResponse, error) {
	if err := s.checkAdmin(ctx); err != nil {
		return nil, s.toStatus(ctx, "DeleteUser", err)
	}
	if _, err := s.svc.DeleteUser(ctx, req.GetUserName()); err != nil {
		return nil, s.toStatus(ctx, "DeleteUser", err)
	}
	return &authv1.DeleteUserResponse{}, nil
}

// SetPassword implements AuthService.
func (s *Server) SetPassword(ctx context.Context, req *authv1.SetPasswordRequest) (*authv1.SetPasswordResponse, error) {
	if err := s.checkAdmin(ctx); err != nil {
		return nil, s.toStatus(ctx, "SetPassword", err)
	}
	n, err := s.svc.SetPassword(ctx, req.GetUserName(), req.GetPassword())
	if err != nil {
		return nil, s.toStatus(ctx, "SetPassword", err)
	}
	return &authv1.SetPasswordResponse{Revoked: n}, nil
}

// ListUsers implements AuthService.
func (s *Server) ListUsers(ctx context.Context, _ *authv1.ListUsersRequest) (*authv1.ListUsersResponse, error) {
	if err := s.checkAdmin(ctx); err != nil {
		return nil, s.toStatus(ctx, "ListUsers", err)
	}
	users, err := s.svc.ListUsers(ctx)
	if err != nil {
		return nil, s.toStatus(ctx, "ListUsers", err)
	}
	out := &authv1.ListUsersResponse{Users: make([]*authv1.User, 0, len(users))}
	for _, u := range users {
		out.Users = append(out.Users, &authv1.User{
			UserId: u.ID, UserName: u.Name, CreatedAt: u.Created.UnixMilli(), Sessions: u.Sessions,
		})
	}
	return out, nil
}
