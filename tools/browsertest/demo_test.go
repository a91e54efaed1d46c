package browsertest_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/redis/go-redis/v9"

	"github.com/wsmq/wsmq/pkg/rsmq"
	"github.com/wsmq/wsmq/pkg/testenv"
	"github.com/wsmq/wsmq/services/publisher/client"
	"github.com/wsmq/wsmq/tools/browsertest"
	"github.com/wsmq/wsmq/tools/internal/supervisor/supervisortest"
)

// wait bounds every step that waits for the page.
const wait = 20 * time.Second

// ticketInURL and queryCredential tell how a websocket URL authenticates.
var (
	ticketInURL     = regexp.MustCompile(`[?&]ticket=[^&]+`)
	queryCredential = regexp.MustCompile(`(?i)[?&](token|accesstoken)=`)
)

// msgLine is how the demo page shows a delivered message.
var msgLine = regexp.MustCompile(`^message "(.*)" \(rc (\d+), (-?\d+) ms\)$`)

// TestDemoPageLogsInConnectsAndShowsSentMessagesWithLatency drives the
// gateway's /demo page in headless Chromium against a real dev stack
// (redis-server, MongoDB-wire server, auth, publisher, gateway processes):
// a wrong password is refused, the demo user logs in, connects, sends a
// message with the page's dev helper and sees it arrive with its latency;
// a message sent by a backend over the publisher's gRPC API shows too. The
// page is saved as demo.png in $WSMQ_ARTIFACTS (default <repo>/artifacts).
func TestDemoPageLogsInConnectsAndShowsSentMessagesWithLatency(t *testing.T) {
	ctx := startBrowser(t)
	stack := supervisortest.Start(t, supervisortest.Config(t))

	demoURL := stack.GatewayURL(0) + "/demo"
	do(t, ctx, "open "+demoURL,
		chromedp.Navigate(demoURL),
		chromedp.WaitVisible(chromedp.CSS("#login")),
	)

	// A wrong password is refused on the page and leaves Connect disabled.
	do(t, ctx, "log in with a wrong password",
		chromedp.SetValue(chromedp.CSS("#password"), "not-the-password"),
		chromedp.Click(chromedp.CSS("#login")),
	)
	waitFor(t, ctx, "the login error", `document.querySelector("#log .error")?.textContent.includes("login failed")`)
	if connectDisabled := run(t, ctx, "read #connect", chromedp.JavascriptAttribute[bool](chromedp.CSS("#connect"), "disabled")); !connectDisabled {
		t.Fatal("#connect is enabled after a failed login")
	}

	// Log in as demo/demo, connect, subscribe.
	do(t, ctx, "log in as demo",
		chromedp.SetValue(chromedp.CSS("#user"), "demo"),
		chromedp.SetValue(chromedp.CSS("#password"), "demo"),
		chromedp.Click(chromedp.CSS("#login")),
		chromedp.WaitEnabled(chromedp.CSS("#connect")),
	)
	who := run(t, ctx, "read #who", chromedp.Text(chromedp.CSS("#who")))
	userID := strings.TrimPrefix(who, "user id ")
	if userID == "" || userID == who {
		t.Fatalf("#who = %q, want \"user id <id>\"", who)
	}
	// The dev gateway accepts query credentials, so record the URL of every
	// websocket the page opens (the SDK takes window.WebSocket when the
	// client is made, at Connect): each must carry a ticket, never a
	// long-lived credential.
	run(t, ctx, "record the page's websocket URLs", chromedp.Evaluate[bool](`(() => {
		const W = window.WebSocket;
		window.wsURLs = [];
		window.WebSocket = class extends W {
			constructor(url, protocols) { super(url, protocols); window.wsURLs.push(String(url)); }
		};
		return true;
	})()`))
	do(t, ctx, "connect",
		chromedp.Click(chromedp.CSS("#connect")),
		chromedp.WaitEnabled(chromedp.CSS("#send")),
	)
	waitFor(t, ctx, "subscribed", fmt.Sprintf(`document.getElementById("log").textContent.includes(%q)`, "subscribed to "+userID))
	if state := run(t, ctx, "read #state", chromedp.Text(chromedp.CSS("#state"))); state != "connected" {
		t.Fatalf("#state = %q, want connected", state)
	}
	urls := run(t, ctx, "read the page's websocket URLs", chromedp.Evaluate[[]string](`window.wsURLs`))
	if len(urls) == 0 {
		t.Fatal("the page opened no websocket through window.WebSocket: the URL check would be vacuous")
	}
	for _, u := range urls {
		if !ticketInURL.MatchString(u) || queryCredential.MatchString(u) {
			t.Errorf("the page connected to %q, want ?ticket= and no token= / accessToken=", u)
		}
	}
	// The page runs on the JavaScript SDK (clients/js, served at /demo/wsmq.js).
	if st := run(t, ctx, "read the SDK client's state", chromedp.Evaluate[string](`window.wsmq.client.state + " " + window.wsmq.client.stats.connects`)); st != "connected 1" {
		t.Fatalf("SDK client state and connects %q, want \"connected 1\"", st)
	}

	// 1. The page's dev helper sends to the user's queue; the message comes
	// back over the websocket and is shown with rc 1 and a latency.
	fromPage := "hello from the browser test " + strconv.FormatInt(time.Now().UnixNano(), 36)
	do(t, ctx, "send from the page",
		chromedp.SetValue(chromedp.CSS("#text"), fromPage),
		chromedp.Click(chromedp.CSS("#send")),
	)
	checkShown(t, ctx, fromPage)

	// 2. A backend sends over the publisher's gRPC API.
	pub, err := client.Dial(ctx, stack.PublisherAddr(), client.Options{Insecure: true, Key: stack.PublisherKey()})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = pub.Close() }()
	fromBackend := `from a Go backend: <b>not bold</b> & "quoted"`
	if _, err := pub.Send(ctx, userID, fromBackend, 0); err != nil {
		t.Fatalf("publisher Send: %v", err)
	}
	checkShown(t, ctx, fromBackend)
	// The page renders text, never markup from a message.
	if bolds := run(t, ctx, "count <b> in #log", chromedp.Evaluate[int](`document.querySelectorAll("#log b").length`)); bolds != 0 {
		t.Fatalf("#log holds %d <b> elements: message markup was rendered as HTML", bolds)
	}

	// 3. Manual ack: tick the box and connect again. The page replaces its
	// socket; the message shows and the page acks it, so it leaves the queue.
	do(t, ctx, "reconnect with manual ack",
		chromedp.Click(chromedp.CSS("#manual")),
		chromedp.Click(chromedp.CSS("#connect")),
	)
	waitFor(t, ctx, "the second subscription", fmt.Sprintf(
		`[...document.querySelectorAll("#log .event")].filter(d => d.textContent === %q).length === 2`, "subscribed to "+userID))
	acked := "acked by the page"
	if _, err := pub.Send(ctx, userID, acked, 0); err != nil {
		t.Fatalf("publisher Send: %v", err)
	}
	checkShown(t, ctx, acked)
	rdb := redis.NewClient(&redis.Options{Addr: stack.RedisAddr()})
	defer func() { _ = rdb.Close() }()
	queues := rsmq.New(rdb, rsmq.Options{})
	waitAcked(t, ctx, queues, userID)

	// The ack mode belongs to the socket: unticking the box afterwards does
	// not stop the page from acking what this manual-ack socket receives.
	do(t, ctx, "untick manual ack", chromedp.Click(chromedp.CSS("#manual")))
	stillAcked := "acked although the box is unticked"
	if _, err := pub.Send(ctx, userID, stillAcked, 0); err != nil {
		t.Fatalf("publisher Send: %v", err)
	}
	checkShown(t, ctx, stillAcked)
	waitAcked(t, ctx, queues, userID)
	// The replaced socket's late close event must not mark the new one closed.
	if state := run(t, ctx, "read #state", chromedp.Text(chromedp.CSS("#state"))); state != "connected" {
		t.Fatalf("#state = %q after reconnecting, want connected", state)
	}
	if disabled := run(t, ctx, "read #send", chromedp.JavascriptAttribute[bool](chromedp.CSS("#send"), "disabled")); disabled {
		t.Fatal("#send is disabled after reconnecting")
	}

	png := run(t, ctx, "screenshot", chromedp.FullScreenshot(100))
	path := artifactPath(t, "demo.png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatalf("save screenshot: %v", err)
	}
	t.Logf("screenshot: %s (%d bytes)", path, len(png))
}

