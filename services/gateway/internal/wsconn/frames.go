package wsconn

import (
	"strconv"
	"unicode/utf8"

	"github.com/wsmq/wsmq/pkg/rsmq"
)

// appendMessageFrame appends the JSON message frame
// {"queue":..,"id":..,"message":..,"rc":..,"sent":..} to b. Hand-written so
// the hot path allocates nothing beyond the reused buffer.
func appendMessageFrame(b []byte, queue string, m *rsmq.Message) []byte {
	b = append(b, `{"queue":`...)
	b = appendJSONString(b, queue)
	b = append(b, `,"id":`...)
	b = appendJSONString(b, m.ID)
	b = append(b, `,"message":`...)
	b = appendJSONString(b, m.Message)
	b = append(b, `,"rc":`...)
	b = strconv.AppendInt(b, m.RC, 10)
	b = append(b, `,"sent":`...)
	b = strconv.AppendInt(b, m.Sent, 10)
	return append(b, '}')
}

// eventFrame builds {"event":kind,"k1":"v1",...} from string pairs.
func eventFrame(kind string, kv ...string) []byte {
	b := make([]byte, 0, 64)
	b = append(b, `{"event":`...)
	b = appendJSONString(b, kind)
	for i := 0; i+1 < len(kv); i += 2 {
		b = append(b, ',')
		b = appendJSONString(b, kv[i])
		b = append(b, ':')
		b = appendJSONString(b, kv[i+1])
	}
	return append(b, '}')
}

const hex = "0123456789abcdef"

// appendJSONString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD,
// as Node's decoder would show it; U+2028/2029 are escaped for JavaScript.
func appendJSONString(b []byte, s string) []byte {
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
