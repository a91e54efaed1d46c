// Package store persists users and access-token hashes in MongoDB. Every
// operation runs under the store's deadline; an unreachable database is
// reported as ErrUnavailable, never as a hang.
package store

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/topology"
)

// Collection names.
const (
	UsersCollection        = "users"
	AccessTokensCollection = "access_tokens"
)

// DefaultTimeout bounds every database operation unless configured.
const DefaultTimeout = 3 * time.Second

// Errors of the store; others are wrapped driver errors.
var (
	// ErrNotFound: no such user or access token.
	ErrNotFound = errors.New("not found")
	// ErrDuplicate: the user name is taken.
	ErrDuplicate = errors.New("already exists")
	// ErrUnavailable: the database could not be reached in time.
	ErrUnavailable = errors.New("database unavailable")
)

// User is a user document.
type User struct {
	ID           bson.ObjectID `bson:"_id"`
	Name         string        `bson:"userName"`
	PasswordHash []byte        `bson:"passwordHash"`
	Created      time.Time     `bson:"created"`
	Updated      time.Time     `bson:"updated"`
	// SessionGen is the user's session generation: ending all of the
	// user's sessions (password change, revoke all) increments it, and a
	// session started under an older generation is dead.
	SessionGen int64 `bson:"sessionGen,omitempty"`
	// SessionsValidAfter is when the user's sessions last all ended (zero:
	// never).
	SessionsValidAfter time.Time `bson:"sessionsValidAfter,omitempty"`
}

// UserID is the user's id as the rest of wsmq sees it (hex ObjectID).
func (u User) UserID() string { return u.ID.Hex() }

// AccessToken is an access-token document: the token's hash and metadata,
// never the token itself.
type AccessToken struct {
	ID        bson.ObjectID `bson:"_id"`
	Hash      string        `bson:"hash"`
	UserID    string        `bson:"userId"`
	Created   time.Time     `bson:"created"`
	LastUsed  time.Time     `bson:"lastUsed"`
	ExpiresAt *time.Time    `bson:"expiresAt,omitempty"`
	// Gen is the user's session generation read with the password hash the
	// login checked; the session is live only while it equals the user's.
	Gen int64 `bson:"gen,omitempty"`
}

// SessionID is the session's id as JWTs (sid) and revocations name it.
func (t AccessToken) SessionID() string { return t.ID.Hex() }

// Expired reports whether the token's absolute lifetime has passed at now.
func (t AccessToken) Expired(now time.Time) bool {
	return t.ExpiresAt != nil && !now.Before(*t.ExpiresAt)
}

// UserSummary is a user as listed to an admin.
type UserSummary struct {
	ID       string
	Name     string
	Created  time.Time
	Sessions int64
}

// Options configures Open. Zero values mean defaults.
type Options struct {
	// URI is the mongodb:// connection string.
	URI string
	// Database is the database name.
	Database string
	// Timeout bounds every operation (DefaultTimeout when 0).
	Timeout time.Duration
}

// Store is the MongoDB persistence of the auth service.
type Store struct {
	client  *mongo.Client
	users   *mongo.Collection
	tokens  *mongo.Collection
	timeout time.Duration
}

// Open creates a client for o.URI. It does not wait for the server: the
// first operation (or Ping) does, bounded by the timeout.
func Open(o Options) (*Store, error) {
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Database == "" {
		return nil, errors.New("store: empty database name")
	}
	co := options.Client().ApplyURI(o.URI).
		SetServerSelectionTimeout(o.Timeout).
		SetConnectTimeout(o.Timeout).
		SetAppName("wsmq-auth")
	if err := co.Validate(); err != nil {
		return nil, fmt.Errorf("store: mongo URI: %w", err)
	}
	c, err := mongo.Connect(co)
	if err != nil {
		return nil, fmt.Errorf("store: connect: %w", err)
	}
	db := c.Database(o.Database)
	return &Store{
		client:  c,
		users:   db.Collection(UsersCollection),
		tokens:  db.Collection(AccessTokensCollection),
		timeout: o.Timeout,
	}, nil
}

// Close disconnects the client.
func (s *Store) Close(ctx context.Context) error {
	ctx, cancel := s.op(ctx)
	defer cancel()
	return s.client.Disconnect(ctx)
}

// Database returns the database handle (for tests and tools that read raw
// documents).
func (s *Store) Database() *mongo.Database { return s.users.Database() }

func (s *Store) op(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.timeout)
}

