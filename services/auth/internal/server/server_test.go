package server_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.mongodb.org/mongo-driver/v2/bson"
	"golang.org/x/crypto/bcrypt"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	authv1 "github.com/wsmq/wsmq/gen/wsmq/auth/v1"
	"github.com/wsmq/wsmq/pkg/serve"
	"github.com/wsmq/wsmq/pkg/testenv"
	"github.com/wsmq/wsmq/services/auth/internal/authn"
	"github.com/wsmq/wsmq/services/auth/internal/passwords"
	"github.com/wsmq/wsmq/services/auth/internal/revocations"
	"github.com/wsmq/wsmq/services/auth/internal/server"
	"github.com/wsmq/wsmq/services/auth/internal/store"
	"github.com/wsmq/wsmq/services/auth/internal/throttle"
	"github.com/wsmq/wsmq/services/auth/internal/tokens"
)

const adminToken = "test-admin-token-0123456789"

var testKey = tokens.Key{ID: "k1", Secret: []byte("test-secret-0123456789abcdef0123456789")}

// clock is a settable clock shared by the JWT issuer and the service.
type clock struct{ off atomic.Int64 }

func (c *clock) Now() time.Time          { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *clock) Advance(d time.Duration) { c.off.Add(int64(d)) }

type env struct {
	mongo  *testenv.Mongo
	store  *store.Store
	clock  *clock
	client authv1.AuthServiceClient
	health healthpb.HealthClient
	admin  context.Context
	hub    *revocations.Hub
	jwt    *tokens.JWT
}

type envOptions struct {
	bcryptCost         int
	mongoTimeout       time.Duration
	accessTokenTTL     time.Duration
	afterPasswordCheck func(context.Context)
	throttle           throttle.Options
}

const gatewayToken = "test-gateway-token-0123456789"

// start runs a real auth server on a loopback port over a real
// MongoDB-wire server, stopped when the test ends.
func start(t testing.TB, o envOptions) *env {
	t.Helper()
	if o.bcryptCost == 0 {
		o.bcryptCost = bcrypt.MinCost
	}
	if o.mongoTimeout == 0 {
		o.mongoTimeout = 3 * time.Second
	}
	m := testenv.StartMongo(t)
	st, err := store.Open(store.Options{URI: m.URI(), Database: "wsmq_test", Timeout: o.mongoTimeout})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := st.EnsureIndexes(ctx); err != nil {
		t.Fatal(err)
	}
	c := &clock{}
	j, err := tokens.NewJWT(tokens.Options{Keys: []tokens.Key{testKey}, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	h, err := passwords.NewHasher(o.bcryptCost)
	if err != nil {
		t.Fatal(err)
	}
	hub := revocations.NewHub(0)
	svc := authn.New(st, j, h, authn.Options{AccessTokenTTL: o.accessTokenTTL, Now: c.Now,
		Revocations: hub, AfterPasswordCheck: o.afterPasswordCheck})
	if o.throttle.RatePerIP == 0 {
		o.throttle.RatePerIP = 1e6 // tests log in from one address
	}
	srv := server.New(server.Options{Service: svc, AdminToken: adminToken, GatewayToken: gatewayToken,
		Revocations: hub, Throttle: throttle.New(o.throttle)})
	gs := grpc.NewServer(grpc.ChainUnaryInterceptor(srv.Interceptor()))
	srv.Register(gs)
	hs := health.NewServer()
	healthpb.RegisterHealthServer(gs, hs)
	probe := &serve.Probe{Name: "mongodb", Check: st.Ping, Interval: 50 * time.Millisecond,
		Health: hs, Services: []string{"", authv1.AuthService_ServiceDesc.ServiceName}, Log: slog.New(slog.DiscardHandler)}
	g := serve.NewGroup(slog.New(slog.DiscardHandler))
	g.Go(probe.Run)
	addr, err := g.Listen("grpc", "test", "127.0.0.1:0", serve.GRPC{Server: gs, Health: hs})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx, time.Second) }()
	conn, err := grpc.NewClient(addr.String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = conn.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		_ = st.Close(context.Background())
	})
	e := &env{
		mongo: m, store: st, clock: c, hub: hub, jwt: j,
		client: authv1.NewAuthServiceClient(conn),
		health: healthpb.NewHealthClient(conn),
		admin:  metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+adminToken),
	}
	e.waitHealth(t, healthpb.HealthCheckResponse_SERVING)
	return e
}

