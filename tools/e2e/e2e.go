// Package e2e holds the client side of wsmq's end-to-end tests: log in
// over HTTP, hold a websocket to a gateway, read its frames. The tests in
// this directory run it against a stack started by tools/internal/supervisor; the
// wsmq-run smoke test against a stack started by `wsmq-run`.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gorilla/websocket"
)

// Session is what POST /v1/authenticate answers.
type Session struct {
	Success     bool   `json:"success"`
	Token       string `json:"token"`
	AccessToken string `json:"accessToken"`
	UserID      string `json:"userId"`
}

// Login authenticates userName at the gateway (http://host:port).
func Login(ctx context.Context, gatewayURL, userName, password string) (Session, error) {
	body, _ := json.Marshal(map[string]string{"userName": userName, "password": password})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, gatewayURL+"/v1/authenticate", bytes.NewReader(body))
	if err != nil {
		return Session{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return Session{}, err
	}
	defer func() { _ = res.Body.Close() }()
	b, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	if res.StatusCode != http.StatusOK {
		return Session{}, fmt.Errorf("login: %s: %s", res.Status, b)
	}
	var s Session
	if err := json.Unmarshal(b, &s); err != nil {
		return Session{}, fmt.Errorf("login: %w: %s", err, b)
	}
	if !s.Success || s.Token == "" || s.AccessToken == "" || s.UserID == "" {
		return Session{}, fmt.Errorf("login: incomplete answer %s", b)
	}
	return s, nil
}

// Frame is one server frame: a message (Queue, ID, Message, RC, Sent) or an
// event (Event, with Queue, Error, Token as the event has them).
type Frame struct {
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

// Conn is a websocket to a gateway; one goroutine (the test's) uses it.
type Conn struct {
	ws *websocket.Conn
}

// Dial opens a websocket to the gateway with the session's tokens in the
// x-token / x-access-token headers; ack is "" (auto) or "manual".
func Dial(ctx context.Context, gatewayURL string, s Session, ack string) (*Conn, error) {
	u := "ws" + strings.TrimPrefix(gatewayURL, "http") + "/ws"
	if ack != "" {
		u += "?ack=" + url.QueryEscape(ack)
	}
	h := http.Header{}
	h.Set("x-token", s.Token)
	h.Set("x-access-token", s.AccessToken)
	ws, res, err := websocket.DefaultDialer.DialContext(ctx, u, h)
	if err != nil {
		if res != nil {
			b, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
			_ = res.Body.Close()
			return nil, fmt.Errorf("websocket %s: %w (%s: %s)", u, err, res.Status, b)
		}
		return nil, fmt.Errorf("websocket %s: %w", u, err)
	}
	return &Conn{ws: ws}, nil
}

// Close closes the websocket with a normal closure.
func (c *Conn) Close() error {
	_ = c.ws.WriteControl(websocket.CloseMessage,
		websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	return c.ws.Close()
}

// Command sends a text command such as "/subscribe/<queue>".
func (c *Conn) Command(cmd string) error {
	_ = c.ws.SetWriteDeadline(time.Now().Add(5 * time.Second))
	return c.ws.WriteMessage(websocket.TextMessage, []byte(cmd))
}

// Next reads the next frame, waiting at most until deadline.
func (c *Conn) Next(deadline time.Time) (Frame, error) {
	_ = c.ws.SetReadDeadline(deadline)
	_, b, err := c.ws.ReadMessage()
	if err != nil {
		return Frame{}, err
	}
	var f Frame
	if err := json.Unmarshal(b, &f); err != nil {
		return Frame{}, fmt.Errorf("frame %q: %w", b, err)
	}
	f.Raw = string(b)
	return f, nil
}

// Subscribe subscribes to queue and waits for the "subscribed" event.
// Message frames that arrive first are returned.
func (c *Conn) Subscribe(queue string, timeout time.Duration) ([]Frame, error) {
	if err := c.Command("/subscribe/" + queue); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(timeout)
	var early []Frame
	for {
		f, err := c.Next(deadline)
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
func (c *Conn) Messages(n int, timeout time.Duration) ([]Frame, error) {
	deadline := time.Now().Add(timeout)
	var got []Frame
	for len(got) < n {
		f, err := c.Next(deadline)
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
