package main

import (
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	publisherv1 "github.com/wsmq/wsmq/gen/wsmq/publisher/v1"
	"github.com/wsmq/wsmq/pkg/rsmq"
	"github.com/wsmq/wsmq/pkg/testenv"
)

func TestAdminRPCsOverGRPC(t *testing.T) {
	e, _ := startHTTP(t, nil)
	adm := publisherv1.NewQueueAdminServiceClient(e.cc)
	ctx := authed(t, adminKey)
	if _, err := adm.CreateQueue(ctx, &publisherv1.CreateQueueRequest{Queue: "jobs", VtSeconds: 60, MaxSize: 2048}); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.CreateQueue(ctx, &publisherv1.CreateQueueRequest{Queue: "jobs"}); status.Code(err) != codes.AlreadyExists {
		t.Fatalf("second create: %v", err)
	}
	if _, err := adm.CreateQueue(ctx, &publisherv1.CreateQueueRequest{Queue: "x", MaxSize: 10}); status.Code(err) != codes.InvalidArgument ||
		!strings.HasPrefix(status.Convert(err).Message(), "max_size:") {
		t.Fatalf("bad max_size: %v", err)
	}
	for i := range 3 {
		if _, err := e.q.SendMessage(ctx, "jobs", "m"+strconv.Itoa(i), 0); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.q.ReceiveMessage(ctx, "jobs", -1); err != nil {
		t.Fatal(err)
	}
	// Messages sent in the current millisecond still count as hidden; the
	// received one stays hidden for its vt.
	var at *publisherv1.GetQueueAttributesResponse
	testenv.Eventually(t, 5*time.Second, "one message in flight", func() bool {
		var err error
		if at, err = adm.GetQueueAttributes(ctx, &publisherv1.GetQueueAttributesRequest{Queue: "jobs"}); err != nil {
			t.Fatal(err)
		}
		return at.GetInFlight() == 1
	})
	if at.GetVtSeconds() != 60 || at.GetMaxSize() != 2048 || at.GetMessages() != 3 || at.GetInFlight() != 1 ||
		at.GetTotalSent() != 3 || at.GetTotalReceived() != 1 || at.GetOldestMessageAgeSeconds() < 0 || at.GetOldestMessageAgeSeconds() > 5 {
		t.Fatalf("attributes %v", at)
	}
	lp, err := adm.ListQueues(ctx, &publisherv1.ListQueuesRequest{Prefix: "jo"})
	if err != nil || len(lp.GetQueues()) != 1 || lp.GetQueues()[0] != "jobs" {
		t.Fatalf("list: %v %v", lp, err)
	}

	// Dead letters: two in jobs-dlq come back to jobs with their ids.
	if err := e.q.CreateQueue(ctx, "jobs-dlq", rsmq.DefaultQueueConfig()); err != nil {
		t.Fatal(err)
	}
	d1, _ := e.q.SendMessage(ctx, "jobs-dlq", "dead1", 0)
	d2, _ := e.q.SendMessage(ctx, "jobs-dlq", "dead2", 0)
	rd, err := adm.RedriveDeadLetters(ctx, &publisherv1.RedriveDeadLettersRequest{Queue: "jobs"})
	if err != nil || rd.GetMoved() != 2 || rd.GetLeft() != 0 {
		t.Fatalf("redrive: %v %v", rd, err)
	}
	for id, body := range map[string]string{d1: "dead1", d2: "dead2"} {
		if got := e.rdb.HGet(ctx, "rsmq:jobs:Q", id).Val(); got != body {
			t.Fatalf("redriven %s: body %q", id, got)
		}
	}
	if _, err := adm.RedriveDeadLetters(ctx, &publisherv1.RedriveDeadLettersRequest{Queue: "nodlq"}); status.Code(err) != codes.NotFound {
		t.Fatalf("redrive without queue: %v", err)
	}

	pr, err := adm.PurgeQueue(ctx, &publisherv1.PurgeQueueRequest{Queue: "jobs"})
	if err != nil || pr.GetRemoved() != 5 {
		t.Fatalf("purge: %v %v", pr, err)
	}
	if n, _ := e.rdb.HLen(ctx, "rsmq:jobs:Q").Result(); n != 7 { // vt delay maxsize created modified totalrecv totalsent
		fields, _ := e.rdb.HKeys(ctx, "rsmq:jobs:Q").Result()
		t.Fatalf("after purge the hash holds %v, want the attributes only", fields)
	}
	if _, err := adm.DeleteQueue(ctx, &publisherv1.DeleteQueueRequest{Queue: "jobs"}); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.DeleteQueue(ctx, &publisherv1.DeleteQueueRequest{Queue: "jobs"}); status.Code(err) != codes.NotFound {
		t.Fatalf("second delete: %v", err)
	}
}

func TestAdminRPCsOverHTTP(t *testing.T) {
	e, base := startHTTP(t, nil)
	ctx := authed(t, "")
	q := base + "/v1/admin/queues"
	if r := call(t, "POST", q, adminKey, `{"queue":"web","vtSeconds":45}`); r.status != 200 {
		t.Fatalf("create: %d %s", r.status, r.raw)
	}
	wantStatus(t, call(t, "POST", q, adminKey, `{"queue":"web2","vtSecond":45}`), 400, codes.InvalidArgument, "vtSecond: unknown field")
	if _, err := e.q.SendMessage(ctx, "web", "m", 0); err != nil {
		t.Fatal(err)
	}
	a := call(t, "GET", q+"/web", adminKey, "")
	if a.status != 200 || a.body["vtSeconds"] != 45.0 || a.body["messages"] != 1.0 || a.body["totalSent"] != 1.0 {
		t.Fatalf("attributes: %s", a.raw)
	}
	l := call(t, "GET", q+"?prefix=we&pageSize=10", adminKey, "")
	if l.status != 200 || fmt.Sprint(l.body["queues"]) != "[web]" || l.body["nextPageToken"] != "" {
		t.Fatalf("list: %s", l.raw)
	}
	wantStatus(t, call(t, "GET", q+"?pageSize=5000", adminKey, ""), 400, codes.InvalidArgument, "page_size: must be between 1 and 1000")
	wantStatus(t, call(t, "GET", q+"?pageToken=zz!", adminKey, ""), 400, codes.InvalidArgument, "page_token:")
	wantStatus(t, call(t, "GET", q+"?limit=5", adminKey, ""), 400, codes.InvalidArgument, "limit: unknown query parameter")

	if err := e.q.CreateQueue(ctx, "web-dlq", rsmq.DefaultQueueConfig()); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := e.q.SendMessage(ctx, "web-dlq", "d", 0); err != nil {
			t.Fatal(err)
		}
	}
	if r := call(t, "POST", q+"/web/redrive", adminKey, `{"maxMessages":2}`); r.status != 200 || r.body["moved"] != 2.0 || r.body["left"] != 1.0 {
		t.Fatalf("redrive 2: %s", r.raw)
	}
	if r := call(t, "POST", q+"/web/redrive", adminKey, ""); r.status != 200 || r.body["moved"] != 1.0 || r.body["left"] != 0.0 {
		t.Fatalf("redrive rest: %s", r.raw)
	}
	if r := call(t, "POST", q+"/web/purge", adminKey, ""); r.status != 200 || r.body["removed"] != 4.0 {
		t.Fatalf("purge: %s", r.raw)
	}
	if r := call(t, "DELETE", q+"/web", adminKey, ""); r.status != 200 {
		t.Fatalf("delete: %s", r.raw)
	}
	wantStatus(t, call(t, "DELETE", q+"/web", adminKey, ""), 404, codes.NotFound, "queue: not found")
}

