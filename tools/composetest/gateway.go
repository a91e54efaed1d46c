package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	gwclient "github.com/wsmq/wsmq/services/gateway/client"
	"github.com/wsmq/wsmq/services/gateway/protocol"
)

// frame is one server frame in the flat shape the scenario checks.
type frame struct {
	Event   string `json:"event"`
	Error   string `json:"error"`
	Token   string `json:"token"`
	Queue   string `json:"queue"`
	ID      string `json:"id"`
	Message string `json:"message"`
	RC      int    `json:"rc"`
	Sent    int64  `json:"sent"`
	Raw     string `json:"-"`
}

// gwConn is a websocket to the gateway (through the lb) for the scenario:
// raw commands and frames read with a deadline, over the gateway client.
type gwConn struct{ c *gwclient.Conn }

// dialGateway opens a websocket with the session's header credentials; ack
// is "" (auto) or "manual".
func dialGateway(ctx context.Context, gatewayURL string, s gwclient.Session, ack string) (*gwConn, error) {
	c, err := gwclient.Dial(ctx, gatewayURL, gwclient.Options{Token: s.Token, AccessToken: s.AccessToken, AckMode: protocol.AckMode(ack)})
	if err != nil {
		return nil, err
	}
	return &gwConn{c: c}, nil
}

// Close closes the websocket with a normal closure.
func (g *gwConn) Close() error { return g.c.Close() }

// Command sends a text command such as "/subscribe/<queue>".
func (g *gwConn) Command(cmd string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return g.c.WriteCommand(ctx, cmd)
}

// Next reads the next frame, waiting at most until deadline.
func (g *gwConn) Next(deadline time.Time) (frame, error) {
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	f, err := g.c.Next(ctx)
	var ee *gwclient.EventError
	if errors.As(err, &ee) {
		raw, _ := json.Marshal(protocol.ErrorEvent{Code: ee.Code, Queue: ee.Queue, ID: ee.ID, Message: ee.Message})
		return frame{Event: "error", Error: ee.Code, Queue: ee.Queue, ID: ee.ID, Message: ee.Message, Raw: string(raw)}, nil
	}
	if err != nil {
		return frame{}, err
	}
	raw := f.AppendJSON(nil)
	var out frame
	if err := json.Unmarshal(raw, &out); err != nil {
		return frame{}, fmt.Errorf("frame %q: %w", raw, err)
	}
	out.Raw = string(raw)
	return out, nil
}

// Subscribe subscribes to queue and waits for the "subscribed" event.
// Message frames that arrive first are returned.
func (g *gwConn) Subscribe(queue string, timeout time.Duration) ([]frame, error) {
	if err := g.Command(protocol.Subscribe(queue)); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(timeout)
	var early []frame
	for {
		f, err := g.Next(deadline)
		if err != nil {
			return early, fmt.Errorf("waiting for subscribed to %s: %w", queue, err)
		}
		switch {
		case f.Event == "subscribed" && f.Queue == queue:
			return early, nil
		case f.Event == "error":
			return early, fmt.Errorf("subscribe %s: %s", queue, f.Raw)
		case f.Event == "":
			early = append(early, f)
		}
	}
}

// Messages reads frames until n messages arrived (events are skipped) or
// timeout passes.
func (g *gwConn) Messages(n int, timeout time.Duration) ([]frame, error) {
	deadline := time.Now().Add(timeout)
	var got []frame
	for len(got) < n {
		f, err := g.Next(deadline)
		if err != nil {
			return got, fmt.Errorf("after %d of %d messages: %w", len(got), n, err)
		}
		if f.Event == "error" {
			return got, errors.New("error frame: " + f.Raw)
		}
		if f.Event == "" {
			got = append(got, f)
		}
	}
	return got, nil
}
