package rsmq_test

import (
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/wsmq/wsmq/pkg/rsmq"
)

func TestOperationsRejectInvalidArgumentsWithNodeErrors(t *testing.T) {
	e := newEnv(t, rsmq.Options{})
	ctx := e.ctx
	cfg := func(vt, delay, maxsize int) rsmq.QueueConfig {
		return rsmq.QueueConfig{VT: vt, Delay: delay, MaxSize: maxsize}
	}
	e.createQueue(t, "q", 30)
	if err := e.q.CreateQueue(ctx, "small", cfg(30, 0, 1024)); err != nil {
		t.Fatal(err)
	}
	id := e.send(t, "q", "x")
	goodID := strings.Repeat("a", 32)

	for _, tc := range []struct {
		name  string
		call  func() error
		want  error
		field string // for validation errors
	}{
		// queue names
		{"create empty qname", func() error { return e.q.CreateQueue(ctx, "", rsmq.DefaultQueueConfig()) }, rsmq.ErrMissingParameter, "qname"},
		{"create 161-char qname", func() error { return e.q.CreateQueue(ctx, strings.Repeat("a", 161), rsmq.DefaultQueueConfig()) }, rsmq.ErrInvalidFormat, "qname"},
		{"create qname with dot", func() error { return e.q.CreateQueue(ctx, "a.b", rsmq.DefaultQueueConfig()) }, rsmq.ErrInvalidFormat, "qname"},
		{"send qname with space", func() error { _, err := e.q.SendMessage(ctx, "a b", "m", 0); return err }, rsmq.ErrInvalidFormat, "qname"},
		{"receive empty qname", func() error { _, err := e.q.ReceiveMessage(ctx, "", 0); return err }, rsmq.ErrMissingParameter, "qname"},
		{"delete queue bad qname", func() error { return e.q.DeleteQueue(ctx, "ä") }, rsmq.ErrInvalidFormat, "qname"},
		// vt, delay, maxsize bounds on create
		{"create vt -1", func() error { return e.q.CreateQueue(ctx, "n", cfg(-1, 0, 65536)) }, rsmq.ErrInvalidValue, "vt"},
		{"create vt 10000000", func() error { return e.q.CreateQueue(ctx, "n", cfg(10000000, 0, 65536)) }, rsmq.ErrInvalidValue, "vt"},
		{"create delay -1", func() error { return e.q.CreateQueue(ctx, "n", cfg(30, -1, 65536)) }, rsmq.ErrInvalidValue, "delay"},
		{"create delay 10000000", func() error { return e.q.CreateQueue(ctx, "n", cfg(30, 10000000, 65536)) }, rsmq.ErrInvalidValue, "delay"},
		{"create maxsize 1023", func() error { return e.q.CreateQueue(ctx, "n", cfg(30, 0, 1023)) }, rsmq.ErrInvalidValue, "maxsize"},
		{"create maxsize 65537", func() error { return e.q.CreateQueue(ctx, "n", cfg(30, 0, 65537)) }, rsmq.ErrInvalidValue, "maxsize"},
		{"create maxsize 0", func() error { return e.q.CreateQueue(ctx, "n", cfg(30, 0, 0)) }, rsmq.ErrInvalidValue, "maxsize"},
		{"create maxsize -2", func() error { return e.q.CreateQueue(ctx, "n", cfg(30, 0, -2)) }, rsmq.ErrInvalidValue, "maxsize"},
		{"create existing", func() error { return e.q.CreateQueue(ctx, "q", rsmq.DefaultQueueConfig()) }, rsmq.ErrQueueExists, ""},
		// set attributes
		{"set nothing", func() error { _, err := e.q.SetQueueAttributes(ctx, "q", rsmq.AttributeChanges{}); return err }, rsmq.ErrNoAttributeSupplied, ""},
		{"set vt 10000000", func() error {
			_, err := e.q.SetQueueAttributes(ctx, "q", rsmq.AttributeChanges{VT: intp(10000000)})
			return err
		}, rsmq.ErrInvalidValue, "vt"},
		{"set delay -1", func() error {
			_, err := e.q.SetQueueAttributes(ctx, "q", rsmq.AttributeChanges{Delay: intp(-1)})
			return err
		}, rsmq.ErrInvalidValue, "delay"},
		{"set maxsize 100", func() error {
			_, err := e.q.SetQueueAttributes(ctx, "q", rsmq.AttributeChanges{MaxSize: intp(100)})
			return err
		}, rsmq.ErrInvalidValue, "maxsize"},
		{"set on missing queue", func() error {
			_, err := e.q.SetQueueAttributes(ctx, "nope", rsmq.AttributeChanges{VT: intp(1)})
			return err
		}, rsmq.ErrQueueNotFound, ""},
		// send
		{"send delay -2", func() error { _, err := e.q.SendMessage(ctx, "q", "m", -2); return err }, rsmq.ErrInvalidValue, "delay"},
		{"send delay 10000000", func() error { _, err := e.q.SendMessage(ctx, "q", "m", 10000000); return err }, rsmq.ErrInvalidValue, "delay"},
		{"send invalid UTF-8", func() error { _, err := e.q.SendMessage(ctx, "q", "a\xffb", 0); return err }, rsmq.ErrMessageNotString, "message"},
		{"send to missing queue", func() error { _, err := e.q.SendMessage(ctx, "nope", "m", 0); return err }, rsmq.ErrQueueNotFound, ""},
		{"send 1025 ASCII to maxsize 1024", func() error {
			_, err := e.q.SendMessage(ctx, "small", strings.Repeat("a", 1025), 0)
			return err
		}, rsmq.ErrMessageTooLong, ""},
		{"send 1023 ASCII + emoji (1025 UTF-16 units)", func() error {
			_, err := e.q.SendMessage(ctx, "small", strings.Repeat("a", 1023)+"😀", 0)
			return err
		}, rsmq.ErrMessageTooLong, ""},
		{"send 513 emoji (1026 UTF-16 units)", func() error {
			_, err := e.q.SendMessage(ctx, "small", strings.Repeat("😀", 513), 0)
			return err
		}, rsmq.ErrMessageTooLong, ""},
		{"send 1024 ASCII to maxsize 1024", func() error {
			_, err := e.q.SendMessage(ctx, "small", strings.Repeat("a", 1024), 0)
			return err
		}, nil, ""},
		{"send 512 emoji (1024 UTF-16 units, 2048 bytes)", func() error {
			_, err := e.q.SendMessage(ctx, "small", strings.Repeat("😀", 512), 0)
			return err
		}, nil, ""},
		{"send 1024 é (1024 units, 2048 bytes)", func() error {
			_, err := e.q.SendMessage(ctx, "small", strings.Repeat("é", 1024), 0)
			return err
		}, nil, ""},
		// receive, pop, attributes
		{"receive vt -2", func() error { _, err := e.q.ReceiveMessage(ctx, "q", -2); return err }, rsmq.ErrInvalidValue, "vt"},
		{"receive vt 10000000", func() error { _, err := e.q.ReceiveMessage(ctx, "q", 10000000); return err }, rsmq.ErrInvalidValue, "vt"},
		{"receive from missing queue", func() error { _, err := e.q.ReceiveMessage(ctx, "nope", 0); return err }, rsmq.ErrQueueNotFound, ""},
		{"receive many from missing queue", func() error {
			_, err := e.q.ReceiveMessages(ctx, "nope", rsmq.ReceiveOptions{Max: 5})
			return err
		}, rsmq.ErrQueueNotFound, ""},
		{"receive max 1001", func() error { _, err := e.q.ReceiveMessages(ctx, "q", rsmq.ReceiveOptions{Max: 1001}); return err }, rsmq.ErrInvalidValue, "max"},
		{"receive max -1", func() error { _, err := e.q.ReceiveMessages(ctx, "q", rsmq.ReceiveOptions{Max: -1}); return err }, rsmq.ErrInvalidValue, "max"},
		{"receive maxReceiveCount without dlq", func() error {
			_, err := e.q.ReceiveMessages(ctx, "q", rsmq.ReceiveOptions{MaxReceiveCount: 3})
			return err
		}, rsmq.ErrMissingParameter, "deadLetterQueue"},
		{"receive dlq same as queue", func() error {
			_, err := e.q.ReceiveMessages(ctx, "q", rsmq.ReceiveOptions{MaxReceiveCount: 3, DeadLetterQueue: "q"})
			return err
		}, rsmq.ErrInvalidFormat, "deadLetterQueue"},
		{"pop from missing queue", func() error { _, err := e.q.PopMessage(ctx, "nope"); return err }, rsmq.ErrQueueNotFound, ""},
		{"attributes of missing queue", func() error { _, err := e.q.GetQueueAttributes(ctx, "nope"); return err }, rsmq.ErrQueueNotFound, ""},
		{"delete missing queue", func() error { return e.q.DeleteQueue(ctx, "nope") }, rsmq.ErrQueueNotFound, ""},
		// ids and visibility
		{"delete empty id", func() error { _, err := e.q.DeleteMessage(ctx, "q", ""); return err }, rsmq.ErrMissingParameter, "id"},
		{"delete short id", func() error { _, err := e.q.DeleteMessage(ctx, "q", "abc"); return err }, rsmq.ErrInvalidFormat, "id"},
		{"change visibility bad id", func() error { _, err := e.q.ChangeMessageVisibility(ctx, "q", id+"x", 1); return err }, rsmq.ErrInvalidFormat, "id"},
		{"change visibility vt -1", func() error { _, err := e.q.ChangeMessageVisibility(ctx, "q", id, -1); return err }, rsmq.ErrInvalidValue, "vt"},
		{"change visibility vt 10000000", func() error { _, err := e.q.ChangeMessageVisibility(ctx, "q", id, 10000000); return err }, rsmq.ErrInvalidValue, "vt"},
		{"change visibility missing queue", func() error { _, err := e.q.ChangeMessageVisibility(ctx, "nope", goodID, 1); return err }, rsmq.ErrQueueNotFound, ""},
		{"delete by receipt bad id", func() error {
			// a bad receipt is skipped alone, its error reported for it
			_, skipped, err := e.q.DeleteByReceiptsMulti(ctx, []rsmq.QueueReceipts{{Queue: "q", Receipts: []rsmq.Receipt{{ID: "x", RC: 1}}}})
			if err == nil && len(skipped) == 1 {
				err = skipped[0].Err
			}
			return err
		}, rsmq.ErrInvalidFormat, "id"},
		{"delete by receipt rc 0", func() error {
			// a bad receipt is skipped alone, its error reported for it
			_, skipped, err := e.q.DeleteByReceiptsMulti(ctx, []rsmq.QueueReceipts{{Queue: "q", Receipts: []rsmq.Receipt{{ID: id, RC: 0}}}})
			if err == nil && len(skipped) == 1 {
				err = skipped[0].Err
			}
			return err
		}, rsmq.ErrInvalidValue, "rc"},
		{"change by receipt vt -1", func() error {
			_, err := e.q.ChangeVisibilityByReceipts(ctx, "q", []rsmq.Receipt{{ID: goodID, RC: 1}}, -1)
			return err
		}, rsmq.ErrInvalidValue, "vt"},
		{"next visible bad name", func() error { _, err := e.q.NextVisible(ctx, []string{"q", "a b"}); return err }, rsmq.ErrInvalidFormat, "qname"},
		{"batch of 1001", func() error { _, err := e.q.SendBatch(ctx, make([]rsmq.SendItem, 1001)); return err }, rsmq.ErrInvalidValue, "items"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if tc.want == nil {
				if err != nil {
					t.Fatalf("err = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			var ve *rsmq.ValidationError
			if isVE := errors.As(err, &ve); isVE != (tc.field != "") || isVE && ve.Field != tc.field {
				t.Fatalf("err = %#v, want ValidationError on field %q", err, tc.field)
			}
		})
	}
}

func TestValueErrorMessageNamesRange(t *testing.T) {
	e := newEnv(t, rsmq.Options{})
	err := e.q.CreateQueue(e.ctx, "q", rsmq.QueueConfig{VT: -1, MaxSize: 65536})
	if got, want := err.Error(), "rsmq: invalid vt: vt must be between 0 and 9999999"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	err = e.q.CreateQueue(e.ctx, "q", rsmq.QueueConfig{MaxSize: 5})
	if got, want := err.Error(), "rsmq: invalid maxsize: maxsize must be between 1024 and 65536"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestCreateQueueStoresNodeAttributes(t *testing.T) {
	e := newEnv(t, rsmq.Options{})
	before := e.redisNowMS(t) / 1000
	if err := e.q.CreateQueue(e.ctx, "q", rsmq.QueueConfig{VT: 45, Delay: 7, MaxSize: rsmq.MaxSizeUnlimited}); err != nil {
		t.Fatal(err)
	}
	after := e.redisNowMS(t) / 1000
	h := e.raw.HGetAll(e.ctx, "rsmq:q:Q").Val()
	if len(h) != 5 || h["vt"] != "45" || h["delay"] != "7" || h["maxsize"] != "-1" || h["created"] != h["modified"] {
		t.Fatalf("rsmq:q:Q = %v", h)
	}
	if c, _ := strconv.ParseInt(h["created"], 10, 64); c < before || c > after {
		t.Fatalf("created %d not in [%d, %d]", c, before, after)
	}
	if m := e.raw.SMembers(e.ctx, "rsmq:QUEUES").Val(); !slices.Equal(m, []string{"q"}) {
		t.Fatalf("rsmq:QUEUES = %v", m)
	}
	if keys := e.raw.Keys(e.ctx, "*").Val(); len(keys) != 2 {
		t.Fatalf("keys = %v, want the QUEUES set and the queue hash", keys)
	}
}

func TestListAndDeleteQueues(t *testing.T) {
	e := newEnv(t, rsmq.Options{})
	e.createQueue(t, "a", 30)
	e.createQueue(t, "b", 30)
	e.send(t, "a", "m")
	qs, err := e.q.ListQueues(e.ctx)
	slices.Sort(qs)
	if err != nil || !slices.Equal(qs, []string{"a", "b"}) {
		t.Fatalf("ListQueues = %v, %v", qs, err)
	}
	if err := e.q.DeleteQueue(e.ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if n := e.raw.Exists(e.ctx, "rsmq:a", "rsmq:a:Q").Val(); n != 0 {
		t.Fatalf("%d keys of the deleted queue left", n)
	}
	if m := e.raw.SMembers(e.ctx, "rsmq:QUEUES").Val(); !slices.Equal(m, []string{"b"}) {
		t.Fatalf("rsmq:QUEUES = %v", m)
	}
	if err := e.q.DeleteQueue(e.ctx, "a"); !errors.Is(err, rsmq.ErrQueueNotFound) {
		t.Fatalf("second DeleteQueue = %v", err)
	}
}

func TestGetQueueAttributesCountsMessagesAndHidden(t *testing.T) {
	e := newEnv(t, rsmq.Options{})
	e.createQueue(t, "q", 30)
	old := float64(e.redisNowMS(t) - 10000)
	for range 3 {
		// Node counts hidden messages from the current whole second, so
		// make these visible since 10 s.
		id := e.send(t, "q", "m")
		e.raw.ZAddXX(e.ctx, "rsmq:q", redis.Z{Score: old, Member: id})
	}
	if _, err := e.q.SendMessage(e.ctx, "q", "later", 100); err != nil {
		t.Fatal(err)
	}
	if m := e.receive(t, "q", 3600); m == nil {
		t.Fatal("nothing received")
	}
	a, err := e.q.GetQueueAttributes(e.ctx, "q")
	if err != nil {
		t.Fatal(err)
	}
	if a.VT != 30 || a.Delay != 0 || a.MaxSize != 65536 || a.TotalSent != 4 || a.TotalRecv != 1 ||
		a.Msgs != 4 || a.HiddenMsgs != 2 || a.Created == 0 || a.Modified != a.Created {
		t.Fatalf("attributes = %+v", a)
	}
}

func TestSetQueueAttributesChangesOnlyGivenAndModified(t *testing.T) {
	e := newEnv(t, rsmq.Options{})
	e.createQueue(t, "q", 30)
	if err := e.raw.HSet(e.ctx, "rsmq:q:Q", "modified", "1").Err(); err != nil {
		t.Fatal(err)
	}
	a, err := e.q.SetQueueAttributes(e.ctx, "q", rsmq.AttributeChanges{VT: intp(5), MaxSize: intp(-1)})
	if err != nil {
		t.Fatal(err)
	}
	if a.VT != 5 || a.Delay != 0 || a.MaxSize != -1 || a.Modified < a.Created {
		t.Fatalf("attributes = %+v", a)
	}
	h := e.raw.HGetAll(e.ctx, "rsmq:q:Q").Val()
	if h["vt"] != "5" || h["delay"] != "0" || h["maxsize"] != "-1" || h["modified"] == "1" {
		t.Fatalf("rsmq:q:Q = %v", h)
	}
	// maxsize -1: any length goes.
	if _, err := e.q.SendMessage(e.ctx, "q", strings.Repeat("a", 70000), 0); err != nil {
		t.Fatalf("send to unlimited queue: %v", err)
	}
}

func TestCustomNamespacePrefixesEveryKey(t *testing.T) {
	e := newEnv(t, rsmq.Options{})
	c := rsmq.New(e.raw, rsmq.Options{Namespace: "myns"})
	if c.Namespace() != "myns" || e.q.Namespace() != "rsmq" {
		t.Fatalf("Namespace() = %q, %q", c.Namespace(), e.q.Namespace())
	}
	if got := c.RealtimeChannel("q"); got != "myns:rt:q" {
		t.Fatalf("RealtimeChannel = %q", got)
	}
	if err := c.CreateQueue(e.ctx, "q", rsmq.DefaultQueueConfig()); err != nil {
		t.Fatal(err)
	}
	id, err := c.SendMessage(e.ctx, "q", "m", 0)
	if err != nil {
		t.Fatal(err)
	}
	keys := e.raw.Keys(e.ctx, "*").Val()
	slices.Sort(keys)
	if !slices.Equal(keys, []string{"myns:QUEUES", "myns:q", "myns:q:Q"}) {
		t.Fatalf("keys = %v", keys)
	}
	if e.raw.HGet(e.ctx, "myns:q:Q", id).Val() != "m" {
		t.Fatal("body not in myns:q:Q")
	}
	if _, err := e.q.GetQueueAttributes(e.ctx, "q"); !errors.Is(err, rsmq.ErrQueueNotFound) {
		t.Fatalf("default namespace sees the queue: %v", err)
	}
}

func TestQueueWithoutAllThreeAttributesIsNotFound(t *testing.T) {
	e := newEnv(t, rsmq.Options{})
	// As Node's _getQueue: vt, delay and maxsize must all be present.
	if err := e.raw.HSet(e.ctx, "rsmq:partial:Q", "vt", "30", "delay", "0").Err(); err != nil {
		t.Fatal(err)
	}
	if err := e.raw.ZAdd(e.ctx, "rsmq:partial", redis.Z{Score: 1, Member: strings.Repeat("a", 32)}).Err(); err != nil {
		t.Fatal(err)
	}
	calls := map[string]func() error{
		"send":    func() error { _, err := e.q.SendMessage(e.ctx, "partial", "m", 0); return err },
		"receive": func() error { _, err := e.q.ReceiveMessage(e.ctx, "partial", 0); return err },
		"pop":     func() error { _, err := e.q.PopMessage(e.ctx, "partial"); return err },
		"change visibility": func() error {
			_, err := e.q.ChangeMessageVisibility(e.ctx, "partial", strings.Repeat("a", 32), 0)
			return err
		},
		"set attributes": func() error {
			_, err := e.q.SetQueueAttributes(e.ctx, "partial", rsmq.AttributeChanges{VT: intp(1)})
			return err
		},
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, rsmq.ErrQueueNotFound) {
			t.Errorf("%s: %v, want ErrQueueNotFound", name, err)
		}
	}
	if n := e.raw.ZCard(e.ctx, "rsmq:partial").Val(); n != 1 {
		t.Fatalf("zset changed: %d members", n)
	}
}
