// Package tokens issues and verifies the auth service's two credentials: the
// short-lived JWT (HS256, rotating keys) and the opaque access token.
package tokens

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wsmq/wsmq/pkg/userid"
)

// Defaults of JWT issuing and checking.
const (
	DefaultIssuer = "wsmq-auth"
	DefaultTTL    = 15 * time.Minute
	// DefaultLeeway is the clock skew tolerated on exp, iat and nbf.
	DefaultLeeway = 30 * time.Second
	// MinSecretLen is the shortest HS256 secret accepted outside dev mode:
	// 256 bits, the size of the HMAC-SHA256 output.
	MinSecretLen = 32
	// maxJWTLen bounds the input handed to the JWT parser.
	maxJWTLen = 4096
	// subjectPrefix starts the sub claim: "users/<id>".
	subjectPrefix = "users/"
)

// ErrInvalidToken is returned for every JWT that does not verify; the
// wrapped detail is for logs only.
var ErrInvalidToken = errors.New("invalid token")

var kidPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// Key is one HS256 signing key.
type Key struct {
	// ID is the kid header value naming the key.
	ID string
	// Secret is the HMAC secret.
	Secret []byte
}

// KeyID derives a key id from a secret: the first 8 hex digits of a
// domain-separated SHA-256 of it, stable across restarts and replicas.
func KeyID(secret []byte) string {
	sum := sha256.Sum256(append([]byte("wsmq-auth-kid:"), secret...))
	return hex.EncodeToString(sum[:4])
}

// ValidKeyID reports whether id may be used as a kid.
func ValidKeyID(id string) bool { return kidPattern.MatchString(id) }

// Options configures a JWT issuer and verifier. Zero values mean defaults.
type Options struct {
	// Keys verify tokens; the last one signs new tokens. At least one.
	Keys []Key
	// Issuer is the iss claim written and required.
	Issuer string
	// TTL is the lifetime of issued tokens.
	TTL time.Duration
	// Leeway is the tolerated clock skew.
	Leeway time.Duration
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// JWT issues and verifies HS256 JWTs with a rotating key set.
type JWT struct {
	keys    map[string][]byte
	signKID string
	sign    []byte
	issuer  string
	ttl     time.Duration
	now     func() time.Time
	parser  *jwt.Parser
}

// NewJWT returns a JWT issuer/verifier. It fails on an empty key set, an
// invalid or duplicate kid, or an empty secret.
func NewJWT(o Options) (*JWT, error) {
	if len(o.Keys) == 0 {
		return nil, errors.New("tokens: no JWT key")
	}
	if o.Issuer == "" {
		o.Issuer = DefaultIssuer
	}
	if o.TTL <= 0 {
		o.TTL = DefaultTTL
	}
	if o.Leeway <= 0 {
		o.Leeway = DefaultLeeway
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	j := &JWT{keys: make(map[string][]byte, len(o.Keys)), issuer: o.Issuer, ttl: o.TTL, now: o.Now}
	for _, k := range o.Keys {
		if !ValidKeyID(k.ID) {
			return nil, fmt.Errorf("tokens: invalid kid %q (1-64 of [A-Za-z0-9._-])", k.ID)
		}
		if len(k.Secret) == 0 {
			return nil, fmt.Errorf("tokens: key %q has an empty secret", k.ID)
		}
		if _, dup := j.keys[k.ID]; dup {
			return nil, fmt.Errorf("tokens: duplicate kid %q", k.ID)
		}
		j.keys[k.ID] = k.Secret
	}
	last := o.Keys[len(o.Keys)-1]
	j.signKID, j.sign = last.ID, last.Secret
	j.parser = jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithIssuer(o.Issuer),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(o.Leeway),
		jwt.WithTimeFunc(o.Now),
	)
	return j, nil
}

// TTL is the lifetime of issued tokens.
func (j *JWT) TTL() time.Duration { return j.ttl }

// SigningKeyID is the kid of the key that signs new tokens.
func (j *JWT) SigningKeyID() string { return j.signKID }

// Session names the session a JWT belongs to.
type Session struct {
	// ID is the session id (the sid claim): the access token's record id.
	ID string
	// Gen is the user's session generation when the session started (the
	// gen claim); ending all of a user's sessions increments it.
	Gen int64
}

// claims are the JWT's claims: the registered ones plus the session.
type claims struct {
	jwt.RegisteredClaims
	SessionID string `json:"sid,omitempty"`
	Gen       int64  `json:"gen,omitempty"`
}

// Issue signs a token for userID in session sess; it returns the token and
// its expiry.
func (j *JWT) Issue(userID string, sess Session) (string, time.Time, error) {
	// Only ids of the one shape the gateway authorizes queues by.
	if !userid.Valid(userID) {
		return "", time.Time{}, fmt.Errorf("tokens: invalid user id %q (want %s)", userID, userid.Rule)
	}
	if sess.ID == "" {
		return "", time.Time{}, errors.New("tokens: empty session id")
	}
	now := j.now()
	exp := now.Add(j.ttl)
	claims := claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   subjectPrefix + userID,
			Issuer:    j.issuer,
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(exp),
		},
		SessionID: sess.ID,
		Gen:       sess.Gen,
	}
	t := jwt.NewWithClaims(jwt.SigningMethodHS256, claims)
	t.Header["kid"] = j.signKID
	s, err := t.SignedString(j.sign)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("tokens: sign: %w", err)
	}
	// NumericDate has second precision: report what the token says.
	return s, claims.ExpiresAt.Time, nil
}

// Claims are the verified facts of a JWT.
type Claims struct {
	// UserID is the id from sub ("users/<id>").
	UserID string
	// Session is the sid and gen claims.
	Session Session
	// IssuedAt is the iat claim (whole seconds).
	IssuedAt time.Time
	// ExpiresAt is the exp claim.
	ExpiresAt time.Time
}

// Verify checks a JWT: HS256 only, a known kid, the right issuer, exp
// and iat present and exp not passed (with leeway), a well-formed sub and a
// session id (tokens issued before sessions existed are refused: their
// holders refresh with their access token). Every failure wraps
// ErrInvalidToken.
func (j *JWT) Verify(token string) (Claims, error) {
	if token == "" {
		return Claims{}, fmt.Errorf("%w: empty", ErrInvalidToken)
	}
	if len(token) > maxJWTLen {
		return Claims{}, fmt.Errorf("%w: longer than %d bytes", ErrInvalidToken, maxJWTLen)
	}
	var c claims
	_, err := j.parser.ParseWithClaims(token, &c, j.keyFunc)
	if err != nil {
		return Claims{}, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	id, ok := strings.CutPrefix(c.Subject, subjectPrefix)
	if !ok || !userid.Valid(id) {
		return Claims{}, fmt.Errorf("%w: malformed sub", ErrInvalidToken)
	}
	if c.SessionID == "" || len(c.SessionID) > 64 {
		return Claims{}, fmt.Errorf("%w: missing or malformed sid", ErrInvalidToken)
	}
	if c.IssuedAt == nil {
		return Claims{}, fmt.Errorf("%w: missing iat", ErrInvalidToken)
	}
	return Claims{UserID: id, Session: Session{ID: c.SessionID, Gen: c.Gen},
		IssuedAt: c.IssuedAt.Time, ExpiresAt: c.ExpiresAt.Time}, nil
}

func (j *JWT) keyFunc(t *jwt.Token) (any, error) {
	kid, ok := t.Header["kid"].(string)
	if !ok {
		return nil, errors.New("missing kid")
	}
	key, ok := j.keys[kid]
	if !ok {
		return nil, errors.New("unknown kid")
	}
	return key, nil
}
