package server

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/wsmq/wsmq/pkg/rsmq"
	"github.com/wsmq/wsmq/services/gateway/internal/authclient"
	"github.com/wsmq/wsmq/services/gateway/protocol"
)

// DemoSender is the dev-only send helper of the demo page: an authenticated
// user may put a message on its own queue. Backends use the publisher.
type DemoSender struct {
	Auth   Auth
	Queues *rsmq.Client
	Queue  rsmq.QueueConfig // attributes of a queue created on first send
}

type demoSendRequest struct {
	Token       string `json:"token"`
	AccessToken string `json:"accessToken"`
	Message     string `json:"message"`
}

func (d DemoSender) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var req demoSendRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 70000)).Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, protocol.ErrorBody{Message: "body must be JSON {token, accessToken, message}"})
		return
	}
	id, err := d.Auth.Verify(r.Context(), req.Token, req.AccessToken)
	switch {
	case authclient.Refused(err):
		writeJSON(w, http.StatusUnauthorized, protocol.ErrorBody{Message: "invalid credentials"})
		return
	case err != nil:
		writeJSON(w, http.StatusServiceUnavailable, protocol.ErrorBody{Message: "authentication service unavailable"})
		return
	}
	msgID, err := d.send(r.Context(), id.UserID, req.Message)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, protocol.ErrorBody{Message: err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "id": msgID})
}

func (d DemoSender) send(ctx context.Context, queue, msg string) (string, error) {
	id, err := d.Queues.SendMessage(ctx, queue, msg, rsmq.QueueDefault)
	if errors.Is(err, rsmq.ErrQueueNotFound) {
		if _, err := d.Queues.EnsureQueue(ctx, queue, d.Queue); err != nil {
			return "", err
		}
		id, err = d.Queues.SendMessage(ctx, queue, msg, rsmq.QueueDefault)
	}
	return id, err
}
