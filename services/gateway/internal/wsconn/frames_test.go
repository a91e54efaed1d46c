package wsconn

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/wsmq/wsmq/pkg/rsmq"
	"github.com/wsmq/wsmq/services/gateway/protocol"
)

func TestMessageFrameIsJSONWithTheOriginalFieldNames(t *testing.T) {
	m := rsmq.Message{ID: "abc", Message: "he said \"hi\"\n\t\u2028<tag>&\x01é😀", RC: 3, Sent: 1730000000123}
	b := appendMessageFrame(nil, "q-1", &m)
	var got struct {
		Queue, ID, Message string
		RC, Sent           int64
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	if got.Queue != "q-1" || got.ID != "abc" || got.Message != m.Message || got.RC != 3 || got.Sent != m.Sent {
		t.Fatalf("decoded %+v from %s", got, b)
	}
}

func FuzzCommandAndFrames(f *testing.F) {
	for _, s := range []string{"/subscribe/q", "/ack/x", "\xff\xfe", "a\"b\\c\u2029", "/", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		verb, arg, ok := protocol.ParseCommand(s)
		if ok && "/"+verb+"/"+arg != s {
			t.Fatalf("ParseCommand(%q) lost input: %q %q", s, verb, arg)
		}
		b := protocol.AppendString(nil, s)
		var back string
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("AppendString(%q) = %s: not JSON: %v", s, b, err)
		}
		// Each invalid byte becomes one U+FFFD, as Node's decoder shows it.
		var want strings.Builder
		for i := 0; i < len(s); {
			r, n := utf8.DecodeRuneInString(s[i:])
			want.WriteRune(r)
			i += n
		}
		if back != want.String() {
			t.Fatalf("round trip of %q gave %q", s, back)
		}
		ev := (&protocol.ErrorEvent{Code: protocol.CodeBadRequest, Queue: s, Message: s}).AppendJSON(nil)
		if !json.Valid(ev) {
			t.Fatalf("error event with %q is not JSON: %s", s, ev)
		}
	})
}
