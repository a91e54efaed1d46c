// Acceptance 2: 1,000 messages in order, exactly once to the handler, in
// both ack modes.
import { test } from "node:test";
import assert from "node:assert/strict";
import { WsmqClient, ticketCredentials } from "../index.js";
import { GATEWAY, eventually, login, queueLength, recorder, ctl } from "./harness.mjs";

for (const mode of ["auto", "manual"]) {
  test(`1000 messages in order exactly once, ack mode ${mode}`, async () => {
    const sess = await login("k" + mode);
    const n = 1000;
    await ctl("/send", { queue: sess.userId, n, prefix: "" });
    const rec = recorder();
    const client = new WsmqClient({ ackMode: mode, credentials: ticketCredentials({ url: GATEWAY, token: sess.token, accessToken: sess.accessToken }) });
    client.subscribe(sess.userId, rec.handle);
    client.connect();
    try {
      await eventually("every message handled", () => rec.calls.size === n);
      await eventually("queue empty", async () => (await queueLength(sess.userId)) === 0);
      assert.equal(rec.bodies.length, n, "handler calls");
      rec.bodies.forEach((b, i) => assert.equal(b, String(i), `call ${i} out of order`));
      assert.equal(client.stats.duplicates, 0);
    } finally {
      client.close();
    }
  });
}
