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
	"sync"
	"time"
	"unicode/utf8"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/wsmq/wsmq/services/auth/internal/passwords"
	"github.com/wsmq/wsmq/services/auth/internal/revocations"
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

// Defaults of the session checks.
const (
	// DefaultSessionCacheTTL is how long Verify trusts what it read of a
	// user (exists, session generation) for a JWT. Revocations made by this
	// process update the cache at once; those made by another auth replica
	// reach it within this window (and the gateways at once, through
	// WatchRevocations).
	DefaultSessionCacheTTL = 5 * time.Second
	// DefaultSessionCacheSize bounds the users cached.
	DefaultSessionCacheSize = 100_000
	// MaxBatch is the most items of one VerifyBatch.
	MaxBatch = 1000
)

// Options configures a Service. Zero values mean defaults.
type Options struct {
	// AccessTokenTTL is the absolute lifetime of an access token; 0 means
	// none.
	AccessTokenTTL time.Duration
	// TouchInterval throttles lastUsed writes (DefaultTouchInterval).
	TouchInterval time.Duration
	// SessionCacheTTL and SessionCacheSize tune the user cache of JWT
	// checks (DefaultSessionCacheTTL, DefaultSessionCacheSize).
	SessionCacheTTL  time.Duration
	SessionCacheSize int
	// Revocations receives every revocation (nil: none published).
	Revocations *revocations.Hub
	// Now is the clock (time.Now when nil); share it with the JWT issuer.
	Now func() time.Time
	// Logger receives debug details of failures (never secrets).
	Logger *slog.Logger
	// AfterPasswordCheck, when set, runs in Authenticate after the
	// password matched and before the session is stored: a test seam to
	// hold a login there while the password changes.
	AfterPasswordCheck func(ctx context.Context)
}

// Service implements the auth operations.
type Service struct {
	st     *store.Store
	jwt    *tokens.JWT
	hasher *passwords.Hasher
	o      Options
	log    *slog.Logger

	mu       sync.Mutex
	users    map[string]userState // user id -> what Verify last read
	revoked  map[string]time.Time // session id -> when its last JWT expires
	sweptAt  time.Time
	maxUsers int
}

// userState is what a JWT check needs of its user.
type userState struct {
	exists bool
	gen    int64
	at     time.Time // read at
}

