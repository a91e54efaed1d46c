// Package keyauth checks the caller key of every gRPC call: metadata
// `authorization: Bearer <key>` against the SHA-256 digests of the configured
// keys, compared in constant time.
package keyauth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// healthPrefix is the gRPC health service: probes carry no key.
const healthPrefix = "/grpc.health.v1.Health/"

// Checker accepts calls that present one of its keys. An open Checker (dev
// mode without keys) accepts every call.
type Checker struct {
	digests  [][sha256.Size]byte
	open     bool
	onReject func()
}

// New returns a Checker for the given key digests. With no digests and open
// true, every call is accepted; with no digests and open false, none is.
// onReject, when not nil, is called for every rejected call (a metric).
func New(digests [][sha256.Size]byte, open bool, onReject func()) *Checker {
	return &Checker{digests: digests, open: open && len(digests) == 0, onReject: onReject}
}

// Check returns an Unauthenticated status error unless ctx carries a valid
// bearer key.
func (c *Checker) Check(ctx context.Context) error {
	if c.open {
		return nil
	}
	md, _ := metadata.FromIncomingContext(ctx)
	vals := md.Get("authorization")
	if len(vals) == 0 {
		return status.Error(codes.Unauthenticated, "authorization: missing (want metadata `authorization: Bearer <key>`)")
	}
	if len(vals) > 1 {
		return status.Error(codes.Unauthenticated, "authorization: more than one value")
	}
	scheme, key, ok := strings.Cut(vals[0], " ")
	if !ok || !strings.EqualFold(scheme, "bearer") || key == "" {
		return status.Error(codes.Unauthenticated, "authorization: malformed (want `Bearer <key>`)")
	}
	if !c.known(key) {
		return status.Error(codes.Unauthenticated, "authorization: unknown key")
	}
	return nil
}

// known compares the key's digest with every configured digest, without an
// early exit, so the time taken does not tell which key (if any) matched.
func (c *Checker) known(key string) bool {
	d := sha256.Sum256([]byte(key))
	match := 0
	for i := range c.digests {
		match |= subtle.ConstantTimeCompare(d[:], c.digests[i][:])
	}
	return match == 1
}

// Unary is the unary server interceptor.
func (c *Checker) Unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if !strings.HasPrefix(info.FullMethod, healthPrefix) {
		if err := c.Check(ctx); err != nil {
			c.rejected()
			return nil, err
		}
	}
	return handler(ctx, req)
}

// Stream is the stream server interceptor.
func (c *Checker) Stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if !strings.HasPrefix(info.FullMethod, healthPrefix) {
		if err := c.Check(ss.Context()); err != nil {
			c.rejected()
			return err
		}
	}
	return handler(srv, ss)
}

func (c *Checker) rejected() {
	if c.onReject != nil {
		c.onReject()
	}
}
