// Acceptance 4: 500 clients when their gateway restarts: the reconnect
// attempts spread over the restart window (histograms printed), none of
// the messages is lost.
import { test } from "node:test";
import assert from "node:assert/strict";
import { WsmqClient, CloseCodes } from "../index.js";
import { GATEWAY, ctl, eventually, login } from "./harness.mjs";

const N = Number(process.env.WSMQ_CLIENTS || 500);
const spread = 5000; // the SDK's default restart spread
const bucket = 500;

function histogram(title, values) {
  const counts = [];
  for (const v of values) counts[Math.floor(v / bucket)] = (counts[Math.floor(v / bucket)] || 0) + 1;
  const lines = [`${title} (${values.length} values, ${bucket} ms buckets)`];
  for (let i = 0; i < counts.length; i++) {
    const c = counts[i] || 0;
    lines.push(`${String(i * bucket).padStart(6)}-${String((i + 1) * bucket).padEnd(6)} ms ${String(c).padStart(4)} ${"#".repeat(Math.ceil(c / 4))}`);
  }
  console.log(lines.join("\n"));
  return counts;
}

test(`${N} clients reconnect spread over the window after a gateway restart, none loses a message`, async () => {
  // One user (one bcrypt login), one secondary queue per client.
  const sess = await login("herd");
  const token = sess.token;
  const clients = [];
  for (let i = 0; i < N; i++) {
    const c = {
      userId: `${sess.userId}-c${i}`,
      calls: new Map(),
      closedAt: 0,
      firstRetry: 0,
      attempts: 0,
    };
    c.client = new WsmqClient({ credentials: () => ({ url: GATEWAY, token }) });
    c.client.subscribe(c.userId, (m) => c.calls.set(m.message, (c.calls.get(m.message) || 0) + 1));
    c.client.on("disconnected", (e) => {
      if (!c.closedAt && e.code === CloseCodes.GoingAway) c.closedAt = performance.now();
    });
    c.client.on("connecting", () => {
      if (!c.closedAt) return;
      c.attempts++;
      if (!c.firstRetry) c.firstRetry = performance.now();
    });
    clients.push(c);
  }
  try {
    await ctl("/sendEach", { queues: clients.map((c) => c.userId), body: "before" });
    for (const c of clients) c.client.connect();
    await eventually("every client subscribed", () => clients.every((c) => [...c.client.subs.values()][0].state === "subscribed"), 120000);
    await eventually("every client got its message", () => clients.every((c) => c.calls.has("before")), 60000);

    const t0 = performance.now();
    const restarted = ctl("/restart", { gw: 0 });
    await eventually("a 1001 close", () => clients.some((c) => c.closedAt));
    // Sent while the gateway goes down and comes back: queued, not lost.
    await ctl("/sendEach", { queues: clients.map((c) => c.userId), body: "during" });
    await restarted;
    await eventually("every client reconnected", () => clients.every((c) => c.client.state === "connected" && c.client.stats.connects >= 2), 120000);
    await ctl("/sendEach", { queues: clients.map((c) => c.userId), body: "after" });
    await eventually("every message handled", () => clients.every((c) => c.calls.has("during") && c.calls.has("after")), 120000);
    for (const c of clients) {
      for (const [body, k] of c.calls) assert.equal(k, 1, `${c.userId}: ${body} handled ${k} times`);
    }

    const closes = histogram("1001 closes after SIGTERM", clients.map((c) => c.closedAt - t0));
    const delays = clients.map((c) => c.firstRetry - c.closedAt);
    const counts = histogram("first reconnect attempt after the client's 1001", delays);
    histogram("first reconnect attempts after SIGTERM", clients.map((c) => c.firstRetry - t0));
    const attempts = clients.reduce((a, c) => a + c.attempts, 0);
    console.log(`${attempts} attempts for ${N} reconnects (attempts that met the gateway down retried with backoff)`);
    void closes;
    // Spread, not a herd: the delays cover most of the window and no
    // bucket holds much more than its uniform share (1/10).
    assert.ok(Math.max(...delays) - Math.min(...delays) >= spread / 2, "delays cover less than half the window");
    assert.ok(Math.max(...counts.map((c) => c || 0)) <= N / 4, `a ${bucket} ms bucket holds more than a quarter of the attempts`);
    assert.ok(delays.every((d) => d > 0 && d <= spread + 1000), "a delay outside the spread window (beyond the event loop's lag with 500 clients)");
  } finally {
    for (const c of clients) c.client.close();
  }
});