func TestAdminServiceNeedsAnAdminKeyAndRefusesSendKeys(t *testing.T) {
	e, _ := startHTTP(t, nil)
	adm := publisherv1.NewQueueAdminServiceClient(e.cc)
	req := &publisherv1.ListQueuesRequest{}
	for key, want := range map[string]codes.Code{
		"": codes.Unauthenticated, "wrong-key-0123456789abc": codes.Unauthenticated,
		testKey: codes.PermissionDenied, adminKey: codes.OK,
	} {
		if _, err := adm.ListQueues(authed(t, key), req); status.Code(err) != want {
			t.Errorf("key %q: %v, want %v", key, err, want)
		}
	}
	if _, err := e.api.Send(authed(t, adminKey), &publisherv1.SendRequest{Queue: "q", Message: "m"}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("Send with the admin key: %v", err)
	}

	off := start(t, nil) // no admin keys, not dev: the service is not served
	_, err := publisherv1.NewQueueAdminServiceClient(off.cc).ListQueues(authed(t, testKey), req)
	if status.Code(err) != codes.Unimplemented {
		t.Errorf("without admin keys: %v, want Unimplemented", err)
	}
}

func TestRedriveMovesMoreThanOneBatchWithoutLossOrDuplicate(t *testing.T) {
	e, _ := startHTTP(t, nil)
	ctx := authed(t, adminKey)
	for _, q := range []string{"big", "big-dlq"} {
		if err := e.q.CreateQueue(ctx, q, rsmq.DefaultQueueConfig()); err != nil {
			t.Fatal(err)
		}
	}
	const n = 2500
	items := make([]rsmq.SendItem, 1000)
	var ids []string
	for sent := 0; sent < n; sent += len(items) {
		k := min(len(items), n-sent)
		for i := range k {
			items[i] = rsmq.SendItem{Queue: "big-dlq", Message: "m" + strconv.Itoa(sent+i), Delay: rsmq.QueueDefault}
		}
		res, err := e.q.SendBatch(ctx, items[:k])
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res {
			ids = append(ids, r.ID)
		}
	}
	rd, err := publisherv1.NewQueueAdminServiceClient(e.cc).RedriveDeadLetters(ctx, &publisherv1.RedriveDeadLettersRequest{Queue: "big"})
	if err != nil || rd.GetMoved() != n || rd.GetLeft() != 0 {
		t.Fatalf("redrive: %v %v", rd, err)
	}
	got, _ := e.rdb.ZRange(ctx, "rsmq:big", 0, -1).Result()
	sort.Strings(got)
	sort.Strings(ids)
	if strings.Join(got, ",") != strings.Join(ids, ",") {
		t.Fatalf("queue holds %d ids, want exactly the %d dead letters", len(got), len(ids))
	}
	if c := e.rdb.ZCard(ctx, "rsmq:big-dlq").Val(); c != 0 {
		t.Fatalf("dlq still holds %d", c)
	}
}

