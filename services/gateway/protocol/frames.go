package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// Frame is one server frame: *Message, *Hello, *Pong, *Subscribed,
// *Unsubscribed, *Token, *ErrorEvent, or *UnknownEvent for an event this package does not know
// (a newer gateway). AppendJSON appends the frame's JSON, byte for byte as
// the gateway writes it.
type Frame interface {
	AppendJSON(b []byte) []byte
}

// Message is a message frame:
// {"queue":"q","id":"...","message":"...","rc":1,"sent":1730000000000}.
type Message struct {
	Queue   string `json:"queue"`
	ID      string `json:"id"`      // the RSMQ message id; /ack/<id> in manual mode
	Message string `json:"message"` // the body, as sent
	RC      int64  `json:"rc"`      // receive count: 1 on the first delivery
	Sent    int64  `json:"sent"`    // when it was sent, unix ms
}

// Hello is the first frame of every connection, before any token frame:
// how the connection behaves, so a client configures itself.
type Hello struct {
	AckMode           AckMode `json:"ackMode"`
	Prefetch          int     `json:"prefetch"`          // most messages in flight on the connection
	VisibilityTimeout int64   `json:"visibilityTimeout"` // ms a delivered, unacked message stays invisible
	PingInterval      int64   `json:"pingInterval"`      // ms: a client's recommended /ping period when idle
}

// Pong answers the /ping command.
type Pong struct{}

// Subscribed confirms /subscribe/<queue>; it precedes the queue's first message.
type Subscribed struct {
	Queue string `json:"queue"`
}

// Unsubscribed confirms /unsubscribe/<queue>.
type Unsubscribed struct {
	Queue string `json:"queue"`
}

// Token hands the client a fresh JWT (its own expired or is about to).
type Token struct {
	ExpiresAt int64  `json:"expiresAt"` // unix ms
	Token     string `json:"token"`
}

// ErrorEvent reports a refused command; the connection stays up.
type ErrorEvent struct {
	Code    string `json:"error"`           // one of the Code* constants
	Queue   string `json:"queue,omitempty"` // the queue the command named, if any
	ID      string `json:"id,omitempty"`    // the message id, for CodeUnknownID
	Message string `json:"message"`         // for humans
}

// UnknownEvent is an event frame with a name this package does not know.
type UnknownEvent struct {
	Event string
	Raw   []byte // the whole frame
}

// AppendJSON implements Frame. It allocates nothing beyond b's growth, so
// the gateway writes messages with it on its hot path.
func (m *Message) AppendJSON(b []byte) []byte {
	b = append(b, `{"queue":`...)
	b = AppendString(b, m.Queue)
	b = append(b, `,"id":`...)
	b = AppendString(b, m.ID)
	b = append(b, `,"message":`...)
	b = AppendString(b, m.Message)
	b = append(b, `,"rc":`...)
	b = strconv.AppendInt(b, m.RC, 10)
	b = append(b, `,"sent":`...)
	b = strconv.AppendInt(b, m.Sent, 10)
	return append(b, '}')
}

// AppendJSON implements Frame.
func (e *Hello) AppendJSON(b []byte) []byte {
	b = append(b, `{"event":"`+EventHello+`","ackMode":`...)
	b = AppendString(b, string(e.AckMode))
	b = append(b, `,"prefetch":`...)
	b = strconv.AppendInt(b, int64(e.Prefetch), 10)
	b = append(b, `,"visibilityTimeout":`...)
	b = strconv.AppendInt(b, e.VisibilityTimeout, 10)
	b = append(b, `,"pingInterval":`...)
	b = strconv.AppendInt(b, e.PingInterval, 10)
	return append(b, '}')
}

// AppendJSON implements Frame.
func (*Pong) AppendJSON(b []byte) []byte { return append(b, `{"event":"`+EventPong+`"}`...) }

// AppendJSON implements Frame.
func (e *Subscribed) AppendJSON(b []byte) []byte {
	return appendQueueEvent(b, EventSubscribed, e.Queue)
}

// AppendJSON implements Frame.
func (e *Unsubscribed) AppendJSON(b []byte) []byte {
	return appendQueueEvent(b, EventUnsubscribed, e.Queue)
}

func appendQueueEvent(b []byte, event, queue string) []byte {
	b = append(b, `{"event":`...)
	b = AppendString(b, event)
	b = append(b, `,"queue":`...)
	b = AppendString(b, queue)
	return append(b, '}')
}

// AppendJSON implements Frame.
func (e *Token) AppendJSON(b []byte) []byte {
	b = append(b, `{"event":"`+EventToken+`","expiresAt":`...)
	b = strconv.AppendInt(b, e.ExpiresAt, 10)
	b = append(b, `,"token":`...)
	b = AppendString(b, e.Token)
	return append(b, '}')
}

// AppendJSON implements Frame.
func (e *ErrorEvent) AppendJSON(b []byte) []byte {
	b = append(b, `{"event":"`+EventError+`","error":`...)
	b = AppendString(b, e.Code)
	if e.Queue != "" {
		b = append(b, `,"queue":`...)
		b = AppendString(b, e.Queue)
	}
	if e.ID != "" {
		b = append(b, `,"id":`...)
		b = AppendString(b, e.ID)
	}
	b = append(b, `,"message":`...)
	b = AppendString(b, e.Message)
	return append(b, '}')
}

