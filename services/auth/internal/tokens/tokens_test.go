package tokens

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

var (
	keyA = Key{ID: "a", Secret: []byte("0123456789abcdef0123456789abcdef-A")}
	keyB = Key{ID: "b", Secret: []byte("0123456789abcdef0123456789abcdef-B")}
)

// clock is a settable clock for tests.
type clock struct{ off atomic.Int64 }

func (c *clock) Now() time.Time          { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *clock) Advance(d time.Duration) { c.off.Add(int64(d)) }
func newJWT(t testing.TB, c *clock, keys ...Key) *JWT {
	t.Helper()
	j, err := NewJWT(Options{Keys: keys, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func sign(t testing.TB, m jwt.SigningMethod, key any, kid string, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestIssuedTokenVerifiesWithItsClaims(t *testing.T) {
	c := &clock{}
	j := newJWT(t, c, keyA)
	s, exp, err := j.Issue("6b0b878695ae717936e897ad", testSession)
	if err != nil {
		t.Fatal(err)
	}
	got, err := j.Verify(s)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if got.UserID != "6b0b878695ae717936e897ad" || !got.ExpiresAt.Equal(exp) || got.Session != testSession ||
		got.IssuedAt.After(c.Now()) || c.Now().Sub(got.IssuedAt) > 2*time.Second {
		t.Fatalf("claims = %+v, want user 6b0b878695ae717936e897ad, session %+v, exp %v, iat about now", got, testSession, exp)
	}
	if d := exp.Sub(c.Now()); d < DefaultTTL-2*time.Second || d > DefaultTTL {
		t.Fatalf("exp in %v, want ~%v", d, DefaultTTL)
	}
	var mc jwt.MapClaims
	tok, _, err := jwt.NewParser().ParseUnverified(s, &mc)
	if err != nil {
		t.Fatal(err)
	}
	if tok.Header["kid"] != "a" || tok.Header["alg"] != "HS256" {
		t.Fatalf("header = %v, want kid a, alg HS256", tok.Header)
	}
	if mc["sub"] != "users/6b0b878695ae717936e897ad" || mc["iss"] != DefaultIssuer || mc["iat"] == nil {
		t.Fatalf("claims = %v", mc)
	}
}

func TestVerifyRejectsForgedAndMalformedTokens(t *testing.T) {
	c := &clock{}
	j := newJWT(t, c, keyA)
	now := c.Now()
	good := jwt.MapClaims{"sub": "users/" + testUserID, "iss": DefaultIssuer, "iat": now.Unix(), "exp": now.Add(time.Minute).Unix(), "sid": "s1"}
	with := func(k string, v any) jwt.MapClaims {
		m := jwt.MapClaims{}
		for kk, vv := range good {
			m[kk] = vv
		}
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
		return m
	}
	valid := sign(t, jwt.SigningMethodHS256, keyA.Secret, "a", good)
	if _, err := j.Verify(valid); err != nil {
		t.Fatalf("control token refused: %v", err)
	}
	parts := strings.Split(valid, ".")
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tamperedPayload := base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"users/admin","iss":"wsmq-auth","exp":99999999999}`))
	cases := []struct {
		name, token string
	}{
		{"empty", ""},
		{"garbage", "not.a.jwt"},
		{"tampered payload", parts[0] + "." + tamperedPayload + "." + parts[2]},
		{"tampered signature", parts[0] + "." + parts[1] + "." + flipFirst(parts[2])},
		{"alg none", sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "a", good)},
		{"wrong key, known kid", sign(t, jwt.SigningMethodHS256, keyB.Secret, "a", good)},
		{"unknown kid", sign(t, jwt.SigningMethodHS256, keyA.Secret, "zz", good)},
		{"missing kid", sign(t, jwt.SigningMethodHS256, keyA.Secret, "", good)},
		{"HS384 with the right key", sign(t, jwt.SigningMethodHS384, keyA.Secret, "a", good)},
		{"HS512 with the right key", sign(t, jwt.SigningMethodHS512, keyA.Secret, "a", good)},
		{"RS256", sign(t, jwt.SigningMethodRS256, rsaKey, "a", good)},
		{"missing exp", sign(t, jwt.SigningMethodHS256, keyA.Secret, "a", with("exp", nil))},
		{"expired beyond leeway", sign(t, jwt.SigningMethodHS256, keyA.Secret, "a", with("exp", now.Add(-time.Minute).Unix()))},
		{"wrong issuer", sign(t, jwt.SigningMethodHS256, keyA.Secret, "a", with("iss", "someone-else"))},
		{"missing issuer", sign(t, jwt.SigningMethodHS256, keyA.Secret, "a", with("iss", nil))},
		{"issued in the future", sign(t, jwt.SigningMethodHS256, keyA.Secret, "a", with("iat", now.Add(time.Hour).Unix()))},
		{"sub without users/", sign(t, jwt.SigningMethodHS256, keyA.Secret, "a", with("sub", "u1"))},
		{"sub with bad id", sign(t, jwt.SigningMethodHS256, keyA.Secret, "a", with("sub", "users/../x"))},
		{"sub with an id not of the auth form", sign(t, jwt.SigningMethodHS256, keyA.Secret, "a", with("sub", "users/u1"))},
		{"missing sub", sign(t, jwt.SigningMethodHS256, keyA.Secret, "a", with("sub", nil))},
		{"missing sid (issued before sessions)", sign(t, jwt.SigningMethodHS256, keyA.Secret, "a", with("sid", nil))},
		{"sid too long", sign(t, jwt.SigningMethodHS256, keyA.Secret, "a", with("sid", strings.Repeat("s", 65)))},
		{"missing iat", sign(t, jwt.SigningMethodHS256, keyA.Secret, "a", with("iat", nil))},
		{"too long", valid + strings.Repeat("A", maxJWTLen)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if c, err := j.Verify(tc.token); !errors.Is(err, ErrInvalidToken) {
				t.Fatalf("Verify = %+v, %v; want ErrInvalidToken", c, err)
			}
		})
	}
}

func TestVerifyToleratesSmallClockSkew(t *testing.T) {
	c := &clock{}
	j := newJWT(t, c, keyA)
	s, _, err := j.Issue(testUserID, testSession)
	if err != nil {
		t.Fatal(err)
	}
	c.Advance(DefaultTTL + DefaultLeeway/2)
	if _, err := j.Verify(s); err != nil {
		t.Fatalf("token expired %v ago refused within leeway: %v", DefaultLeeway/2, err)
	}
	c.Advance(DefaultLeeway)
	if _, err := j.Verify(s); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("token expired beyond leeway accepted: %v", err)
	}
}

func TestKeyRotationKeepsOldTokensValidUntilExpiry(t *testing.T) {
	c := &clock{}
	old := newJWT(t, c, keyA)
	oldTok, _, err := old.Issue(testUserID, testSession)
	if err != nil {
		t.Fatal(err)
	}
	rotated := newJWT(t, c, keyA, keyB)
	if rotated.SigningKeyID() != "b" {
		t.Fatalf("signing kid = %q, want the newest, b", rotated.SigningKeyID())
	}
	if _, err := rotated.Verify(oldTok); err != nil {
		t.Fatalf("token of the old key refused after rotation: %v", err)
	}
	newTok, _, err := rotated.Issue(testUserID, testSession)
	if err != nil {
		t.Fatal(err)
	}
	tok, _, _ := jwt.NewParser().ParseUnverified(newTok, &jwt.MapClaims{})
	if tok.Header["kid"] != "b" {
		t.Fatalf("new token kid = %v, want b", tok.Header["kid"])
	}
	if _, err := old.Verify(newTok); err == nil {
		t.Fatal("a verifier without key b accepted a token signed with b")
	}
	c.Advance(DefaultTTL + DefaultLeeway + time.Second)
	if _, err := rotated.Verify(oldTok); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("old token accepted after its expiry: %v", err)
	}
	retired := newJWT(t, c, keyB)
	c.Advance(-(DefaultTTL + DefaultLeeway + time.Second))
	if _, err := retired.Verify(oldTok); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("token of a removed key accepted: %v", err)
	}
}

func TestNewJWTRefusesBadKeySets(t *testing.T) {
	for name, keys := range map[string][]Key{
		"none":          nil,
		"duplicate kid": {keyA, keyA},
		"bad kid":       {{ID: "a b", Secret: keyA.Secret}},
		"empty secret":  {{ID: "a"}},
	} {
		if _, err := NewJWT(Options{Keys: keys}); err == nil {
			t.Errorf("%s: NewJWT accepted %v", name, keys)
		}
	}
}

func TestAccessTokensAreRandomURLSafeAndHashed(t *testing.T) {
	tok1, h1 := NewAccessToken()
	tok2, h2 := NewAccessToken()
	if tok1 == tok2 || h1 == h2 {
		t.Fatal("two access tokens are equal")
	}
	if len(tok1) != 43 || strings.ContainsAny(tok1, "+/=") {
		t.Fatalf("token %d chars %q, want 43 unpadded base64url", len(tok1), tok1)
	}
	raw, _ := base64.RawURLEncoding.DecodeString(tok1)
	sum := sha256.Sum256(raw)
	if h1 != hex.EncodeToString(sum[:]) {
		t.Fatal("stored hash is not the SHA-256 of the token's bytes")
	}
	got, err := AccessTokenHash(tok1)
	if err != nil || got != h1 {
		t.Fatalf("AccessTokenHash = %q, %v; want %q", got, err, h1)
	}
	for _, bad := range []string{"", "short", tok1 + "A", tok1[:42] + "=", tok1[:42] + "+", strings.Repeat("ü", 21) + "A"} {
		if _, err := AccessTokenHash(bad); !errors.Is(err, ErrMalformedAccessToken) {
			t.Errorf("AccessTokenHash(%q) = %v, want ErrMalformedAccessToken", bad, err)
		}
	}
}

func TestKeyIDIsStableAndValid(t *testing.T) {
	id := KeyID(keyA.Secret)
	if id != KeyID(keyA.Secret) || id == KeyID(keyB.Secret) || len(id) != 8 || !ValidKeyID(id) {
		t.Fatalf("KeyID = %q", id)
	}
}

// FuzzVerifyToken feeds arbitrary strings to the token parsing path: the
// JWT verifier and the access-token decoder must never panic, and never
// accept what they did not issue.
func FuzzVerifyToken(f *testing.F) {
	c := &clock{}
	j := newJWT(f, c, keyA, keyB)
	valid, _, _ := j.Issue(testUserID, testSession)
	at, _ := NewAccessToken()
	for _, s := range []string{"", ".", "..", "a.b.c", valid, valid[:len(valid)-1], at,
		"eyJhbGciOiJub25lIiwia2lkIjoiYSJ9.eyJzdWIiOiJ1c2Vycy91MSJ9.",
		"eyJhbGciOiJIUzI1NiIsImtpZCI6eyJ4IjoxfX0.e30.AAAA"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		// Only a correctly signed token can verify, and the fuzzer cannot
		// forge an HMAC: any success must carry the one issued subject.
		if c, err := j.Verify(s); err == nil && c.UserID != testUserID {
			t.Fatalf("accepted a token it did not issue: %q -> %+v", s, c)
		}
		if h, err := AccessTokenHash(s); err == nil && len(h) != 64 {
			t.Fatalf("hash %q of %q", h, s)
		}
	})
}

func BenchmarkVerifyJWTParse(b *testing.B) {
	j := newJWT(b, &clock{}, keyA)
	s, _, err := j.Issue("6b0b878695ae717936e897ad", testSession)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	start := time.Now()
	for b.Loop() {
		if _, err := j.Verify(s); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "verifies/s")
}

// flipFirst changes the first base64url character, which carries six full
// bits of the signature (the last one may differ only in padding bits).
func flipFirst(sig string) string {
	c := byte('A')
	if sig[0] == 'A' {
		c = 'B'
	}
	return string(c) + sig[1:]
}

// testUserID has the form of the ids the auth service issues.
const testUserID = "6b0b878695ae717936e897ad"

var testSession = Session{ID: "6b0b878695ae717936e89700", Gen: 3}