// waitAcked waits until queue holds no message: every delivered one was
// acked (in manual mode an unacked one stays, hidden, for 30 s).
func waitAcked(t *testing.T, ctx context.Context, queues *rsmq.Client, queue string) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		attrs, err := queues.GetQueueAttributes(ctx, queue)
		if err != nil {
			t.Fatal(err)
		}
		if attrs.Msgs == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("queue %s still holds %d messages (%d hidden): the page did not ack", queue, attrs.Msgs, attrs.HiddenMsgs)
		}
		time.Sleep(20 * time.Millisecond) // polling Redis: no event announces a delete
	}
}

// checkShown waits until #log shows text as a delivered message and checks
// its receive count and latency.
func checkShown(t *testing.T, ctx context.Context, text string) {
	t.Helper()
	quoted := strconv.Quote(text) // the page shows JSON.stringify(message)
	waitFor(t, ctx, "message "+quoted, fmt.Sprintf(
		`[...document.querySelectorAll("#log .msg")].some(d => d.textContent.startsWith(%q))`, "message "+quoted))
	lines := run(t, ctx, "read #log .msg", chromedp.Evaluate[[]string](`[...document.querySelectorAll("#log .msg")].map(d => d.textContent)`))
	for _, l := range lines {
		m := msgLine.FindStringSubmatch(l)
		if m == nil || strconv.Quote(text) != `"`+m[1]+`"` {
			continue
		}
		if m[2] != "1" {
			t.Errorf("%q: rc %s, want 1", l, m[2])
		}
		ms, _ := strconv.Atoi(m[3])
		// Same machine, same clock: a latency is at least 0 and, on a
		// healthy stack, well under the wait.
		if ms < 0 || ms > int(wait/time.Millisecond) {
			t.Errorf("%q: latency %d ms out of [0, %d]", l, ms, wait/time.Millisecond)
		}
		return
	}
	t.Fatalf("no line of #log matches %q: %q", msgLine, lines)
}