func (e *env) createUser(t testing.TB, name, pw string) string {
	t.Helper()
	r, err := e.client.CreateUser(e.admin, &authv1.CreateUserRequest{UserName: name, Password: pw})
	if err != nil {
		t.Fatalf("CreateUser(%s): %v", name, err)
	}
	return r.UserId
}

func (e *env) login(t testing.TB, name, pw string) *authv1.AuthenticateResponse {
	t.Helper()
	r, err := e.client.Authenticate(context.Background(), &authv1.AuthenticateRequest{UserName: name, Password: pw})
	if err != nil {
		t.Fatalf("Authenticate(%s): %v", name, err)
	}
	return r
}

func (e *env) waitHealth(t testing.TB, want healthpb.HealthCheckResponse_ServingStatus) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var got [2]healthpb.HealthCheckResponse_ServingStatus
		for i, svc := range []string{"", "wsmq.auth.v1.AuthService"} {
			r, err := e.health.Check(context.Background(), &healthpb.HealthCheckRequest{Service: svc})
			if err == nil {
				got[i] = r.Status
			}
		}
		if got[0] == want && got[1] == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("health = %v, want %v for both services", got, want)
		}
		time.Sleep(20 * time.Millisecond) // polling interval, not synchronisation
	}
}

func wantCode(t testing.TB, err error, code codes.Code) *status.Status {
	t.Helper()
	st, _ := status.FromError(err)
	if st.Code() != code {
		t.Fatalf("error = %v, want code %v", err, code)
	}
	return st
}

func TestAuthenticateReturnsJWTAndAccessTokenForRightPassword(t *testing.T) {
	e := start(t, envOptions{})
	id := e.createUser(t, "alice", "correct horse")
	r := e.login(t, "alice", "correct horse")
	if r.UserId != id || r.Token == "" || r.AccessToken == "" {
		t.Fatalf("response = %+v, want user %s with tokens", r, id)
	}
	var claims jwt.RegisteredClaims
	tok, _, err := jwt.NewParser().ParseUnverified(r.Token, &claims)
	if err != nil {
		t.Fatal(err)
	}
	if claims.Subject != "users/"+id || claims.Issuer != "wsmq-auth" || tok.Header["kid"] != "k1" {
		t.Fatalf("claims %+v header %v", claims, tok.Header)
	}
	if claims.ExpiresAt.UnixMilli() != r.ExpiresAt {
		t.Fatalf("expires_at %d != exp %v", r.ExpiresAt, claims.ExpiresAt)
	}
	if d := time.Until(claims.ExpiresAt.Time); d < 14*time.Minute || d > 15*time.Minute {
		t.Fatalf("JWT lives %v, want 15m", d)
	}
	v, err := e.client.Verify(context.Background(), &authv1.VerifyRequest{Token: r.Token})
	if err != nil || v.UserId != id || v.Token != "" {
		t.Fatalf("Verify(JWT) = %+v, %v; want user %s and no fresh token", v, err, id)
	}
}

func TestAuthenticateRefusesWrongPasswordAndUnknownUserAlike(t *testing.T) {
	const cost = 8 // slow enough to tell a bcrypt comparison from none
	e := start(t, envOptions{bcryptCost: cost})
	e.createUser(t, "alice", "correct horse")

	hash, _ := bcrypt.GenerateFromPassword([]byte("x"), cost)
	// The fastest of a few comparisons: a busy machine can only slow the
	// calls below, never make them faster than this.
	oneCompare := time.Hour
	for range 3 {
		t0 := time.Now()
		_ = bcrypt.CompareHashAndPassword(hash, []byte("y"))
		oneCompare = min(oneCompare, time.Since(t0))
	}

	var msgs []string
	for _, user := range []string{"alice", "mallory"} {
		t0 := time.Now()
		_, err := e.client.Authenticate(context.Background(), &authv1.AuthenticateRequest{UserName: user, Password: "wrong password"})
		took := time.Since(t0)
		st := wantCode(t, err, codes.Unauthenticated)
		msgs = append(msgs, st.Message())
		// Both run a bcrypt comparison: the unknown user is no faster.
		if took < oneCompare/2 {
			t.Errorf("%s refused in %v, less than half a bcrypt comparison (%v): no hash compared", user, took, oneCompare)
		}
	}
	if msgs[0] != msgs[1] || msgs[0] != "invalid credentials" {
		t.Fatalf("messages %q: want the same generic message", msgs)
	}
}

