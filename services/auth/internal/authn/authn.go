// Package authn is the auth service's logic: logins, token verification
// and refresh, revocation and user administration, over the store, the
// token issuer and the password hasher. The gRPC server and the CLI both
// drive it.
package authn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"time"
	"unicode/utf8"

	"github.com/wsmq/wsmq/services/auth/internal/passwords"
	"github.com/wsmq/wsmq/services/auth/internal/store"
	"github.com/wsmq/wsmq/services/auth/internal/tokens"
)

// DefaultTouchInterval is how stale an access token's lastUsed may get
// before a Verify writes it again; it keeps most Verify calls read-only.
const DefaultTouchInterval = time.Minute

// Dev-mode demo user.
const (
	DemoUser     = "demo"
	DemoPassword = "demo"
)

// ErrInvalidCredentials is the only failure a caller learns about a
// credential: it never says which part failed.
var ErrInvalidCredentials = errors.New("invalid credentials")

// FieldError is an invalid request field.
type FieldError struct {
	// Field is the request field's name (as in the proto: user_name).
	Field string
	// Reason says what is wrong, without the value when it is a secret.
	Reason string
}

// Error implements error.
func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

var userNamePattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// ValidateUserName checks a user name: 1 to 64 characters of [A-Za-z0-9._-].
func ValidateUserName(name string) error {
	if name == "" {
		return &FieldError{Field: "user_name", Reason: "required"}
	}
	if !userNamePattern.MatchString(name) {
		return &FieldError{Field: "user_name", Reason: "must be 1 to 64 characters of [A-Za-z0-9._-]"}
	}
	return nil
}

// ValidatePassword checks a new password: MinLen characters to MaxLen bytes.
func ValidatePassword(pw string) error {
	if utf8.RuneCountInString(pw) < passwords.MinLen {
		return &FieldError{Field: "password", Reason: fmt.Sprintf("must be at least %d characters", passwords.MinLen)}
	}
	if len(pw) > passwords.MaxLen {
		return &FieldError{Field: "password", Reason: fmt.Sprintf("must be at most %d bytes", passwords.MaxLen)}
	}
	return nil
}

// Options configures a Service. Zero values mean defaults.
type Options struct {
	// AccessTokenTTL is the absolute lifetime of an access token; 0 means
	// none.
	AccessTokenTTL time.Duration
	// TouchInterval throttles lastUsed writes (DefaultTouchInterval).
	TouchInterval time.Duration
	// Now is the clock (time.Now when nil); share it with the JWT issuer.
	Now func() time.Time
	// Logger receives debug details of failures (never secrets).
	Logger *slog.Logger
}

// Service implements the auth operations.
type Service struct {
	st     *store.Store
	jwt    *tokens.JWT
	hasher *passwords.Hasher
	o      Options
	log    *slog.Logger
}

