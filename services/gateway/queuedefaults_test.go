package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/wsmq/wsmq/pkg/rsmq"
)

// TestQueuesTheGatewayCreatesGetTheConfiguredQueueDefaults proves that
// WSMQ_QUEUE_* reach both paths on which the gateway creates a queue: a
// subscribe to a queue that does not exist, and the dev demo page's send.
// A queue that exists keeps its own attributes.
func TestQueuesTheGatewayCreatesGetTheConfiguredQueueDefaults(t *testing.T) {
	want := rsmq.QueueConfig{VT: 45, Delay: 3, MaxSize: 2048}
	if want == rsmq.DefaultQueueConfig() {
		t.Fatal("the configured attributes must differ from the defaults to prove anything")
	}
	s := newStack(t)
	gw := s.startGateway("WSMQ_DEV=1", "WSMQ_QUEUE_VT=45", "WSMQ_QUEUE_DELAY=3", "WSMQ_QUEUE_MAXSIZE=2048")
	alice := s.user(gw, "alice-attrs")
	c := dial(t, gw, alice, "")

	attrsOf := func(q string) rsmq.QueueConfig {
		a := s.attrs(q)
		return rsmq.QueueConfig{VT: a.VT, Delay: a.Delay, MaxSize: a.MaxSize}
	}

	// Subscribe to a queue nobody created.
	subscribed := alice.UserID + "-new"
	c.subscribe(subscribed)
	if got := attrsOf(subscribed); got != want {
		t.Errorf("queue created on subscribe: %+v, want the configured %+v", got, want)
	}

	// Subscribe to a queue a backend created with other attributes.
	existing := alice.UserID + "-backend"
	s.send(existing, "first")
	c.subscribe(existing)
	if got := attrsOf(existing); got != rsmq.DefaultQueueConfig() {
		t.Errorf("existing queue after subscribe: %+v, want its own %+v", got, rsmq.DefaultQueueConfig())
	}

	// The demo page's send to the user's own queue, which does not exist.
	bob := s.user(gw, "bob-attrs")
	body, err := json.Marshal(map[string]string{"token": bob.Token, "accessToken": bob.AccessToken, "message": "from the demo page"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := ctxWait()
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, gw.URL()+"/demo/send", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	var answer struct {
		Success bool   `json:"success"`
		ID      string `json:"id"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil || resp.StatusCode != http.StatusOK || !answer.Success || answer.ID == "" {
		t.Fatalf("demo send: %s %+v (%v)", resp.Status, answer, err)
	}
	if got := attrsOf(bob.UserID); got != want {
		t.Errorf("queue created by the demo send: %+v, want the configured %+v", got, want)
	}
	if a := s.attrs(bob.UserID); a.Msgs != 1 {
		t.Errorf("demo send left %d messages in %s, want 1", a.Msgs, bob.UserID)
	}
}
