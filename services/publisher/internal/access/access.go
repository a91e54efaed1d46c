// Package access decides who may call what on the publisher: send keys
// (WSMQ_PUBLISHER_KEYS) for PublisherService, admin keys
// (WSMQ_PUBLISHER_ADMIN_KEYS) for QueueAdminService, over gRPC metadata and
// the HTTP Authorization header alike.
package access

import (
	"context"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	publisherv1 "github.com/wsmq/wsmq/gen/wsmq/publisher/v1"
	"github.com/wsmq/wsmq/pkg/bearer"
)

// adminPrefix is the full-method prefix of the admin service.
var adminPrefix = "/" + publisherv1.QueueAdminService_ServiceDesc.ServiceName + "/"

// healthPrefix is the gRPC health service: probes carry no credential.
const healthPrefix = "/grpc.health.v1.Health/"

// Texts of the refusals, shared by both transports.
const (
	msgAdminDisabled = "admin: disabled (set WSMQ_PUBLISHER_ADMIN_KEYS)"
	msgSendKeyAdmin  = "authorization: a send key cannot administer queues"
	msgAdminKeySend  = "authorization: an admin key cannot send"
)

// Access holds the two key sets.
type Access struct {
	// Send accepts the send keys.
	Send *bearer.Checker
	// Admin accepts the admin keys; nil when the admin service is disabled.
	Admin *bearer.Checker
	// OnReject, when not nil, is called for every refused call (a metric).
	OnReject func()
}

// WithAuthorization returns ctx carrying an HTTP Authorization header as
// incoming gRPC metadata, so that both transports are checked by one code.
func WithAuthorization(ctx context.Context, header []string) context.Context {
	md := metadata.MD{}
	if len(header) > 0 {
		md["authorization"] = header
	}
	return metadata.NewIncomingContext(ctx, md)
}

// CheckSend returns nil when ctx carries a send key, else a status error
// (Unauthenticated, or PermissionDenied for an admin key).
func (a *Access) CheckSend(ctx context.Context) error {
	err := a.Send.Check(ctx)
	if err == nil {
		return nil
	}
	a.reject()
	if a.Admin != nil && a.Admin.Check(ctx) == nil && !a.Admin.Open() {
		return status.Error(codes.PermissionDenied, msgAdminKeySend)
	}
	return status.Error(codes.Unauthenticated, err.Error())
}

// CheckAdmin returns nil when ctx carries an admin key, else a status error:
// Unimplemented when the admin service is disabled, PermissionDenied for a
// send key, Unauthenticated otherwise.
func (a *Access) CheckAdmin(ctx context.Context) error {
	if a.Admin == nil {
		a.reject()
		return status.Error(codes.Unimplemented, msgAdminDisabled)
	}
	err := a.Admin.Check(ctx)
	if err == nil {
		return nil
	}
	a.reject()
	if a.Send.Check(ctx) == nil && !a.Send.Open() {
		return status.Error(codes.PermissionDenied, msgSendKeyAdmin)
	}
	return status.Error(codes.Unauthenticated, err.Error())
}

func (a *Access) reject() {
	if a.OnReject != nil {
		a.OnReject()
	}
}

func (a *Access) check(ctx context.Context, method string) error {
	switch {
	case strings.HasPrefix(method, healthPrefix):
		return nil
	case strings.HasPrefix(method, adminPrefix):
		return a.CheckAdmin(ctx)
	}
	return a.CheckSend(ctx)
}

// Unary is the unary server interceptor.
func (a *Access) Unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if err := a.check(ctx, info.FullMethod); err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

// Stream is the stream server interceptor.
func (a *Access) Stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if err := a.check(ss.Context(), info.FullMethod); err != nil {
		return err
	}
	return handler(srv, ss)
}