// TestListQueuesPagesOver100kQueuesWithShortRedisCalls loads 100,000 names
// into the QUEUES set with a pipeline and pages through them with a prefix
// that matches 20: every page is one SSCAN (SLOWLOG shows each call), none
// long.
func TestListQueuesPagesOver100kQueuesWithShortRedisCalls(t *testing.T) {
	e, base := startHTTP(t, nil)
	ctx := authed(t, adminKey)
	const total = 100_000
	pipe := e.rdb.Pipeline()
	for i := range total {
		name := "bulk-" + strconv.Itoa(i)
		if i%5000 == 0 {
			name = "app-" + strconv.Itoa(i)
		}
		pipe.SAdd(ctx, "rsmq:QUEUES", name)
		if pipe.Len() == 10_000 {
			if _, err := pipe.Exec(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	if n := e.rdb.SCard(ctx, "rsmq:QUEUES").Val(); n != total {
		t.Fatalf("QUEUES holds %d", n)
	}
	// Log every command from here on, to find the longest.
	for k, v := range map[string]string{"slowlog-log-slower-than": "0", "slowlog-max-len": "100000"} {
		if err := e.rdb.ConfigSet(ctx, k, v).Err(); err != nil {
			t.Fatal(err)
		}
	}
	e.rdb.SlowLogReset(ctx)

	adm := publisherv1.NewQueueAdminServiceClient(e.cc)
	list := func(prefix string, size int32) (names map[string]bool, pages int, longest time.Duration) {
		names = map[string]bool{}
		token := ""
		for {
			start := time.Now()
			p, err := adm.ListQueues(ctx, &publisherv1.ListQueuesRequest{Prefix: prefix, PageSize: size, PageToken: token})
			if err != nil {
				t.Fatal(err)
			}
			longest = max(longest, time.Since(start))
			pages++
			for _, n := range p.GetQueues() {
				names[n] = true
			}
			if token = p.GetNextPageToken(); token == "" {
				return names, pages, longest
			}
		}
	}
	apps, appPages, _ := list("app-", 1000)
	if len(apps) != 20 {
		t.Fatalf("prefix app- listed %d distinct names, want 20", len(apps))
	}
	all, allPages, rpcLongest := list("", 1000)
	if len(all) != total {
		t.Fatalf("listed %d distinct names, want %d", len(all), total)
	}

	// The HTTP route pages alike.
	h := call(t, "GET", base+"/v1/admin/queues?prefix=app-&pageSize=1000", adminKey, "")
	if h.status != 200 || h.body["nextPageToken"] == "" {
		t.Fatalf("HTTP first page: %d, token %v", h.status, h.body["nextPageToken"])
	}
	h2 := call(t, "GET", base+"/v1/admin/queues?prefix=app-&pageSize=1000&pageToken="+url.QueryEscape(h.body["nextPageToken"].(string)), adminKey, "")
	if h2.status != 200 {
		t.Fatalf("HTTP second page: %s", h2.raw)
	}

	entries, err := e.rdb.SlowLogGet(ctx, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	var scans int
	var longest time.Duration
	for _, en := range entries {
		if len(en.Args) == 0 || !strings.EqualFold(en.Args[0], "sscan") {
			continue
		}
		scans++
		longest = max(longest, en.Duration)
	}
	for _, en := range entries {
		if len(en.Args) > 0 && (strings.EqualFold(en.Args[0], "smembers") || strings.EqualFold(en.Args[0], "keys")) {
			t.Fatalf("a full read ran: %v", en.Args)
		}
	}
	if want := appPages + allPages + 2; scans != want {
		t.Fatalf("%d SSCAN calls for %d pages: want one per page", scans, want)
	}
	if longest > 50*time.Millisecond {
		t.Fatalf("longest SSCAN took %s", longest)
	}
	t.Logf("100k queues: prefix listing %d pages, full listing %d pages; longest SSCAN %s (SLOWLOG), longest ListQueues RPC %s",
		appPages, allPages, longest, rpcLongest)
}
