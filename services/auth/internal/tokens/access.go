package tokens

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
)

// accessTokenBytes is the entropy of an access token: 256 bits.
const accessTokenBytes = 32

// AccessTokenLen is the length of an access token's text: 32 bytes in
// unpadded base64url.
var AccessTokenLen = base64.RawURLEncoding.EncodedLen(accessTokenBytes)

// ErrMalformedAccessToken is returned for a string that cannot be an access
// token; it is rejected without a database lookup.
var ErrMalformedAccessToken = errors.New("malformed access token")

// NewAccessToken returns a fresh access token (256 random bits, unpadded
// base64url) and the hash under which it is stored.
func NewAccessToken() (token, hash string) {
	b := make([]byte, accessTokenBytes)
	// crypto/rand.Read never returns an error (it crashes the program
	// instead) since Go 1.24.
	_, _ = rand.Read(b)
	token = base64.RawURLEncoding.EncodeToString(b)
	return token, hashAccessToken(b)
}

// AccessTokenHash checks the form of an access token and returns its stored
// hash: the hex SHA-256 of its 32 decoded bytes.
func AccessTokenHash(token string) (string, error) {
	if len(token) != AccessTokenLen {
		return "", ErrMalformedAccessToken
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(token)
	if err != nil || len(b) != accessTokenBytes {
		return "", ErrMalformedAccessToken
	}
	return hashAccessToken(b), nil
}

func hashAccessToken(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
