// Package protocol is the one definition of the gateway's client protocol:
// the text commands a client sends, the JSON frames the gateway answers
// with, the login endpoint's bodies and the names of the credentials. The
// gateway writes and parses with it, and so does every Go client.
package protocol

import "strings"

// Paths the gateway serves.
const (
	// WebsocketPath upgrades to a websocket ("/" does too).
	WebsocketPath = "/ws"
	// AuthenticatePath takes an AuthenticateRequest (POST).
	AuthenticatePath = "/v1/authenticate"
	// TicketPath exchanges credentials (headers or a TicketRequest body)
	// for a connect ticket (POST), answered with a TicketResponse.
	TicketPath = "/v1/ticket"
)

// Credential names, as tokens2 used them. Headers are preferred. Browsers,
// which cannot set headers on a websocket, POST them to TicketPath and
// connect with QueryTicket, or send them as subprotocols. The query
// parameters QueryToken and QueryAccessToken are refused outside dev mode
// (unless the gateway allows them): URLs end up in logs.
const (
	HeaderToken       = "x-token"        // the JWT
	HeaderAccessToken = "x-access-token" // the long-lived access token
	QueryTicket       = "ticket"         // a single-use connect ticket from TicketPath
	QueryToken        = "token"          // dev mode only, see above
	QueryAccessToken  = "accessToken"    // dev mode only, see above
	QueryAck          = "ack"            // the ack mode, AckAuto or AckManual
)

// Websocket subprotocols. A client that cannot set headers may offer, in
// Sec-WebSocket-Protocol, Subprotocol together with SubprotocolToken+<jwt>
// and/or SubprotocolAccessToken+<access token>; the gateway answers with
// Subprotocol alone, never echoing a credential.
const (
	Subprotocol            = "wsmq.v1"
	SubprotocolToken       = "wsmq.token."
	SubprotocolAccessToken = "wsmq.access-token."
)

// Subprotocols is the Sec-WebSocket-Protocol list carrying token and/or
// accessToken (empty ones are left out), Subprotocol first.
func Subprotocols(token, accessToken string) []string {
	p := []string{Subprotocol}
	if token != "" {
		p = append(p, SubprotocolToken+token)
	}
	if accessToken != "" {
		p = append(p, SubprotocolAccessToken+accessToken)
	}
	return p
}

// ParseSubprotocols reads the credentials from offered subprotocols; ok is
// whether Subprotocol itself was offered.
func ParseSubprotocols(offered []string) (token, accessToken string, ok bool) {
	for _, p := range offered {
		switch {
		case p == Subprotocol:
			ok = true
		case strings.HasPrefix(p, SubprotocolToken):
			token = p[len(SubprotocolToken):]
		case strings.HasPrefix(p, SubprotocolAccessToken):
			accessToken = p[len(SubprotocolAccessToken):]
		}
	}
	return token, accessToken, ok
}

// AckMode is how the gateway learns that a message may be deleted.
type AckMode string

// Ack modes.
const (
	// AckAuto deletes a message once the client's websocket stack has
	// confirmed it (the pong to a ping sent after its frame). The default.
	AckAuto AckMode = "auto"
	// AckManual deletes a message on the client's /ack/<id> command.
	AckManual AckMode = "manual"
)

// Event names: the "event" field of every frame that is not a message.
const (
	EventSubscribed   = "subscribed"
	EventUnsubscribed = "unsubscribed"
	EventToken        = "token"
	EventError        = "error"
	EventHello        = "hello" // the first frame of every connection
	EventPong         = "pong"  // the answer to /ping
)

// Error codes: the "error" field of an error event.
const (
	CodeBadRequest  = "bad_request" // malformed command, invalid queue name or id, not subscribed
	CodeForbidden   = "forbidden"   // the user may not use the queue
	CodeUnknownID   = "unknown_id"  // ack of an id not in flight on this connection
	CodeLimit       = "limit"       // too many subscriptions on the connection, or queues of the user
	CodeRate        = "rate"        // too many commands per second; sustained, the connection is closed with CloseRateLimited
	CodeUnavailable = "unavailable" // the queue store failed; try again
)

// Command verbs.
const (
	VerbSubscribe   = "subscribe"
	VerbUnsubscribe = "unsubscribe"
	VerbAck         = "ack"
)

// Ping is the application-level liveness command, answered with
// {"event":"pong"}: browsers never expose protocol pings to JavaScript.
const Ping = "/ping"

// Subscribe is the command that subscribes to queue.
func Subscribe(queue string) string { return "/" + VerbSubscribe + "/" + queue }

// Unsubscribe is the command that ends the subscription to queue.
func Unsubscribe(queue string) string { return "/" + VerbUnsubscribe + "/" + queue }

// Ack is the command that acknowledges (deletes) message id in manual mode.
func Ack(id string) string { return "/" + VerbAck + "/" + id }

// AppendAck appends Ack(id) to b, for clients that ack on a hot path.
func AppendAck(b []byte, id string) []byte {
	return append(append(b, "/"+VerbAck+"/"...), id...)
}

// ParseCommand splits "/verb/arg" for the known verbs. The argument is
// everything after the second slash, unchecked: the gateway validates
// queue names and ids itself.
func ParseCommand(cmd string) (verb, arg string, ok bool) {
	rest, found := strings.CutPrefix(cmd, "/")
	if !found {
		return "", "", false
	}
	verb, arg, found = strings.Cut(rest, "/")
	if !found {
		return "", "", false
	}
	switch verb {
	case VerbSubscribe, VerbUnsubscribe, VerbAck:
		return verb, arg, true
	}
	return "", "", false
}

// AuthenticateRequest is the body of POST /v1/authenticate.
type AuthenticateRequest struct {
	UserName string `json:"userName"`
	Password string `json:"password"`
}

// AuthenticateResponse is the answer to a successful login, tokens2's
// shape. Fields are in the order the gateway writes them.
type AuthenticateResponse struct {
	AccessToken string `json:"accessToken"`
	ExpiresAt   int64  `json:"expiresAt"` // the JWT's expiry, unix ms
	Success     bool   `json:"success"`
	Token       string `json:"token"`
	UserID      string `json:"userId"`
}

// TicketRequest is the optional JSON body of POST /v1/ticket, for clients
// that do not send the credential headers.
type TicketRequest struct {
	AccessToken string `json:"accessToken,omitempty"`
	Token       string `json:"token,omitempty"`
}

// TicketResponse is the answer to POST /v1/ticket: connect within
// ExpiresAt with GET /ws?ticket=<Ticket>; the ticket works once.
type TicketResponse struct {
	ExpiresAt int64  `json:"expiresAt"` // unix ms
	Success   bool   `json:"success"`
	Ticket    string `json:"ticket"`
	UserID    string `json:"userId"`
	// Token is set when the request's JWT was expired (or missing) and
	// its access token valid: the refreshed JWT, to use from now on, and
	// TokenExpiresAt its expiry (unix ms).
	Token          string `json:"token,omitempty"`
	TokenExpiresAt int64  `json:"tokenExpiresAt,omitempty"`
}

// ErrorBody is every refusal's JSON body: a failed login, and a websocket
// refused before the upgrade (401, 403, 429, 503...).
type ErrorBody struct {
	Message string `json:"message"`
	Success bool   `json:"success"` // always false
	// TicketPath is set on the 401 that refuses credentials in the URL: the
	// endpoint to get a connect ticket from instead.
	TicketPath string `json:"ticketPath,omitempty"`
}
