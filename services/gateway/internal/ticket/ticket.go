// Package ticket issues and redeems connect tickets: single-use, short-lived
// strings a client puts in the websocket URL instead of its long-lived
// credentials.
//
// A ticket is 256 random bits (base64url). Redis holds, under the SHA-256
// of the ticket, the grant sealed with AES-256-GCM under a key derived from
// the ticket itself, with a TTL: neither Redis nor its dumps can rebuild a
// ticket or read the credentials behind it. Redeem takes the entry with
// GETDEL, so a ticket works once, on any gateway sharing the Redis.
package ticket

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wsmq/wsmq/pkg/rsmq"
)

// DefaultTTL is how long a ticket stays valid unless Options.TTL says.
const DefaultTTL = 30 * time.Second

// ErrInvalid: the ticket is unknown, used, expired or malformed.
var ErrInvalid = errors.New("ticket: invalid, used or expired")

// Grant is what a ticket stands for: the verified user and session and the
// credentials the socket keeps for re-verification.
type Grant struct {
	UserID      string `json:"u"`
	SessionID   string `json:"s,omitempty"`
	Token       string `json:"t,omitempty"`
	AccessToken string `json:"a,omitempty"`
	// Refreshed: Token was issued when the ticket was, and the client has
	// not seen it yet (the socket's first frame hands it over).
	Refreshed bool `json:"r,omitempty"`
	// ExpiresAt is Token's expiry, unix ms.
	ExpiresAt int64 `json:"e,omitempty"`
}

// Options configure a Store; zero values mean the defaults in brackets.
type Options struct {
	Namespace string        // RSMQ namespace the keys live under [rsmq]
	TTL       time.Duration // a ticket's life [30s]
}

// Store issues and redeems tickets on one Redis.
type Store struct {
	rdb    redis.UniversalClient
	prefix string // "<ns>:wsmq:ticket:"
	ttl    time.Duration
}

// New returns a Store.
func New(rdb redis.UniversalClient, opts Options) *Store {
	if opts.Namespace == "" {
		opts.Namespace = rsmq.DefaultNamespace
	}
	if opts.TTL <= 0 {
		opts.TTL = DefaultTTL
	}
	return &Store{rdb: rdb, prefix: opts.Namespace + ":wsmq:ticket:", ttl: opts.TTL}
}

// TTL is a ticket's life.
func (s *Store) TTL() time.Duration { return s.ttl }

// Key is the Redis key holding ticket t.
func (s *Store) Key(t string) string {
	sum := sha256.Sum256([]byte("wsmq ticket id\x00" + t))
	return s.prefix + hex.EncodeToString(sum[:])
}

// Issue stores g and returns its new ticket and expiry.
func (s *Store) Issue(ctx context.Context, g Grant) (string, time.Time, error) {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", time.Time{}, fmt.Errorf("ticket: random: %w", err)
	}
	t := base64.RawURLEncoding.EncodeToString(raw)
	plain, err := json.Marshal(g)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("ticket: encode grant: %w", err)
	}
	aead, err := sealer(t)
	if err != nil {
		return "", time.Time{}, err
	}
	// The key is used for one message only, so a fixed nonce is safe.
	sealed := aead.Seal(nil, make([]byte, aead.NonceSize()), plain, []byte(s.Key(t)))
	exp := time.Now().Add(s.ttl)
	if err := s.rdb.Set(ctx, s.Key(t), sealed, s.ttl).Err(); err != nil {
		return "", time.Time{}, fmt.Errorf("ticket: store: %w", err)
	}
	return t, exp, nil
}

// Redeem consumes ticket t and returns its grant. A second Redeem of the
// same ticket, an expired one, or one never issued returns ErrInvalid.
func (s *Store) Redeem(ctx context.Context, t string) (Grant, error) {
	if b, err := base64.RawURLEncoding.Strict().DecodeString(t); err != nil || len(b) != 32 {
		return Grant{}, ErrInvalid
	}
	key := s.Key(t)
	sealed, err := s.rdb.GetDel(ctx, key).Bytes()
	switch {
	case errors.Is(err, redis.Nil):
		return Grant{}, ErrInvalid
	case err != nil:
		return Grant{}, fmt.Errorf("ticket: redeem: %w", err)
	}
	aead, err := sealer(t)
	if err != nil {
		return Grant{}, err
	}
	plain, err := aead.Open(nil, make([]byte, aead.NonceSize()), sealed, []byte(key))
	if err != nil {
		return Grant{}, ErrInvalid
	}
	var g Grant
	if err := json.Unmarshal(plain, &g); err != nil || g.UserID == "" {
		return Grant{}, ErrInvalid
	}
	return g, nil
}

func sealer(t string) (cipher.AEAD, error) {
	k := sha256.Sum256([]byte("wsmq ticket key\x00" + t))
	block, err := aes.NewCipher(k[:])
	if err != nil {
		return nil, fmt.Errorf("ticket: cipher: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("ticket: cipher: %w", err)
	}
	return aead, nil
}
