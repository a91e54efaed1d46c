package server

import (
	"testing"

	"google.golang.org/protobuf/proto"

	publisherv1 "github.com/wsmq/wsmq/gen/wsmq/publisher/v1"
)

// FuzzDecodeSendRequest checks the lenient decoder never panics and agrees
// with the protobuf runtime on everything the runtime accepts.
func FuzzDecodeSendRequest(f *testing.F) {
	for _, r := range []*publisherv1.SendRequest{
		{}, {Queue: "q", Message: "m", DelaySeconds: 5}, {Queue: "q", DelaySeconds: -1},
	} {
		b, _ := proto.Marshal(r)
		f.Add(b)
		batch, _ := proto.Marshal(&publisherv1.SendBatchRequest{Items: []*publisherv1.SendRequest{r, r}})
		f.Add(batch)
	}
	f.Add([]byte{0x0a, 1, 'q', 0x12, 2, 0xff, 0xfe})
	f.Fuzz(func(t *testing.T, b []byte) {
		var lenient, strict publisherv1.SendRequest
		lerr := decodeSendRequest(b, &lenient)
		if proto.Unmarshal(b, &strict) == nil {
			if lerr != nil || lenient.GetQueue() != strict.GetQueue() || lenient.GetMessage() != strict.GetMessage() ||
				lenient.GetDelaySeconds() != strict.GetDelaySeconds() {
				t.Fatalf("lenient %v (%v) != strict %v", &lenient, lerr, &strict)
			}
		}
		var lb, sb publisherv1.SendBatchRequest
		lberr := decodeSendBatchRequest(b, &lb)
		if proto.Unmarshal(b, &sb) == nil {
			if lberr != nil || len(lb.GetItems()) != len(sb.GetItems()) {
				t.Fatalf("lenient batch %d items (%v) != strict %d", len(lb.GetItems()), lberr, len(sb.GetItems()))
			}
		}
	})
}
