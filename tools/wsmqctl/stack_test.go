package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wsmq/wsmq/pkg/rsmq"
	"github.com/wsmq/wsmq/pkg/testenv"
	"github.com/wsmq/wsmq/tools/internal/supervisor/supervisortest"
	"github.com/wsmq/wsmq/tools/wsmqctl/internal/tokenfile"
)

// listenFrame is a printed frame as the tests read it.
type listenFrame struct {
	Event   string `json:"event"`
	Queue   string `json:"queue"`
	ID      string `json:"id"`
	Message string `json:"message"`
	RC      int64  `json:"rc"`
	Token   string `json:"token"`
}

func frames(t *testing.T, out string) []listenFrame {
	t.Helper()
	var fs []listenFrame
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		var f listenFrame
		if err := json.Unmarshal([]byte(line), &f); err != nil {
			t.Fatalf("listen printed a line that is not JSON: %q", line)
		}
		fs = append(fs, f)
	}
	return fs
}

func messages(fs []listenFrame) []listenFrame {
	var out []listenFrame
	for _, f := range fs {
		if f.Event == "" && f.ID != "" {
			out = append(out, f)
		}
	}
	return out
}

// TestCLIAgainstARunningStack runs every wsmqctl command in-process against
// real processes (redis-server, the MongoDB-wire server, auth, publisher and
// gateway binaries) started by the supervisor outside dev mode, successes
// and failures.
func TestCLIAgainstARunningStack(t *testing.T) {
	cfg := supervisortest.Config(t)
	// Outside dev mode the gateway refuses token/accessToken in the URL
	// (WSMQ_ALLOW_QUERY_CREDENTIALS unset): listen must use tickets, and a
	// return to query credentials fails here.
	cfg.Dev = false
	s := supervisortest.Start(t, cfg)
	base := env{
		"WSMQ_GATEWAY_URL":      s.GatewayURL(0),
		"WSMQ_PUBLISHER_ADDR":   s.PublisherAddr(),
		"WSMQ_PUBLISHER_KEY":    s.PublisherKey(),
		"WSMQ_AUTH_ADDR":        s.AuthAddr(),
		"WSMQ_AUTH_ADMIN_TOKEN": s.AdminToken(),
		"WSMQ_REDIS_URL":        s.RedisURL(),
		"XDG_CONFIG_HOME":       t.TempDir(),
	}
	rdb := redis.NewClient(&redis.Options{Addr: s.RedisAddr()})
	t.Cleanup(func() { _ = rdb.Close() })
	queues := rsmq.New(rdb, rsmq.Options{})
	queueMsgs := func(t *testing.T, q string) int64 {
		t.Helper()
		a, err := queues.GetQueueAttributes(context.Background(), q)
		if err != nil {
			t.Fatalf("queue %s: %v", q, err)
		}
		return a.Msgs
	}

	// A user of our own, made and logged in with the CLI.
	const user, password = "cli-alice", "alice-Pass-7731"
	add := ctl(t, base, password+"\n", "users", "add", user).must(t, exitOK, "users add")
	userID := strings.TrimSpace(add.stdout)
	if userID == "" {
		t.Fatal("users add printed no user id")
	}
	login := ctl(t, base, password+"\n", "login", "--user", user).must(t, exitOK, "login")
	if got := strings.TrimSpace(login.stdout); got != userID {
		t.Fatalf("login printed %q, want the user id %q", got, userID)
	}
	tokensPath := filepath.Join(base["XDG_CONFIG_HOME"], "wsmq", "tokens.json")

	t.Run("LoginStoresTokensOwnerOnlyWithoutThePassword", func(t *testing.T) {
		fi, err := os.Stat(tokensPath)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("tokens.json mode %o, want 600", fi.Mode().Perm())
		}
		if di, _ := os.Stat(filepath.Dir(tokensPath)); di.Mode().Perm() != 0o700 {
			t.Errorf("tokens dir mode %o, want 700", di.Mode().Perm())
		}
		raw, _ := os.ReadFile(tokensPath)
		if bytes.Contains(raw, []byte(password)) {
			t.Fatal("tokens.json contains the password")
		}
		sess, err := tokenfile.Load(tokensPath)
		if err != nil || sess.UserID != userID || sess.Token == "" || sess.AccessToken == "" || sess.UserName != user {
			t.Fatalf("stored session %+v, %v", sess, err)
		}
	})

	t.Run("LoginPrintOutputsTokensAndStoresNothing", func(t *testing.T) {
		e := base.with("XDG_CONFIG_HOME", t.TempDir(), "WSMQ_PASSWORD", password)
		r := ctl(t, e, "", "login", "--user", user, "--print").must(t, exitOK, "login --print")
		var got struct{ UserID, Token, AccessToken string }
		if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || got.UserID != userID || got.Token == "" || got.AccessToken == "" {
			t.Fatalf("login --print: %q (%v)", r.stdout, err)
		}
		if _, err := os.Stat(filepath.Join(e["XDG_CONFIG_HOME"], "wsmq")); !os.IsNotExist(err) {
			t.Fatalf("login --print stored something: %v", err)
		}
	})

	t.Run("LoginWithAWrongPasswordExitsOne", func(t *testing.T) {
		e := base.with("XDG_CONFIG_HOME", t.TempDir())
		r := ctl(t, e, "wrong-password\n", "login", "--user", user).must(t, exitFail, "login")
		if !strings.Contains(r.stderr, "401") {
			t.Fatalf("stderr %q does not show the 401", r.stderr)
		}
	})

	t.Run("SendPrintsTheIDAndListenReceivesTheQueuedMessage", func(t *testing.T) {
		id := strings.TrimSpace(ctl(t, base, "", "send", userID, "hello from the cli").must(t, exitOK, "send").stdout)
		if id == "" {
			t.Fatal("send printed no id")
		}
		r := ctl(t, base, "", "listen", "--count", "1", "--timeout", "20s").must(t, exitOK, "listen")
		ms := messages(frames(t, r.stdout))
		if len(ms) != 1 || ms[0].ID != id || ms[0].Message != "hello from the cli" || ms[0].Queue != userID {
			t.Fatalf("listen printed %s, want the message %s", r.stdout, id)
		}
		// The gateway deletes an auto-acked message after the client's pong,
		// in a batch of its deleter: not always before listen has exited.
		testenv.Eventually(t, 5*time.Second, "auto-acked message deleted", func() bool { return queueMsgs(t, userID) == 0 })
	})

	t.Run("ListenManualAcksLiveMessagesSoTheQueueEmpties", func(t *testing.T) {
		out := &testenv.SyncBuffer{}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		done := make(chan int, 1)
		go func() {
			done <- run(ctx, []string{"listen", "--ack", "manual", "--count", "2"}, strings.NewReader(""), out, &testenv.SyncBuffer{}, base.getenv, base.environ())
		}()
		testenv.Eventually(t, 15*time.Second, "listen subscribed", func() bool { return strings.Contains(out.String(), `"event":"subscribed"`) })
		for i := range 2 {
			ctl(t, base, "", "send", userID, fmt.Sprintf("live %d", i)).must(t, exitOK, "send")
		}
		select {
		case code := <-done:
			if code != exitOK {
				t.Fatalf("listen exit %d; output %s", code, out)
			}
		case <-ctx.Done():
			t.Fatalf("listen did not exit after 2 messages; output %s", out)
		}
		if ms := messages(frames(t, out.String())); len(ms) != 2 {
			t.Fatalf("listen printed %d messages, want 2: %s", len(ms), out)
		}
		// Acks are read by the gateway before it answers our close frame.
		testenv.Eventually(t, 5*time.Second, "acked messages deleted", func() bool { return queueMsgs(t, userID) == 0 })
	})

	t.Run("ListenStoresTheRefreshedTokenWhenTheJWTIsBad", func(t *testing.T) {
		e := base.with("XDG_CONFIG_HOME", t.TempDir())
		sess, err := tokenfile.Load(tokensPath)
		if err != nil {
			t.Fatal(err)
		}
		sess.Token = "not.a.jwt"
		path := filepath.Join(e["XDG_CONFIG_HOME"], "wsmq", "tokens.json")
		if err := tokenfile.Save(path, sess); err != nil {
			t.Fatal(err)
		}
		ctl(t, base, "", "send", userID, "after refresh").must(t, exitOK, "send")
		r := ctl(t, e, "", "listen", "--count", "1", "--timeout", "20s").must(t, exitOK, "listen")
		fs := frames(t, r.stdout)
		if len(fs) == 0 || fs[0].Event != "token" {
			t.Fatalf("first frame is not the token event: %s", r.stdout)
		}
		got, err := tokenfile.Load(path)
		if err != nil || got.Token != fs[0].Token || jwtUserID(got.Token) != userID {
			t.Fatalf("stored token %q (%v), want the refreshed one", got.Token, err)
		}
	})

	t.Run("ListenWithOnlyAnAccessTokenFindsTheOwnQueue", func(t *testing.T) {
		sess, _ := tokenfile.Load(tokensPath)
		e := base.with("XDG_CONFIG_HOME", t.TempDir(), "WSMQ_ACCESS_TOKEN", sess.AccessToken)
		id := strings.TrimSpace(ctl(t, base, "", "send", userID, "env creds").must(t, exitOK, "send").stdout)
		r := ctl(t, e, "", "listen", "--count", "1", "--timeout", "20s").must(t, exitOK, "listen")
		if ms := messages(frames(t, r.stdout)); len(ms) != 1 || ms[0].ID != id {
			t.Fatalf("listen printed %s, want message %s", r.stdout, id)
		}
	})

	t.Run("ListenFailuresExitOne", func(t *testing.T) {
		cases := []struct {
			name   string
			e      env
			args   []string
			errHas string
		}{
			{"bad tokens", base.with("WSMQ_TOKEN", "bad", "WSMQ_ACCESS_TOKEN", "bad"), nil, "HTTP 401"},
			{"gateway down", base.with("WSMQ_GATEWAY_URL", "http://127.0.0.1:1"), nil, "cannot connect"},
			{"forbidden queue", base, []string{"--queue", "someone-else"}, "refused: forbidden"},
			{"count not reached", base, []string{"--count", "1", "--timeout", "300ms"}, "stopped after 0 of 1 messages: --timeout 300ms reached"},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				args := append([]string{"listen"}, c.args...)
				r := ctl(t, c.e, "", args...).must(t, exitFail, args...)
				if !strings.Contains(r.stderr, c.errHas) {
					t.Fatalf("stderr %q does not contain %q", r.stderr, c.errHas)
				}
			})
		}
	})

	t.Run("ListenTimeoutWithoutCountExitsZero", func(t *testing.T) {
		ctl(t, base, "", "listen", "--timeout", "300ms").must(t, exitOK, "listen --timeout")
	})

	t.Run("SendFileReportsBadLinesExitsOneAndStoresTheRest", func(t *testing.T) {
		q := userID + "-batch"
		in := strings.Join([]string{
			"# two good lines, one malformed, one the publisher refuses",
			q + "\tfirst",
			`{"queue":"` + q + `","message":"second","delay_seconds":0}`,
			"no tab here",
			"bad queue!\tthird",
			"",
		}, "\n")
		file := filepath.Join(t.TempDir(), "batch.txt")
		if err := os.WriteFile(file, []byte(in), 0o600); err != nil {
			t.Fatal(err)
		}
		r := ctl(t, base, "", "send", "--file", file).must(t, exitFail, "send --file")
		var lines []sendResult
		for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
			var sr sendResult
			if err := json.Unmarshal([]byte(l), &sr); err != nil {
				t.Fatalf("not a JSON result line: %q", l)
			}
			lines = append(lines, sr)
		}
		if len(lines) != 4 {
			t.Fatalf("got %d result lines, want 4: %s", len(lines), r.stdout)
		}
		byLine := map[int]sendResult{}
		for _, l := range lines {
			byLine[l.Line] = l
		}
		if byLine[2].ID == "" || byLine[3].ID == "" {
			t.Errorf("good lines 2 and 3 have no ids: %s", r.stdout)
		}
		if byLine[4].Error == "" || !strings.Contains(byLine[5].Error, "InvalidArgument") {
			t.Errorf("bad lines 4 and 5 not reported as errors: %s", r.stdout)
		}
		if !strings.Contains(r.stderr, "2 of 4 lines failed") {
			t.Errorf("stderr %q lacks the failure count", r.stderr)
		}
		if n := queueMsgs(t, q); n != 2 {
			t.Fatalf("queue %s holds %d messages, want the 2 good ones", q, n)
		}
	})

	t.Run("SendFileFromStdinSendsEveryLine", func(t *testing.T) {
		q := userID + "-stdin"
		var in strings.Builder
		for i := range 5 {
			fmt.Fprintf(&in, "%s\tm%d\n", q, i)
		}
		r := ctl(t, base, in.String(), "send", "--file", "-").must(t, exitOK, "send --file -")
		if n := strings.Count(r.stdout, `"id":`); n != 5 {
			t.Fatalf("%d ids printed, want 5: %s", n, r.stdout)
		}
		if n := queueMsgs(t, q); n != 5 {
			t.Fatalf("queue holds %d, want 5", n)
		}
	})

	t.Run("SendFailuresExitOne", func(t *testing.T) {
		r := ctl(t, base, "", "send", "bad queue!", "m").must(t, exitFail, "send")
		if !strings.Contains(r.stderr, "InvalidArgument") {
			t.Fatalf("stderr %q", r.stderr)
		}
	})

	t.Run("QueuesLsAndStatsShowQueuesAndCounts", func(t *testing.T) {
		q := userID + "-stats"
		for i := range 3 {
			ctl(t, base, "", "send", q, fmt.Sprint(i)).must(t, exitOK, "send")
		}
		ctl(t, base, "", "send", "--delay", "1h", q, "later").must(t, exitOK, "send --delay")
		ls := ctl(t, base, "", "queues", "ls").must(t, exitOK, "queues ls")
		if !strings.Contains("\n"+ls.stdout, "\n"+q+"\n") {
			t.Fatalf("queues ls lacks %s:\n%s", q, ls.stdout)
		}
		want := queueStats{Queue: q, VT: rsmq.DefaultVT, MaxSize: rsmq.DefaultMaxSize, Msgs: 4, Hidden: 1, TotalSent: 4}
		var st queueStats
		// A message's send time may lie a few ms ahead of Redis's clock
		// (RSMQ ids come from an estimate of it): it counts as hidden until then.
		testenv.Eventually(t, 5*time.Second, "stats show 4 messages, 1 hidden (delayed)", func() bool {
			r := ctl(t, base, "", "queues", "stats", "--json", q).must(t, exitOK, "queues stats")
			st = queueStats{}
			if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
				t.Fatalf("stats %q: %v", r.stdout, err)
			}
			if st.Created == 0 || st.Modified == 0 {
				t.Fatalf("stats lack created/modified: %+v", st)
			}
			st.Created, st.Modified = 0, 0
			return st == want
		})
		table := ctl(t, base, "", "queues", "stats").must(t, exitOK, "queues stats")
		if !strings.Contains(table.stdout, "TOTALSENT") || !strings.Contains(table.stdout, q) {
			t.Fatalf("stats table:\n%s", table.stdout)
		}
		miss := ctl(t, base, "", "queues", "stats", q, "no-such-queue").must(t, exitFail, "queues stats missing")
		if !strings.Contains(miss.stderr, `no queue "no-such-queue"`) || !strings.Contains(miss.stdout, q) {
			t.Fatalf("stats with a missing queue: stdout %q stderr %q", miss.stdout, miss.stderr)
		}
	})

	t.Run("QueuesLsAndStatsThroughThePublisherAdminService", func(t *testing.T) {
		q := userID + "-viapub"
		ctl(t, base, "", "send", "--delay", "1h", q, "later").must(t, exitOK, "send")
		admin := env{"WSMQ_PUBLISHER_ADMIN_KEY": s.PublisherAdminKey(), "WSMQ_REDIS_URL": "redis://127.0.0.1:1/0"}
		for k, v := range base {
			if _, ok := admin[k]; !ok {
				admin[k] = v
			}
		}
		// Redis is unreachable for this wsmqctl: the answers come from the
		// publisher (the stack runs in dev mode, where the admin service is
		// open; admin keys are enforced by the publisher's own tests).
		ls := ctl(t, admin, "", "queues", "ls", "--via-publisher").must(t, exitOK, "queues ls via publisher")
		if !strings.Contains("\n"+ls.stdout, "\n"+q+"\n") {
			t.Fatalf("queues ls via the publisher lacks %s:\n%s", q, ls.stdout)
		}
		r := ctl(t, admin, "", "queues", "stats", "--via-publisher", "--json", q).must(t, exitOK, "queues stats via publisher")
		var st queueStats
		if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || st.Msgs != 1 || st.Hidden != 1 || st.TotalSent != 1 {
			t.Fatalf("stats via the publisher %q: %v", r.stdout, err)
		}
	})

	t.Run("UsersAdminCommandsAndTheirFailures", func(t *testing.T) {
		const name = "cli-bob"
		ctl(t, base, "bob-Pass-0001\n", "users", "add", name).must(t, exitOK, "users add")
		dup := ctl(t, base, "bob-Pass-0002\n", "users", "add", name).must(t, exitFail, "users add again")
		if !strings.Contains(dup.stderr, "already exists") {
			t.Fatalf("duplicate add: %q", dup.stderr)
		}
		be := base.with("XDG_CONFIG_HOME", t.TempDir())
		ctl(t, be, "bob-Pass-0001\n", "login", "--user", name).must(t, exitOK, "login")

		ls := ctl(t, base, "", "users", "ls", "--json").must(t, exitOK, "users ls")
		var found bool
		for _, l := range strings.Split(strings.TrimSpace(ls.stdout), "\n") {
			var u struct {
				UserName string
				Sessions int64
			}
			_ = json.Unmarshal([]byte(l), &u)
			if u.UserName == name {
				found = u.Sessions == 1
			}
		}
		if !found {
			t.Fatalf("users ls lacks %s with 1 session:\n%s", name, ls.stdout)
		}
		if tbl := ctl(t, base, "", "users", "ls").must(t, exitOK, "users ls"); !strings.Contains(tbl.stdout, name) || !strings.Contains(tbl.stdout, "SESSIONS") {
			t.Fatalf("users ls table:\n%s", tbl.stdout)
		}

		rv := ctl(t, base, "", "users", "revoke", name).must(t, exitOK, "users revoke")
		if !strings.Contains(rv.stdout, "1 session(s)") {
			t.Fatalf("revoke: %q", rv.stdout)
		}
		// The revoked session no longer opens a websocket.
		sess, _ := tokenfile.Load(filepath.Join(be["XDG_CONFIG_HOME"], "wsmq", "tokens.json"))
		ctl(t, base.with("WSMQ_ACCESS_TOKEN", sess.AccessToken), "", "listen", "--queue", sess.UserID).must(t, exitFail, "listen revoked")

		ctl(t, base.with("WSMQ_PASSWORD", "bob-Pass-0003"), "", "users", "passwd", name).must(t, exitOK, "users passwd")
		ctl(t, be, "bob-Pass-0001\n", "login", "--user", name).must(t, exitFail, "login with the old password")
		ctl(t, be, "bob-Pass-0003\n", "login", "--user", name).must(t, exitOK, "login with the new password")

		wrong := base.with("WSMQ_AUTH_ADMIN_TOKEN", "not-the-admin-token-at-all")
		for _, args := range [][]string{{"users", "ls"}, {"users", "add", "cli-carol"}, {"users", "rm", name}} {
			r := ctl(t, wrong, "carol-Pass-0001\n", args...).must(t, exitFail, args...)
			if !strings.Contains(r.stderr, "admin token") {
				t.Fatalf("%v with a wrong admin token: %q", args, r.stderr)
			}
		}

		ctl(t, base, "", "users", "rm", name).must(t, exitOK, "users rm")
		gone := ctl(t, base, "", "users", "rm", name).must(t, exitFail, "users rm again")
		if !strings.Contains(gone.stderr, "no user named") {
			t.Fatalf("rm of a missing user: %q", gone.stderr)
		}
		ctl(t, be, "bob-Pass-0003\n", "login", "--user", name).must(t, exitFail, "login of a deleted user")
	})
}
