package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	gwclient "github.com/wsmq/wsmq/services/gateway/client"
	"github.com/wsmq/wsmq/services/gateway/protocol"
)

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

// Next reads the next frame, waiting at most until deadline. An error
// event is returned as a *protocol.ErrorEvent frame, not as an error: the
// connection stays up.
func (g *gwConn) Next(deadline time.Time) (protocol.Frame, error) {
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	f, err := g.c.Next(ctx)
	var ee *gwclient.EventError
	if errors.As(err, &ee) {
		return &protocol.ErrorEvent{Code: ee.Code, Queue: ee.Queue, ID: ee.ID, Message: ee.Message}, nil
	}
	return f, err
}

// Ack acknowledges message id (manual ack mode).
func (g *gwConn) Ack(id string) error { return g.Command(protocol.Ack(id)) }

// raw is a frame's JSON as the gateway writes it, for error texts.
func raw(f protocol.Frame) string { return string(f.AppendJSON(nil)) }

// Subscribe subscribes to queue and waits for the "subscribed" event.
// Message frames that arrive first are returned.
func (g *gwConn) Subscribe(queue string, timeout time.Duration) ([]*protocol.Message, error) {
	if err := g.Command(protocol.Subscribe(queue)); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(timeout)
	var early []*protocol.Message
	for {
		f, err := g.Next(deadline)
		if err != nil {
			return early, fmt.Errorf("waiting for subscribed to %s: %w", queue, err)
		}
		switch f := f.(type) {
		case *protocol.Subscribed:
			if f.Queue == queue {
				return early, nil
			}
		case *protocol.ErrorEvent:
			return early, fmt.Errorf("subscribe %s: %s", queue, raw(f))
		case *protocol.Message:
			early = append(early, f)
		}
	}
}

// Messages reads frames until n messages arrived (events are skipped) or
// timeout passes.
func (g *gwConn) Messages(n int, timeout time.Duration) ([]*protocol.Message, error) {
	deadline := time.Now().Add(timeout)
	var got []*protocol.Message
	for len(got) < n {
		f, err := g.Next(deadline)
		if err != nil {
			return got, fmt.Errorf("after %d of %d messages: %w", len(got), n, err)
		}
		switch f := f.(type) {
		case *protocol.ErrorEvent:
			return got, errors.New("error frame: " + raw(f))
		case *protocol.Message:
			got = append(got, f)
		}
	}
	return got, nil
}