// classify wraps err with ErrUnavailable when it means the database could
// not be reached or did not answer in time.
func classify(what string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) {
		return fmt.Errorf("store: %s: %w", what, err)
	}
	var sse topology.ServerSelectionError
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || mongo.IsTimeout(err) || mongo.IsNetworkError(err) ||
		errors.As(err, &sse) || errors.As(err, &ne) || errors.Is(err, mongo.ErrClientDisconnected) {
		return fmt.Errorf("store: %s: %w: %w", what, ErrUnavailable, err)
	}
	return fmt.Errorf("store: %s: %w", what, err)
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	ctx, cancel := s.op(ctx)
	defer cancel()
	return classify("ping", s.client.Ping(ctx, nil))
}

// EnsureIndexes creates the indexes the service relies on: unique user
// names, unique token hashes, and tokens by user. Each is created alone:
// FerretDB panics on a multi-index createIndexes whose indexes exist.
func (s *Store) EnsureIndexes(ctx context.Context) error {
	for _, ix := range []struct {
		coll  *mongo.Collection
		model mongo.IndexModel
	}{
		{s.users, mongo.IndexModel{Keys: bson.D{{Key: "userName", Value: 1}}, Options: options.Index().SetUnique(true).SetName("userName_unique")}},
		{s.tokens, mongo.IndexModel{Keys: bson.D{{Key: "hash", Value: 1}}, Options: options.Index().SetUnique(true).SetName("hash_unique")}},
		{s.tokens, mongo.IndexModel{Keys: bson.D{{Key: "userId", Value: 1}}, Options: options.Index().SetName("userId")}},
	} {
		octx, cancel := s.op(ctx)
		_, err := ix.coll.Indexes().CreateOne(octx, ix.model)
		cancel()
		if err != nil {
			return classify("create index on "+ix.coll.Name(), err)
		}
	}
	return nil
}

// EnsureExpiryIndex asks MongoDB to delete access tokens past expiresAt (a
// TTL index). It is an optimisation: expired tokens are refused at lookup
// anyway. Servers without TTL indexes (FerretDB) return an error here.
func (s *Store) EnsureExpiryIndex(ctx context.Context) error {
	ctx, cancel := s.op(ctx)
	defer cancel()
	_, err := s.tokens.Indexes().CreateOne(ctx, mongo.IndexModel{
		Keys:    bson.D{{Key: "expiresAt", Value: 1}},
		Options: options.Index().SetExpireAfterSeconds(0).SetName("expiresAt_ttl"),
	})
	return classify("create access_tokens TTL index", err)
}

// CreateUser inserts a user; ErrDuplicate when the name is taken.
func (s *Store) CreateUser(ctx context.Context, name string, hash []byte, now time.Time) (User, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	now = now.UTC().Truncate(time.Millisecond)
	u := User{ID: bson.NewObjectID(), Name: name, PasswordHash: hash, Created: now, Updated: now}
	if _, err := s.users.InsertOne(ctx, u); err != nil {
		if mongo.IsDuplicateKeyError(err) {
			return User{}, fmt.Errorf("store: user %q: %w", name, ErrDuplicate)
		}
		return User{}, classify("insert user", err)
	}
	return u, nil
}

// UserByName returns the user named name; ErrNotFound when there is none.
func (s *Store) UserByName(ctx context.Context, name string) (User, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	var u User
	err := s.users.FindOne(ctx, bson.D{{Key: "userName", Value: name}}).Decode(&u)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return User{}, fmt.Errorf("store: user %q: %w", name, ErrNotFound)
	}
	if err != nil {
		return User{}, classify("find user", err)
	}
	return u, nil
}

// DeleteUser deletes the user named name and all its access tokens; it
// returns the deleted user and how many tokens were deleted. Deleting the
// tokens does not stop a racing login from inserting one afterwards (it
// read the user before the deletion): what makes such a token dead is that
// Verify refuses every token and JWT whose user no longer exists
// (authn.Service.Verify).
func (s *Store) DeleteUser(ctx context.Context, name string) (User, int64, error) {
	u, err := s.UserByName(ctx, name)
	if err != nil {
		return User{}, 0, err
	}
	octx, cancel := s.op(ctx)
	res, err := s.users.DeleteOne(octx, bson.D{{Key: "_id", Value: u.ID}})
	cancel()
	if err != nil {
		return User{}, 0, classify("delete user", err)
	}
	if res.DeletedCount == 0 {
		return User{}, 0, fmt.Errorf("store: user %q: %w", name, ErrNotFound)
	}
	n, err := s.DeleteUserAccessTokens(ctx, u.UserID())
	return u, n, err
}