// New returns a Service. jwt may be nil for a Service used only for user
// administration (the CLI); Authenticate and Verify then must not be called.
func New(st *store.Store, jwt *tokens.JWT, hasher *passwords.Hasher, o Options) *Service {
	if o.TouchInterval <= 0 {
		o.TouchInterval = DefaultTouchInterval
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Service{st: st, jwt: jwt, hasher: hasher, o: o, log: o.Logger}
}

// Session is the result of a login.
type Session struct {
	UserID      string
	Token       string
	ExpiresAt   time.Time
	AccessToken string
}

// Authenticate checks name and password and starts a session. An unknown
// user and a wrong password fail alike (ErrInvalidCredentials) and take as
// long: both run a bcrypt comparison.
func (s *Service) Authenticate(ctx context.Context, name, password string) (Session, error) {
	if name == "" {
		return Session{}, &FieldError{Field: "user_name", Reason: "required"}
	}
	if password == "" {
		return Session{}, &FieldError{Field: "password", Reason: "required"}
	}
	var hash []byte
	u, err := s.st.UserByName(ctx, name)
	switch {
	case err == nil:
		hash = u.PasswordHash
	case errors.Is(err, store.ErrNotFound):
		// Compare against the dummy hash below.
	default:
		return Session{}, err
	}
	if err := s.hasher.Compare(ctx, hash, password); err != nil {
		if errors.Is(err, passwords.ErrMismatch) {
			s.log.DebugContext(ctx, "login refused", "user_name", name, "known_user", hash != nil)
			return Session{}, ErrInvalidCredentials
		}
		return Session{}, err
	}
	now := s.o.Now()
	token, hashed := tokens.NewAccessToken()
	var exp *time.Time
	if s.o.AccessTokenTTL > 0 {
		e := now.Add(s.o.AccessTokenTTL).UTC().Truncate(time.Millisecond)
		exp = &e
	}
	if err := s.st.InsertAccessToken(ctx, hashed, u.UserID(), now, exp); err != nil {
		return Session{}, err
	}
	jwt, jexp, err := s.jwt.Issue(u.UserID())
	if err != nil {
		return Session{}, err
	}
	s.log.DebugContext(ctx, "login", "user_id", u.UserID())
	return Session{UserID: u.UserID(), Token: jwt, ExpiresAt: jexp, AccessToken: token}, nil
}

// Verified is the result of Verify.
type Verified struct {
	UserID string
	// Token is a fresh JWT, set only when the access token was used.
	Token string
	// ExpiresAt is the expiry of the valid JWT (given or fresh).
	ExpiresAt time.Time
}

// Verify accepts a valid JWT without touching the database; otherwise a
// valid, unexpired access token (one indexed lookup), in which case it
// issues a fresh JWT. Anything else is ErrInvalidCredentials. A valid JWT
// is trusted until it expires even if its user was deleted meanwhile: that
// is the price of a stateless fast path, bounded by the short JWT TTL.
func (s *Service) Verify(ctx context.Context, jwt, accessToken string) (Verified, error) {
	if jwt != "" {
		c, err := s.jwt.Verify(jwt)
		if err == nil {
			return Verified{UserID: c.UserID, ExpiresAt: c.ExpiresAt}, nil
		}
		s.log.DebugContext(ctx, "jwt refused", "reason", err.Error())
	}
	if accessToken == "" {
		return Verified{}, ErrInvalidCredentials
	}
	t, err := s.lookupAccessToken(ctx, accessToken)
	if err != nil {
		return Verified{}, err
	}
	now := s.o.Now()
	if now.Sub(t.LastUsed) >= s.o.TouchInterval {
		if err := s.st.TouchAccessToken(ctx, t.ID, now); err != nil {
			// Bookkeeping only: the token is valid, so is the answer.
			s.log.WarnContext(ctx, "record access token use", "err", err)
		}
	}
	token, exp, err := s.jwt.Issue(t.UserID)
	if err != nil {
		return Verified{}, err
	}
	return Verified{UserID: t.UserID, Token: token, ExpiresAt: exp}, nil
}

// lookupAccessToken returns the live stored token for accessToken, or
// ErrInvalidCredentials; an expired one is deleted on the way.
func (s *Service) lookupAccessToken(ctx context.Context, accessToken string) (store.AccessToken, error) {
	hash, err := tokens.AccessTokenHash(accessToken)
	if err != nil {
		s.log.DebugContext(ctx, "access token refused", "reason", "malformed")
		return store.AccessToken{}, ErrInvalidCredentials
	}
	t, err := s.st.AccessTokenByHash(ctx, hash)
	if errors.Is(err, store.ErrNotFound) {
		s.log.DebugContext(ctx, "access token refused", "reason", "unknown or revoked")
		return store.AccessToken{}, ErrInvalidCredentials
	}
	if err != nil {
		return store.AccessToken{}, err
	}
	if t.Expired(s.o.Now()) {
		s.log.DebugContext(ctx, "access token refused", "reason", "expired", "user_id", t.UserID)
		if _, err := s.st.DeleteAccessToken(ctx, hash); err != nil {
			s.log.WarnContext(ctx, "delete expired access token", "err", err)
		}
		return store.AccessToken{}, ErrInvalidCredentials
	}
	return t, nil
}

// RevokeAccessToken revokes the session of accessToken, or with all every
// session of its user; it returns how many were revoked. An unknown,
// revoked or expired token is ErrInvalidCredentials: the token is the proof
// of ownership.
func (s *Service) RevokeAccessToken(ctx context.Context, accessToken string, all bool) (int64, error) {
	if accessToken == "" {
		return 0, &FieldError{Field: "access_token", Reason: "required (or user_name with the admin credential)"}
	}
	t, err := s.lookupAccessToken(ctx, accessToken)
	if err != nil {
		return 0, err
	}
	if all {
		return s.st.DeleteUserAccessTokens(ctx, t.UserID)
	}
	return s.st.DeleteAccessToken(ctx, t.Hash)
}

// RevokeUser revokes every session of the user named name.
func (s *Service) RevokeUser(ctx context.Context, name string) (int64, error) {
	if err := ValidateUserName(name); err != nil {
		return 0, err
	}
	u, err := s.st.UserByName(ctx, name)
	if err != nil {
		return 0, err
	}
	return s.st.DeleteUserAccessTokens(ctx, u.UserID())
}

// CreateUser adds a user; store.ErrDuplicate when the name is taken.
func (s *Service) CreateUser(ctx context.Context, name, password string) (string, error) {
	if err := ValidateUserName(name); err != nil {
		return "", err
	}
	if err := ValidatePassword(password); err != nil {
		return "", err
	}
	return s.createUser(ctx, name, password)
}

func (s *Service) createUser(ctx context.Context, name, password string) (string, error) {
	hash, err := s.hasher.Hash(ctx, password)
	if err != nil {
		return "", err
	}
	u, err := s.st.CreateUser(ctx, name, hash, s.o.Now())
	if err != nil {
		return "", err
	}
	s.log.InfoContext(ctx, "user created", "user_name", name, "user_id", u.UserID())
	return u.UserID(), nil
}

// EnsureDemoUser creates the dev-mode user demo/demo when it is missing
// (its password is exempt from the minimum length). It reports whether it
// created it.
func (s *Service) EnsureDemoUser(ctx context.Context) (bool, error) {
	_, err := s.st.UserByName(ctx, DemoUser)
	if err == nil {
		return false, nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return false, err
	}
	if _, err := s.createUser(ctx, DemoUser, DemoPassword); err != nil {
		if errors.Is(err, store.ErrDuplicate) {
			return false, nil
		}
		return false, err
	}
	return true, nil
}

// DeleteUser deletes a user and revokes all its sessions.
func (s *Service) DeleteUser(ctx context.Context, name string) (int64, error) {
	if err := ValidateUserName(name); err != nil {
		return 0, err
	}
	n, err := s.st.DeleteUser(ctx, name)
	if err == nil {
		s.log.InfoContext(ctx, "user deleted", "user_name", name, "revoked", n)
	}
	return n, err
}

// SetPassword changes a user's password and revokes all its sessions.
func (s *Service) SetPassword(ctx context.Context, name, password string) (int64, error) {
	if err := ValidateUserName(name); err != nil {
		return 0, err
	}
	if err := ValidatePassword(password); err != nil {
		return 0, err
	}
	hash, err := s.hasher.Hash(ctx, password)
	if err != nil {
		return 0, err
	}
	n, err := s.st.SetPasswordHash(ctx, name, hash, s.o.Now())
	if err == nil {
		s.log.InfoContext(ctx, "password changed", "user_name", name, "revoked", n)
	}
	return n, err
}

// ListUsers lists all users by name with their live session counts.
func (s *Service) ListUsers(ctx context.Context) ([]store.UserSummary, error) {
	return s.st.ListUsers(ctx, s.o.Now())
}
