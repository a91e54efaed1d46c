package protocol

// Close codes: the one table of the websocket close codes the gateway
// sends, and what a client does on each (README.md, "Close codes"). The
// reason text is for humans; clients decide on the code alone.
const (
	// CloseGoingAway (1001): the gateway is shutting down. Reconnect,
	// after a random spread (every client of the gateway gets it at once).
	CloseGoingAway = 1001
	// CloseInternal (1011): the gateway failed writing to the socket.
	// Reconnect with backoff.
	CloseInternal = 1011
	// CloseRestart (1012): the gateway is restarting. Reconnect after a
	// random spread.
	CloseRestart = 1012
	// CloseTryAgainLater (1013): overloaded. Reconnect after a random spread.
	CloseTryAgainLater = 1013
	// CloseUnauthorized (4001): the credentials were revoked or expired.
	// Do not reconnect with the same credentials.
	CloseUnauthorized = 4001
	// CloseForbidden (4003): the user may not do what the connection was
	// doing. Do not reconnect.
	CloseForbidden = 4003
	// CloseSlowConsumer (4008): the client did not read its frames or did
	// not answer pings in time. Reconnect with backoff.
	CloseSlowConsumer = 4008
	// CloseRateLimited (4029): the client flooded commands. Reconnect
	// later (backoff, never at once).
	CloseRateLimited = 4029
)

// CloseAction is what a client does when the gateway closed with a code.
type CloseAction int

// Close actions.
const (
	// Reconnect with exponential backoff.
	ActionRetry CloseAction = iota
	// ActionRetrySpread reconnects after a random delay spread over the
	// restart window, so a gateway's clients do not all come back at once.
	ActionRetrySpread
	// ActionRetryLater reconnects only after at least the longest backoff
	// step.
	ActionRetryLater
	// ActionStop never reconnects with the same credentials.
	ActionStop
)

// String names the action.
func (a CloseAction) String() string {
	switch a {
	case ActionRetry:
		return "retry"
	case ActionRetrySpread:
		return "retry-spread"
	case ActionRetryLater:
		return "retry-later"
	case ActionStop:
		return "stop"
	}
	return "unknown"
}

// ActionFor is the client's action on close code: the decision table of
// every SDK. Codes not in the table (1000, 1006, 1009...) retry with
// backoff.
func ActionFor(code int) CloseAction {
	switch code {
	case CloseUnauthorized, CloseForbidden:
		return ActionStop
	case CloseRateLimited:
		return ActionRetryLater
	case CloseGoingAway, CloseRestart, CloseTryAgainLater:
		return ActionRetrySpread
	}
	return ActionRetry
}
