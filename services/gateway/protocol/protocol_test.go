package protocol

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseCommandSplitsKnownVerbsOnly(t *testing.T) {
	for _, tc := range []struct {
		in        string
		verb, arg string
		ok        bool
	}{
		{"/subscribe/q1", "subscribe", "q1", true},
		{"/unsubscribe/u-x", "unsubscribe", "u-x", true},
		{"/ack/abc", "ack", "abc", true},
		{"/subscribe/", "subscribe", "", true},
		{"/subscribe/a/b", "subscribe", "a/b", true},
		{"subscribe/q", "", "", false},
		{"/subscribe", "", "", false},
		{"/publish/q", "", "", false},
		{"", "", "", false},
	} {
		verb, arg, ok := ParseCommand(tc.in)
		if verb != tc.verb || arg != tc.arg || ok != tc.ok {
			t.Errorf("ParseCommand(%q) = %q, %q, %v; want %q, %q, %v", tc.in, verb, arg, ok, tc.verb, tc.arg, tc.ok)
		}
	}
}

func TestCommandBuildersRoundTripThroughParseCommand(t *testing.T) {
	for _, tc := range []struct {
		cmd, verb, arg string
	}{
		{Subscribe("u1-news"), VerbSubscribe, "u1-news"},
		{Unsubscribe("u1"), VerbUnsubscribe, "u1"},
		{Ack("abc123"), VerbAck, "abc123"},
		{string(AppendAck([]byte("junk"), "x1")[4:]), VerbAck, "x1"},
	} {
		verb, arg, ok := ParseCommand(tc.cmd)
		if !ok || verb != tc.verb || arg != tc.arg {
			t.Errorf("ParseCommand(%q) = %q %q %v, want %q %q", tc.cmd, verb, arg, ok, tc.verb, tc.arg)
		}
	}
	if got := Subscribe("q"); got != "/subscribe/q" {
		t.Errorf("Subscribe(q) = %q", got)
	}
}

// TestFramesKeepTheGatewaysExactBytes pins the wire format: clients in
// other languages parse these bytes.
func TestFramesKeepTheGatewaysExactBytes(t *testing.T) {
	for _, tc := range []struct {
		f    Frame
		want string
	}{
		{&Message{Queue: "q", ID: "id1", Message: "hi", RC: 1, Sent: 1730000000000},
			`{"queue":"q","id":"id1","message":"hi","rc":1,"sent":1730000000000}`},
		{&Subscribed{Queue: "q"}, `{"event":"subscribed","queue":"q"}`},
		{&Unsubscribed{Queue: "q"}, `{"event":"unsubscribed","queue":"q"}`},
		{&Token{Token: "a.b.c", ExpiresAt: 17}, `{"event":"token","expiresAt":17,"token":"a.b.c"}`},
		{&Hello{AckMode: AckManual, Prefetch: 256, VisibilityTimeout: 30000, PingInterval: 25000},
			`{"event":"hello","ackMode":"manual","prefetch":256,"visibilityTimeout":30000,"pingInterval":25000}`},
		{&Pong{}, `{"event":"pong"}`},
		{&ErrorEvent{Code: CodeBadRequest, Message: "no"}, `{"event":"error","error":"bad_request","message":"no"}`},
		{&ErrorEvent{Code: CodeForbidden, Queue: "x", Message: "no"}, `{"event":"error","error":"forbidden","queue":"x","message":"no"}`},
		{&ErrorEvent{Code: CodeUnknownID, ID: "i", Message: "no"}, `{"event":"error","error":"unknown_id","id":"i","message":"no"}`},
	} {
		if got := string(tc.f.AppendJSON(nil)); got != tc.want {
			t.Errorf("%T: %s, want %s", tc.f, got, tc.want)
		}
		// encoding/json agrees with the hand-written encoders.
		if _, ok := tc.f.(*Message); !ok {
			continue
		}
		std, _ := json.Marshal(tc.f)
		if string(std) != tc.want {
			t.Errorf("json.Marshal(%T) = %s, want %s", tc.f, std, tc.want)
		}
	}
	// The login bodies: field order as the gateway wrote them before.
	b, _ := json.Marshal(AuthenticateResponse{Success: true, Token: "t", AccessToken: "a", UserID: "u", ExpiresAt: 5})
	if string(b) != `{"accessToken":"a","expiresAt":5,"success":true,"token":"t","userId":"u"}` {
		t.Errorf("AuthenticateResponse: %s", b)
	}
	b, _ = json.Marshal(ErrorBody{Message: "m"})
	if string(b) != `{"message":"m","success":false}` {
		t.Errorf("ErrorBody: %s", b)
	}
}