func TestVerifyRefreshesExpiredJWTFromAccessToken(t *testing.T) {
	e := start(t, envOptions{})
	id := e.createUser(t, "alice", "correct horse")
	r := e.login(t, "alice", "correct horse")
	e.clock.Advance(16 * time.Minute)

	if _, err := e.client.Verify(context.Background(), &authv1.VerifyRequest{Token: r.Token}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("expired JWT alone: %v, want Unauthenticated", err)
	}
	v, err := e.client.Verify(context.Background(), &authv1.VerifyRequest{Token: r.Token, AccessToken: r.AccessToken})
	if err != nil {
		t.Fatalf("expired JWT + access token: %v", err)
	}
	if v.UserId != id || v.Token == "" || v.Token == r.Token {
		t.Fatalf("Verify = %+v, want user %s and a fresh token", v, id)
	}
	var claims jwt.RegisteredClaims
	if _, err := jwt.NewParser(jwt.WithTimeFunc(e.clock.Now)).ParseWithClaims(v.Token, &claims,
		func(*jwt.Token) (any, error) { return testKey.Secret, nil }); err != nil {
		t.Fatalf("fresh token does not verify: %v", err)
	}
	if claims.Subject != "users/"+id || claims.ExpiresAt.UnixMilli() != v.ExpiresAt {
		t.Fatalf("fresh claims %+v, want sub users/%s exp %d", claims, id, v.ExpiresAt)
	}
	// The fresh token now passes alone, without the database.
	v2, err := e.client.Verify(context.Background(), &authv1.VerifyRequest{Token: v.Token})
	if err != nil || v2.UserId != id || v2.Token != "" {
		t.Fatalf("Verify(fresh JWT) = %+v, %v", v2, err)
	}
	// A missing JWT with an access token is refreshed too.
	if v3, err := e.client.Verify(context.Background(), &authv1.VerifyRequest{AccessToken: r.AccessToken}); err != nil || v3.Token == "" {
		t.Fatalf("Verify(access token only) = %+v, %v", v3, err)
	}
}

func TestVerifyRejectsExpiredJWTWithRevokedAccessToken(t *testing.T) {
	e := start(t, envOptions{})
	e.createUser(t, "alice", "correct horse")
	r := e.login(t, "alice", "correct horse")
	if rr, err := e.client.Revoke(context.Background(), &authv1.RevokeRequest{AccessToken: r.AccessToken}); err != nil || rr.Revoked != 1 {
		t.Fatalf("Revoke = %+v, %v", rr, err)
	}
	e.clock.Advance(16 * time.Minute)
	_, err := e.client.Verify(context.Background(), &authv1.VerifyRequest{Token: r.Token, AccessToken: r.AccessToken})
	if st := wantCode(t, err, codes.Unauthenticated); st.Message() != "invalid credentials" {
		t.Fatalf("message %q", st.Message())
	}
}

