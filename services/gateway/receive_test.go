package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/wsmq/wsmq/pkg/testenv"
	"github.com/wsmq/wsmq/services/gateway/protocol"
)

// TestGatewayReceiveWhoseReplyTimesOutIsNotRetriedAndRecovers is the
// production wiring of "no double receive by retries": a real gateway talks
// to Redis through a proxy that holds back the reply of one receive past
// the gateway's Redis read timeout (3 s). The gateway's receive client does
// not retry: a go-redis retry would run the script again, hiding the next
// message with rc raised, and succeed, so the failure would never be
// reported. The gateway logs the failure and its next pull recovers: the
// untouched message at once with rc 1, the one the lost reply held after
// its visibility timeout with rc 2; both are deleted.
func TestGatewayReceiveWhoseReplyTimesOutIsNotRetriedAndRecovers(t *testing.T) {
	s := newStack(t)
	gw := s.startGateway() // for logins only: its Redis is direct
	sess := s.user(gw, "slowreply")
	q := sess.UserID + "-slow"
	delayer := testenv.StartReplyDelayer(t, s.Redis.Addr(), q, 5*time.Second)
	slow := s.startGateway("WSMQ_REDIS_URL=redis://"+delayer.Addr()+"/0",
		"WSMQ_PREFETCH=1", "WSMQ_VISIBILITY_TIMEOUT=8",
		"WSMQ_SWEEP_INTERVAL=1h", "WSMQ_HOT_SWEEP_INTERVAL=1h", "WSMQ_SERVED_MARK_INTERVAL=1h")

	c := dial(t, slow, sess, protocol.AckAuto)
	c.subscribe(q)
	// Load the receive script first, so the held reply is the run's, not
	// a NOSCRIPT refusal's.
	s.send(q, "warm")
	if m := c.messages(1)[0]; m.Message != "warm" {
		t.Fatalf("warm-up delivered %q", m.Message)
	}
	testenv.Eventually(t, waitLong, "the warm-up deleted", func() bool { return s.attrs(q).Msgs == 0 })

	delayer.Armed.Store(true)
	m1 := s.send(q, "m1")
	m2 := s.send(q, "m2")
	// The failure is reported at all: a go-redis retry would have
	// succeeded (the proxy holds one reply only) and hidden it.
	testenv.Eventually(t, waitLong, "the gateway reports the receive whose reply timed out", func() bool {
		return !logTime(t, slow.P.Output(), `"msg":"receive failed; retrying"`, q).IsZero()
	})
	// The run count itself is the engine's test (delivery's
	// TestReceiveWhoseReplyTimesOutRunsOnceAndThePullRecovers): here the
	// next pull may already have run when the log line is read.
	if delayer.Dropped.Load() != 1 {
		t.Fatalf("%d replies held, want 1", delayer.Dropped.Load())
	}

	got := c.messages(2)
	if got[0].ID != m2 || got[0].RC != 1 || got[1].ID != m1 || got[1].RC != 2 {
		t.Fatalf("delivered %s rc %d, %s rc %d; want m2 (%s) rc 1, then m1 (%s) rc 2",
			got[0].ID, got[0].RC, got[1].ID, got[1].RC, m2, m1)
	}
	testenv.Eventually(t, waitLong, "both deleted", func() bool { return s.attrs(q).Msgs == 0 })
}

// TestAutoModeDisconnectCyclesDoNotDeadLetter: a real client in auto mode
// that reads its frame but never confirms it (its websocket stack answers
// no ping) and then loses its connection, 20 times over, with the queue's
// receive limit at 5. Each time the gateway returns the message (a receive
// that a lost connection ended does not count toward the dead-letter
// queue): it arrives every time with rc 1, never moves to the DLQ, and a
// well-behaved client finally gets and deletes it.
func TestAutoModeDisconnectCyclesDoNotDeadLetter(t *testing.T) {
	const cycles, maxReceive = 20, 5
	s := newStack(t, "WSMQ_MAX_RECEIVE_COUNT=5", "WSMQ_CONN_RATE=1000")
	gw := s.startGateway()
	sess := s.user(gw, "flaky")
	q := sess.UserID
	for i := range cycles {
		rc := dialRaw(t, gw.Addr, sess, false)
		rc.ws.SetPingHandler(func(string) error { return nil }) // no pong: nothing is ever confirmed
		rc.subscribe(q)
		if i == 0 {
			s.send(q, "flaky")
		}
		m := rc.messages(1)[0]
		if m.Message != "flaky" || m.RC != 1 {
			t.Fatalf("cycle %d: got %.20q rc %d, want the message with rc 1 (max receive count %d)", i, m.Message, m.RC, maxReceive)
		}
		rc.reset()
		testenv.Eventually(t, waitLong, "the message returned after cycle "+itoa(i), func() bool {
			return testenv.VisibleNow(t, s.RDB, "rsmq:"+q) == 1
		})
	}
	if n := s.RDB.ZCard(context.Background(), "rsmq:"+q+"-dlq").Val(); n != 0 {
		t.Fatalf("%d messages in the dead-letter queue after %d disconnects", n, cycles)
	}
	c := dial(t, gw, sess, protocol.AckAuto)
	c.subscribe(q)
	if m := c.messages(1)[0]; m.Message != "flaky" {
		t.Fatalf("finally got %.20q", m.Message)
	}
	testenv.Eventually(t, waitLong, "the message deleted once confirmed", func() bool { return s.attrs(q).Msgs == 0 })
	if n := s.RDB.ZCard(context.Background(), "rsmq:"+q+"-dlq").Val(); n != 0 {
		t.Fatalf("%d messages in the dead-letter queue", n)
	}
}

// logTime returns the time of the first JSON log line in out holding msg
// and "queue":queue, or the zero time.
func logTime(t *testing.T, out, msg, queue string) time.Time {
	t.Helper()
	for line := range strings.SplitSeq(out, "\n") {
		if !strings.Contains(line, msg) || !strings.Contains(line, `"queue":"`+queue+`"`) {
			continue
		}
		var rec struct {
			Time time.Time `json:"time"`
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		return rec.Time
	}
	return time.Time{}
}
