package delivery

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wsmq/wsmq/pkg/rsmq"
	"github.com/wsmq/wsmq/pkg/testenv"
)

// commandCalls reads how many times Redis ran cmd (scripts' inner
// commands included).
func (h *harness) commandCalls(cmd string) int {
	h.t.Helper()
	info := h.rdb.Info(context.Background(), "commandstats").Val()
	for line := range strings.SplitSeq(info, "\n") {
		if rest, ok := strings.CutPrefix(line, "cmdstat_"+cmd+":calls="); ok {
			n, _ := strconv.Atoi(rest[:strings.IndexByte(rest, ',')])
			return n
		}
	}
	return 0
}

// TestKeyspaceWakeDeliversSendsWithoutRealtimeAndIgnoresTheEnginesOwnWork:
// with keyspace wake-ups, a sender without realtime notifications (plain
// Node rsmq) is pushed, not swept (the sweeps are an hour apart), and the
// engine's own receives and deletes wake nothing: one pull per message.
func TestKeyspaceWakeDeliversSendsWithoutRealtimeAndIgnoresTheEnginesOwnWork(t *testing.T) {
	h := newHarness(t, Config{Keyspace: true, SweepInterval: time.Hour, HotSweepInterval: time.Hour})
	plain := rsmq.New(h.rdb, rsmq.Options{}) // no realtime PUBLISH, as Node rsmq without realtime
	ctx := context.Background()
	if err := plain.CreateQueue(ctx, "q", rsmq.DefaultQueueConfig()); err != nil {
		t.Fatal(err)
	}
	sink := newSink(10, true)
	h.subscribe(sink, "q", false)
	ch := plain.KeyspaceChannel(0, "q")
	testenv.Eventually(t, waitTimeout, "the keyspace subscription", func() bool {
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
	// A receive's ZINCRBY ("zincr") and a delete's ZREM ("zrem") are
	// ignored; were they not, every pull would cause a second one.
	got := h.commandCalls("zrangebyscore") - pulls
	t.Logf("%d pulls for %d messages sent one at a time", got, n)
	if got > n+n/2 {
		t.Fatalf("%d pulls for %d messages sent one at a time: the engine wakes itself", got, n)
	}
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
	for _, tc := range []struct {
		flags string
		want  bool
	}{{"", false}, {"Kz", true}, {"KA", true}, {"Ez", false}, {"Kh", false}} {
		h := newHarness(t, Config{})
		if err := h.rdb.ConfigSet(ctx, "notify-keyspace-events", tc.flags).Err(); err != nil {
			t.Fatal(err)
		}
		on, _, err := rsmq.KeyspaceNotifications(ctx, h.rdb)
		if err != nil || on != tc.want {
			t.Errorf("notify-keyspace-events %q: on = %v, %v; want %v", tc.flags, on, err, tc.want)
		}
	}
}
