// Acceptance 9: an ack of a message of a lost connection is never sent on
// the new one; the message comes back and is deduped.
import { test } from "node:test";
import assert from "node:assert/strict";
import { WsmqClient, ticketCredentials } from "../index.js";
import { GATEWAY, ctl, eventually, login, queueLength } from "./harness.mjs";

test("acks after a reconnect never go on the new connection; the redelivery is deduped", async () => {
  const sess = await login("ada");
  let calls = 0;
  let entered;
  const inHandler = new Promise((r) => (entered = r));
  const client = new WsmqClient({
    credentials: ticketCredentials({ url: GATEWAY, token: sess.token, accessToken: sess.accessToken }),
    minBackoff: 20,
  });
  client.subscribe(sess.userId, async (m) => {
    calls++;
    entered();
    // The connection that delivered it is gone...
    await new Promise((r) => m.signal.addEventListener("abort", r));
    // ...and the handler still succeeds: its ack must not go out.
  });
  client.connect();
  try {
    await ctl("/send", { queue: sess.userId, prefix: "held" });
    await inHandler;
    await ctl("/proxy", { mode: "cut" });
    // The gateway put the unacked message back at once; the new connection
    // gets it again (rc 2); the client drops it as a duplicate and acks it
    // there, where it was delivered.
    await eventually("redelivery deduped", () => client.stats.duplicates === 1);
    await eventually("queue empty", async () => (await queueLength(sess.userId)) === 0);
    const st = client.stats;
    assert.equal(calls, 1, "handler calls");
    assert.equal(st.droppedAcks, 1, "dropped acks");
    assert.equal(st.unknownAcks, 0, "acks the gateway did not know");
    assert.equal(st.connects, 2, "connects");
  } finally {
    client.close();
  }
});
