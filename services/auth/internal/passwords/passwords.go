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
	"sync"

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
	cost int
	sem  chan struct{}

	mu      sync.Mutex
	dummies map[int][]byte // a dummy hash per bcrypt cost
	seen    map[int]int64  // costs of the stored hashes compared so far
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
	h := &Hasher{cost: cost, sem: make(chan struct{}, runtime.GOMAXPROCS(0)),
		dummies: make(map[int][]byte), seen: make(map[int]int64)}
	if _, err := h.dummy(cost); err != nil {
		return nil, err
	}
	return h, nil
}

// dummy returns the dummy hash of the given cost, made on first use.
func (h *Hasher) dummy(cost int) ([]byte, error) {
	h.mu.Lock()
	d := h.dummies[cost]
	h.mu.Unlock()
	if d != nil {
		return d, nil
	}
	b := make([]byte, 18)
	_, _ = rand.Read(b)
	d, err := bcrypt.GenerateFromPassword([]byte(base64.RawStdEncoding.EncodeToString(b)), cost)
	if err != nil {
		return nil, fmt.Errorf("passwords: dummy hash: %w", err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if prev := h.dummies[cost]; prev != nil {
		return prev, nil
	}
	h.dummies[cost] = d
	return d, nil
}

// DummyCost is the cost an unknown user's comparison runs at: the most
// common cost among the stored hashes compared so far, or the configured
// cost before any. After a cost change the stored hashes keep their old
// cost; matching it keeps an unknown name as slow as a known one.
func (h *Hasher) DummyCost() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	best, n := h.cost, int64(0)
	for c, k := range h.seen {
		if k > n || (k == n && c > best) {
			best, n = c, k
		}
	}
	return best
}

func (h *Hasher) observe(hash []byte) {
	c, err := bcrypt.Cost(hash)
	if err != nil {
		return
	}
	h.mu.Lock()
	if len(h.seen) < 64 || h.seen[c] > 0 {
		h.seen[c]++
	}
	h.mu.Unlock()
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
// compared against a dummy hash of DummyCost and always fails, so the
// caller's timing does not reveal whether the user exists.
func (h *Hasher) Compare(ctx context.Context, hash []byte, password string) error {
	var dummy []byte
	if hash == nil {
		d, err := h.dummy(h.DummyCost())
		if err != nil {
			return err
		}
		dummy = d
	}
	if err := h.acquire(ctx); err != nil {
		return err
	}
	defer h.release()
	if hash == nil {
		_ = bcrypt.CompareHashAndPassword(dummy, []byte(password))
		return ErrMismatch
	}
	h.observe(hash)
	if err := bcrypt.CompareHashAndPassword(hash, []byte(password)); err != nil {
		return ErrMismatch
	}
	return nil
}