func TestDecodeFrameTellsFramesApart(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want Frame
	}{
		{"message in the gateway's layout", `{"queue":"q","id":"i","message":"hé","rc":2,"sent":9}`,
			&Message{Queue: "q", ID: "i", Message: "hé", RC: 2, Sent: 9}},
		{"message with escapes", `{"queue":"q","id":"i","message":"a\"b\n\u2028","rc":1,"sent":-1}`,
			&Message{Queue: "q", ID: "i", Message: "a\"b\n\u2028", RC: 1, Sent: -1}},
		{"message, other field order and spaces", ` { "rc": 3, "id": "i", "message": "m", "queue": "q", "sent": 4 } `,
			&Message{Queue: "q", ID: "i", Message: "m", RC: 3, Sent: 4}},
		{"subscribed", `{"event":"subscribed","queue":"q"}`, &Subscribed{Queue: "q"}},
		{"unsubscribed", `{"event":"unsubscribed","queue":"q"}`, &Unsubscribed{Queue: "q"}},
		{"token", `{"event":"token","expiresAt":17,"token":"a.b.c"}`, &Token{Token: "a.b.c", ExpiresAt: 17}},
		{"hello", `{"event":"hello","ackMode":"auto","prefetch":8,"visibilityTimeout":5,"pingInterval":6}`,
			&Hello{AckMode: AckAuto, Prefetch: 8, VisibilityTimeout: 5, PingInterval: 6}},
		{"pong", `{"event":"pong"}`, &Pong{}},
		{"error with queue", `{"event":"error","error":"forbidden","queue":"x","message":"m"}`,
			&ErrorEvent{Code: CodeForbidden, Queue: "x", Message: "m"}},
		{"error with id", `{"event":"error","error":"unknown_id","id":"i","message":"m"}`,
			&ErrorEvent{Code: CodeUnknownID, ID: "i", Message: "m"}},
		{"unknown event", `{"event":"presence","who":"u"}`,
			&UnknownEvent{Event: "presence", Raw: []byte(`{"event":"presence","who":"u"}`)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DecodeFrame([]byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("DecodeFrame(%s) = %#v, want %#v", tc.in, got, tc.want)
			}
		})
	}
}

func TestDecodeFrameRejectsWhatIsNotAFrame(t *testing.T) {
	for _, in := range []string{``, `null`, `[]`, `"x"`, `{"queue":`, `{"rc":"1"}`, `{"rc":1.5}`, `{"event":1}`, "\xff"} {
		if f, err := DecodeFrame([]byte(in)); !errors.Is(err, ErrMalformedFrame) {
			t.Errorf("DecodeFrame(%q) = %#v, %v; want ErrMalformedFrame", in, f, err)
		}
	}
}

func TestErrorEventIsAnError(t *testing.T) {
	var err error = &ErrorEvent{Code: CodeForbidden, Queue: "q", Message: "not yours"}
	if got := err.Error(); got != "gateway: forbidden (queue q): not yours" {
		t.Fatalf("Error() = %q", got)
	}
}

