package wsconn

import (
	"github.com/wsmq/wsmq/pkg/rsmq"
	"github.com/wsmq/wsmq/services/gateway/protocol"
)

// appendMessageFrame appends the JSON message frame
// {"queue":..,"id":..,"message":..,"rc":..,"sent":..} to b; the hot path
// allocates nothing beyond the reused buffer.
func appendMessageFrame(b []byte, queue string, m *rsmq.Message) []byte {
	f := protocol.Message{Queue: queue, ID: m.ID, Message: m.Message, RC: m.RC, Sent: m.Sent}
	return f.AppendJSON(b)
}
