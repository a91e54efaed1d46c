package main

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wsmq/wsmq/pkg/rsmq"
	"github.com/wsmq/wsmq/pkg/testenv"
	"github.com/wsmq/wsmq/pkg/userqueue"
)

// TestQueuesPruneDeletesOnlyEmptyUnservedSecondaryQueues builds every kind
// of queue a user can have in a real Redis and checks which ones
// `wsmqctl queues prune` deletes.
func TestQueuesPruneDeletesOnlyEmptyUnservedSecondaryQueues(t *testing.T) {
	r := testenv.StartRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	q := rsmq.New(rdb, rsmq.Options{})
	reg := userqueue.New(rdb, "")
	const (
		alice = "aaaaaaaaaaaaaaaaaaaaaaaa"
		bob   = "bbbbbbbbbbbbbbbbbbbbbbbb"
	)
	old := time.Now().Add(-48 * time.Hour)
	recent := time.Now().Add(-time.Minute)

	type setup struct {
		queue      string
		created    time.Time // the queue's created attribute
		registered time.Time // registry score; zero: not registered
		visible    int       // visible messages
		inFlight   int       // received, not deleted
		delayed    int       // sent with a delay
	}
	cases := []struct {
		name  string
		setup setup
		prune bool
	}{
		{"empty, never served, created long ago", setup{queue: alice + "-old", created: old}, true},
		{"empty, last served long ago", setup{queue: alice + "-gone", created: old, registered: old}, true},
		{"empty but served recently", setup{queue: alice + "-live", created: old, registered: recent}, false},
		{"empty, never served, created recently", setup{queue: alice + "-new", created: recent}, false},
		{"visible messages", setup{queue: alice + "-full", created: old, registered: old, visible: 1}, false},
		{"only in-flight messages", setup{queue: alice + "-busy", created: old, registered: old, inFlight: 1}, false},
		{"only delayed messages", setup{queue: alice + "-later", created: old, registered: old, delayed: 1}, false},
		{"dead-letter queue with messages", setup{queue: alice + "-old-dlq", created: old, visible: 2}, false},
		{"empty dead-letter queue", setup{queue: alice + "-gone-dlq", created: old}, true},
		{"the user's own queue", setup{queue: alice, created: old}, false},
		{"a queue that is no user's", setup{queue: "orders", created: old}, false},
		{"another user's empty unused queue", setup{queue: bob + "-x", created: old, registered: old}, true},
	}
	for _, tc := range cases {
		s := tc.setup
		if err := q.CreateQueue(ctx, s.queue, rsmq.DefaultQueueConfig()); err != nil {
			t.Fatal(err)
		}
		if err := rdb.HSet(ctx, "rsmq:"+s.queue+":Q", "created", s.created.Unix()).Err(); err != nil {
			t.Fatal(err)
		}
		if !s.registered.IsZero() {
			if err := rdb.ZAdd(ctx, reg.Key(s.queue[:24]), redis.Z{Score: float64(s.registered.UnixMilli()), Member: s.queue}).Err(); err != nil {
				t.Fatal(err)
			}
		}
		for range s.visible + s.inFlight {
			if _, err := q.SendMessage(ctx, s.queue, "m", 0); err != nil {
				t.Fatal(err)
			}
		}
		for range s.inFlight {
			if m, err := q.ReceiveMessage(ctx, s.queue, 600); err != nil || m == nil {
				t.Fatalf("receive: %v %v", m, err)
			}
		}
		for range s.delayed {
			if _, err := q.SendMessage(ctx, s.queue, "m", 600); err != nil {
				t.Fatal(err)
			}
		}
	}
	// A registered queue deleted behind the registry's back (Node
	// deleteQueue): prune forgets it.
	if err := rdb.ZAdd(ctx, reg.Key(alice), redis.Z{Score: float64(old.UnixMilli()), Member: alice + "-deleted"}).Err(); err != nil {
		t.Fatal(err)
	}
	base := env{"WSMQ_REDIS_URL": r.URL()}

	var want []string
	for _, tc := range cases {
		if tc.prune {
			want = append(want, tc.setup.queue)
		}
	}
	slices.Sort(want)
	dry := ctl(t, base, "", "queues", "prune", "--dry-run").must(t, exitOK, "queues prune --dry-run")
	if got := lines(dry.stdout, "would prune "); !slices.Equal(got, want) {
		t.Fatalf("dry run would prune %v, want %v", got, want)
	}
	if n, _ := rdb.SCard(ctx, "rsmq:QUEUES").Result(); n != int64(len(cases)) {
		t.Fatalf("dry run deleted queues: %d left of %d", n, len(cases))
	}

	// One user only: bob's queue stays.
	res := ctl(t, base, "", "queues", "prune", alice).must(t, exitOK, "queues prune alice")
	wantAlice := slices.DeleteFunc(slices.Clone(want), func(q string) bool { return strings.HasPrefix(q, bob) })
	if got := lines(res.stdout, "pruned "); !slices.Equal(got, wantAlice) {
		t.Fatalf("prune %s deleted %v, want %v", alice, got, wantAlice)
	}
	ctl(t, base, "", "queues", "prune").must(t, exitOK, "queues prune")

	all, err := q.ListQueues(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range cases {
		name := tc.setup.queue
		exists := slices.Contains(all, name)
		if hash, _ := rdb.Exists(ctx, "rsmq:"+name+":Q", "rsmq:"+name).Result(); !exists && hash != 0 {
			t.Errorf("%s: keys left behind after prune", tc.name)
		}
		if exists == tc.prune {
			t.Errorf("%s (%s): exists=%v after prune, want pruned=%v", tc.name, name, exists, tc.prune)
		}
		if score, _ := reg.LastServed(ctx, name); tc.prune && score != 0 {
			t.Errorf("%s: still registered after prune", tc.name)
		}
	}
	if score, _ := reg.LastServed(ctx, alice+"-deleted"); score != 0 {
		t.Errorf("registration of a vanished queue kept")
	}
	// Messages in the kept queues are untouched.
	if a, err := q.GetQueueAttributes(ctx, alice+"-old-dlq"); err != nil || a.Msgs != 2 {
		t.Fatalf("dead-letter queue after prune: %+v %v", a, err)
	}

	for _, bad := range [][]string{
		{"queues", "prune", "--idle", "10s"},
		{"queues", "prune", "not-a-user"},
	} {
		ctl(t, base, "", bad...).must(t, exitUsage, bad...)
	}
}

// lines returns the lines of out that start with prefix, without it.
func lines(out, prefix string) []string {
	var got []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if q, ok := strings.CutPrefix(l, prefix); ok {
			got = append(got, q)
		}
	}
	slices.Sort(got)
	return got
}