// SetPasswordHash replaces the user's password hash and ends all its
// sessions in the same update (SessionGen incremented, SessionsValidAfter
// set to now), then deletes its access tokens. It returns the updated user
// and how many tokens were deleted. A login that read the old hash carries
// the old generation, so whatever it inserts later is dead.
func (s *Store) SetPasswordHash(ctx context.Context, name string, hash []byte, now time.Time) (User, int64, error) {
	return s.endSessions(ctx, bson.D{{Key: "userName", Value: name}}, "user "+strconv.Quote(name), now,
		bson.E{Key: "passwordHash", Value: hash})
}

// EndSessions ends every session of userID (SessionGen incremented,
// SessionsValidAfter set to now) and deletes its access tokens; it returns
// the updated user and how many tokens were deleted.
func (s *Store) EndSessions(ctx context.Context, userID string, now time.Time) (User, int64, error) {
	oid, err := bson.ObjectIDFromHex(userID)
	if err != nil {
		return User{}, 0, fmt.Errorf("store: user id %q: %w", userID, ErrNotFound)
	}
	return s.endSessions(ctx, bson.D{{Key: "_id", Value: oid}}, "user id "+userID, now)
}

func (s *Store) endSessions(ctx context.Context, filter bson.D, what string, now time.Time, set ...bson.E) (User, int64, error) {
	now = now.UTC().Truncate(time.Millisecond)
	fields := append(bson.D{{Key: "updated", Value: now}, {Key: "sessionsValidAfter", Value: now}}, set...)
	octx, cancel := s.op(ctx)
	var u User
	err := s.users.FindOneAndUpdate(octx, filter,
		bson.D{{Key: "$set", Value: fields}, {Key: "$inc", Value: bson.D{{Key: "sessionGen", Value: int64(1)}}}},
		options.FindOneAndUpdate().SetReturnDocument(options.After),
	).Decode(&u)
	cancel()
	if errors.Is(err, mongo.ErrNoDocuments) {
		return User{}, 0, fmt.Errorf("store: %s: %w", what, ErrNotFound)
	}
	if err != nil {
		return User{}, 0, classify("end sessions", err)
	}
	n, err := s.DeleteUserAccessTokens(ctx, u.UserID())
	return u, n, err
}

// UserStates returns the users among ids that exist, by id, without their
// password hashes: one read for the whole set. Malformed ids are absent.
func (s *Store) UserStates(ctx context.Context, ids []string) (map[string]User, error) {
	oids := make(bson.A, 0, len(ids))
	for _, id := range ids {
		if oid, err := bson.ObjectIDFromHex(id); err == nil {
			oids = append(oids, oid)
		}
	}
	out := make(map[string]User, len(oids))
	if len(oids) == 0 {
		return out, nil
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	cur, err := s.users.Find(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: oids}}}},
		options.Find().SetProjection(bson.D{{Key: "passwordHash", Value: 0}}))
	if err != nil {
		return nil, classify("find users", err)
	}
	var users []User
	if err := cur.All(ctx, &users); err != nil {
		return nil, classify("find users", err)
	}
	for _, u := range users {
		out[u.UserID()] = u
	}
	return out, nil
}

// LiveSessions returns which of the session ids have an access token
// record (expired or not: expiry is the caller's): one read by _id.
func (s *Store) LiveSessions(ctx context.Context, sids []string) (map[string]AccessToken, error) {
	oids := make(bson.A, 0, len(sids))
	for _, id := range sids {
		if oid, err := bson.ObjectIDFromHex(id); err == nil {
			oids = append(oids, oid)
		}
	}
	out := make(map[string]AccessToken, len(oids))
	if len(oids) == 0 {
		return out, nil
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	cur, err := s.tokens.Find(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: oids}}}})
	if err != nil {
		return nil, classify("find sessions", err)
	}
	var ts []AccessToken
	if err := cur.All(ctx, &ts); err != nil {
		return nil, classify("find sessions", err)
	}
	for _, t := range ts {
		out[t.SessionID()] = t
	}
	return out, nil
}

