// Acceptance 1: the seed flow. Log in, subscribe, receive, ack.
import { test } from "node:test";
import assert from "node:assert/strict";
import { WsmqClient, ticketCredentials } from "../index.js";
import { GATEWAY, ctl, eventually, next, queueLength } from "./harness.mjs";

test("logs in, subscribes, receives and acks", async () => {
  const { password } = await ctl("/user", { name: "seed" });
  const res = await fetch(GATEWAY + "/v1/authenticate", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ userName: "seed", password }),
  });
  const sess = await res.json();
  assert.ok(sess.success, JSON.stringify(sess));

  const client = new WsmqClient({ credentials: ticketCredentials({ url: GATEWAY, token: sess.token, accessToken: sess.accessToken }) });
  const states = [];
  client.on("state", (e) => states.push(e.state));
  let received;
  const got = new Promise((r) => (received = r));
  const sub = client.subscribe(sess.userId, (m) => received(m));
  assert.equal(sub.state, "pending");
  const hello = next(client, "connected");
  client.connect();
  const { hello: h } = await hello;
  assert.equal(h.ackMode, "manual");
  assert.ok(h.prefetch > 0 && h.pingInterval > 0, JSON.stringify(h));
  await eventually("subscribed", () => sub.state === "subscribed");

  const { ids } = await ctl("/send", { queue: sess.userId, prefix: "seed" });
  const m = await got;
  assert.equal(m.id, ids[0]);
  assert.equal(m.message, "seed0");
  assert.equal(m.queue, sess.userId);
  assert.equal(m.rc, 1);
  // Manual mode by default: the handler's completion acked it.
  await eventually("acked message deleted", async () => (await queueLength(sess.userId)) === 0);
  assert.deepEqual(states, ["connecting", "connected"]);
  assert.equal(client.stats.handled, 1);
  assert.equal(client.stats.connects, 1);
  client.close();
  assert.equal(client.state, "closed");
});
