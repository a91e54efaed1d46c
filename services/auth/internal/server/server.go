// Package server handles wsmq.auth.v1.AuthService requests: request
// mapping, the admin credential check, the one function that turns errors
// into gRPC statuses, and metrics.
package server

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	authv1 "github.com/wsmq/wsmq/gen/wsmq/auth/v1"
	"github.com/wsmq/wsmq/pkg/bearer"
	"github.com/wsmq/wsmq/services/auth/internal/authn"
	"github.com/wsmq/wsmq/services/auth/internal/store"
)

// Errors of the admin credential check.
var (
	errAdminMissing = errors.New("admin credential required (authorization: Bearer <admin token>)")
	errAdminWrong   = errors.New("admin credential refused")
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
}

// Server handles AuthService requests; main.go serves it on a grpc.Server
// (Register, Interceptor).
type Server struct {
	authv1.UnimplementedAuthServiceServer

	svc     *authn.Service
	admin   *bearer.Checker
	log     *slog.Logger
	metrics *Metrics
}

// New returns the request handler.
func New(o Options) *Server {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics()
	}
	return &Server{
		svc:     o.Service,
		admin:   bearer.New([]bearer.Digest{bearer.Sum(o.AdminToken)}, false, nil),
		log:     o.Logger,
		metrics: o.Metrics,
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

// Authenticate implements AuthService.
func (s *Server) Authenticate(ctx context.Context, req *authv1.AuthenticateRequest) (*authv1.AuthenticateResponse, error) {
	sess, err := s.svc.Authenticate(ctx, req.GetUserName(), req.GetPassword())
	s.metrics.authenticate.WithLabelValues(result(err)).Inc()
	if err != nil {
		return nil, s.toStatus(ctx, "Authenticate", err)
	}
	return &authv1.AuthenticateResponse{
		Token:       sess.Token,
		AccessToken: sess.AccessToken,
		UserId:      sess.UserID,
		ExpiresAt:   sess.ExpiresAt.UnixMilli(),
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
	return &authv1.VerifyResponse{UserId: v.UserID, Token: v.Token, ExpiresAt: v.ExpiresAt.UnixMilli()}, nil
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