func TestMessageFrameEscapesAsNodeShowsIt(t *testing.T) {
	m := Message{Queue: "q-1", ID: "abc", Message: "he said \"hi\"\n\t\u2028<tag>&\x01é😀\xff", RC: 3, Sent: 1730000000123}
	b := m.AppendJSON(nil)
	var got Message
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	want := m
	want.Message = strings.ToValidUTF8(m.Message, "\ufffd")
	if got != want {
		t.Fatalf("decoded %+v from %s", got, b)
	}
	if !strings.Contains(string(b), `\u2028`) {
		t.Fatalf("U+2028 not escaped for JavaScript: %s", b)
	}
}

func FuzzDecodeFrame(f *testing.F) {
	for _, s := range []string{
		`{"queue":"q","id":"i","message":"m","rc":1,"sent":2}`,
		`{"queue":"q","id":"i","message":"\u00e9","rc":01,"sent":2}`,
		`{"queue":"q","id":"i","message":"` + "\xff" + `","rc":1,"sent":2}`,
		`{"event":"error","error":"forbidden","queue":"x","message":"m"}`,
		`{"event":"token","expiresAt":1,"token":"t"}`,
		`{"event":"x"}`, `null`, `{}`, `[1]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := DecodeFrame(b)
		// The fast path must agree with encoding/json.
		if m, ok := decodeMessageFast(b); ok {
			var std Message
			if err := json.Unmarshal(b, &std); err != nil {
				t.Fatalf("fast path accepted %q, encoding/json: %v", b, err)
			}
			if *m != std {
				t.Fatalf("fast path %+v, encoding/json %+v for %q", *m, std, b)
			}
		}
		if err != nil {
			if !errors.Is(err, ErrMalformedFrame) {
				t.Fatalf("error %v does not wrap ErrMalformedFrame", err)
			}
			return
		}
		if _, unknown := fr.(*UnknownEvent); unknown {
			return
		}
		// What the gateway would write for it decodes to the same frame.
		out := fr.AppendJSON(nil)
		if !json.Valid(out) {
			t.Fatalf("AppendJSON of %#v is not JSON: %s", fr, out)
		}
		back, err := DecodeFrame(out)
		if err != nil {
			t.Fatalf("re-decoding %s: %v", out, err)
		}
		if !reflect.DeepEqual(fr, back) {
			t.Fatalf("round trip %#v -> %s -> %#v", fr, out, back)
		}
	})
}

func TestSubprotocolsCarryCredentialsAndParseBack(t *testing.T) {
	p := Subprotocols("h.p.s", "acc-_1")
	if want := []string{"wsmq.v1", "wsmq.token.h.p.s", "wsmq.access-token.acc-_1"}; strings.Join(p, " ") != strings.Join(want, " ") {
		t.Fatalf("Subprotocols = %q, want %q", p, want)
	}
	tok, acc, ok := ParseSubprotocols(p)
	if tok != "h.p.s" || acc != "acc-_1" || !ok {
		t.Fatalf("ParseSubprotocols = %q %q %v", tok, acc, ok)
	}
	if _, _, ok := ParseSubprotocols([]string{"wsmq.token.x"}); ok {
		t.Fatal("credentials without wsmq.v1 reported as offering wsmq.v1")
	}
	if got := Subprotocols("", ""); len(got) != 1 || got[0] != Subprotocol {
		t.Fatalf("Subprotocols without credentials = %q", got)
	}
}

func TestActionForGivesEachCloseCodeItsOneAction(t *testing.T) {
	for code, want := range map[int]CloseAction{
		CloseUnauthorized: ActionStop, CloseForbidden: ActionStop,
		CloseRateLimited:  ActionRetryLater,
		CloseSlowConsumer: ActionRetry, CloseInternal: ActionRetry, 1000: ActionRetry, 1006: ActionRetry,
		CloseGoingAway: ActionRetrySpread, CloseRestart: ActionRetrySpread, CloseTryAgainLater: ActionRetrySpread,
	} {
		if got := ActionFor(code); got != want {
			t.Errorf("ActionFor(%d) = %v, want %v", code, got, want)
		}
	}
}
