// Package client is the Go client of the wsmq gateway: Login over HTTP, then
// Dial a websocket, Subscribe to queues and read typed frames with Next.
//
// A Conn owns one reader goroutine, which answers the gateway's pings (in
// auto ack mode that pong is what lets the gateway delete a message) and
// hands frames to Next through a bounded buffer: a caller that stops
// calling Next stops the reader, and the gateway, seeing no pong, stops
// sending. Writes are serialised, so a Conn is safe for concurrent use.
//
// A Conn does not reconnect: when the socket ends, Next returns why. The
// reconnecting client is Client (New, Subscribe, Run): credentials from a
// provider before every attempt, resubscription, handlers off the read
// loop, acks only on the delivering connection, dedupe of redeliveries,
// full-jitter backoff and the close-code rules of protocol.ActionFor.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/wsmq/wsmq/services/gateway/protocol"
)

// Sentinel errors a *StatusError matches with errors.Is.
var (
	ErrUnauthorized = errors.New("gateway: credentials refused")     // HTTP 401
	ErrForbidden    = errors.New("gateway: origin refused")          // HTTP 403
	ErrUnavailable  = errors.New("gateway: temporarily unavailable") // HTTP 503: auth down, draining
)

// StatusError is an HTTP refusal: of a login, or of a websocket before the
// upgrade. errors.Is matches ErrUnauthorized, ErrForbidden and
// ErrUnavailable by status code.
type StatusError struct {
	StatusCode int
	Message    string // the gateway's ErrorBody message, or the raw body
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("gateway: HTTP %d %s: %s", e.StatusCode, http.StatusText(e.StatusCode), e.Message)
}

// Is reports whether target is the sentinel for e's status code.
func (e *StatusError) Is(target error) bool {
	switch e.StatusCode {
	case http.StatusUnauthorized:
		return target == ErrUnauthorized
	case http.StatusForbidden:
		return target == ErrForbidden
	case http.StatusServiceUnavailable:
		return target == ErrUnavailable
	}
	return false
}

// statusError reads res's ErrorBody (or raw body) into a *StatusError.
func statusError(res *http.Response) *StatusError {
	raw, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
	var body protocol.ErrorBody
	msg := strings.TrimSpace(string(raw))
	if json.Unmarshal(raw, &body) == nil && body.Message != "" {
		msg = body.Message
	}
	return &StatusError{StatusCode: res.StatusCode, Message: msg}
}

// Session is a successful login: the tokens to Dial with.
type Session struct {
	UserID      string // also the name of the user's own queue
	Token       string // the JWT
	AccessToken string // long-lived, revocable
	ExpiresAt   int64  // the JWT's expiry, unix ms
}

// Login authenticates user at the gateway baseURL (http://host:port) with
// POST /v1/authenticate. A refusal is a *StatusError (ErrUnauthorized for
// a wrong password).
func Login(ctx context.Context, baseURL, user, password string) (Session, error) {
	body, err := json.Marshal(protocol.AuthenticateRequest{UserName: user, Password: password})
	if err != nil {
		return Session{}, fmt.Errorf("login: %w", err)
	}
	u := strings.TrimSuffix(baseURL, "/") + protocol.AuthenticatePath
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return Session{}, fmt.Errorf("login: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return Session{}, fmt.Errorf("login: %w", err)
	}
	defer func() { _ = res.Body.Close() }()
	if res.StatusCode != http.StatusOK {
		return Session{}, fmt.Errorf("login %s: %w", user, statusError(res))
	}
	var ans protocol.AuthenticateResponse
	if err := json.NewDecoder(io.LimitReader(res.Body, 64<<10)).Decode(&ans); err != nil {
		return Session{}, fmt.Errorf("login: decode the answer: %w", err)
	}
	if !ans.Success || ans.Token == "" || ans.AccessToken == "" || ans.UserID == "" {
		return Session{}, fmt.Errorf("login: incomplete answer (success %v, user id %q)", ans.Success, ans.UserID)
	}
	return Session{UserID: ans.UserID, Token: ans.Token, AccessToken: ans.AccessToken, ExpiresAt: ans.ExpiresAt}, nil
}

// Ticket exchanges credentials (token and/or accessToken) for a single-use
// connect ticket at the gateway baseURL (POST /v1/ticket, credentials in
// the x-token / x-access-token headers), to Dial with Options.Ticket
// within its expiry (unix ms). A refusal is a *StatusError.
func Ticket(ctx context.Context, baseURL, token, accessToken string) (ticket string, expiresAt int64, err error) {
	ans, err := TicketWithToken(ctx, baseURL, token, accessToken)
	return ans.Ticket, ans.ExpiresAt, err
}

// TicketWithToken is Ticket returning the whole answer: with an expired
// (or no) JWT and a valid access token, ans.Token is the refreshed JWT to
// use from now on. A refusal is a *StatusError (401, 429 with the wait in
// its message, 503).
func TicketWithToken(ctx context.Context, baseURL, token, accessToken string) (ans protocol.TicketResponse, err error) {
	u := strings.TrimSuffix(baseURL, "/") + protocol.TicketPath
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, nil)
	if err != nil {
		return ans, fmt.Errorf("ticket: %w", err)
	}
	if token != "" {
		req.Header.Set(protocol.HeaderToken, token)
	}
	if accessToken != "" {
		req.Header.Set(protocol.HeaderAccessToken, accessToken)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return ans, fmt.Errorf("ticket: %w", err)
	}
	defer func() { _ = res.Body.Close() }()
	if res.StatusCode != http.StatusOK {
		return ans, fmt.Errorf("ticket: %w", statusError(res))
	}
	if err := json.NewDecoder(io.LimitReader(res.Body, 64<<10)).Decode(&ans); err != nil {
		return ans, fmt.Errorf("ticket: decode the answer: %w", err)
	}
	if !ans.Success || ans.Ticket == "" {
		return ans, fmt.Errorf("ticket: incomplete answer (success %v)", ans.Success)
	}
	return ans, nil
}