// waitFor polls the JavaScript expression cond until it is true.
func waitFor(t *testing.T, ctx context.Context, what, cond string) {
	t.Helper()
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	if _, err := chromedp.Run(wctx, chromedp.Poll[chromedp.Void](cond, chromedp.WithPollingInterval(50*time.Millisecond))); err != nil {
		log, _ := chromedp.Run(ctx, chromedp.TextContent(chromedp.CSS("#log")))
		t.Fatalf("waiting for %s: %v\n#log:\n%s", what, err, log)
	}
}

// do runs browser actions in order within the step's deadline.
func do(t *testing.T, ctx context.Context, step string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	if err := chromedp.Do(sctx, actions...); err != nil {
		t.Fatalf("%s: %v", step, err)
	}
}

// run runs one browser action within the step's deadline and returns its value.
func run[T any](t *testing.T, ctx context.Context, step string, action chromedp.Action[T]) T {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	v, err := chromedp.Run(sctx, action)
	if err != nil {
		t.Fatalf("%s: %v", step, err)
	}
	return v
}

// artifactPath is name in $WSMQ_ARTIFACTS, or in <repo>/artifacts.
func artifactPath(t *testing.T, name string) string {
	t.Helper()
	dir := os.Getenv("WSMQ_ARTIFACTS")
	if dir == "" {
		root, err := filepath.Abs(filepath.Join("..", ".."))
		if err != nil {
			t.Fatal(err)
		}
		dir = filepath.Join(root, "artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, name)
}

// startBrowser starts a headless Chromium for the test (missing: the test
// fails under CI=true, skips elsewhere) and returns the context of its
// tab, bounded by two minutes. Every uncaught exception of a page's script
// fails the test.
func startBrowser(t *testing.T) context.Context {
	t.Helper()
	chromium, err := browsertest.FindChromium()
	if err != nil {
		testenv.Unavailable(t, "%v", err)
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		browsertest.AllocatorOptions(chromium, t.TempDir())...)
	ctx, cancelBrowser := chromedp.NewContext(allocCtx, chromedp.WithErrorf(t.Logf))
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	var mu sync.Mutex
	var jsErrors []string
	t.Cleanup(func() {
		cancel()
		cancelBrowser()
		cancelAlloc()
		mu.Lock()
		defer mu.Unlock()
		for _, e := range jsErrors {
			t.Errorf("page script exception: %s", e)
		}
	})
	// The first call starts the browser: it runs on ctx, never on a step's
	// shorter context, which would stop the browser with the step.
	err = chromedp.Listen(ctx, func(ev any) {
		if e, ok := ev.(*runtime.EventExceptionThrown); ok && e.ExceptionDetails != nil {
			text := e.ExceptionDetails.Text
			if e.ExceptionDetails.Exception != nil {
				text += " " + e.ExceptionDetails.Exception.Description
			}
			mu.Lock()
			defer mu.Unlock()
			jsErrors = append(jsErrors, text)
		}
	})
	if err != nil {
		t.Fatalf("start chromium %s: %v", chromium, err)
	}
	return ctx
}