// ListUsers returns every user sorted by name, with the number of access
// tokens that are not expired at now.
func (s *Store) ListUsers(ctx context.Context, now time.Time) ([]UserSummary, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	cur, err := s.users.Find(ctx, bson.D{},
		options.Find().SetSort(bson.D{{Key: "userName", Value: 1}}).
			SetProjection(bson.D{{Key: "passwordHash", Value: 0}}))
	if err != nil {
		return nil, classify("list users", err)
	}
	var users []User
	if err := cur.All(ctx, &users); err != nil {
		return nil, classify("list users", err)
	}
	counts := map[string]int64{}
	cur, err = s.tokens.Aggregate(ctx, mongo.Pipeline{
		{{Key: "$match", Value: bson.D{{Key: "$or", Value: bson.A{
			bson.D{{Key: "expiresAt", Value: bson.D{{Key: "$exists", Value: false}}}},
			bson.D{{Key: "expiresAt", Value: bson.D{{Key: "$gt", Value: now}}}},
		}}}}},
		{{Key: "$group", Value: bson.D{{Key: "_id", Value: "$userId"}, {Key: "n", Value: bson.D{{Key: "$sum", Value: 1}}}}}},
	})
	if err != nil {
		return nil, classify("count sessions", err)
	}
	var groups []struct {
		ID string `bson:"_id"`
		N  int64  `bson:"n"`
	}
	if err := cur.All(ctx, &groups); err != nil {
		return nil, classify("count sessions", err)
	}
	for _, g := range groups {
		counts[g.ID] = g.N
	}
	out := make([]UserSummary, 0, len(users))
	for _, u := range users {
		out = append(out, UserSummary{ID: u.UserID(), Name: u.Name, Created: u.Created, Sessions: counts[u.UserID()]})
	}
	return out, nil
}

// InsertAccessToken stores an access token's hash for userID under the
// session generation gen, and returns the record (its SessionID names the
// session).
func (s *Store) InsertAccessToken(ctx context.Context, hash, userID string, gen int64, now time.Time, expiresAt *time.Time) (AccessToken, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	now = now.UTC().Truncate(time.Millisecond)
	t := AccessToken{ID: bson.NewObjectID(), Hash: hash, UserID: userID, Created: now, LastUsed: now, ExpiresAt: expiresAt, Gen: gen}
	if _, err := s.tokens.InsertOne(ctx, t); err != nil {
		return AccessToken{}, classify("insert access token", err)
	}
	return t, nil
}

// DeleteSession deletes the access token record of session id sid; it
// returns 0 or 1.
func (s *Store) DeleteSession(ctx context.Context, sid string) (int64, error) {
	oid, err := bson.ObjectIDFromHex(sid)
	if err != nil {
		return 0, nil
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	res, err := s.tokens.DeleteOne(ctx, bson.D{{Key: "_id", Value: oid}})
	if err != nil {
		return 0, classify("delete session", err)
	}
	return res.DeletedCount, nil
}

// AccessTokenByHash returns the access token stored under hash (one
// indexed lookup); ErrNotFound when there is none. Expiry is the caller's
// to check.
func (s *Store) AccessTokenByHash(ctx context.Context, hash string) (AccessToken, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	var t AccessToken
	err := s.tokens.FindOne(ctx, bson.D{{Key: "hash", Value: hash}}).Decode(&t)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return AccessToken{}, fmt.Errorf("store: access token: %w", ErrNotFound)
	}
	if err != nil {
		return AccessToken{}, classify("find access token", err)
	}
	return t, nil
}

// TouchAccessToken records that the token was used at now.
func (s *Store) TouchAccessToken(ctx context.Context, id bson.ObjectID, now time.Time) error {
	ctx, cancel := s.op(ctx)
	defer cancel()
	_, err := s.tokens.UpdateOne(ctx, bson.D{{Key: "_id", Value: id}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "lastUsed", Value: now.UTC().Truncate(time.Millisecond)}}}})
	return classify("touch access token", err)
}

// DeleteAccessToken deletes the token stored under hash; it returns 0 or 1.
func (s *Store) DeleteAccessToken(ctx context.Context, hash string) (int64, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	res, err := s.tokens.DeleteOne(ctx, bson.D{{Key: "hash", Value: hash}})
	if err != nil {
		return 0, classify("delete access token", err)
	}
	return res.DeletedCount, nil
}

// DeleteUserAccessTokens deletes every access token of userID.
func (s *Store) DeleteUserAccessTokens(ctx context.Context, userID string) (int64, error) {
	ctx, cancel := s.op(ctx)
	defer cancel()
	res, err := s.tokens.DeleteMany(ctx, bson.D{{Key: "userId", Value: userID}})
	if err != nil {
		return 0, classify("delete access tokens", err)
	}
	return res.DeletedCount, nil
}
