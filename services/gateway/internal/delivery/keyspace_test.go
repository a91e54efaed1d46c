package delivery

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/wsmq/wsmq/pkg/rsmq"
	"github.com/wsmq/wsmq/pkg/testenv"
)

// commandCalls reads how many times Redis ran cmd (scripts' inner
// commands included).
func (h *harness) commandCalls(cmd string) int { return testenv.CommandCalls(h.t, h.rdb, cmd) }

// TestKeyspaceWakeDeliversSendsWithoutRealtimeAndIgnoresTheEnginesOwnWork:
// in both keyspace modes a sender without realtime notifications (plain
// Node rsmq) is pushed, not swept (the sweeps are an hour apart), and the
// engine's own receives and deletes wake nothing: one pull per message.
func TestKeyspaceWakeDeliversSendsWithoutRealtimeAndIgnoresTheEnginesOwnWork(t *testing.T) {
	for _, wake := range []Wake{WakeKeyevent, WakeKeyspace} {
		t.Run(wake.String(), func(t *testing.T) {
			h := newHarness(t, Config{Wake: wake, SweepInterval: time.Hour, HotSweepInterval: time.Hour})
			plain := rsmq.New(h.rdb, rsmq.Options{}) // no realtime PUBLISH, as Node rsmq without realtime
			ctx := context.Background()
			if err := plain.CreateQueue(ctx, "q", rsmq.DefaultQueueConfig()); err != nil {
				t.Fatal(err)
			}
			sink := newSink(10, true)
			h.subscribe(sink, "q", false)
			ch := plain.KeyspaceChannel(0, "q")
			if wake == WakeKeyevent {
				ch = rsmq.KeyeventChannel(0)
			}
			testenv.Eventually(t, waitTimeout, "the wake subscription", func() bool {
				return h.rdb.PubSubNumSub(ctx, ch).Val()[ch] == 1
			})
			if n := h.numSub("q")["q"]; n != 0 {
				t.Fatalf("%d realtime subscribers: keyspace wake-ups replace them", n)
			}

			const n = 30
			pulls := h.commandCalls("zrangebyscore") // one per receive script run
			for i := range n {
				id, err := plain.SendMessage(ctx, "q", "m"+strconv.Itoa(i), 0)
				if err != nil {
					t.Fatal(err)
				}
				testenv.Eventually(t, waitTimeout, "message "+strconv.Itoa(i)+" pushed", func() bool {
					got := sink.delivered()
					return len(got) == i+1 && got[i].ID == id
				})
				testenv.Eventually(t, waitTimeout, "its delete", func() bool { return h.attrs("q").Msgs == 0 })
			}
			// A receive's ZINCRBY ("zincr") and a delete's ZREM ("zrem")
			// are ignored; were they not, every pull would cause a second.
			got := h.commandCalls("zrangebyscore") - pulls
			t.Logf("%d pulls for %d messages sent one at a time", got, n)
			if got > n+n/2 {
				t.Fatalf("%d pulls for %d messages sent one at a time: the engine wakes itself", got, n)
			}
		})
	}
}

// TestKeyeventWakeIgnoresQueuesItDoesNotServeAndRepullsAfterAReconnect: the
// one keyevent channel carries every ZADD; sends to other queues (and other
// namespaces) wake nothing here, and after the pub/sub connection is cut
// the re-subscription pulls every served queue, so a send made while it was
// down is delivered without the sweep.
func TestKeyeventWakeIgnoresQueuesItDoesNotServeAndRepullsAfterAReconnect(t *testing.T) {
	h := newHarness(t, Config{Wake: WakeKeyevent, SweepInterval: time.Hour, HotSweepInterval: time.Hour})
	plain := rsmq.New(h.rdb, rsmq.Options{})
	other := rsmq.New(h.rdb, rsmq.Options{Namespace: "other"})
	ctx := context.Background()
	for _, c := range []*rsmq.Client{plain, other} {
		for _, q := range []string{"q", "unserved"} {
			if err := c.CreateQueue(ctx, q, rsmq.DefaultQueueConfig()); err != nil {
				t.Fatal(err)
			}
		}
	}
	sink := newSink(10, true)
	h.subscribe(sink, "q", false)
	ch := rsmq.KeyeventChannel(0)
	testenv.Eventually(t, waitTimeout, "the keyevent subscription", func() bool {
		return h.rdb.PubSubNumSub(ctx, ch).Val()[ch] == 1
	})
	pulls := h.commandCalls("zrangebyscore")
	for range 20 {
		if _, err := plain.SendMessage(ctx, "unserved", "x", 0); err != nil {
			t.Fatal(err)
		}
		if _, err := other.SendMessage(ctx, "q", "x", 0); err != nil {
			t.Fatal(err)
		}
	}
	id, err := plain.SendMessage(ctx, "q", "mine", 0)
	if err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, waitTimeout, "the served queue's message", func() bool {
		got := sink.delivered()
		return len(got) == 1 && got[0].ID == id
	})
	if got := h.commandCalls("zrangebyscore") - pulls; got > 3 {
		t.Fatalf("%d pulls: sends to queues this engine does not serve woke it", got)
	}

	// Cut the pub/sub connection; send while it is down.
	if err := h.rdb.ClientKillByFilter(ctx, "TYPE", "pubsub").Err(); err != nil {
		t.Fatal(err)
	}
	id2, err := plain.SendMessage(ctx, "q", "while down", 0)
	if err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, waitTimeout, "the message sent while the subscription was down", func() bool {
		got := sink.delivered()
		return len(got) == 2 && got[1].ID == id2
	})
}

// TestWithoutKeyspaceWakeASenderWithoutRealtimeIsFoundByTheSweep: the
// fallback when Redis has keyspace notifications off.
func TestWithoutKeyspaceWakeASenderWithoutRealtimeIsFoundByTheSweep(t *testing.T) {
	h := newHarness(t, Config{SweepInterval: 100 * time.Millisecond, HotSweepInterval: 50 * time.Millisecond})
	plain := rsmq.New(h.rdb, rsmq.Options{})
	ctx := context.Background()
	if err := plain.CreateQueue(ctx, "q", rsmq.DefaultQueueConfig()); err != nil {
		t.Fatal(err)
	}
	sink := newSink(10, true)
	h.subscribe(sink, "q", false)
	h.waitRealtime(1, "q")
	id, err := plain.SendMessage(ctx, "q", "swept", 0)
	if err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, waitTimeout, "the swept message", func() bool {
		got := sink.delivered()
		return len(got) == 1 && got[0].ID == id
	})
}

func TestKeyspaceNotificationsReportsTheServersSetting(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, Config{})
	for _, tc := range []struct {
		flags              string
		keyevent, keyspace bool
	}{{"", false, false}, {"Kz", false, true}, {"Ez", true, false}, {"KEz", true, true}, {"KA", false, true}, {"EA", true, false}, {"Kh", false, false}, {"KEh", false, false}} {
		if err := h.rdb.ConfigSet(ctx, "notify-keyspace-events", tc.flags).Err(); err != nil {
			t.Fatal(err)
		}
		n, err := rsmq.KeyspaceNotifications(ctx, h.rdb)
		if err != nil || n.KeyEvent != tc.keyevent || n.KeySpace != tc.keyspace {
			t.Errorf("notify-keyspace-events %q: %+v, %v; want keyevent %v keyspace %v", tc.flags, n, err, tc.keyevent, tc.keyspace)
		}
	}
}