// New returns a Service. jwt may be nil for a Service used only for user
// administration (the CLI); Authenticate and Verify then must not be called.
func New(st *store.Store, jwt *tokens.JWT, hasher *passwords.Hasher, o Options) *Service {
	if o.TouchInterval <= 0 {
		o.TouchInterval = DefaultTouchInterval
	}
	if o.SessionCacheTTL <= 0 {
		o.SessionCacheTTL = DefaultSessionCacheTTL
	}
	if o.SessionCacheSize <= 0 {
		o.SessionCacheSize = DefaultSessionCacheSize
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Service{st: st, jwt: jwt, hasher: hasher, o: o, log: o.Logger,
		users: make(map[string]userState), revoked: make(map[string]time.Time), maxUsers: o.SessionCacheSize}
}

// Session is the result of a login.
type Session struct {
	UserID      string
	SessionID   string
	Token       string
	ExpiresAt   time.Time
	AccessToken string
}

// Authenticate checks name and password and starts a session. An unknown
// user and a wrong password fail alike (ErrInvalidCredentials) and take as
// long: both run a bcrypt comparison. A password longer than
// passwords.MaxLen is refused before any comparison (bcrypt would ignore
// the rest).
//
// A login racing a password change, a revoke-all or a deletion never
// leaves a live session: the session is stored under the user's session
// generation read with the hash, which those operations increment, and
// Verify refuses a session of an older generation or a missing user. The
// user is read again after the insert, so such a login fails here rather
// than handing out dead tokens.
func (s *Service) Authenticate(ctx context.Context, name, password string) (Session, error) {
	if name == "" {
		return Session{}, &FieldError{Field: "user_name", Reason: "required"}
	}
	if password == "" {
		return Session{}, &FieldError{Field: "password", Reason: "required"}
	}
	if len(password) > passwords.MaxLen {
		return Session{}, &FieldError{Field: "password", Reason: fmt.Sprintf("must be at most %d bytes", passwords.MaxLen)}
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
	if s.o.AfterPasswordCheck != nil {
		s.o.AfterPasswordCheck(ctx)
	}
	now := s.o.Now()
	token, hashed := tokens.NewAccessToken()
	var exp *time.Time
	if s.o.AccessTokenTTL > 0 {
		e := now.Add(s.o.AccessTokenTTL).UTC().Truncate(time.Millisecond)
		exp = &e
	}
	t, err := s.st.InsertAccessToken(ctx, hashed, u.UserID(), u.SessionGen, now, exp)
	if err != nil {
		return Session{}, err
	}
	if cur, err := s.freshUser(ctx, u.UserID()); err != nil || !cur.exists || cur.gen != u.SessionGen {
		if err == nil {
			err = ErrInvalidCredentials
			s.log.DebugContext(ctx, "login refused", "user_name", name, "reason", "sessions ended during the login")
		}
		if _, derr := s.st.DeleteSession(ctx, t.SessionID()); derr != nil {
			s.log.WarnContext(ctx, "delete the session of a refused login (it is dead anyway)", "err", derr)
		}
		return Session{}, err
	}
	jwt, jexp, err := s.jwt.Issue(u.UserID(), tokens.Session{ID: t.SessionID(), Gen: t.Gen})
	if err != nil {
		return Session{}, err
	}
	s.log.DebugContext(ctx, "login", "user_id", u.UserID())
	return Session{UserID: u.UserID(), SessionID: t.SessionID(), Token: jwt, ExpiresAt: jexp, AccessToken: token}, nil
}

// Verified is the result of Verify.
type Verified struct {
	UserID    string
	SessionID string
	// Token is a fresh JWT, set only when the access token was used.
	Token string
	// IssuedAt and ExpiresAt are those of the valid JWT (given or fresh).
	IssuedAt  time.Time
	ExpiresAt time.Time
}

// Verify accepts a valid JWT of a live session; otherwise a valid,
// unexpired access token of a live session (one indexed lookup and one
// read of its user), in which case it issues a fresh JWT. Anything else is
// ErrInvalidCredentials.
//
// A JWT's session is live when its user exists, its gen claim is the
// user's session generation (a password change, revoke-all or deletion
// ends every earlier session) and its session was not revoked by this
// process. The user is read at most once per SessionCacheTTL (revocations
// made here update the cache at once), so a JWT-only Verify usually reads
// nothing; a revocation made by another auth replica reaches this one's
// JWT checks within SessionCacheTTL. One revoked session (not all) is
// known at once only to the replica that revoked it; VerifyBatch (the
// gateways' re-verify) checks every session in the database.
func (s *Service) Verify(ctx context.Context, jwt, accessToken string) (Verified, error) {
	if jwt != "" {
		c, err := s.jwt.Verify(jwt)
		if err == nil {
			if err = s.checkJWTSession(ctx, c, nil); err == nil {
				return verifiedFromClaims(c), nil
			}
			if !errors.Is(err, ErrInvalidCredentials) {
				return Verified{}, err
			}
		} else {
			s.log.DebugContext(ctx, "jwt refused", "reason", err.Error())
		}
	}
	if accessToken == "" {
		return Verified{}, ErrInvalidCredentials
	}
	return s.verifyAccessToken(ctx, accessToken)
}

func verifiedFromClaims(c tokens.Claims) Verified {
	return Verified{UserID: c.UserID, SessionID: c.Session.ID, IssuedAt: c.IssuedAt, ExpiresAt: c.ExpiresAt}
}

// checkJWTSession checks that the session of verified claims c is live.
// With users (VerifyBatch), the user states come from there instead of the
// cache.
func (s *Service) checkJWTSession(ctx context.Context, c tokens.Claims, users map[string]userState) error {
	if s.isRevoked(c.Session.ID) {
		s.log.DebugContext(ctx, "jwt refused", "reason", "session revoked", "user_id", c.UserID)
		return ErrInvalidCredentials
	}
	var u userState
	if users != nil {
		u = users[c.UserID]
	} else {
		var err error
		if u, err = s.cachedUser(ctx, c.UserID, c.Session.Gen); err != nil {
			return err
		}
	}
	switch {
	case !u.exists:
		s.log.DebugContext(ctx, "jwt refused", "reason", "no such user", "user_id", c.UserID)
		return ErrInvalidCredentials
	case u.gen != c.Session.Gen:
		s.log.DebugContext(ctx, "jwt refused", "reason", "sessions ended", "user_id", c.UserID)
		return ErrInvalidCredentials
	}
	return nil
}

// verifyAccessToken is Verify's access-token path.
func (s *Service) verifyAccessToken(ctx context.Context, accessToken string) (Verified, error) {
	t, err := s.lookupAccessToken(ctx, accessToken)
	if err != nil {
		return Verified{}, err
	}
	u, err := s.freshUser(ctx, t.UserID)
	if err != nil {
		return Verified{}, err
	}
	if !u.exists || u.gen != t.Gen {
		s.log.DebugContext(ctx, "access token refused", "reason", "sessions ended", "user_id", t.UserID)
		return Verified{}, ErrInvalidCredentials
	}
	now := s.o.Now()
	if now.Sub(t.LastUsed) >= s.o.TouchInterval {
		if err := s.st.TouchAccessToken(ctx, t.ID, now); err != nil {
			// Bookkeeping only: the token is valid, so is the answer.
			s.log.WarnContext(ctx, "record access token use", "err", err)
		}
	}
	token, exp, err := s.jwt.Issue(t.UserID, tokens.Session{ID: t.SessionID(), Gen: t.Gen})
	if err != nil {
		return Verified{}, err
	}
	return Verified{UserID: t.UserID, SessionID: t.SessionID(), Token: token, IssuedAt: s.o.Now().Truncate(time.Second), ExpiresAt: exp}, nil
}

// Credentials are one Verify request of a batch.
type Credentials struct {
	Token       string
	AccessToken string
}

// Result is one VerifyBatch outcome: Verified, or Err.
type Result struct {
	Verified Verified
	Err      error
}

// VerifyBatch verifies every item as Verify would, with the users of all
// JWTs read fresh in one query and their sessions checked in the database
// in one more (so a session revoked on another replica is seen here): a
// batch of JWTs costs two reads, whatever its size. Items that fall back to
// their access token cost what Verify does. More than MaxBatch items is a
// FieldError.
func (s *Service) VerifyBatch(ctx context.Context, items []Credentials) ([]Result, error) {
	if len(items) > MaxBatch {
		return nil, &FieldError{Field: "items", Reason: fmt.Sprintf("at most %d", MaxBatch)}
	}
	claims := make([]*tokens.Claims, len(items))
	var userIDs, sids []string
	for i, it := range items {
		if it.Token == "" {
			continue
		}
		c, err := s.jwt.Verify(it.Token)
		if err != nil {
			continue
		}
		claims[i] = &c
		userIDs = append(userIDs, c.UserID)
		sids = append(sids, c.Session.ID)
	}
	var users map[string]userState
	var sessions map[string]store.AccessToken
	if len(userIDs) > 0 {
		var err error
		if users, err = s.freshUsers(ctx, userIDs); err != nil {
			return nil, err
		}
		if sessions, err = s.st.LiveSessions(ctx, sids); err != nil {
			return nil, err
		}
	}
	now := s.o.Now()
	out := make([]Result, len(items))
	for i, it := range items {
		if c := claims[i]; c != nil {
			err := s.checkJWTSession(ctx, *c, users)
			if err == nil {
				if t, ok := sessions[c.Session.ID]; !ok || t.Expired(now) || t.UserID != c.UserID {
					s.log.DebugContext(ctx, "jwt refused", "reason", "session gone", "user_id", c.UserID)
					err = ErrInvalidCredentials
				}
			}
			if err == nil {
				out[i] = Result{Verified: verifiedFromClaims(*c)}
				continue
			}
		}
		if it.AccessToken == "" {
			out[i] = Result{Err: ErrInvalidCredentials}
			continue
		}
		v, err := s.verifyAccessToken(ctx, it.AccessToken)
		out[i] = Result{Verified: v, Err: err}
	}
	return out, nil
}

// cachedUser returns the user's state from the cache when it is fresh and
// agrees with gen; otherwise it reads the user.
func (s *Service) cachedUser(ctx context.Context, userID string, gen int64) (userState, error) {
	now := s.o.Now()
	s.mu.Lock()
	u, ok := s.users[userID]
	s.mu.Unlock()
	if ok && now.Sub(u.at) < s.o.SessionCacheTTL && (!u.exists || u.gen >= gen) {
		return u, nil
	}
	fresh, err := s.freshUser(ctx, userID)
	if err != nil && ok && errors.Is(err, store.ErrUnavailable) {
		// While MongoDB is down nothing can be revoked there either: the
		// last known state keeps JWT checks of known users working.
		return u, nil
	}
	return fresh, err
}

// freshUser reads the user's state and caches it.
func (s *Service) freshUser(ctx context.Context, userID string) (userState, error) {
	m, err := s.freshUsers(ctx, []string{userID})
	if err != nil {
		return userState{}, err
	}
	return m[userID], nil
}

// freshUsers reads the states of ids in one query and caches them.
func (s *Service) freshUsers(ctx context.Context, ids []string) (map[string]userState, error) {
	found, err := s.st.UserStates(ctx, ids)
	if err != nil {
		return nil, err
	}
	now := s.o.Now()
	out := make(map[string]userState, len(ids))
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range ids {
		u, ok := found[id]
		st := userState{exists: ok, gen: u.SessionGen, at: now}
		out[id] = st
		s.cacheLocked(id, st)
	}
	return out, nil
}

// cacheLocked stores a user state, evicting an arbitrary entry when full.
func (s *Service) cacheLocked(id string, st userState) {
	if _, ok := s.users[id]; !ok && len(s.users) >= s.maxUsers {
		for k := range s.users {
			delete(s.users, k)
			break
		}
	}
	s.users[id] = st
}

// isRevoked reports whether this process revoked session sid (within its
// JWTs' lifetime).
func (s *Service) isRevoked(sid string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.revoked[sid]
	return ok
}

// sessionEnded records that session sid of userID ended and publishes it.
func (s *Service) sessionEnded(userID, sid string) {
	now := s.o.Now()
	s.mu.Lock()
	if now.Sub(s.sweptAt) > time.Minute || len(s.revoked) >= s.maxUsers {
		for k, until := range s.revoked {
			if now.After(until) {
				delete(s.revoked, k)
			}
		}
		s.sweptAt = now
	}
	if len(s.revoked) < s.maxUsers {
		// Until the last JWT of the session can expire, leeway included.
		s.revoked[sid] = now.Add(s.jwtTTL() + tokens.DefaultLeeway)
	}
	s.mu.Unlock()
	s.publish(revocations.Revocation{UserID: userID, SessionID: sid})
}

func (s *Service) jwtTTL() time.Duration {
	if s.jwt == nil {
		return tokens.DefaultTTL
	}
	return s.jwt.TTL()
}

// sessionsEnded records that every session of u ended (u is the user
// after the update, or the deleted user) and publishes it.
func (s *Service) sessionsEnded(u store.User, deleted bool) {
	now := s.o.Now()
	s.mu.Lock()
	s.cacheLocked(u.UserID(), userState{exists: !deleted, gen: u.SessionGen, at: now})
	s.mu.Unlock()
	va := u.SessionsValidAfter
	if va.IsZero() || deleted {
		va = now
	}
	s.publish(revocations.Revocation{UserID: u.UserID(), AllSessions: true, ValidAfter: va, UserDeleted: deleted})
}

func (s *Service) publish(r revocations.Revocation) {
	if s.o.Revocations != nil {
		s.o.Revocations.Publish(r)
	}
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
		return s.endSessions(ctx, t.UserID)
	}
	n, err := s.st.DeleteAccessToken(ctx, t.Hash)
	if err != nil {
		return n, err
	}
	s.sessionEnded(t.UserID, t.SessionID())
	return n, nil
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
	return s.endSessions(ctx, u.UserID())
}

// endSessions ends every session of userID and publishes it.
func (s *Service) endSessions(ctx context.Context, userID string) (int64, error) {
	u, n, err := s.st.EndSessions(ctx, userID, s.o.Now())
	if u.UserID() != bson.NilObjectID.Hex() {
		// The generation moved even if deleting the tokens failed.
		s.sessionsEnded(u, false)
	}
	return n, err
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
	u, n, err := s.st.DeleteUser(ctx, name)
	if u.UserID() != bson.NilObjectID.Hex() {
		s.sessionsEnded(u, true)
	}
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
	u, n, err := s.st.SetPasswordHash(ctx, name, hash, s.o.Now())
	if u.UserID() != bson.NilObjectID.Hex() {
		s.sessionsEnded(u, false)
	}
	if err == nil {
		s.log.InfoContext(ctx, "password changed", "user_name", name, "revoked", n)
	}
	return n, err
}

// ListUsers lists all users by name with their live session counts.
func (s *Service) ListUsers(ctx context.Context) ([]store.UserSummary, error) {
	return s.st.ListUsers(ctx, s.o.Now())
}