func TestVerifyRejectsForgedJWTsWithTheSameGenericError(t *testing.T) {
	e := start(t, envOptions{})
	id := e.createUser(t, "alice", "correct horse")
	now := time.Now()
	claims := jwt.MapClaims{"sub": "users/" + id, "iss": "wsmq-auth", "iat": now.Unix(), "exp": now.Add(time.Minute).Unix(), "sid": bson.NewObjectID().Hex()}
	signed := func(m jwt.SigningMethod, key any, kid string, c jwt.MapClaims) string {
		tok := jwt.NewWithClaims(m, c)
		tok.Header["kid"] = kid
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	noExp := jwt.MapClaims{"sub": "users/" + id, "iss": "wsmq-auth", "iat": now.Unix()}
	good := signed(jwt.SigningMethodHS256, testKey.Secret, "k1", claims)
	if _, err := e.client.Verify(context.Background(), &authv1.VerifyRequest{Token: good}); err != nil {
		t.Fatalf("control token refused: %v", err)
	}
	p := strings.Split(good, ".")
	forged := map[string]string{
		"tampered":    p[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"users/x","iss":"wsmq-auth","exp":99999999999}`)) + "." + p[2],
		"alg none":    signed(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "k1", claims),
		"wrong key":   signed(jwt.SigningMethodHS256, []byte("another-secret-0123456789abcdef0123"), "k1", claims),
		"unknown kid": signed(jwt.SigningMethodHS256, testKey.Secret, "k9", claims),
		"HS384":       signed(jwt.SigningMethodHS384, testKey.Secret, "k1", claims),
		"missing exp": signed(jwt.SigningMethodHS256, testKey.Secret, "k1", noExp),
	}
	for name, tok := range forged {
		_, err := e.client.Verify(context.Background(), &authv1.VerifyRequest{Token: tok})
		if st := wantCode(t, err, codes.Unauthenticated); st.Message() != "invalid credentials" {
			t.Errorf("%s: message %q", name, st.Message())
		}
	}
}

func TestDatabaseHoldsNoPasswordAndNoRawAccessToken(t *testing.T) {
	e := start(t, envOptions{accessTokenTTL: time.Hour})
	const pw = "very-secret-password-42"
	e.createUser(t, "alice", pw)
	r := e.login(t, "alice", pw)
	raw, _ := base64.RawURLEncoding.DecodeString(r.AccessToken)
	sum := sha256.Sum256(raw)
	forbidden := []string{pw, r.AccessToken, base64.StdEncoding.EncodeToString(raw), hex.EncodeToString(raw),
		base64.StdEncoding.EncodeToString([]byte(pw)), hex.EncodeToString([]byte(pw))}

	db := e.store.Database()
	var all strings.Builder
	for _, coll := range []string{store.UsersCollection, store.AccessTokensCollection} {
		cur, err := db.Collection(coll).Find(context.Background(), bson.D{})
		if err != nil {
			t.Fatal(err)
		}
		var docs []bson.Raw
		if err := cur.All(context.Background(), &docs); err != nil {
			t.Fatal(err)
		}
		if len(docs) != 1 {
			t.Fatalf("%s holds %d documents, want 1", coll, len(docs))
		}
		js, err := bson.MarshalExtJSON(docs[0], true, false)
		if err != nil {
			t.Fatal(err)
		}
		all.Write(js)
		all.WriteByte('\n')
	}
	for _, s := range forbidden {
		if strings.Contains(all.String(), s) {
			t.Fatalf("database documents contain a secret (%d chars):\n%s", len(s), all.String())
		}
	}
	if !strings.Contains(all.String(), hex.EncodeToString(sum[:])) {
		t.Fatalf("access token's SHA-256 not stored:\n%s", all.String())
	}
	if !strings.Contains(all.String(), "lastUsed") || !strings.Contains(all.String(), "expiresAt") {
		t.Fatalf("access token document lacks its times:\n%s", all.String())
	}
}

// verifyAccess reports the code of Verify with an access token only.
func (e *env) verifyAccess(at string) codes.Code {
	_, err := e.client.Verify(context.Background(), &authv1.VerifyRequest{AccessToken: at})
	return status.Code(err)
}

func TestRevokeOneSessionLeavesTheOtherAndRevokeAllEndsBoth(t *testing.T) {
	e := start(t, envOptions{})
	e.createUser(t, "alice", "correct horse")
	a := e.login(t, "alice", "correct horse")
	b := e.login(t, "alice", "correct horse")
	c := e.login(t, "alice", "correct horse")
	if a.AccessToken == b.AccessToken {
		t.Fatal("two logins gave the same access token")
	}
	if _, err := e.client.Revoke(context.Background(), &authv1.RevokeRequest{AccessToken: a.AccessToken}); err != nil {
		t.Fatal(err)
	}
	if got := e.verifyAccess(a.AccessToken); got != codes.Unauthenticated {
		t.Fatalf("revoked token: %v", got)
	}
	if got := e.verifyAccess(b.AccessToken); got != codes.OK {
		t.Fatalf("other token after revoking one: %v", got)
	}
	// Revoking an already revoked token proves nothing: refused.
	_, err := e.client.Revoke(context.Background(), &authv1.RevokeRequest{AccessToken: a.AccessToken})
	wantCode(t, err, codes.Unauthenticated)

	r, err := e.client.Revoke(context.Background(), &authv1.RevokeRequest{AccessToken: b.AccessToken, All: true})
	if err != nil || r.Revoked != 2 {
		t.Fatalf("Revoke all = %+v, %v; want 2 revoked", r, err)
	}
	for _, tok := range []string{b.AccessToken, c.AccessToken} {
		if got := e.verifyAccess(tok); got != codes.Unauthenticated {
			t.Fatalf("token after revoke-all: %v", got)
		}
	}
}

func TestAdminRevokeByUserNameEndsOnlyThatUsersSessions(t *testing.T) {
	e := start(t, envOptions{})
	e.createUser(t, "alice", "correct horse")
	e.createUser(t, "bob", "battery staple")
	a := e.login(t, "alice", "correct horse")
	b := e.login(t, "bob", "battery staple")
	_, err := e.client.Revoke(context.Background(), &authv1.RevokeRequest{UserName: "alice"})
	wantCode(t, err, codes.Unauthenticated)
	_, err = e.client.Revoke(e.admin, &authv1.RevokeRequest{UserName: "alice", AccessToken: a.AccessToken})
	if st := wantCode(t, err, codes.InvalidArgument); !strings.Contains(st.Message(), "access_token") {
		t.Fatalf("message %q does not name access_token", st.Message())
	}
	r, err := e.client.Revoke(e.admin, &authv1.RevokeRequest{UserName: "alice"})
	if err != nil || r.Revoked != 1 {
		t.Fatalf("Revoke(alice) = %+v, %v", r, err)
	}
	if e.verifyAccess(a.AccessToken) != codes.Unauthenticated || e.verifyAccess(b.AccessToken) != codes.OK {
		t.Fatal("admin revoke hit the wrong sessions")
	}
	_, err = e.client.Revoke(e.admin, &authv1.RevokeRequest{UserName: "nobody"})
	wantCode(t, err, codes.NotFound)
}

func TestDeleteUserRevokesItsSessions(t *testing.T) {
	e := start(t, envOptions{})
	e.createUser(t, "alice", "correct horse")
	a := e.login(t, "alice", "correct horse")
	if _, err := e.client.DeleteUser(e.admin, &authv1.DeleteUserRequest{UserName: "alice"}); err != nil {
		t.Fatal(err)
	}
	if got := e.verifyAccess(a.AccessToken); got != codes.Unauthenticated {
		t.Fatalf("access token of a deleted user: %v", got)
	}
	_, err := e.client.Authenticate(context.Background(), &authv1.AuthenticateRequest{UserName: "alice", Password: "correct horse"})
	wantCode(t, err, codes.Unauthenticated)
	_, err = e.client.DeleteUser(e.admin, &authv1.DeleteUserRequest{UserName: "alice"})
	wantCode(t, err, codes.NotFound)
}

func TestSetPasswordChangesPasswordAndRevokesSessions(t *testing.T) {
	e := start(t, envOptions{})
	e.createUser(t, "alice", "correct horse")
	a := e.login(t, "alice", "correct horse")
	b := e.login(t, "alice", "correct horse")
	r, err := e.client.SetPassword(e.admin, &authv1.SetPasswordRequest{UserName: "alice", Password: "new password!"})
	if err != nil || r.Revoked != 2 {
		t.Fatalf("SetPassword = %+v, %v; want 2 revoked", r, err)
	}
	for _, tok := range []string{a.AccessToken, b.AccessToken} {
		if got := e.verifyAccess(tok); got != codes.Unauthenticated {
			t.Fatalf("session after SetPassword: %v", got)
		}
	}
	_, err = e.client.Authenticate(context.Background(), &authv1.AuthenticateRequest{UserName: "alice", Password: "correct horse"})
	wantCode(t, err, codes.Unauthenticated)
	e.login(t, "alice", "new password!")
	_, err = e.client.SetPassword(e.admin, &authv1.SetPasswordRequest{UserName: "nobody", Password: "new password!"})
	wantCode(t, err, codes.NotFound)
}

func TestAdminRPCsRequireTheAdminCredential(t *testing.T) {
	e := start(t, envOptions{})
	e.createUser(t, "alice", "correct horse")
	calls := map[string]func(context.Context) error{
		"CreateUser": func(ctx context.Context) error {
			_, err := e.client.CreateUser(ctx, &authv1.CreateUserRequest{UserName: "bob", Password: "battery staple"})
			return err
		},
		"DeleteUser": func(ctx context.Context) error {
			_, err := e.client.DeleteUser(ctx, &authv1.DeleteUserRequest{UserName: "alice"})
			return err
		},
		"SetPassword": func(ctx context.Context) error {
			_, err := e.client.SetPassword(ctx, &authv1.SetPasswordRequest{UserName: "alice", Password: "battery staple"})
			return err
		},
		"ListUsers": func(ctx context.Context) error {
			_, err := e.client.ListUsers(ctx, &authv1.ListUsersRequest{})
			return err
		},
		"Revoke(user_name)": func(ctx context.Context) error {
			_, err := e.client.Revoke(ctx, &authv1.RevokeRequest{UserName: "alice"})
			return err
		},
	}
	creds := []struct {
		name string
		ctx  context.Context
		want codes.Code
	}{
		{"none", context.Background(), codes.Unauthenticated},
		{"not bearer", metadata.AppendToOutgoingContext(context.Background(), "authorization", "Basic "+adminToken), codes.Unauthenticated},
		{"wrong", metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer wrong-admin-token-0000000"), codes.PermissionDenied},
		{"prefix of the right one", metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+adminToken[:10]), codes.PermissionDenied},
	}
	for name, call := range calls {
		for _, c := range creds {
			if got := status.Code(call(c.ctx)); got != c.want {
				t.Errorf("%s with %s credential: %v, want %v", name, c.name, got, c.want)
			}
		}
	}
	// Nothing happened: alice still logs in with her password, bob is absent.
	e.login(t, "alice", "correct horse")
	lu, err := e.client.ListUsers(e.admin, &authv1.ListUsersRequest{})
	if err != nil || len(lu.Users) != 1 {
		t.Fatalf("ListUsers = %v, %v; want alice only", lu, err)
	}
}

func TestCreateUserRefusesDuplicateAndInvalidFields(t *testing.T) {
	e := start(t, envOptions{})
	e.createUser(t, "alice", "correct horse")
	_, err := e.client.CreateUser(e.admin, &authv1.CreateUserRequest{UserName: "alice", Password: "another one"})
	wantCode(t, err, codes.AlreadyExists)

	cases := []struct {
		name, user, pw, field string
	}{
		{"empty name", "", "correct horse", "user_name"},
		{"name with space", "al ice", "correct horse", "user_name"},
		{"name with slash", "al/ice", "correct horse", "user_name"},
		{"name too long", strings.Repeat("a", 65), "correct horse", "user_name"},
		{"short password", "bob", "short", "password"},
		{"password beyond bcrypt's 72 bytes", "bob", strings.Repeat("p", 73), "password"},
	}
	for _, c := range cases {
		_, err := e.client.CreateUser(e.admin, &authv1.CreateUserRequest{UserName: c.user, Password: c.pw})
		st := wantCode(t, err, codes.InvalidArgument)
		if !strings.HasPrefix(st.Message(), c.field+":") {
			t.Errorf("%s: message %q does not name %s", c.name, st.Message(), c.field)
		}
	}
	_, err = e.client.Authenticate(context.Background(), &authv1.AuthenticateRequest{UserName: "alice"})
	if st := wantCode(t, err, codes.InvalidArgument); !strings.HasPrefix(st.Message(), "password:") {
		t.Fatalf("message %q", st.Message())
	}
	_, err = e.client.Revoke(context.Background(), &authv1.RevokeRequest{})
	if st := wantCode(t, err, codes.InvalidArgument); !strings.HasPrefix(st.Message(), "access_token:") {
		t.Fatalf("message %q", st.Message())
	}
	// A valid name of the maximum length is fine.
	e.createUser(t, strings.Repeat("a", 64), "correct horse")
}

func TestListUsersCountsLiveSessions(t *testing.T) {
	e := start(t, envOptions{})
	bobID := e.createUser(t, "bob", "battery staple")
	e.createUser(t, "alice", "correct horse")
	e.login(t, "bob", "battery staple")
	e.login(t, "bob", "battery staple")
	r, err := e.client.ListUsers(e.admin, &authv1.ListUsersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Users) != 2 || r.Users[0].UserName != "alice" || r.Users[1].UserName != "bob" {
		t.Fatalf("users %v, want alice, bob", r.Users)
	}
	if r.Users[0].Sessions != 0 || r.Users[1].Sessions != 2 || r.Users[1].UserId != bobID || r.Users[1].CreatedAt == 0 {
		t.Fatalf("users %v", r.Users)
	}
}

func TestAccessTokenExpiresAfterItsLifetime(t *testing.T) {
	e := start(t, envOptions{accessTokenTTL: time.Hour})
	e.createUser(t, "alice", "correct horse")
	a := e.login(t, "alice", "correct horse")
	e.clock.Advance(59 * time.Minute)
	if got := e.verifyAccess(a.AccessToken); got != codes.OK {
		t.Fatalf("token within its lifetime: %v", got)
	}
	e.clock.Advance(2 * time.Minute)
	if got := e.verifyAccess(a.AccessToken); got != codes.Unauthenticated {
		t.Fatalf("token past its lifetime: %v", got)
	}
}

func TestMongoDownGivesUnavailableInTimeButJWTStillVerifies(t *testing.T) {
	const timeout = time.Second
	e := start(t, envOptions{mongoTimeout: timeout})
	e.createUser(t, "alice", "correct horse")
	a := e.login(t, "alice", "correct horse")

	e.mongo.Stop()
	e.waitHealth(t, healthpb.HealthCheckResponse_NOT_SERVING)

	calls := map[string]func(context.Context) error{
		"Authenticate": func(ctx context.Context) error {
			_, err := e.client.Authenticate(ctx, &authv1.AuthenticateRequest{UserName: "alice", Password: "correct horse"})
			return err
		},
		"Verify(access token)": func(ctx context.Context) error {
			_, err := e.client.Verify(ctx, &authv1.VerifyRequest{AccessToken: a.AccessToken})
			return err
		},
		"CreateUser": func(ctx context.Context) error {
			_, err := e.client.CreateUser(ctx, &authv1.CreateUserRequest{UserName: "bob", Password: "battery staple"})
			return err
		},
		"ListUsers": func(ctx context.Context) error {
			_, err := e.client.ListUsers(ctx, &authv1.ListUsersRequest{})
			return err
		},
	}
	for name, call := range calls {
		ctx, cancel := context.WithTimeout(e.admin, 10*time.Second)
		t0 := time.Now()
		err := call(ctx)
		took := time.Since(t0)
		cancel()
		if st := wantCode(t, err, codes.Unavailable); st.Message() != "database unavailable" {
			t.Errorf("%s: message %q", name, st.Message())
		}
		if took > 5*timeout {
			t.Errorf("%s took %v with a %v database deadline", name, took, timeout)
		}
	}
	// Past the session cache's TTL the user cannot be re-read: its last
	// known state keeps the JWT valid (nothing can be revoked meanwhile).
	e.clock.Advance(authn.DefaultSessionCacheTTL + time.Second)
	v, err := e.client.Verify(context.Background(), &authv1.VerifyRequest{Token: a.Token, AccessToken: a.AccessToken})
	if err != nil || v.UserId != a.UserId {
		t.Fatalf("JWT Verify with the database down = %v, %v", v, err)
	}
}

// BenchmarkVerifyJWT measures Verify over gRPC on the JWT path (no database).
func BenchmarkVerifyJWT(b *testing.B) {
	e := start(b, envOptions{})
	e.createUser(b, "alice", "correct horse")
	a := e.login(b, "alice", "correct horse")
	req := &authv1.VerifyRequest{Token: a.Token}
	benchVerify(b, e, req)
}

// BenchmarkVerifyAccessToken measures Verify over gRPC on the access-token
// path: one lookup by hash and a fresh JWT. Against FerretDB (SQLite) this
// says little about real MongoDB, where the lookup uses the unique index.
func BenchmarkVerifyAccessToken(b *testing.B) {
	e := start(b, envOptions{})
	e.createUser(b, "alice", "correct horse")
	a := e.login(b, "alice", "correct horse")
	req := &authv1.VerifyRequest{AccessToken: a.AccessToken}
	benchVerify(b, e, req)
}

func benchVerify(b *testing.B, e *env, req *authv1.VerifyRequest) {
	b.Helper()
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := e.client.Verify(ctx, req); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "verifies/s")
}
