// Package passwords hashes and checks user passwords with bcrypt, with a
// dummy comparison for unknown users so their timing matches a wrong
// password, and a bound on concurrent hashing.
package passwords

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"

	"golang.org/x/crypto/bcrypt"
)

// DefaultCost is the bcrypt cost used unless configured (2^12 rounds,
// about 0.2-0.3 s on a current server core).
const DefaultCost = 12

// Length limits of a password. bcrypt reads at most 72 bytes, so longer
// passwords are refused rather than silently truncated.
const (
	MinLen = 8
	MaxLen = 72
)

// ErrMismatch is returned when a password does not match.
var ErrMismatch = errors.New("password mismatch")

// Hasher hashes and compares passwords.
type Hasher struct {
	cost  int
	dummy []byte
	sem   chan struct{}
}

// NewHasher returns a Hasher of the given bcrypt cost (DefaultCost when 0)
// that runs at most GOMAXPROCS hashes at once, so a login flood queues
// instead of starving every other request of CPU.
func NewHasher(cost int) (*Hasher, error) {
	if cost == 0 {
		cost = DefaultCost
	}
	if cost < bcrypt.MinCost || cost > bcrypt.MaxCost {
		return nil, fmt.Errorf("passwords: bcrypt cost %d outside %d..%d", cost, bcrypt.MinCost, bcrypt.MaxCost)
	}
	// The dummy hash has the configured cost, so comparing against it takes
	// as long as comparing against a real user's hash.
	b := make([]byte, 18)
	_, _ = rand.Read(b)
	dummy, err := bcrypt.GenerateFromPassword([]byte(base64.RawStdEncoding.EncodeToString(b)), cost)
	if err != nil {
		return nil, fmt.Errorf("passwords: dummy hash: %w", err)
	}
	return &Hasher{cost: cost, dummy: dummy, sem: make(chan struct{}, runtime.GOMAXPROCS(0))}, nil
}

// Cost is the bcrypt cost of new hashes.
func (h *Hasher) Cost() int { return h.cost }

func (h *Hasher) acquire(ctx context.Context) error {
	select {
	case h.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (h *Hasher) release() { <-h.sem }

// Hash returns the bcrypt hash of password.
func (h *Hasher) Hash(ctx context.Context, password string) ([]byte, error) {
	if err := h.acquire(ctx); err != nil {
		return nil, err
	}
	defer h.release()
	b, err := bcrypt.GenerateFromPassword([]byte(password), h.cost)
	if err != nil {
		return nil, fmt.Errorf("passwords: hash: %w", err)
	}
	return b, nil
}

// Compare checks password against hash. A nil hash (unknown user) is
// compared against a dummy hash of the same cost and always fails, so the
// caller's timing does not reveal whether the user exists.
func (h *Hasher) Compare(ctx context.Context, hash []byte, password string) error {
	if err := h.acquire(ctx); err != nil {
		return err
	}
	defer h.release()
	if hash == nil {
		_ = bcrypt.CompareHashAndPassword(h.dummy, []byte(password))
		return ErrMismatch
	}
	if err := bcrypt.CompareHashAndPassword(hash, []byte(password)); err != nil {
		return ErrMismatch
	}
	return nil
}
