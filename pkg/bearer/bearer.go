// Package bearer checks the `authorization: Bearer <credential>` of a gRPC call
// against a set of accepted credentials, kept only as SHA-256 digests and
// compared in constant time. The publisher's caller keys and the auth
// service's admin token both use it.
package bearer

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"strings"

	"google.golang.org/grpc/metadata"
)

// Errors of Check; each carries text safe to return to a caller.
var (
	ErrMissing   = errors.New("authorization: missing (want metadata `authorization: Bearer <key>`)")
	ErrMalformed = errors.New("authorization: malformed (want `Bearer <key>`)")
	ErrUnknown   = errors.New("authorization: unknown key")
)

// Digest is a credential's SHA-256.
type Digest = [sha256.Size]byte

// Sum returns a credential's digest.
func Sum(credential string) Digest { return sha256.Sum256([]byte(credential)) }

// Checker accepts calls that present one of its credentials. An open Checker
// accepts every call (dev mode without keys).
type Checker struct {
	digests []Digest
	open    bool
}

// New returns a Checker for digests. With no digests and open true every
// call is accepted; with no digests and open false none is.
func New(digests []Digest, open bool) *Checker {
	return &Checker{digests: digests, open: open && len(digests) == 0}
}

// Check returns nil when ctx's incoming metadata carries an accepted
// credential, else ErrMissing, ErrMalformed or ErrUnknown.
func (c *Checker) Check(ctx context.Context) error {
	if c.open {
		return nil
	}
	md, _ := metadata.FromIncomingContext(ctx)
	vals := md.Get("authorization")
	switch {
	case len(vals) == 0:
		return ErrMissing
	case len(vals) > 1:
		return ErrMalformed
	}
	scheme, cred, ok := strings.Cut(vals[0], " ")
	if !ok || !strings.EqualFold(scheme, "bearer") || cred == "" {
		return ErrMalformed
	}
	if !c.Known(cred) {
		return ErrUnknown
	}
	return nil
}

// Open reports whether c accepts every call (dev mode without keys).
func (c *Checker) Open() bool { return c.open }

// Known compares cred's digest with every accepted digest, without an early
// exit, so the time taken does not tell which one (if any) matched.
func (c *Checker) Known(cred string) bool {
	d := Sum(cred)
	match := 0
	for i := range c.digests {
		match |= subtle.ConstantTimeCompare(d[:], c.digests[i][:])
	}
	return match == 1
}
