// Acceptance 3: SIGKILL the gateway mid-stream, two gateways behind a
// proxy: the client reconnects to the other, resubscribes, and every
// message reaches the handler once (redeliveries deduped, counted).
import { test } from "node:test";
import assert from "node:assert/strict";
import { WsmqClient, ticketCredentials } from "../index.js";
import { GATEWAY, ctl, eventually, login, queueLength, recorder } from "./harness.mjs";

test("survives SIGKILL of its gateway and handles every message once", async () => {
  const sess = await login("kim");
  const rec = recorder();
  const client = new WsmqClient({
    credentials: ticketCredentials({ url: GATEWAY, token: sess.token, accessToken: sess.accessToken }),
    minBackoff: 50,
    maxBackoff: 200,
  });
  client.subscribe(sess.userId, rec.handle);
  client.connect();
  const n = 400;
  // A stream, not one burst: batches of 20 (pacing, not synchronisation).
  const sending = (async () => {
    for (let i = 0; i < n; i += 20) {
      await ctl("/send", { queue: sess.userId, n: 20, prefix: `${i / 20}-` });
    }
  })();
  try {
    await eventually("a third handled", () => rec.calls.size >= n / 3);
    await ctl("/kill", { gw: 0 });
    await sending;
    await eventually("every message handled", () => rec.calls.size === n, 60000);
    await eventually("queue empty", async () => (await queueLength(sess.userId)) === 0);
    for (const [body, k] of rec.calls) assert.equal(k, 1, `message ${body} handled ${k} times`);
    assert.ok(client.stats.connects >= 2, `connects ${client.stats.connects}`);
    console.log(`after SIGKILL: ${client.stats.connects} connects, ${client.stats.duplicates} duplicates deduped, ${client.stats.droppedAcks} acks dropped`);
  } finally {
    client.close();
  }
});