// Error describes the refusal; it lets an *ErrorEvent be returned as an error.
func (e *ErrorEvent) Error() string {
	s := "gateway: " + e.Code
	if e.Queue != "" {
		s += " (queue " + e.Queue + ")"
	}
	if e.ID != "" {
		s += " (id " + e.ID + ")"
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// AppendJSON implements Frame: the frame as received.
func (e *UnknownEvent) AppendJSON(b []byte) []byte { return append(b, e.Raw...) }

// ErrMalformedFrame is wrapped by DecodeFrame's errors.
var ErrMalformedFrame = errors.New("malformed gateway frame")

// wireFrame is the union of every frame's fields.
type wireFrame struct {
	Event     *string `json:"event"`
	Error     string  `json:"error"`
	Queue     string  `json:"queue"`
	ID        string  `json:"id"`
	Message   string  `json:"message"`
	RC        int64   `json:"rc"`
	Sent      int64   `json:"sent"`
	Token     string  `json:"token"`
	ExpiresAt int64   `json:"expiresAt"`

	AckMode           AckMode `json:"ackMode"`
	Prefetch          int     `json:"prefetch"`
	VisibilityTimeout int64   `json:"visibilityTimeout"`
	PingInterval      int64   `json:"pingInterval"`
}

// DecodeFrame decodes one server frame. A JSON object without an "event"
// field is a message. Message frames in the gateway's own layout take a
// fast path that does not go through encoding/json.
func DecodeFrame(b []byte) (Frame, error) {
	if m, ok := decodeMessageFast(b); ok {
		return m, nil
	}
	var w wireFrame
	if err := json.Unmarshal(b, &w); err != nil {
		return nil, fmt.Errorf("%w: %w: %.200q", ErrMalformedFrame, err, b)
	}
	if bytes.HasPrefix(bytes.TrimLeft(b, " \t\r\n"), []byte("null")) {
		return nil, fmt.Errorf("%w: null: %.200q", ErrMalformedFrame, b)
	}
	if w.Event == nil {
		return &Message{Queue: w.Queue, ID: w.ID, Message: w.Message, RC: w.RC, Sent: w.Sent}, nil
	}
	switch *w.Event {
	case EventSubscribed:
		return &Subscribed{Queue: w.Queue}, nil
	case EventUnsubscribed:
		return &Unsubscribed{Queue: w.Queue}, nil
	case EventToken:
		return &Token{Token: w.Token, ExpiresAt: w.ExpiresAt}, nil
	case EventHello:
		return &Hello{AckMode: w.AckMode, Prefetch: w.Prefetch, VisibilityTimeout: w.VisibilityTimeout, PingInterval: w.PingInterval}, nil
	case EventPong:
		return &Pong{}, nil
	case EventError:
		return &ErrorEvent{Code: w.Error, Queue: w.Queue, ID: w.ID, Message: w.Message}, nil
	}
	return &UnknownEvent{Event: *w.Event, Raw: bytes.Clone(b)}, nil
}

// decodeMessageFast parses exactly the layout Message.AppendJSON writes,
// with strings free of escapes; anything else is left to encoding/json.
func decodeMessageFast(b []byte) (*Message, bool) {
	var m Message
	var ok bool
	if b, ok = cutLiteral(b, `{"queue":`); !ok {
		return nil, false
	}
	if m.Queue, b, ok = cutString(b); !ok {
		return nil, false
	}
	if b, ok = cutLiteral(b, `,"id":`); !ok {
		return nil, false
	}
	if m.ID, b, ok = cutString(b); !ok {
		return nil, false
	}
	if b, ok = cutLiteral(b, `,"message":`); !ok {
		return nil, false
	}
	if m.Message, b, ok = cutString(b); !ok {
		return nil, false
	}
	if b, ok = cutLiteral(b, `,"rc":`); !ok {
		return nil, false
	}
	if m.RC, b, ok = cutInt(b); !ok {
		return nil, false
	}
	if b, ok = cutLiteral(b, `,"sent":`); !ok {
		return nil, false
	}
	if m.Sent, b, ok = cutInt(b); !ok {
		return nil, false
	}
	if string(b) != "}" {
		return nil, false
	}
	return &m, true
}

func cutLiteral(b []byte, lit string) ([]byte, bool) {
	if len(b) < len(lit) || string(b[:len(lit)]) != lit {
		return nil, false
	}
	return b[len(lit):], true
}

// cutString reads a JSON string without escapes or control characters,
// in valid UTF-8.
func cutString(b []byte) (string, []byte, bool) {
	if len(b) == 0 || b[0] != '"' {
		return "", nil, false
	}
	ascii := true
	for i := 1; i < len(b); i++ {
		c := b[i]
		switch {
		case c == '"':
			s := b[1:i]
			if !ascii && !utf8.Valid(s) {
				return "", nil, false
			}
			return string(s), b[i+1:], true
		case c == '\\' || c < 0x20:
			return "", nil, false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return "", nil, false
}

// cutInt reads a JSON integer: an optional minus, no leading zeros.
func cutInt(b []byte) (int64, []byte, bool) {
	i := 0
	if i < len(b) && b[i] == '-' {
		i++
	}
	start := i
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	if i == start || (b[start] == '0' && i-start > 1) {
		return 0, nil, false
	}
	n, err := strconv.ParseInt(string(b[:i]), 10, 64)
	if err != nil {
		return 0, nil, false
	}
	return n, b[i:], true
}

const hex = "0123456789abcdef"

// AppendString appends s as a JSON string, as the gateway writes every
// string. Invalid UTF-8 becomes U+FFFD, as Node's decoder would show it;
// U+2028/2029 are escaped for JavaScript.
func AppendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
