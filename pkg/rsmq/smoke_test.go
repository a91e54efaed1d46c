package rsmq_test

import (
	"testing"

	"github.com/wsmq/wsmq/pkg/rsmq"
)

func TestSendReceiveDeleteRoundTrip(t *testing.T) {
	e := newEnv(t, rsmq.Options{})
	e.createQueue(t, "q", 30)
	id := e.send(t, "q", "hello")
	m := e.receive(t, "q", rsmq.QueueDefault)
	if m == nil || m.ID != id || m.Message != "hello" || m.RC != 1 {
		t.Fatalf("received %+v, want id %s", m, id)
	}
	ok, err := e.q.DeleteByReceipt(e.ctx, "q", m.Receipt())
	if err != nil || !ok {
		t.Fatalf("DeleteByReceipt = %v, %v", ok, err)
	}
	a, err := e.q.GetQueueAttributes(e.ctx, "q")
	if err != nil {
		t.Fatal(err)
	}
	if a.TotalSent != 1 || a.TotalRecv != 1 || a.Msgs != 0 {
		t.Fatalf("attrs %+v", a)
	}
}
