package server_test

import (
	"context"
	"errors"
	"io"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	authv1 "github.com/wsmq/wsmq/gen/wsmq/auth/v1"
	"github.com/wsmq/wsmq/pkg/reverify"
	"github.com/wsmq/wsmq/pkg/testenv"
	"github.com/wsmq/wsmq/services/auth/internal/store"
	"github.com/wsmq/wsmq/services/auth/internal/throttle"
	"github.com/wsmq/wsmq/services/auth/internal/tokens"
)

func (e *env) verifyJWT(jwt string) codes.Code {
	_, err := e.client.Verify(context.Background(), &authv1.VerifyRequest{Token: jwt})
	st, _ := statusOf(err)
	return st
}

func statusOf(err error) (codes.Code, string) {
	s, _ := status.FromError(err)
	return s.Code(), s.Message()
}

func TestLoginRacingPasswordChangeLeavesNoLiveSession(t *testing.T) {
	held := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	e := start(t, envOptions{afterPasswordCheck: func(ctx context.Context) {
		once.Do(func() {
			close(held)
			<-release // the password changes while the login holds the old hash
		})
	}})
	id := e.createUser(t, "alice", "correct horse")

	type loginResult struct {
		r   *authv1.AuthenticateResponse
		err error
	}
	done := make(chan loginResult, 1)
	go func() {
		r, err := e.client.Authenticate(context.Background(), &authv1.AuthenticateRequest{UserName: "alice", Password: "correct horse"})
		done <- loginResult{r, err}
	}()
	select {
	case <-held:
	case <-time.After(10 * time.Second):
		t.Fatal("the login never reached the seam between the password check and the session insert")
	}
	if _, err := e.client.SetPassword(e.admin, &authv1.SetPasswordRequest{UserName: "alice", Password: "battery staple"}); err != nil {
		t.Fatal(err)
	}
	close(release)
	res := <-done
	if res.err == nil {
		// Whatever a racing login hands out must be dead.
		if c := e.verifyAccess(res.r.AccessToken); c != codes.Unauthenticated {
			t.Errorf("access token of the racing login: Verify = %v, want Unauthenticated", c)
		}
		if c := e.verifyJWT(res.r.Token); c != codes.Unauthenticated {
			t.Errorf("JWT of the racing login: Verify = %v, want Unauthenticated", c)
		}
	} else {
		wantCode(t, res.err, codes.Unauthenticated)
	}
	// The token the racing login inserted is refused even if it stayed in
	// the database: forge its presence by inserting one under the old
	// generation, as a login that lost its post-insert check would.
	at, hash := tokens.NewAccessToken()
	stale, err := e.store.InsertAccessToken(context.Background(), hash, id, 0, time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if c := e.verifyAccess(at); c != codes.Unauthenticated {
		t.Fatalf("access token inserted under the generation before the password change: Verify = %v, want Unauthenticated", c)
	}
	staleJWT, _, err := e.jwt.Issue(id, tokens.Session{ID: stale.SessionID(), Gen: 0})
	if err != nil {
		t.Fatal(err)
	}
	if c := e.verifyJWT(staleJWT); c != codes.Unauthenticated {
		t.Fatalf("JWT of that session: Verify = %v, want Unauthenticated", c)
	}
	// The new password starts a live session.
	r := e.login(t, "alice", "battery staple")
	if c := e.verifyJWT(r.Token); c != codes.OK {
		t.Fatalf("JWT after the change: Verify = %v, want OK", c)
	}
	if c := e.verifyAccess(r.AccessToken); c != codes.OK {
		t.Fatalf("access token after the change: Verify = %v, want OK", c)
	}
}

func TestVerifyRefusesJWTAfterRevokeAllPasswordChangeDeletionAndSessionRevoke(t *testing.T) {
	e := start(t, envOptions{})
	for _, tc := range []struct {
		name   string
		end    func(t *testing.T, r *authv1.AuthenticateResponse)
		relive bool // a new login of the same name works afterwards
	}{
		{"revoke all", func(t *testing.T, r *authv1.AuthenticateResponse) {
			if _, err := e.client.Revoke(context.Background(), &authv1.RevokeRequest{AccessToken: r.AccessToken, All: true}); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"admin revoke by name", func(t *testing.T, _ *authv1.AuthenticateResponse) {
			if _, err := e.client.Revoke(e.admin, &authv1.RevokeRequest{UserName: "u-admin-revoke-by-name"}); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"password change", func(t *testing.T, _ *authv1.AuthenticateResponse) {
			if _, err := e.client.SetPassword(e.admin, &authv1.SetPasswordRequest{UserName: "u-password-change", Password: "correct horse"}); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"deletion", func(t *testing.T, _ *authv1.AuthenticateResponse) {
			if _, err := e.client.DeleteUser(e.admin, &authv1.DeleteUserRequest{UserName: "u-deletion"}); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"one session revoked", func(t *testing.T, r *authv1.AuthenticateResponse) {
			if _, err := e.client.Revoke(context.Background(), &authv1.RevokeRequest{AccessToken: r.AccessToken}); err != nil {
				t.Fatal(err)
			}
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := "u-" + strings.ReplaceAll(tc.name, " ", "-")
			e.createUser(t, name, "correct horse")
			r := e.login(t, name, "correct horse")
			if c := e.verifyJWT(r.Token); c != codes.OK {
				t.Fatalf("before: Verify(JWT) = %v", c)
			}
			tc.end(t, r)
			if c := e.verifyJWT(r.Token); c != codes.Unauthenticated {
				t.Fatalf("after %s: Verify(JWT) = %v, want Unauthenticated", tc.name, c)
			}
			if c := e.verifyAccess(r.AccessToken); c != codes.Unauthenticated {
				t.Fatalf("after %s: Verify(access token) = %v, want Unauthenticated", tc.name, c)
			}
			if tc.relive {
				r2 := e.login(t, name, "correct horse")
				if c := e.verifyJWT(r2.Token); c != codes.OK {
					t.Fatalf("a new session after %s: Verify(JWT) = %v, want OK", tc.name, c)
				}
			}
		})
	}
}

func TestVerifyBatchSeesASessionRevokedByAnotherReplica(t *testing.T) {
	e := start(t, envOptions{})
	e.createUser(t, "alice", "correct horse")
	a := e.login(t, "alice", "correct horse")
	b := e.login(t, "alice", "correct horse")
	// Another auth replica revoked session a: only the database knows.
	if _, err := e.store.DeleteSession(context.Background(), a.SessionId); err != nil {
		t.Fatal(err)
	}
	res, err := e.client.VerifyBatch(context.Background(), &authv1.VerifyBatchRequest{Items: []*authv1.VerifyRequest{
		{Token: a.Token}, {Token: b.Token}, {Token: "garbage"}, {Token: "garbage", AccessToken: b.AccessToken},
	}})
	if err != nil {
		t.Fatal(err)
	}
	got := make([]codes.Code, len(res.Results))
	for i, r := range res.Results {
		got[i] = codes.Code(r.Code)
	}
	want := []codes.Code{codes.Unauthenticated, codes.OK, codes.Unauthenticated, codes.OK}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("VerifyBatch codes = %v, want %v", got, want)
		}
	}
	if r := res.Results[1].Response; r.SessionId != b.SessionId || r.IssuedAt == 0 {
		t.Fatalf("batch answer for b = %+v, want session %s and its issue time", r, b.SessionId)
	}
	if r := res.Results[3].Response; r.Token == "" || r.SessionId != b.SessionId {
		t.Fatalf("access-token item = %+v, want a fresh JWT of session %s", r, b.SessionId)
	}
	many := make([]*authv1.VerifyRequest, 1001)
	for i := range many {
		many[i] = &authv1.VerifyRequest{Token: b.Token}
	}
	_, err = e.client.VerifyBatch(context.Background(), &authv1.VerifyBatchRequest{Items: many})
	if st := wantCode(t, err, codes.InvalidArgument); !strings.Contains(st.Message(), "items") {
		t.Fatalf("oversized batch: %q does not name items", st.Message())
	}
}

func TestWatchRevocationsStreamsEveryRevocationToGatewaysOnly(t *testing.T) {
	e := start(t, envOptions{})
	for _, tc := range []struct {
		name string
		ctx  context.Context
		code codes.Code
	}{
		{"no credential", context.Background(), codes.Unauthenticated},
		{"wrong credential", metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer nope"), codes.PermissionDenied},
	} {
		s, err := e.client.WatchRevocations(tc.ctx, &authv1.WatchRevocationsRequest{})
		if err == nil {
			_, err = s.Recv()
		}
		wantCode(t, err, tc.code)
	}
	ctx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+gatewayToken), 20*time.Second)
	defer cancel()
	stream, err := e.client.WatchRevocations(ctx, &authv1.WatchRevocationsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Header(); err != nil { // subscribed
		t.Fatal(err)
	}
	alice := e.createUser(t, "alice", "correct horse")
	bob := e.createUser(t, "bob", "correct horse")
	a1 := e.login(t, "alice", "correct horse")
	a2 := e.login(t, "alice", "correct horse")
	if _, err := e.client.Revoke(context.Background(), &authv1.RevokeRequest{AccessToken: a1.AccessToken}); err != nil {
		t.Fatal(err)
	}
	before := time.Now().Add(-time.Second)
	if _, err := e.client.Revoke(context.Background(), &authv1.RevokeRequest{AccessToken: a2.AccessToken, All: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.SetPassword(e.admin, &authv1.SetPasswordRequest{UserName: "alice", Password: "battery staple"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.DeleteUser(e.admin, &authv1.DeleteUserRequest{UserName: "bob"}); err != nil {
		t.Fatal(err)
	}
	want := []struct {
		user, session string
		all, deleted  bool
	}{
		{alice, a1.SessionId, false, false},
		{alice, "", true, false},
		{alice, "", true, false},
		{bob, "", true, true},
	}
	for i, w := range want {
		r, err := stream.Recv()
		if err != nil {
			t.Fatalf("revocation %d: %v", i, err)
		}
		if r.UserId != w.user || r.SessionId != w.session || r.AllSessions != w.all || r.UserDeleted != w.deleted {
			t.Fatalf("revocation %d = %+v, want %+v", i, r, w)
		}
		if w.all && r.ValidAfterMs < before.UnixMilli() {
			t.Fatalf("revocation %d: valid_after_ms %d is before the revoke", i, r.ValidAfterMs)
		}
	}
	cancel()
	if _, err := stream.Recv(); err == nil || errors.Is(err, io.EOF) {
		t.Fatalf("Recv after cancel = %v, want the cancellation", err)
	}
	testenv.Eventually(t, 10*time.Second, "the cancelled watcher leaves the hub", func() bool { return e.hub.Watchers() == 0 })
}

func TestPasswordsOver72BytesAreRefusedAtCreateChangeAndLogin(t *testing.T) {
	e := start(t, envOptions{})
	long := strings.Repeat("p", 73)
	e.createUser(t, "alice", strings.Repeat("p", 72)) // 72 bytes is the limit, allowed
	_, err := e.client.CreateUser(e.admin, &authv1.CreateUserRequest{UserName: "bob", Password: long})
	checkField(t, "CreateUser", err, "password")
	_, err = e.client.SetPassword(e.admin, &authv1.SetPasswordRequest{UserName: "alice", Password: long})
	checkField(t, "SetPassword", err, "password")
	// bcrypt would accept the 73-byte password as the 72-byte one: refused.
	_, err = e.client.Authenticate(context.Background(), &authv1.AuthenticateRequest{UserName: "alice", Password: long})
	checkField(t, "Authenticate", err, "password")
	e.login(t, "alice", strings.Repeat("p", 72))
	// Multi-byte: 25 three-byte runes are 75 bytes.
	_, err = e.client.CreateUser(e.admin, &authv1.CreateUserRequest{UserName: "carol", Password: strings.Repeat("€", 25)})
	checkField(t, "CreateUser (75 bytes of runes)", err, "password")
}

func checkField(t *testing.T, what string, err error, field string) {
	t.Helper()
	st := wantCode(t, err, codes.InvalidArgument)
	if !strings.HasPrefix(st.Message(), field+":") || !strings.Contains(st.Message(), "72 bytes") {
		t.Fatalf("%s: message %q does not name %s and the 72-byte limit", what, st.Message(), field)
	}
}

func TestPerNameBackoffRefusesCheaplyAndDoesNotLockOutOtherNames(t *testing.T) {
	e := start(t, envOptions{throttle: throttle.Options{Backoff: time.Hour}})
	e.createUser(t, "alice", "correct horse")
	e.createUser(t, "bob", "correct horse")
	login := func(name, pw string) error {
		_, err := e.client.Authenticate(context.Background(), &authv1.AuthenticateRequest{UserName: name, Password: pw})
		return err
	}
	for i := range throttle.DefaultFreeFailures {
		if err := login("alice", "wrong horse"); err == nil {
			t.Fatalf("failure %d: wrong password accepted", i)
		} else {
			wantCode(t, err, codes.Unauthenticated)
		}
	}
	// alice now waits an hour, even with the right password, and the
	// refusal runs no bcrypt: 200 refusals take far less than 200 cost-4
	// comparisons plus the database reads would.
	start := time.Now()
	for range 200 {
		wantCode(t, login("alice", "correct horse"), codes.ResourceExhausted)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("200 throttled logins took %v; a refusal should cost no bcrypt", d)
	}
	// bob, from the same address, is not affected.
	if err := login("bob", "correct horse"); err != nil {
		t.Fatalf("bob locked out by alice's failures: %v", err)
	}
	// Nor is a name that does not exist locking anyone: unknown names
	// back off on their own.
	for range throttle.DefaultFreeFailures + 1 {
		_ = login("mallory", "x")
	}
	if err := login("bob", "correct horse"); err != nil {
		t.Fatalf("bob after mallory's failures: %v", err)
	}
}

func TestPerIPLimitRefusesAFloodWithoutPasswordChecks(t *testing.T) {
	e := start(t, envOptions{throttle: throttle.Options{RatePerIP: 1}}) // burst 2
	e.createUser(t, "alice", "correct horse")
	ok, limited := 0, 0
	for range 10 {
		_, err := e.client.Authenticate(context.Background(), &authv1.AuthenticateRequest{UserName: "alice", Password: "correct horse"})
		switch c, _ := statusOf(err); c {
		case codes.OK:
			ok++
		case codes.ResourceExhausted:
			limited++
		default:
			t.Fatal(err)
		}
	}
	if ok < 2 || ok > 4 || limited < 6 {
		t.Fatalf("10 logins at 1/s (burst 2): %d ok, %d limited", ok, limited)
	}
}

// TestPerAddressLimitKeysOnTheClientAddressAGatewayGives: a gateway logs in
// the users behind it over one connection. With its credential, the
// per-address limit keys on each login's client_address, so a flood from
// one client address leaves another behind the same gateway alone. From a
// caller without the credential the claim counts for nothing: its own
// address is limited, whatever addresses it names. A client_address that
// is not an IP address is refused, naming the field.
func TestPerAddressLimitKeysOnTheClientAddressAGatewayGives(t *testing.T) {
	e := start(t, envOptions{throttle: throttle.Options{RatePerIP: 1}}) // burst 2
	e.createUser(t, "alice", "correct horse")
	login := func(ctx context.Context, from string) (codes.Code, string) {
		_, err := e.client.Authenticate(ctx, &authv1.AuthenticateRequest{UserName: "alice", Password: "correct horse", ClientAddress: from})
		return statusOf(err)
	}
	floodUntilLimited := func(ctx context.Context, from func(i int) string) {
		t.Helper()
		for i := range 10 {
			switch c, msg := login(ctx, from(i)); c {
			case codes.OK:
			case codes.ResourceExhausted:
				return
			default:
				t.Fatalf("login %d: %v %s", i, c, msg)
			}
		}
		t.Fatal("10 logins at 1/s (burst 2) were never limited")
	}
	gw := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+gatewayToken)
	floodUntilLimited(gw, func(int) string { return "203.0.113.1" })
	if c, msg := login(gw, "203.0.113.2"); c != codes.OK {
		t.Fatalf("another client address behind the same gateway: %v %s, want OK", c, msg)
	}
	if c, _ := login(gw, "203.0.113.1"); c != codes.ResourceExhausted {
		t.Fatalf("the flooding client address again: %v, want RESOURCE_EXHAUSTED", c)
	}

	plain := context.Background()
	floodUntilLimited(plain, func(i int) string { return "198.51.100." + strconv.Itoa(i+1) })
	if c, _ := login(plain, "198.51.100.200"); c != codes.ResourceExhausted {
		t.Fatalf("a caller without the gateway credential naming a fresh address: %v, want RESOURCE_EXHAUSTED (its own address is limited)", c)
	}

	for _, ctx := range []context.Context{gw, plain} {
		if c, msg := login(ctx, "not-an-ip"); c != codes.InvalidArgument || !strings.Contains(msg, "client_address") {
			t.Fatalf("client_address not-an-ip: %v %q, want INVALID_ARGUMENT naming client_address", c, msg)
		}
	}
}

// TestVerifyBatchOf10000SessionsFinishesWithinTheReverifyInterval
// measures the gateway's re-verify path at scale: 10,000 live sessions of
// 500 users, verified in the gateway's batches (reverify.Batch) with its
// calls in flight (reverify.InFlight), against the real server and
// MongoDB-wire store.
func TestVerifyBatchOf10000SessionsFinishesWithinTheReverifyInterval(t *testing.T) {
	const sessions, users, batch, inFlight = 10_000, 500, reverify.Batch, reverify.InFlight
	const interval = time.Minute // the gateway's default re-verify interval
	// FerretDB/SQLite scans for $in lookups (real MongoDB reads the _id
	// index): give its reads more than the default 3 s on a loaded machine.
	e := start(t, envOptions{mongoTimeout: 30 * time.Second})
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Millisecond)
	userDocs := make([]any, users)
	ids := make([]string, users)
	for i := range userDocs {
		oid := bson.NewObjectID()
		ids[i] = oid.Hex()
		userDocs[i] = store.User{ID: oid, Name: "user" + oid.Hex(), PasswordHash: []byte("x"), Created: now, Updated: now}
	}
	if _, err := e.store.Database().Collection(store.UsersCollection).InsertMany(ctx, userDocs); err != nil {
		t.Fatal(err)
	}
	tokenDocs := make([]any, sessions)
	items := make([]*authv1.VerifyRequest, sessions)
	for i := range tokenDocs {
		oid := bson.NewObjectID()
		_, hash := tokens.NewAccessToken()
		uid := ids[i%users]
		tokenDocs[i] = store.AccessToken{ID: oid, Hash: hash, UserID: uid, Created: now, LastUsed: now}
		jwt, _, err := e.jwt.Issue(uid, tokens.Session{ID: oid.Hex()})
		if err != nil {
			t.Fatal(err)
		}
		items[i] = &authv1.VerifyRequest{Token: jwt}
	}
	if _, err := e.store.Database().Collection(store.AccessTokensCollection).InsertMany(ctx, tokenDocs); err != nil {
		t.Fatal(err)
	}
	// One session revoked elsewhere must come back refused.
	revoked := tokenDocs[1234].(store.AccessToken).ID.Hex()
	if _, err := e.store.DeleteSession(ctx, revoked); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	var mu sync.Mutex
	okN, refused := 0, 0
	var wg sync.WaitGroup
	sem := make(chan struct{}, inFlight)
	var firstErr error
	for lo := 0; lo < sessions; lo += batch {
		sem <- struct{}{}
		wg.Add(1)
		go func(part []*authv1.VerifyRequest) {
			defer func() { <-sem; wg.Done() }()
			res, err := e.client.VerifyBatch(ctx, &authv1.VerifyBatchRequest{Items: part})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				firstErr = err
				return
			}
			for _, r := range res.Results {
				if r.Code == 0 {
					okN++
				} else {
					refused++
				}
			}
		}(items[lo:min(lo+batch, sessions)])
	}
	wg.Wait()
	took := time.Since(start)
	if firstErr != nil {
		t.Fatal(firstErr)
	}
	t.Logf("re-verify of %d sessions (%d users) in batches of %d, %d in flight: %v", sessions, users, batch, inFlight, took)
	if okN != sessions-1 || refused != 1 {
		t.Fatalf("%d valid, %d refused; want %d and 1 (the revoked session)", okN, refused, sessions-1)
	}
	if took > interval {
		t.Fatalf("re-verify of %d sessions took %v, longer than the %v interval", sessions, took, interval)
	}
}
