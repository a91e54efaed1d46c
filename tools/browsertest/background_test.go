package browsertest_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/wsmq/wsmq/pkg/testenv"
	"github.com/wsmq/wsmq/services/publisher/client"
	"github.com/wsmq/wsmq/tools/internal/supervisor/supervisortest"
)

// pingInterval is the page's client's in TestBackgroundTab: the SDK's
// watchdog gives a silent socket up after three of them.
const pingInterval = time.Second

// TestBackgroundTabDetectsItsConnectionAliveOrDeadCorrectly runs the
// JavaScript SDK in headless Chromium, through a TCP proxy, in a tab whose
// timers are throttled (its event loop held, so timers fire seconds late)
// or frozen: a live connection is kept, a black-holed one is given up
// within the watchdog's bound and replaced when the network is back, a
// frozen tab's dropped socket is replaced on waking; no message is lost.
func TestBackgroundTabDetectsItsConnectionAliveOrDeadCorrectly(t *testing.T) {
	ctx := startBrowser(t)
	stack := supervisortest.Start(t, supervisortest.Config(t))
	px := testenv.StartProxy(t, stack.GatewayAddr(0))

	// A page of the gateway's origin (through the proxy) loads the SDK and
	// runs a client of its own, with a 1 s ping interval (the gateway's own
	// protocol pings stay at their 25 s default).
	demoURL := px.URL() + "/demo"
	do(t, ctx, "open "+demoURL, chromedp.Navigate(demoURL), chromedp.WaitVisible(chromedp.CSS("#login")))
	run(t, ctx, "start a client", chromedp.Evaluate[bool](fmt.Sprintf(`
window.bg = {states: [], got: []};
import("/demo/wsmq.js").then(async (m) => {
  const res = await fetch("/v1/authenticate", {method: "POST", headers: {"Content-Type": "application/json"},
    body: JSON.stringify({userName: "demo", password: "demo"})});
  const s = await res.json();
  bg.userId = s.userId;
  const c = new m.WsmqClient({credentials: m.ticketCredentials({token: s.token, accessToken: s.accessToken, timeout: 2000}),
    pingInterval: %d, minBackoff: 100, maxBackoff: 1000, connectTimeout: 2000});
  c.on("state", (e) => bg.states.push(e.state + " " + (e.code || "") + " " + (e.reason || "") + " @" + Math.round(performance.now())));
  c.subscribe(s.userId, (msg) => { bg.got.push(msg.message); });
  bg.client = c;
  c.connect();
}).catch((e) => { bg.error = String(e); });
true`, pingInterval.Milliseconds())))
	waitFor(t, ctx, "subscribed", `bg.error ? (() => { throw new Error(bg.error); })() : bg.client && [...bg.client.subs.values()][0].state === "subscribed"`)
	userID := run(t, ctx, "read the user id", chromedp.Evaluate[string](`bg.userId`))
	pub, err := client.Dial(ctx, stack.PublisherAddr(), client.Options{Insecure: true, Key: stack.PublisherKey()})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = pub.Close() }()
	state := func() string {
		return run(t, ctx, "read the client", chromedp.Evaluate[string](`bg.client.state + " " + bg.client.stats.connects`))
	}
	history := func() string {
		return run(t, ctx, "read state changes", chromedp.Evaluate[string](`bg.states.join("; ")`))
	}
	got := func(body string) string { return fmt.Sprintf(`bg.got.includes(%q)`, body) }

	// 1. Alive: the tab's timers throttled, its event loop held for five
	// ping intervals (every timer fires seconds late, as in a background
	// tab) while a message arrives: the late watchdog tick must not
	// condemn the live connection.
	if _, err := pub.Send(ctx, userID, "sent to a throttled tab", 0); err != nil {
		t.Fatal(err)
	}
	do(t, ctx, "throttle the tab", stall(5*pingInterval))
	waitFor(t, ctx, "the message sent to the throttled tab", got("sent to a throttled tab"))
	time.Sleep(4 * pingInterval) // long enough for a wrong verdict (three intervals) to show
	if st := state(); st != "connected 1" {
		t.Fatalf("after a throttled spell on a live network: %q, want \"connected 1\" (no reconnect); states: %s", st, history())
	}

	// 2. Dead: the network black-holed while the tab is throttled: the
	// watchdog gives the connection up within its bound (three ping
	// intervals) once the tab runs again, and the client reconnects when
	// the network is back.
	px.SetForward(false)
	do(t, ctx, "throttle the tab", stall(2*pingInterval))
	woke := time.Now()
	waitFor(t, ctx, "the dead connection given up", `bg.client.state !== "connected"`)
	took := time.Since(woke)
	t.Logf("black-holed connection given up %v after the throttled tab ran again (watchdog bound %v)", took.Round(time.Millisecond), 3*pingInterval)
	if took > 3*pingInterval+5*time.Second {
		t.Fatalf("dead connection given up %v after waking, bound %v; states: %s", took, 3*pingInterval, history())
	}
	px.SetForward(true)
	waitFor(t, ctx, "reconnected", `bg.client.state === "connected" && bg.client.stats.connects === 2`)
	if _, err := pub.Send(ctx, userID, "after the black hole", 0); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "the message after the black hole", got("after the black hole"))

	// 3. Frozen: Chromium drops a frozen tab's websocket (it reports 1006
	// on waking): the client sees it dead at once, reconnects, and the
	// message sent meanwhile arrives.
	do(t, ctx, "freeze the tab", lifecycle(page.SetWebLifecycleStateStateFrozen))
	if _, err := pub.Send(ctx, userID, "sent to a frozen tab", 0); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * pingInterval) // the condition under test: a tab frozen this long, not a wait for an event
	do(t, ctx, "wake the tab", lifecycle(page.SetWebLifecycleStateStateActive))
	waitFor(t, ctx, "the message sent to the frozen tab", got("sent to a frozen tab"))
	waitFor(t, ctx, "connected", `bg.client.state === "connected"`)
	t.Logf("states: %s", history())
	run(t, ctx, "close the client", chromedp.Evaluate[bool](`bg.client.close(); true`))
}

// stall holds the tab's event loop for d: every timer and frame event
// waits, as a throttled background tab's timers do.
func stall(d time.Duration) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := chromedp.Evaluate[bool](fmt.Sprintf(`{ const end = Date.now() + %d; while (Date.now() < end) {} true }`, d.Milliseconds()))(ctx, t)
		return err
	})
}

// lifecycle sets the tab's web lifecycle state (frozen: no timers, no
// tasks, as Chromium does to background tabs; active).
func lifecycle(state page.SetWebLifecycleStateState) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, page.SetWebLifecycleState, page.SetWebLifecycleStateParams{State: state})
		return err
	})
}
